// Push metrics (issue 5, item 3): `MetricsSocket` gets contentmonster_transfer per file and
// vessel and contentmonster_queue per vessel; an absent socket, or one that never reads, or one
// that hangs up, changes nothing about replication.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { runCli } from '../helpers/process.js';
import { writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, resetFarm, writeSettings } from '../helpers/push.js';
import { startMetricsServer, type MetricsServer } from '../helpers/metrics-server.js';

let farm: VesselFarm;
let metrics: MetricsServer;

before(async () => {
  farm = await startVesselFarm({ count: 2 });
  metrics = await startMetricsServer();
});
after(async () => {
  await metrics?.stop();
  await farm?.stop();
});
beforeEach(async () => {
  await resetFarm(farm);
  metrics.clear();
});

async function someFiles(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  files.set('a.bin', await writeRandomFile(join(farm.viewPath, 'a.bin'), 200_000, 1));
  files.set('sub/b.bin', await writeRandomFile(join(farm.viewPath, 'sub/b.bin'), 70_000, 2));
  files.set('empty.txt', await writeRandomFile(join(farm.viewPath, 'empty.txt'), 0, 3));
  return files;
}

async function replicateWith(socketLine: string): Promise<{ out: string; files: Map<string, string> }> {
  const files = await someFiles();
  const settings = await writeSettings(farm, { monsterExtra: socketLine });
  const r = await runCli(['run', '-c', settings, '--once'], { cwd: farm.root });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  for (const v of farm.vessels) await assertOnVessel(v, farm.viewPath, files);
  return { out: r.stdout, files };
}

describe('push metrics', () => {
  it('one contentmonster_transfer per file and vessel, and contentmonster_queue per vessel', async () => {
    const { files } = await replicateWith(`MetricsSocket = ${metrics.path}`);
    const lines = metrics.parsed();
    const transfers = lines.filter((l) => l.measurement === 'contentmonster_transfer');
    assert.equal(transfers.length, files.size * farm.vessels.length, metrics.lines().join('\n'));
    for (const v of farm.vessels) {
      const mine = transfers.filter((t) => t.tags.vessel === v.name);
      assert.equal(mine.length, files.size);
      assert.deepEqual(mine.map((t) => t.tags.directory), ['data', 'data', 'data']);
      assert.deepEqual(mine.map((t) => t.fields.bytes).sort((a, b) => Number(a) - Number(b)), [0, 70_000, 200_000]);
      for (const t of mine) {
        assert.ok(Number(t.fields.duration_seconds) >= 0);
        assert.ok(Number.isFinite(Number(t.fields.bytes_per_second)));
      }
    }
    const queue = lines.filter((l) => l.measurement === 'contentmonster_queue');
    for (const v of farm.vessels) {
      const last = queue.filter((q) => q.tags.vessel === v.name).at(-1);
      assert.ok(last, `a queue point for ${v.name}`);
      assert.deepEqual([last.fields.files, last.fields.bytes], [0, 0], 'nothing waits at the end');
      // The rate sent to the vessel lately; no BandwidthLimit, so no limit field.
      assert.ok(Number(last.fields.bytes_per_second) >= 0, metrics.lines().join('\n'));
      assert.equal(last.fields.bandwidth_limit_bytes_per_second, undefined);
    }
  });

  it('an absent socket is one warning; everything is replicated', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cm-nosock-'));
    try {
      const { out } = await replicateWith(`MetricsSocket = ${join(dir, 'absent.sock')}`);
      assert.equal(out.match(/metrics socket \S+ unavailable/g)?.length, 1, out);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  for (const [name, behaviour] of [
    ['never reads (its buffers fill up)', (s: Socket) => s.pause()],
    ['hangs up on every connection', (s: Socket) => s.destroy()],
  ] as const) {
    it(`a socket that ${name} changes nothing about replication`, async () => {
      const dir = await mkdtemp(join(tmpdir(), 'cm-badsock-'));
      const path = join(dir, 'telegraf.sock');
      const sockets = new Set<Socket>();
      const server: Server = createServer((s) => {
        sockets.add(s);
        s.on('error', () => {});
        behaviour(s);
      });
      await new Promise<void>((resolve) => server.listen(path, resolve));
      try {
        await replicateWith(`MetricsSocket = ${path}`);
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await rm(dir, { recursive: true, force: true });
      }
    });
  }
});
