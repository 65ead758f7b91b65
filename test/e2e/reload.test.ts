// `systemctl reload contentmonster` (SIGHUP, issue 20 point 2): the daemon reads its settings
// again and applies what changed without a restart. Each case drives the built daemon against
// real sshd vessels: a vessel added (and an unchanged one whose large transfer goes on through
// the reload on its one connection: bytes on the link, not time), a vessel removed (its file in
// flight is delivered first; another reload stops it at once), a vessel changed (reconnects with
// the new settings), a Directory added and removed, and broken settings (one ERROR line, the old
// settings keep working). Every delivered file is checked by SHA-256.
import { after, before, beforeEach, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { startLink, type Link } from '../helpers/link.js';
import { startDaemon, waitFor, type Daemon } from '../helpers/process.js';
import { exists, sha256File, writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, resetFarm, writeSettings, type SettingsOptions } from '../helpers/push.js';
import type { PushEventOf } from '../../src/push/events.js';

let farm: VesselFarm;
/** In front of v1 and v2: rate limits, and counts of connections and bytes. */
let links: Link[];

before(async () => {
  farm = await startVesselFarm({ count: 2 });
  links = [await startLink(farm.vessels[0].port), await startLink(farm.vessels[1].port)];
});
after(async () => {
  for (const l of links ?? []) await l.stop();
  await farm?.stop();
});

const MiB = 1024 * 1024;
/** One connection per vessel, so that "the same connection" is the link's one connection. */
const base: SettingsOptions = {
  chunkSize: MiB,
  portFor: (i) => links[i].port,
  vesselExtra: () => 'Concurrency = 1',
};

/** Sends SIGHUP and waits until the daemon has applied (or rejected) the settings it read. */
async function reload(daemon: Daemon): Promise<PushEventOf<'reloaded'> | PushEventOf<'reloadRejected'>> {
  const seen = () => daemon.events().filter((e) => e.type === 'reloaded' || e.type === 'reloadRejected');
  const before = seen().length;
  daemon.kill('SIGHUP');
  return waitFor(() => seen()[before] as PushEventOf<'reloaded'> | PushEventOf<'reloadRejected'> | undefined, 'the reload');
}

const delivered = (daemon: Daemon, vessel: string, file: string) =>
  daemon.waitForEvent('delivered', (e) => e.vessel === vessel && e.file === file, 120_000);
const count = (daemon: Daemon, type: 'connected' | 'interrupted', vessel: string) =>
  daemon.events().filter((e) => e.type === type && e.vessel === vessel).length;

/** Stops the daemon (exit 0), and shows its lines about reloads in the test's output. */
async function stop(daemon: Daemon, t: TestContext): Promise<void> {
  daemon.kill('SIGTERM');
  const exit = await daemon.waitForExit();
  assert.equal(exit.code, 0, daemon.output());
  const told = /reload|vessel removed|removed vessel|vessel settings changed|next restart|Directory removed/;
  for (const line of daemon.output().split('\n').filter((l) => told.test(l))) t.diagnostic(line.replace(/^\S+ /, ''));
}

describe('reload (SIGHUP)', () => {
  beforeEach(async () => {
    for (const l of links) {
      l.setRateLimit(0);
      l.resetCounters();
    }
    await resetFarm(farm);
  });

  it('a vessel added gets every file still on the shore; the unchanged vessel keeps its connection and its transfer', async (t) => {
    const big = join(farm.viewPath, 'big.bin');
    const sha = await writeRandomFile(big, 6 * MiB, 1);
    const settings = await writeSettings(farm, { ...base, vessels: [0] });
    links[0].setRateLimit(512 * 1024); // about 12 s for big.bin: the reload comes in the middle
    const daemon = startDaemon(['run', '-c', settings], { cwd: farm.root });
    try {
      await daemon.waitForEvent('ready');
      await waitFor(() => links[0].counts().bytesUp >= MiB, 'part of big.bin sent to v1');
      const connections = links[0].counts().connections;
      await writeSettings(farm, { ...base, vessels: [0, 1] });
      const r = await reload(daemon);
      assert.equal(r.type, 'reloaded', daemon.output());
      assert.deepEqual(r.type === 'reloaded' && [r.vessels.added, r.vessels.unchanged, r.vessels.changed], [['v2'], ['v1'], []]);
      await delivered(daemon, 'v2', big);
      assert.equal(daemon.events().filter((e) => e.type === 'delivered' && e.vessel === 'v1').length, 0, 'v2 has big.bin while v1 is still sending it');
      links[0].setRateLimit(0);
      await delivered(daemon, 'v1', big);
      await daemon.waitForEvent('processed', (e) => e.file === big);
      await assertOnVessel(farm.vessels[0], farm.viewPath, new Map([['big.bin', sha]]));
      await assertOnVessel(farm.vessels[1], farm.viewPath, new Map([['big.bin', sha]]));
      // v1's transfer went on over the connection it had: no new connection, no interruption,
      // and the file crossed its link once (not again from zero after the reload).
      const c = links[0].counts();
      assert.equal(c.connections, connections, 'no new connection to v1');
      assert.equal(count(daemon, 'connected', 'v1'), 1);
      assert.equal(count(daemon, 'interrupted', 'v1'), 0);
      assert.ok(c.bytesUp < 6 * MiB * 1.2, `bytes to v1: ${c.bytesUp} for a file of ${6 * MiB}`);
      t.diagnostic(`v1's link: ${c.connections} connection, ${c.bytesUp} bytes up for a file of ${6 * MiB}`);
      assert.match(daemon.output(), /INFO +settings reloaded vesselsAdded=v2$/m);
    } finally {
      await stop(daemon, t);
    }
  });

  it('a vessel removed finishes the file in flight, then disconnects; another reload stops it at once', async (t) => {
    const first = join(farm.viewPath, 'first.bin');
    const firstSha = await writeRandomFile(first, 4 * MiB, 2);
    const settings = await writeSettings(farm, { ...base });
    links[0].setRateLimit(512 * 1024);
    const daemon = startDaemon(['run', '-c', settings], { cwd: farm.root });
    try {
      await daemon.waitForEvent('ready');
      await delivered(daemon, 'v2', first);
      await waitFor(() => links[0].counts().bytesUp >= MiB, 'part of first.bin sent to v1');
      await writeSettings(farm, { ...base, vessels: [1] });
      const r = await reload(daemon);
      assert.deepEqual(r.type === 'reloaded' && r.vessels.removed, ['v1'], daemon.output());
      // In flight when v1 was removed: it goes on to the end, and only then does v1 disconnect.
      await delivered(daemon, 'v1', first);
      await daemon.waitForEvent('retired', (e) => e.vessel === 'v1');
      await assertOnVessel(farm.vessels[0], farm.viewPath, new Map([['first.bin', firstSha]]));
      await daemon.waitForEvent('processed', (e) => e.file === first);
      // A file that comes after is v2's alone.
      const later = join(farm.viewPath, 'later.bin');
      const laterSha = await writeRandomFile(later, 300_000, 3);
      await daemon.waitForEvent('processed', (e) => e.file === later);
      await assertOnVessel(farm.vessels[1], farm.viewPath, new Map([['later.bin', laterSha]]));
      assert.ok(!(await exists(farm.vessels[0].hostPath(later))), 'later.bin is not sent to the removed v1');
      assert.equal(daemon.events().filter((e) => e.type === 'delivered' && e.vessel === 'v1').length, 1);

      // v1 back, then a file it cannot finish soon; removed again, then a second reload.
      links[0].setRateLimit(128 * 1024); // about 64 s for slow.bin
      await writeSettings(farm, { ...base });
      await reload(daemon);
      const sent = links[0].counts().bytesUp;
      const slow = join(farm.viewPath, 'slow.bin');
      const slowSha = await writeRandomFile(slow, 8 * MiB, 4);
      await delivered(daemon, 'v2', slow);
      await waitFor(() => links[0].counts().bytesUp >= sent + 256 * 1024, 'part of slow.bin sent to v1');
      await writeSettings(farm, { ...base, vessels: [1] });
      await reload(daemon);
      const retired = daemon.events().filter((e) => e.type === 'retired').length;
      await reload(daemon); // the same settings: nothing changes, but the removed v1 stops now
      await waitFor(() => daemon.events().filter((e) => e.type === 'retired').length > retired, 'v1 stopped');
      assert.equal(daemon.events().filter((e) => e.type === 'delivered' && e.vessel === 'v1' && e.file === slow).length, 0, 'slow.bin was cut short on v1');
      assert.match(daemon.output(), /settings reloaded; nothing changed/);
      // Not owed to v1 any more: on v2, it is everywhere it should be.
      await daemon.waitForEvent('processed', (e) => e.file === slow);
      await assertOnVessel(farm.vessels[1], farm.viewPath, new Map([['slow.bin', slowSha]]));
    } finally {
      await stop(daemon, t);
    }
  });

  it('a vessel changed reconnects with its new settings', async (t) => {
    const settings = await writeSettings(farm, { ...base, vessels: [1] });
    const daemon = startDaemon(['run', '-c', settings], { cwd: farm.root });
    try {
      await daemon.waitForEvent('ready');
      const one = join(farm.viewPath, 'one.bin');
      const oneSha = await writeRandomFile(one, 2 * MiB + 5, 5);
      await daemon.waitForEvent('processed', (e) => e.file === one);
      assert.ok(links[1].counts().connections >= 1, 'v2 went through its link');
      // v2 now straight to its sshd, not through the link.
      await writeSettings(farm, { ...base, vessels: [1], portFor: (i) => farm.vessels[i].port });
      const r = await reload(daemon);
      assert.deepEqual(r.type === 'reloaded' && r.vessels.changed, ['v2'], daemon.output());
      links[1].resetCounters();
      const two = join(farm.viewPath, 'two.bin');
      const twoSha = await writeRandomFile(two, 2 * MiB + 7, 6);
      await daemon.waitForEvent('processed', (e) => e.file === two);
      assert.equal(links[1].counts().connections, 0, 'two.bin did not go through the old port');
      const events = daemon.events();
      const reloaded = events.indexOf(r);
      assert.ok(events.some((e, i) => i > reloaded && e.type === 'connected' && e.vessel === 'v2'), 'connected again after the reload');
      assert.match(daemon.output(), /vessel settings changed; reconnecting with the new ones vessel=v2/);
      await assertOnVessel(farm.vessels[1], farm.viewPath, new Map([['one.bin', oneSha], ['two.bin', twoSha]]));
    } finally {
      await stop(daemon, t);
    }
  });

  it('a Directory added is watched and its files go out; one removed is no longer watched, its files stay on the shore', async (t) => {
    const extra = join(farm.root, 'shore-extra');
    await rm(extra, { recursive: true, force: true });
    await mkdir(extra, { recursive: true });
    const waiting = join(extra, 'was-there.bin');
    const waitingSha = await writeRandomFile(waiting, 1_500_000, 7);
    const withExtra: SettingsOptions = {
      ...base,
      vessels: [0],
      directories: [{ name: 'data', location: farm.viewPath }, { name: 'extra', location: extra, extra: `RemoteLocation = ${join(farm.viewPath, 'extra')}` }],
    };
    const settings = await writeSettings(farm, { ...base, vessels: [0] });
    const daemon = startDaemon(['run', '-c', settings], { cwd: farm.root });
    try {
      await daemon.waitForEvent('ready');
      await writeSettings(farm, withExtra);
      const r = await reload(daemon);
      assert.deepEqual(r.type === 'reloaded' && r.directories.added, ['extra'], daemon.output());
      await daemon.waitForEvent('processed', (e) => e.file === waiting);
      // Watched from the reload on: a file written now goes out too.
      const fresh = join(extra, 'sub', 'new.bin');
      const freshSha = await writeRandomFile(fresh, 200_000, 8);
      await daemon.waitForEvent('processed', (e) => e.file === fresh);
      await assertOnVessel(farm.vessels[0], join(farm.viewPath, 'extra'), new Map([['was-there.bin', waitingSha], ['sub/new.bin', freshSha]]));

      await writeSettings(farm, { ...base, vessels: [0] });
      const removed = await reload(daemon);
      assert.deepEqual(removed.type === 'reloaded' && removed.directories.removed, ['extra'], daemon.output());
      const left = join(extra, 'left.bin');
      await writeFile(left, 'written after the Directory was removed\n');
      // A file of the Directory still there, written after, goes out: the watcher has had its
      // chance to see left.bin too.
      const fence = join(farm.viewPath, 'fence.bin');
      const fenceSha = await writeRandomFile(fence, 100_000, 9);
      await daemon.waitForEvent('processed', (e) => e.file === fence);
      await assertOnVessel(farm.vessels[0], farm.viewPath, new Map([['fence.bin', fenceSha]]));
      assert.ok(await exists(left), 'left.bin stays where it is');
      assert.ok(!(await exists(join(extra, 'processed', 'left.bin'))), 'and is not moved to processed/');
      assert.ok(!(await exists(farm.vessels[0].hostPath(join(farm.viewPath, 'extra', 'left.bin')))), 'nor sent');
    } finally {
      await stop(daemon, t);
    }
  });

  it('--once: SIGHUP is said and ignored; the run goes on and ends as it would', async () => {
    const file = join(farm.viewPath, 'once.bin');
    const sha = await writeRandomFile(file, 3 * MiB, 12);
    const settings = await writeSettings(farm, { ...base, vessels: [0] });
    links[0].setRateLimit(512 * 1024);
    const run = startDaemon(['run', '-c', settings, '--once'], { cwd: farm.root });
    await waitFor(() => links[0].counts().bytesUp >= MiB, 'part of once.bin sent');
    run.kill('SIGHUP');
    await run.waitForOutput(/INFO +SIGHUP ignored: a --once run does not reload its settings/);
    links[0].setRateLimit(0);
    const exit = await run.waitForExit(120_000);
    assert.equal(exit.code, 0, run.output());
    await assertOnVessel(farm.vessels[0], farm.viewPath, new Map([['once.bin', sha]]));
  });

  it('broken settings: one ERROR line naming file, section and key; the old settings stay in force; a key that needs a restart is kept with a WARN', async (t) => {
    const settings = await writeSettings(farm, { ...base, vessels: [0] });
    const daemon = startDaemon(['run', '-c', settings], { cwd: farm.root });
    try {
      await daemon.waitForEvent('ready');
      await writeSettings(farm, { ...base, vessels: [0], vesselExtra: () => 'Concurency = 4' });
      const r = await reload(daemon);
      assert.equal(r.type, 'reloadRejected', daemon.output());
      const errors = daemon.output().split('\n').filter((l) => / ERROR /.test(l));
      assert.equal(errors.length, 1, daemon.output());
      assert.match(errors[0], new RegExp(`ERROR +settings not reloaded: ${settings.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: \\[Vessel v1\\] Concurency: .*Concurrency.*; the old settings stay in force$`));
      // Still running with the old settings.
      const after = join(farm.viewPath, 'after-broken.bin');
      const afterSha = await writeRandomFile(after, 700_000, 10);
      await daemon.waitForEvent('processed', (e) => e.file === after);
      await assertOnVessel(farm.vessels[0], farm.viewPath, new Map([['after-broken.bin', afterSha]]));

      // Fixed, with a [MONSTER] key applied live (Ignore) and one that needs a restart (ChunkSize).
      await writeSettings(farm, { ...base, vessels: [0], chunkSize: 2 * MiB, monsterExtra: 'Ignore = *.skip' });
      const fixed = await reload(daemon);
      assert.ok(fixed.type === 'reloaded', daemon.output());
      assert.deepEqual([fixed.monster, fixed.needRestart], [['Ignore'], ['ChunkSize']]);
      assert.match(daemon.output(), /WARN +\[MONSTER\] ChunkSize changed: it takes effect at the next restart; the old value stays in force until then/);
      const skipped = join(farm.viewPath, 'not-this.skip');
      await writeFile(skipped, 'ignored from the reload on\n');
      const fence = join(farm.viewPath, 'fence.bin');
      const fenceSha = await writeRandomFile(fence, 100_000, 11);
      await daemon.waitForEvent('processed', (e) => e.file === fence);
      await assertOnVessel(farm.vessels[0], farm.viewPath, new Map([['fence.bin', fenceSha]]));
      assert.ok(await exists(skipped), 'not-this.skip stays on the shore');
      assert.ok(!(await exists(farm.vessels[0].hostPath(skipped))), 'and is not sent');
      assert.equal(await sha256File(farm.vessels[0].hostPath(after)), afterSha);
    } finally {
      await stop(daemon, t);
    }
  });
});
