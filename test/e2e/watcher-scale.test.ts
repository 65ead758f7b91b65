// The watcher at scale (issue 18, point 3). One inotify watch per folder, none per file. When
// watches run out (ENOSPC), one WARNING names fs.inotify.max_user_watches and the value needed,
// and the daemon goes on: folders without a watch, and a Location without any, are delivered
// by the rescan; the warning is not repeated. A real ENOSPC comes from a user namespace with a
// low user.max_inotify_watches (the host's sysctl is never touched). And a tree of 100,000
// folders is watched: a file written deep in it after the start arrives without a rescan.
//
// Which folders got a watch is read from the daemon's /proc/PID/fdinfo (the inode of each
// inotify watch), so the test writes into folders it knows to be watched or not.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { startDaemon, waitFor, type Daemon } from '../helpers/process.js';
import { exists, sha256File, writeRandomFile } from '../helpers/tree.js';
import { resetFarm, writeSettings } from '../helpers/push.js';

let farm: VesselFarm;

before(async () => {
  farm = await startVesselFarm({ count: 1 });
});
after(async () => {
  await farm?.stop();
});

const LIMIT = 40;

/** Runs the daemon in a user namespace of its own where only `limit` inotify watches may be placed. */
const underWatchLimit = (limit: number) => [
  'unshare', '--user', '--map-root-user',
  'sh', '-c', `echo ${limit} > /proc/sys/user/max_inotify_watches && exec "$@"`, 'sh',
];

/** Inodes of the folders a process has an inotify watch on. */
function watchedInodes(pid: number): Set<number> {
  const inodes = new Set<number>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let info: string;
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed meanwhile
    }
    for (const m of info.matchAll(/^inotify wd:\S+ ino:([0-9a-f]+) /gm)) inodes.add(parseInt(m[1], 16));
  }
  return inodes;
}

/** inotify watches held by all processes of this machine (they share the user's limit when run as one user). */
function watchesInUse(): number {
  let n = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      n += watchedInodes(Number(pid)).size;
    } catch {
      // gone, or not ours to read
    }
  }
  return n;
}

const shorePath = (name: string) => join(farm.root, 'shore', name);
const directory = (name: string) => ({ name, location: shorePath(name), extra: `RemoteLocation = ${join(farm.viewPath, name)}` });

/** The file is on the vessel with the shore's content, and moved to processed/ on the shore. */
async function delivered(name: string, rel: string, sha: string, timeoutMs = 60_000): Promise<void> {
  await waitFor(async () => (await sha256File(farm.vessels[0].hostPath(join(farm.viewPath, name, rel))).catch(() => '')) === sha
    && (await exists(join(shorePath(name), 'processed', rel))), `${name}/${rel} on v1 and in processed/`, timeoutMs);
}

/** The daemon's lines about inotify watches running out. */
const ranOutLines = (d: Daemon) => d.output().split('\n').filter((l) => l.includes('inotify watches ran out'));

// Inside the test's user namespace its own limit is the lower one: the host's is named, and the
// advice is to raise the namespace's (never to lower the host's). test/unit/watcher.test.ts
// has the host's wording.
const WARNING = new RegExp(
  String.raw`WARN +inotify watches ran out after (\d+) of ([\d,]+) folders \(fs\.inotify\.max_user_watches = [\d,]+, shared by every process of this user; ` +
  String.raw`user\.max_inotify_watches = ${LIMIT} in this user namespace\): the ([\d,]+) folders without a watch are only seen by the periodic rescan \(RescanInterval\); ` +
  String.raw`set user\.max_inotify_watches of this user namespace to at least ([\d,]+) \(sysctl -w user\.max_inotify_watches=(\d+)\) folder=\S+$`,
);
const num = (s: string) => Number(s.replace(/,/g, ''));

/**
 * The daemon under the test's watch limit, once ready, and its one warning that watches ran
 * out (asserted to be said exactly once, in the expected words), matched against WARNING.
 */
async function readyUnderLimit(settings: string): Promise<{ daemon: Daemon; line: string; m: RegExpExecArray }> {
  const daemon = startDaemon(['run', '-c', settings], { cwd: farm.root, prefix: underWatchLimit(LIMIT) });
  try {
    await daemon.waitForEvent('ready', undefined, 120_000);
    const lines = ranOutLines(daemon);
    assert.equal(lines.length, 1, daemon.output());
    const m = WARNING.exec(lines[0]);
    assert.ok(m, `the warning as expected:\n${lines[0]}`);
    return { daemon, line: lines[0], m };
  } catch (err) {
    daemon.kill('SIGKILL');
    throw err;
  }
}

async function stop(daemon: Daemon): Promise<void> {
  daemon.kill('SIGTERM');
  const exit = await daemon.waitForExit(30_000);
  assert.deepEqual(exit, { code: 0, signal: null }, daemon.output());
}

describe('the watcher at scale', () => {
  beforeEach(async () => {
    await resetFarm(farm);
    await rm(join(farm.root, 'shore'), { recursive: true, force: true });
    await mkdir(join(farm.root, 'shore'), { recursive: true });
  });

  it(`inotify watches run out (${LIMIT} in a user namespace, 121 folders): one WARNING naming fs.inotify.max_user_watches and the value needed; watched and unwatched folders are both delivered; the daemon goes on and stops cleanly`, async (t) => {
    const location = shorePath('many');
    const folders = Array.from({ length: 120 }, (_, i) => `f${String(i).padStart(3, '0')}`);
    for (const f of folders) mkdirSync(join(location, f), { recursive: true });
    const early = await writeRandomFile(join(location, 'f007', 'early.bin'), 3000, 1);
    const settings = await writeSettings(farm, { directories: [directory('many')], monsterExtra: 'RescanInterval = 2' });
    const { daemon, line, m } = await readyUnderLimit(settings);
    try {
      t.diagnostic(line);
      const [watched, total, without, needed, commandValue] = [num(m[1]), num(m[2]), num(m[3]), num(m[4]), num(m[5])];
      assert.equal(total, 121, 'the Location and its 120 folders');
      assert.ok(watched > 0 && watched <= LIMIT, `${watched} watched`);
      assert.equal(without, total - watched);
      assert.ok(needed >= total && commandValue === needed, `${needed} would do for ${total} folders`);
      await delivered('many', 'f007/early.bin', early);

      // The test knows which folders have a watch: the daemon's inotify watches name their inodes.
      const inodes = watchedInodes(daemon.pid);
      assert.equal(inodes.size, watched, 'the watches the warning counted are the ones in place');
      const isWatched = (f: string) => inodes.has(statSync(join(location, f)).ino);
      const withWatch = folders.filter(isWatched);
      const withoutWatch = folders.filter((f) => !isWatched(f));
      assert.ok(withWatch.length > 0 && withoutWatch.length >= 4, `${withWatch.length} watched, ${withoutWatch.length} not`);

      // A folder with a watch, and one without (through the rescan, every 2 s).
      const a = await writeRandomFile(join(location, withWatch[0], 'a.bin'), 2000, 2);
      const b = await writeRandomFile(join(location, withoutWatch[0], 'b.bin'), 4000, 3);
      await delivered('many', `${withWatch[0]}/a.bin`, a);
      await delivered('many', `${withoutWatch[0]}/b.bin`, b);
      // Three more rescans, each needed for a file in another folder without a watch.
      for (const [i, f] of withoutWatch.slice(1, 4).entries()) {
        const sha = await writeRandomFile(join(location, f, `later-${i}.bin`), 1500 + i, 10 + i);
        await delivered('many', `${f}/later-${i}.bin`, sha);
      }
      // A folder made now, in a watched one, finds no watch left: no second warning; its file arrives.
      const fresh = await writeRandomFile(join(location, withWatch[0], 'fresh', 'c.bin'), 3000, 4);
      await delivered('many', `${withWatch[0]}/fresh/c.bin`, fresh);

      assert.equal(ranOutLines(daemon).length, 1, `the warning is said once:\n${daemon.output()}`);
      assert.doesNotMatch(daemon.output(), /ENOSPC|file watcher error|a folder watch failed|cannot watch folder/);
      await stop(daemon);
    } finally {
      daemon.kill('SIGKILL');
    }
  });

  it('a Location left without any watch (the limit used up by the one before it) is delivered by the rescan', async () => {
    for (let i = 0; i < 60; i++) mkdirSync(join(shorePath('first'), `d${i}`), { recursive: true });
    for (let i = 0; i < 5; i++) mkdirSync(join(shorePath('second'), `e${i}`), { recursive: true });
    const settings = await writeSettings(farm, { directories: [directory('first'), directory('second')], monsterExtra: 'RescanInterval = 2' });
    const { daemon, m } = await readyUnderLimit(settings);
    try {
      assert.equal(num(m[2]), 67, 'the folders of both Locations are counted');
      const inodes = watchedInodes(daemon.pid);
      for (const f of ['', 'e0', 'e4']) assert.ok(!inodes.has(statSync(join(shorePath('second'), f)).ino), `second/${f} has no watch`);

      const top = await writeRandomFile(join(shorePath('second'), 'top.bin'), 2500, 5);
      const deep = await writeRandomFile(join(shorePath('second'), 'e3', 'deep.bin'), 3500, 6);
      await delivered('second', 'top.bin', top);
      await delivered('second', 'e3/deep.bin', deep);
      const other = await writeRandomFile(join(shorePath('first'), 'd59', 'x.bin'), 1000, 7);
      await delivered('first', 'd59/x.bin', other);
      assert.equal(ranOutLines(daemon).length, 1, daemon.output());
      await stop(daemon);
    } finally {
      daemon.kill('SIGKILL');
    }
  });

  it('a tree of 100,000 folders is watched: a file written deep in it after the start arrives without a rescan', async (t) => {
    const FOLDERS = 100_000;
    const free = Number(readFileSync('/proc/sys/fs/inotify/max_user_watches', 'utf8')) - watchesInUse();
    if (free < FOLDERS + 1000) {
      t.skip(`only ${free} inotify watches are free on this machine (other processes of this user hold the rest)`);
      return;
    }
    const location = shorePath('big');
    // 100 × 10 × 99 folders and their parents, then one deeper chain: 100,000 in all.
    let made = 0;
    for (let a = 0; made < FOLDERS - 20; a++) {
      mkdirSync(join(location, `a${a}`), { recursive: true });
      made++;
      for (let b = 0; b < 10 && made < FOLDERS - 20; b++) {
        mkdirSync(join(location, `a${a}`, `b${b}`));
        made++;
        for (let c = 0; c < 99 && made < FOLDERS - 20; c++, made++) mkdirSync(join(location, `a${a}`, `b${b}`, `c${c}`));
      }
    }
    const deepest = join('a0', 'b0', 'c0', ...Array.from({ length: 20 }, (_, i) => `level${i}`));
    mkdirSync(join(location, deepest), { recursive: true });
    const present = [
      ['start-1.bin', await writeRandomFile(join(location, 'start-1.bin'), 1000, 20)],
      [`a50/b5/c50/start-2.bin`, await writeRandomFile(join(location, 'a50', 'b5', 'c50', 'start-2.bin'), 2000, 21)],
    ] as const;
    const settings = await writeSettings(farm, { directories: [directory('big')], monsterExtra: 'RescanInterval = 86400' });
    const daemon = startDaemon(['run', '-c', settings], { cwd: farm.root });
    try {
      await daemon.waitForEvent('ready', undefined, 600_000);
      assert.equal(ranOutLines(daemon).length, 0, `no watch refused:\n${daemon.output()}`);
      assert.equal(watchedInodes(daemon.pid).size, FOLDERS + 1, 'one watch per folder (and the Location), none per file');
      for (const [rel, sha] of present) await delivered('big', rel, sha);

      const deep = await writeRandomFile(join(location, deepest, 'deep.bin'), 4000, 22);
      await delivered('big', `${deepest}/deep.bin`, deep, 120_000);
      // A folder made after the start is watched at once, and what was written in it before is found.
      const made2 = await writeRandomFile(join(location, 'a99', 'new', 'er', 'one.bin'), 3000, 23);
      await delivered('big', 'a99/new/er/one.bin', made2, 120_000);
      const two = await writeRandomFile(join(location, 'a99', 'new', 'er', 'two.bin'), 3000, 24);
      await delivered('big', 'a99/new/er/two.bin', two, 120_000);
      const status = readFileSync(`/proc/${daemon.pid}/status`, 'utf8');
      t.diagnostic(`daemon peak RSS with ${FOLDERS} folders watched: ${/VmHWM:\s+(\d+ kB)/.exec(status)?.[1]}`);
      await stop(daemon);
    } finally {
      daemon.kill('SIGKILL');
      await rm(location, { recursive: true, force: true });
    }
  });
});
