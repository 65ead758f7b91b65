// A backlog larger than what a vessel worker holds in memory (issue 18): the queue lives in the
// state database and is read a page at a time (512 small files per vessel in memory), so these
// tests use a few thousand files, several pages, and check that paging loses nothing: a vessel
// given up fails every waiting file (the first 1000 listed, the rest counted, `status` lists
// the first 100 and counts all), and the next run reads what the first left waiting from the
// database, delivers every file whole and moves each to processed/.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { runCli, startDaemon } from '../helpers/process.js';
import { listFiles, sha256File } from '../helpers/tree.js';
import { resetFarm, writeSettings } from '../helpers/push.js';
import { rmSync } from 'node:fs';

const FILES = 3000;
const FOLDERS = 30;

let farm: VesselFarm;

before(async () => {
  farm = await startVesselFarm({ count: 2 });
  await resetFarm(farm);
});
after(async () => {
  await farm?.stop();
});

/** FILES small files of 1-3 KiB in FOLDERS folders, each with its own content; their SHA-256 by path. */
function makeBacklog(): Map<string, string> {
  const files = new Map<string, string>();
  for (let i = 0; i < FILES; i++) {
    const folder = `folder-${i % FOLDERS}`;
    if (i < FOLDERS) mkdirSync(join(farm.viewPath, folder), { recursive: true });
    const content = Buffer.alloc(1024 + (i * 7) % 2048, `file ${i};`);
    const rel = `${folder}/file-${i}.txt`;
    writeFileSync(join(farm.viewPath, rel), content);
    files.set(rel, createHash('sha256').update(content).digest('hex'));
  }
  return files;
}

async function assertAllOn(vesselIndex: number, files: Map<string, string>): Promise<void> {
  const v = farm.vessels[vesselIndex];
  const held = await listFiles(v.hostPath(farm.viewPath));
  assert.equal(held.filter((f) => f.startsWith('folder-')).length, files.size, `${v.name} holds every file`);
  for (const [rel, sha] of files) assert.equal(await sha256File(v.hostPath(join(farm.viewPath, rel))), sha, `${rel} on ${v.name}`);
}

describe('a backlog of several pages', () => {
  it('--once with v2 unreachable: v1 gets every file; v2 fails every one, 1000 listed and the rest counted; status lists 100 and counts all; the next run delivers the rest from the database', async () => {
    const files = makeBacklog();
    // v2 at a port where nothing listens: given up after 2 s without progress.
    const settings = await writeSettings(farm, { chunkSize: 1024 * 1024, portFor: (i) => (i === 1 ? 9 : farm.vessels[i].port) });
    const first = await runCli(['run', '-c', settings, '--once', '--give-up-after', '2', '--log-format', 'text'], { cwd: farm.root, timeoutMs: 300_000 });
    const out = first.stdout + first.stderr;
    assert.equal(first.code, 1, out.slice(-3000));
    await assertAllOn(0, files);
    const listed = first.stdout.split('\n').filter((l) => /not replicated/.test(l) && /vessel=v2/.test(l));
    assert.equal(listed.length, 1000, 'the first 1000 failures listed one by one');
    assert.match(out, new RegExp(`… and ${FILES - 1000} more not replicated \\(contentmonster status lists failed files\\)`));
    assert.match(out, new RegExp(`ERROR finished with failures failures=${FILES}\\b`));
    assert.deepEqual(readdirSync(farm.viewPath).filter((n) => n === 'processed'), [], 'nothing moved: v2 has none of them');

    const status = await runCli(['status', '-c', settings], { cwd: farm.root, timeoutMs: 60_000 });
    assert.equal(status.code, 0, status.stderr);
    const failedRows = status.stdout.split('\n').filter((l) => l.startsWith('v2 ') && l.includes('folder-'));
    assert.equal(failedRows.length, 100, status.stdout.slice(-2000));
    assert.ok(status.stdout.includes(`… and ${FILES - 100} more (${FILES} in all; --json lists the first 100 too)`), status.stdout.slice(-500));

    // v2 reachable again: its deliveries (failed in the first run, pending again at this start)
    // are read from the database page after page.
    await writeSettings(farm, { chunkSize: 1024 * 1024 });
    const second = await runCli(['run', '-c', settings, '--once', '--log-format', 'text'], { cwd: farm.root, timeoutMs: 300_000 });
    assert.equal(second.code, 0, (second.stdout + second.stderr).slice(-3000));
    assert.match(second.stdout, /finished: everything processed/);
    await assertAllOn(1, files);
    const processed = (await listFiles(join(farm.viewPath, 'processed'))).sort();
    assert.deepEqual(processed, [...files.keys()].sort(), 'every file moved to processed/');
    for (const [rel, sha] of files) assert.equal(await sha256File(join(farm.viewPath, 'processed', rel)), sha);
  });

  it('a stop takes no new work at once, even while a scan hangs: after SIGTERM only files already in flight are delivered, and the daemon exits 0 without waiting for the scan', async () => {
    rmSync(join(farm.root, 'state'), { recursive: true, force: true });
    await resetFarm(farm);
    // Directory `flat`: the backlog without subfolders, scanned whole. Directory `hung`: its
    // scan never comes back from its first subfolder (the failpoint), as on a hung mount.
    const flat = join(farm.root, 'flat');
    const hung = join(farm.root, 'hung');
    mkdirSync(flat, { recursive: true });
    mkdirSync(join(hung, 'sub'), { recursive: true });
    for (let i = 0; i < FILES; i++) writeFileSync(join(flat, `file-${i}.txt`), Buffer.alloc(1024 + (i * 7) % 2048, `flat ${i};`));
    const settings = await writeSettings(farm, {
      chunkSize: 1024 * 1024,
      directories: [{ name: 'flat', location: flat, extra: `RemoteLocation = ${farm.viewPath}/flat` }, { name: 'hung', location: hung, extra: `RemoteLocation = ${farm.viewPath}/hung` }],
    });
    const daemon = startDaemon(['run', '-c', settings, '--log-format', 'text'], { cwd: farm.root, env: { CONTENTMONSTER_FAILPOINT: 'scan-folder' } });
    try {
      await daemon.waitForOutput(/failpoint scan-folder reached/, 120_000);
      await daemon.waitForEvent('delivered');
      const before = daemon.events().filter((e) => e.type === 'delivered').length;
      daemon.kill('SIGTERM');
      const exit = await daemon.waitForExit(60_000);
      assert.deepEqual(exit, { code: 0, signal: null }, daemon.output().slice(-3000));
      const after = daemon.events().filter((e) => e.type === 'delivered').length - before;
      // At most what was in flight when the signal came: 32 small files per vessel.
      assert.ok(after <= 64, `${after} files delivered after SIGTERM (at most the 64 in flight may end)`);
      assert.ok(before + after < 2 * FILES, 'the backlog was not all delivered before the stop: the test would prove nothing');
      assert.doesNotMatch(daemon.output(), /stop took too long/, 'the stop did not wait for the hung scan');
      assert.match(daemon.output(), /stopping: no new work/);
    } finally {
      daemon.kill('SIGKILL');
    }
  });
});
