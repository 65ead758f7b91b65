// One daemon per state database (issue 16, item 2): a second `run`, daemon or `--once`, on the
// database of a running daemon stops at once with one line naming the PID that holds it, exit 1,
// and the running daemon is not disturbed; `status` and `check` keep working beside it; after a
// `kill -9` of the holder, the lock is gone with it and the next start runs. And a database that
// fails under a running daemon (here: its disk is full) stops it with one line and exit 1, never
// a SQLite stack trace.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { DEFAULT_CLI, runCli, shebangFlags, startDaemon, waitFor } from '../helpers/process.js';
import { exists, sha256File, writeRandomFile } from '../helpers/tree.js';
import { databasePath, resetFarm, writeSettings } from '../helpers/push.js';
import type { StatusReport } from '../../src/status.js';

let farm: VesselFarm;

before(async () => {
  farm = await startVesselFarm({ count: 1 });
  await resetFarm(farm);
});
after(async () => {
  await farm?.stop();
});

/** Exactly one non-empty line on stderr, nothing on stdout, no stack trace. */
function assertOneLine(r: { stdout: string; stderr: string }, re: RegExp): void {
  const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `one line expected, got:\n${r.stderr}`);
  assert.match(lines[0], re);
  assert.doesNotMatch(r.stderr, /\n\s+at |SqliteError|SQLITE_BUSY/, 'no stack trace, no raw SQLite error');
  assert.equal(r.stdout, '', 'nothing on stdout');
}

/** The file is on the vessel with the shore's content, and in processed/ on the shore. */
async function delivered(rel: string, sha: string): Promise<void> {
  await waitFor(async () => (await sha256File(farm.vessels[0].hostPath(join(farm.viewPath, rel))).catch(() => '')) === sha
    && (await exists(join(farm.viewPath, 'processed', rel))), `${rel} on v1 and in processed/`);
}

describe('one daemon per state database', () => {
  it('a second run (--once and daemon) exits 1 naming the PID; the first keeps working; status and check work; after kill -9 a new run starts', async () => {
    const settings = await writeSettings(farm);
    const first = startDaemon(['run', '-c', settings], { cwd: farm.root });
    try {
      await first.waitForEvent('ready');
      await delivered('one.bin', await writeRandomFile(join(farm.viewPath, 'one.bin'), 200_000, 1));

      const database = databasePath(farm);
      const inUse = new RegExp(`^contentmonster: the state database ${database.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is in use by another contentmonster run \\(PID ${first.pid}\\); one daemon per database`);
      const once = await runCli(['run', '-c', settings, '--once'], { cwd: farm.root });
      assert.equal(once.code, 1, once.stdout + once.stderr);
      assertOneLine(once, inUse);
      // A second daemon stops just the same (runCli waits for it to exit: it does at once).
      const daemon = await runCli(['run', '-c', settings], { cwd: farm.root, timeoutMs: 30_000 });
      assert.equal(daemon.code, 1, daemon.stdout + daemon.stderr);
      assertOneLine(daemon, inUse);

      const status = await runCli(['status', '-c', settings, '--json'], { cwd: farm.root });
      assert.equal(status.code, 0, status.stdout + status.stderr);
      assert.equal(status.stderr, '');
      const report = JSON.parse(status.stdout) as StatusReport;
      assert.equal(report.vessels.find((v) => v.name === 'v1')?.done.files, 1);
      const check = await runCli(['check', '-c', settings], { cwd: farm.root });
      assert.equal(check.code, 0, check.stdout + check.stderr);

      // The first daemon never noticed: it takes the next file as before.
      await delivered('two.bin', await writeRandomFile(join(farm.viewPath, 'two.bin'), 300_000, 2));
      assert.doesNotMatch(first.output(), /ERROR|SqliteError|database is locked/);

      first.kill('SIGKILL');
      await first.waitForExit();
    } finally {
      first.kill('SIGKILL');
    }
    assert.ok(await exists(`${databasePath(farm)}.lock`), 'the lock file stays, but no lock with it');
    const three = await writeRandomFile(join(farm.viewPath, 'three.bin'), 100_000, 3);
    const next = startDaemon(['run', '-c', settings], { cwd: farm.root });
    try {
      await delivered('three.bin', three);
      next.kill('SIGTERM');
      assert.deepEqual(await next.waitForExit(), { code: 0, signal: null }, 'a daemon stopped by SIGTERM exits 0');
    } finally {
      next.kill('SIGKILL');
    }
  });

  it('the state database failing under the daemon (disk full): one ERROR line, one line on stderr, exit 1, no stack trace', async () => {
    await resetFarm(farm);
    const state = join(farm.root, 'state');
    await mkdir(state, { recursive: true });
    const settings = await writeSettings(farm);
    // The daemon sees a small tmpfs as its state folder, in its own mount namespace.
    const args = [...shebangFlags(DEFAULT_CLI), DEFAULT_CLI, 'run', '-c', settings];
    const env: NodeJS.ProcessEnv = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs -o size=1m tmpfs '${state}' && exec "$@"`, 'sh', process.execPath, ...args], {
      cwd: farm.root, env, stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    try {
      await waitFor(() => stdout.includes('watching for new files'), `the daemon watching\n${stdout}${stderr}`);
      // Fill its state folder (unshare execs: the child's pid is the daemon's).
      execFileSync('nsenter', ['-t', String(child.pid), '-m', '--', 'sh', '-c', `dd if=/dev/zero of='${state}/filler' bs=4096 2>/dev/null; true`]);
      // Every file is a few writes: one of them finds the disk full.
      for (let i = 0; i < 200 && child.exitCode === null; i++) await writeRandomFile(join(farm.viewPath, `f${i}.bin`), 1000, i);
      const code = await exited;
      assert.equal(code, 1, stdout + stderr);
    } finally {
      child.kill('SIGKILL');
    }
    if (process.env.SHOW_OUTPUT) console.log(stdout + stderr);
    const database = databasePath(farm);
    assert.match(stderr, new RegExp(`^contentmonster: state database ${database.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: database or disk is full \\(SQLITE_FULL\\)\n$`), stderr);
    assert.match(stdout, /ERROR +the state database cannot be used; stopping \(the next start resumes\) err=/);
    assert.doesNotMatch(stdout + stderr, /\n\s+at |SqliteError/, 'no stack trace');
  });
});
