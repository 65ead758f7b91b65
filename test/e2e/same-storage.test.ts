// A vessel that is the shore's own storage (issue 16, item 1): `Address = 127.0.0.1` with the
// default RemoteLocation (the Location itself), or a share both sides mount under other paths.
// Before, a large file was "already on vessel (same size and SHA-256); confirmed" and moved to
// processed/, leaving no copy anywhere but the database's word; small files looped as changed.
// Now such a vessel is refused before anything is sent, confirmed or moved, with one line; the
// other vessel is served; `check` says it in REMOTELOCATIONS.
//
// v1 sees the shore's real folder: in its mount namespace, the bind mount that gives each
// vessel its own farm.viewPath is undone, so v1's viewPath is the host's, the shore's. And
// under farm.root/share, which v1 sees as the shore's folder again (a share under another
// path) and v2 as its own backing.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { runCli, startDaemon, waitFor, type RunResult } from '../helpers/process.js';
import { listFiles, sha256File, writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, assertVesselClean, databasePath, onVessel, resetFarm, writeSettings } from '../helpers/push.js';

const MiB = 1024 * 1024;
const REFUSAL = /is the shore's own Location/;

let farm: VesselFarm;
let share: string;

before(async () => {
  farm = await startVesselFarm({ count: 2 });
  share = join(farm.root, 'share');
  await mkdir(share);
  const [v1, v2] = farm.vessels;
  onVessel(v1, `umount '${farm.viewPath}' && mount --bind '${farm.viewPath}' '${share}'`);
  onVessel(v2, `mount --bind '${v2.backing}' '${share}'`);
});
after(async () => {
  await farm?.stop();
});

/** The set that used to be lost: a 15 MiB file, small ones, one in a folder. */
async function makeFiles(location = farm.viewPath): Promise<Map<string, { sha: string; mtimeMs: number; ino: number }>> {
  const files = new Map<string, { sha: string; mtimeMs: number; ino: number }>();
  let seed = 16_100;
  for (const [rel, size] of [['big.bin', 15 * MiB], ['small.txt', 1000], ['tiny', 10], ['empty', 0], ['sub dir/it\'s small.bin', 70_000]] as const) {
    const sha = await writeRandomFile(join(location, rel), size, seed++);
    const st = await stat(join(location, rel));
    files.set(rel, { sha, mtimeMs: st.mtimeMs, ino: st.ino });
  }
  return files;
}

/** Every file still in Location, the very same file (inode, mtime, content); nothing in processed/, no marker. */
async function assertShoreUntouched(files: Map<string, { sha: string; mtimeMs: number; ino: number }>, location = farm.viewPath): Promise<void> {
  assert.deepEqual(await listFiles(location), [...files.keys()].sort(), 'every file still in Location; nothing in processed/, no marker, nothing of ours');
  assert.ok(!(await readdir(location)).includes('processed'), 'no processed/ folder');
  for (const [rel, f] of files) {
    const st = await stat(join(location, rel));
    assert.equal(await sha256File(join(location, rel)), f.sha, `${rel} intact`);
    assert.equal(st.ino, f.ino, `${rel} is the same file, not a copy put in its place`);
    assert.equal(st.mtimeMs, f.mtimeMs, `${rel} not rewritten`);
  }
}

function doneCount(vessel: string): number {
  const db = new Database(databasePath(farm), { readonly: true, fileMustExist: true });
  try {
    return (db.prepare("SELECT count(*) AS n FROM deliveries WHERE state = 'done' AND vessel = ?").get(vessel) as { n: number }).n;
  } finally {
    db.close();
  }
}

function refusalLines(out: string): string[] {
  return out.split('\n').filter((l) => REFUSAL.test(l));
}

async function runOnce(settings: string): Promise<RunResult> {
  // A long --give-up-after: the refusal must come from knowing, not from giving up.
  return runCli(['run', '-c', settings, '--once', '--give-up-after', '300', '--log-format', 'text'], { cwd: farm.root, timeoutMs: 240_000 });
}

describe('same storage: a RemoteLocation that is the shore\'s own Location', () => {
  beforeEach(() => resetFarm(farm));

  for (const how of ['the same path (Address = 127.0.0.1, RemoteLocation defaulting to Location)', 'another path (a share both sides mount)'] as const) {
    it(`run --once: v1 refused at once with one line, nothing confirmed or moved; v2 served: ${how}`, async () => {
      const viaShare = how.startsWith('another');
      const files = await makeFiles();
      const settings = await writeSettings(farm, {
        chunkSize: MiB,
        directories: [{ name: 'data', location: farm.viewPath, extra: viaShare ? `RemoteLocation = ${share}` : '' }],
      });
      const r = await runOnce(settings);
      const out = r.stdout + r.stderr;
      assert.equal(r.code, 1, out);
      const lines = refusalLines(out);
      assert.equal(lines.length, 1, `one line says it:\n${out}`);
      assert.match(lines[0], /\bERROR\b/);
      const remote = viaShare ? share : farm.viewPath;
      assert.ok(lines[0].includes(`RemoteLocation ${remote} of [Directory data] on vessel v1 is the shore's own Location ${farm.viewPath} (the same storage: this host, or a share both see): refused, nothing is sent, confirmed or moved`), lines[0]);
      if (process.env.SHOW_FAILURE_LINES) console.log(lines[0]);
      assert.doesNotMatch(out, /already on vessel/, 'nothing confirmed');
      assert.doesNotMatch(out, /changed before it was everywhere/);
      await assertShoreUntouched(files);
      assert.equal(doneCount('v1'), 0, 'no delivery recorded for v1');
      // The other vessel got every file, whole.
      const v2 = farm.vessels[1];
      assert.equal(doneCount('v2'), files.size);
      await assertOnVessel(v2, viaShare ? share : farm.viewPath, new Map([...files].map(([rel, f]) => [rel, f.sha])));
      await assertVesselClean(v2, viaShare ? share : farm.viewPath);
    });
  }

  it('check: REMOTELOCATIONS FAIL for v1 with the line once, ok for v2, exit 1; nothing left on the shore', async () => {
    const files = await makeFiles();
    const settings = await writeSettings(farm, { chunkSize: MiB });
    const r = await runCli(['check', '-c', settings], { cwd: farm.root, timeoutMs: 60_000 });
    const out = r.stdout + r.stderr;
    assert.equal(r.code, 1, out);
    const header = r.stdout.split('\n').find((l) => l.startsWith('VESSEL'))!;
    const column = (row: string) => row.slice(header.indexOf('REMOTELOCATIONS')).split(/\s+/)[0];
    const row = (v: string) => r.stdout.split('\n').find((l) => l.startsWith(`${v} `))!;
    assert.equal(column(row('v1')), 'FAIL', out);
    assert.equal(column(row('v2')), 'ok', out);
    const lines = refusalLines(out);
    assert.deepEqual(lines, [`v1: RemoteLocation ${farm.viewPath} of [Directory data] is the shore's own Location ${farm.viewPath} (the same storage: this host, or a share both see): refused, nothing is sent, confirmed or moved`], out);
    await assertShoreUntouched(files);
  });

  it('daemon: the refusal is said once and retried slowly, never a loop; the other vessel is served and nothing moves', async () => {
    const files = await makeFiles();
    const settings = await writeSettings(farm, { chunkSize: MiB });
    const daemon = startDaemon(['run', '-c', settings, '--log-format', 'text'], { cwd: farm.root });
    try {
      await daemon.waitForEvent('refused', (e) => e.vessel === 'v1' && REFUSAL.test(e.reason), 60_000);
      await waitFor(() => doneCount('v2') === files.size, 'v2 to have every file', 60_000);
    } finally {
      daemon.kill('SIGTERM');
      await daemon.waitForExit(30_000);
    }
    const out = daemon.output();
    assert.equal(refusalLines(out).length, 1, out);
    assert.match(refusalLines(out)[0], /\bERROR\b.*vessel refused; fix the settings or the vessel.*retryInSeconds=300/);
    if (process.env.SHOW_FAILURE_LINES) console.log(refusalLines(out)[0]);
    assert.equal(doneCount('v1'), 0);
    await assertShoreUntouched(files);
  });

  it('daemon: a Location made after the vessels connected is proven before its files go out; the same storage is refused and nothing of it moves', async () => {
    // `data` is proven separate on both vessels at their first connection, while `late` does
    // not exist yet (nothing can be looked at). `late` is then made on the shore, where v1's
    // RemoteLocation for it is the shore's own folder (a share mounted after the start does the
    // same): it must be proven before its first file, not sent on the connections already up.
    const dataLocation = join(farm.root, 'shore-data');
    const late = join(farm.viewPath, 'late');
    await rm(dataLocation, { recursive: true, force: true });
    const data = new Map<string, string>();
    for (const [rel, size, seed] of [['a.txt', 2000, 16_201], ['b.bin', 3 * MiB, 16_202]] as const) data.set(rel, await writeRandomFile(join(dataLocation, rel), size, seed));
    const settings = await writeSettings(farm, {
      chunkSize: MiB,
      directories: [
        { name: 'data', location: dataLocation, extra: `RemoteLocation = ${join(farm.viewPath, 'data')}` },
        { name: 'late', location: late },
      ],
    });
    const daemon = startDaemon(['run', '-c', settings, '--log-format', 'text'], { cwd: farm.root });
    let files: Map<string, { sha: string; mtimeMs: number; ino: number }>;
    try {
      // Delivered everywhere, then moved to processed/ (and its rows forgotten).
      await waitFor(async () => (await listFiles(join(dataLocation, 'processed')).catch(() => [])).length === data.size, 'every file of data to be on both vessels and in processed/', 60_000);
      files = await makeFiles(late);
      await daemon.waitForEvent('refused', (e) => e.vessel === 'v1' && REFUSAL.test(e.reason), 60_000);
      await waitFor(() => doneCount('v2') === files.size, 'v2 to have every file of late', 60_000);
    } finally {
      daemon.kill('SIGTERM');
      await daemon.waitForExit(30_000);
    }
    const out = daemon.output();
    const lines = refusalLines(out);
    assert.equal(lines.length, 1, out);
    assert.ok(lines[0].includes(`RemoteLocation ${late} of [Directory late] on vessel v1 is the shore's own Location ${late}`), lines[0]);
    assert.doesNotMatch(out, /already on vessel/, 'nothing confirmed');
    assert.equal(doneCount('v1'), 0, 'no delivery of late recorded for v1');
    await assertShoreUntouched(files, late);
    await assertOnVessel(farm.vessels[1], late, new Map([...files].map(([rel, f]) => [rel, f.sha])));
    await assertOnVessel(farm.vessels[0], join(farm.viewPath, 'data'), data);
    await rm(dataLocation, { recursive: true, force: true });
  });
});
