// Priority per Directory and Order within one (issue 20 point 4): files queued while the vessel
// cannot be reached are delivered, through one slot (Concurrency = 1, every file larger than a
// chunk, so one at a time), in queue order: the higher Priority first, each Directory in its
// Order; and a file whose upload had begun when the daemon was killed is finished first after
// the restart, before new files of a higher Priority. The order is read from the daemon's
// `delivered` events (one per delivery recorded), and every file arrives whole (SHA-256).
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { startLink, type Link } from '../helpers/link.js';
import { startDaemon, waitFor, type Daemon } from '../helpers/process.js';
import { writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, databasePath, resetFarm, writeSettings } from '../helpers/push.js';

const CHUNK = 4096; // every file below is larger: each is a large file, one at a time per connection

let farm: VesselFarm;
let link: Link;

before(async () => {
  farm = await startVesselFarm({ count: 1 });
  link = await startLink(farm.vessels[0].port);
});
after(async () => {
  await link?.stop();
  await farm?.stop();
});

/** Pending deliveries in the state database (0 until the daemon has created it). */
function pendingInDatabase(): number {
  const db = new Database(databasePath(farm), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare(`SELECT COUNT(*) AS n FROM deliveries WHERE state = 'pending'`).get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** The files of the `delivered` events, relative to farm.viewPath, in the order they came. */
function deliveredOrder(daemon: Daemon): string[] {
  return daemon.events().flatMap((e) => (e.type === 'delivered' ? [e.file.slice(farm.viewPath.length + 1)] : []));
}

/**
 * Starts `run --once` while the vessel refuses connections, waits until `files` deliveries wait
 * in the database (the scan has queued everything), then lets the vessel be reached.
 */
async function runQueuedThenReachable(settings: string, files: number): Promise<Daemon> {
  link.setRefusing(true);
  const daemon = startDaemon(['run', '-c', settings, '--once', '--log-format', 'json'], { cwd: farm.root });
  try {
    await daemon.waitForEvent('unreachable');
    await waitFor(() => pendingInDatabase() === files, `${files} deliveries waiting in the database`);
  } finally {
    link.setRefusing(false);
  }
  return daemon;
}

describe('priority and order', () => {
  beforeEach(async () => {
    link.setRateLimit(0);
    link.setRefusing(false);
    link.resetCounters();
    await resetFarm(farm);
  });

  it('delivers the higher Priority first, each Directory in its Order (size, mtime), through one slot', async () => {
    const dirs = ['reports', 'logs', 'video'];
    for (const d of dirs) await mkdir(join(farm.viewPath, d), { recursive: true });
    const files = new Map<string, string>();
    const write = async (rel: string, size: number, seed: number) => files.set(rel, await writeRandomFile(join(farm.viewPath, rel), size, seed));
    // Written in an order unlike the one expected, so that neither the scan nor the ids give it.
    await write('video/v-300k.bin', 300_000, 1);
    await write('reports/r-60k.bin', 60_000, 2);
    await write('logs/l-new-small.bin', 6_000, 3);
    await write('video/v-10k.bin', 10_000, 4);
    await write('reports/r-8k.bin', 8_000, 5);
    await write('logs/l-old-big.bin', 50_000, 6);
    await write('video/v-100k.bin', 100_000, 7);
    await write('reports/r-20k.bin', 20_000, 8);
    const day = 86_400;
    await utimes(join(farm.viewPath, 'logs/l-old-big.bin'), 1_600_000_000, 1_600_000_000);
    await utimes(join(farm.viewPath, 'logs/l-new-small.bin'), 1_600_000_000 + day, 1_600_000_000 + day);

    const settings = await writeSettings(farm, {
      chunkSize: CHUNK,
      portFor: () => link.port,
      vesselExtra: () => 'Concurrency = 1',
      directories: [
        { name: 'video', location: join(farm.viewPath, 'video') }, // Priority 0, Order size: the defaults
        { name: 'reports', location: join(farm.viewPath, 'reports'), extra: 'Priority = 10' },
        { name: 'logs', location: join(farm.viewPath, 'logs'), extra: 'Priority = 5\nOrder = mtime' },
      ],
    });
    const daemon = await runQueuedThenReachable(settings, files.size);
    try {
      assert.deepEqual(await daemon.waitForExit(120_000), { code: 0, signal: null }, daemon.output());
    } finally {
      daemon.kill('SIGKILL');
    }
    assert.deepEqual(deliveredOrder(daemon), [
      'reports/r-8k.bin', 'reports/r-20k.bin', 'reports/r-60k.bin', // Priority 10, smallest first
      'logs/l-old-big.bin', 'logs/l-new-small.bin', // Priority 5, oldest first
      'video/v-10k.bin', 'video/v-100k.bin', 'video/v-300k.bin', // Priority 0, smallest first
    ], daemon.output());
    await assertOnVessel(farm.vessels[0], farm.viewPath, files);
  });

  it('a file whose upload had begun when the daemon was killed goes first after the restart, before new files of a higher Priority', async () => {
    for (const d of ['reports', 'video']) await mkdir(join(farm.viewPath, d), { recursive: true });
    const files = new Map<string, string>();
    const write = async (rel: string, size: number, seed: number) => files.set(rel, await writeRandomFile(join(farm.viewPath, rel), size, seed));
    await write('video/v-big.bin', 3 * 1024 * 1024, 11);
    const settings = await writeSettings(farm, {
      chunkSize: 65536,
      portFor: () => link.port,
      vesselExtra: () => 'Concurrency = 1',
      directories: [
        { name: 'video', location: join(farm.viewPath, 'video') },
        { name: 'reports', location: join(farm.viewPath, 'reports'), extra: 'Priority = 10' },
      ],
    });
    link.setRateLimit(256 * 1024); // the big file takes about 12 s: it is under way when killed
    const first = startDaemon(['run', '-c', settings, '--once'], { cwd: farm.root });
    try {
      await waitFor(() => link.counts().bytesUp > 512 * 1024, 'the big file under way');
    } finally {
      first.kill('SIGKILL');
    }
    await first.waitForExit();
    link.setRateLimit(0);
    // New files while the daemon is down: two of a higher Priority, and a smaller one of its own
    // (all larger than a chunk, so that they wait for the one slot the big file holds).
    await write('reports/r-100k.bin', 100_000, 12);
    await write('reports/r-300k.bin', 300_000, 13);
    await write('video/v-80k.bin', 80_000, 14);

    const second = await runQueuedThenReachable(settings, files.size);
    try {
      assert.deepEqual(await second.waitForExit(120_000), { code: 0, signal: null }, second.output());
    } finally {
      second.kill('SIGKILL');
    }
    assert.deepEqual(deliveredOrder(second), ['video/v-big.bin', 'reports/r-100k.bin', 'reports/r-300k.bin', 'video/v-80k.bin'], second.output());
    await assertOnVessel(farm.vessels[0], farm.viewPath, files);
  });
});
