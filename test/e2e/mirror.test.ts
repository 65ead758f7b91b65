// `contentmonster mirror` against a real OpenSSH sshd with password authentication (issue 4):
// order, skipping what is complete, -a, resume after kill -9, SIGTERM, metrics, host keys,
// symlinks, credentials, and a link that keeps dropping.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startVesselFarm, type Vessel, type VesselFarm } from '../helpers/sshd.js';
import { startLink, type Link } from '../helpers/link.js';
import { runCli, startDaemon, waitFor, type RunResult } from '../helpers/process.js';
import { listFiles, sha256File, writeRandomFile } from '../helpers/tree.js';
import { runCliReadOnly } from '../helpers/read-only.js';
import { startMetricsServer, type MetricLine, type MetricsServer } from '../helpers/metrics-server.js';

const PASSWORD = 'mirror;pa#ss-SFTP-SECRET';
let farm: VesselFarm;
let server: Vessel;
let proxy: Link;
let metrics: MetricsServer;
let work: string;
let home: string;
let local: string;
let hostKeys: string;
/** REMOTE_PATH as the server sees it. */
let remote: string;

before(async () => {
  farm = await startVesselFarm({ count: 1, rootPassword: PASSWORD });
  server = farm.vessels[0]!;
  proxy = await startLink(server.port);
  metrics = await startMetricsServer();
  remote = join(farm.viewPath, 'pub');
});
after(async () => {
  await metrics?.stop();
  await proxy?.stop();
  await farm?.stop();
});

beforeEach(async () => {
  work = await mkdtemp(join(farm.root, 'mirror-'));
  // An empty home: no default key of the machine's root takes part, only the password.
  home = join(work, 'home');
  local = join(work, 'local');
  hostKeys = join(work, 'host-keys');
  await mkdir(home);
  await rm(server.hostPath(remote), { recursive: true, force: true });
  await mkdir(server.hostPath(remote), { recursive: true });
  proxy.setRateLimit(0, 'down');
  proxy.setStalled(false);
  proxy.resetCounters();
  metrics.clear();
});

const env = (extra: NodeJS.ProcessEnv = {}) => ({
  HOME: home, SSH_AUTH_SOCK: undefined, SFTP_USERNAME: 'root', SFTP_PASSWORD: PASSWORD, JOURNAL_STREAM: undefined, ...extra,
});

function mirrorArgs(...extra: string[]): string[] {
  return ['mirror', '127.0.0.1', remote, local, '-p', String(proxy.port), '--host-key-file', hostKeys, '--metrics-socket', metrics.path, ...extra];
}

function mirror(extra: string[] = [], envExtra: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return runCli(mirrorArgs(...extra), { env: env(envExtra) });
}

/** Writes a file on the server; returns its SHA-256. */
function serve(rel: string, size: number, seed?: number): Promise<string> {
  return writeRandomFile(server.hostPath(join(remote, rel)), size, seed);
}

async function assertMirrored(expected: Map<string, string>): Promise<void> {
  assert.deepEqual(await listFiles(local), [...expected.keys()].sort(), 'exactly the remote files, no partials left');
  for (const [rel, sha] of expected) assert.equal(await sha256File(join(local, rel)), sha, `${rel} intact`);
}

async function waitForMetric(measurement: string): Promise<MetricLine> {
  return waitFor(() => metrics.parsed().find((m) => m.measurement === measurement), `a ${measurement} line`, 10_000);
}

async function partials(): Promise<string[]> {
  const all: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (e.isDirectory()) await walk(join(dir, e.name));
      else if (e.name.endsWith('.cm-partial')) all.push(join(dir, e.name));
    }
  };
  await walk(local);
  return all;
}

async function partialBytes(): Promise<number> {
  let sum = 0;
  for (const p of await partials()) sum += (await stat(p).catch(() => ({ size: 0 }))).size;
  return sum;
}

/** The order in which items were reported downloaded. */
function downloadOrder(r: RunResult): string[] {
  // The text log quotes a value that has spaces or quotes, JSON style.
  return [...r.stdout.matchAll(/INFO\s+downloaded item=("(?:[^"\\]|\\.)*"|\S+)/g)].map((m) => (m[1].startsWith('"') ? JSON.parse(m[1]) as string : m[1]));
}

describe('mirror', () => {
  it('mirrors every item, newest directory first, then files; metrics as the seed names them', async () => {
    const expected = new Map<string, string>();
    for (const day of ['20251116', '20251118', '20251117']) {
      expected.set(`${day}/a.bin`, await serve(`${day}/a.bin`, 300_000));
      expected.set(`${day}/deep/b.bin`, await serve(`${day}/deep/b.bin`, 70_000));
    }
    expected.set('day9/x.bin', await serve('day9/x.bin', 1000));
    expected.set('day10/x.bin', await serve('day10/x.bin', 1000));
    expected.set('empty.txt', await serve('empty.txt', 0));
    expected.set('notes, "v2" = final.txt', await serve('notes, "v2" = final.txt', 5000));
    expected.set('a.txt', await serve('a.txt', 1234));

    const r = await mirror(['-j', '1']);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await assertMirrored(expected);
    // Natural order, reversed: day10 > day9 > 20251118 (letters sort after digits); files last.
    assert.deepEqual(downloadOrder(r), ['day10', 'day9', '20251118', '20251117', '20251116', 'notes, "v2" = final.txt', 'empty.txt', 'a.txt']);

    const summary = await waitForMetric('sftp_mirror_summary');
    const downloads = metrics.parsed().filter((m) => m.measurement === 'sftp_mirror_download');
    assert.deepEqual(downloads.map((d) => d.tags.item), downloadOrder(r), 'one download line per item, in order');
    const day18 = downloads.find((d) => d.tags.item === '20251118')!;
    assert.deepEqual(day18.tags, { server: '127.0.0.1', type: 'directory', item: '20251118' });
    assert.equal(day18.fields.bytes, 370_000);
    assert.ok(Number(day18.fields.duration_seconds) > 0);
    assert.ok(Math.abs(Number(day18.fields.bytes_per_second) - 370_000 / Number(day18.fields.duration_seconds)) < 1);
    assert.deepEqual(downloads.find((d) => d.tags.type === 'file' && d.tags.item === 'notes, "v2" = final.txt')?.fields.bytes, 5000,
      'an item name with comma, quote, equals and spaces survives the line protocol');
    assert.deepEqual(summary.tags, { server: '127.0.0.1', remote_path: remote });
    assert.equal(summary.fields.files_downloaded, 8);
    assert.equal(summary.fields.files_skipped, 0);
    assert.equal(summary.fields.bytes_downloaded, 3 * 370_000 + 2000 + 5000 + 1234);
    assert.ok(Number(summary.fields.duration_seconds) > 0);
    assert.ok(Number(summary.fields.avg_file_duration_seconds) > 0);
    assert.ok(summary.time! > 1_600_000_000_000_000_000n, 'nanosecond timestamp');
  });

  it('a second run downloads 0 bytes; -a downloads everything again; a changed file is fetched alone', async () => {
    const expected = new Map<string, string>();
    expected.set('20251118/a.bin', await serve('20251118/a.bin', 2_000_000));
    expected.set('20251118/b.bin', await serve('20251118/b.bin', 1_000_000));
    expected.set('top.bin', await serve('top.bin', 1_500_000));
    const total = 4_500_000;
    assert.equal((await mirror()).code, 0);
    await assertMirrored(expected);
    const inode = (await stat(join(local, 'top.bin'))).ino;

    proxy.resetCounters();
    metrics.clear();
    const second = await mirror();
    assert.equal(second.code, 0, second.stdout);
    const summary = await waitForMetric('sftp_mirror_summary');
    assert.equal(summary.fields.bytes_downloaded, 0);
    assert.equal(summary.fields.files_skipped, 2);
    assert.equal(summary.fields.files_downloaded, 0);
    assert.ok(proxy.bytesDown < 64 * 1024, `only the handshake and listings crossed the link (${proxy.bytesDown} bytes)`);
    assert.equal((await stat(join(local, 'top.bin'))).ino, inode, 'untouched');

    proxy.resetCounters();
    metrics.clear();
    const all = await mirror(['-a']);
    assert.equal(all.code, 0, all.stdout);
    assert.equal((await waitForMetric('sftp_mirror_summary')).fields.bytes_downloaded, total);
    assert.ok(proxy.bytesDown >= total, 'every byte crossed the link again');
    assert.notEqual((await stat(join(local, 'top.bin'))).ino, inode, 'replaced through a new file');
    await assertMirrored(expected);

    // One file of the directory changes size: only that one is fetched.
    expected.set('20251118/b.bin', await serve('20251118/b.bin', 1_100_000));
    metrics.clear();
    assert.equal((await mirror()).code, 0);
    const downloads = metrics.parsed().filter((m) => m.measurement === 'sftp_mirror_download');
    assert.deepEqual(downloads.map((d) => [d.tags.item, d.fields.bytes]), [['20251118', 1_100_000]]);
    await assertMirrored(expected);
  });

  it('kill -9 mid-file: the next run resumes from the partial and fetches less than the file', async () => {
    const size = 24 * 1024 * 1024;
    const expected = new Map([['big/huge.bin', await serve('big/huge.bin', size)]]);
    proxy.setRateLimit(2 * 1024 * 1024, 'down');
    const first = startDaemon(mirrorArgs(), { env: env() });
    await waitFor(async () => (await partialBytes()) >= 6 * 1024 * 1024, 'a partial of 6 MiB', 60_000);
    first.kill('SIGKILL');
    await first.waitForExit();
    const kept = await partialBytes();
    assert.ok(kept >= 6 * 1024 * 1024 && kept < size, `partial kept (${kept} bytes)`);
    assert.deepEqual((await listFiles(local)).filter((f) => !f.endsWith('.cm-partial')), [], 'no file under its final name');

    proxy.setRateLimit(0, 'down');
    proxy.resetCounters();
    const second = await mirror();
    assert.equal(second.code, 0, second.stdout);
    assert.match(second.stdout, /resuming a partial download .*from=\d+/);
    await assertMirrored(expected);
    assert.ok(proxy.bytesDown < size, `fetched again: ${proxy.bytesDown} bytes, less than one file (${size})`);
    assert.ok(proxy.bytesDown < size - kept + 1024 * 1024, `about what was missing (${size - kept} bytes) plus overhead; was ${proxy.bytesDown}`);
  });

  it('SIGTERM: stops, keeps the partial, sends the summary, exits 0; the next run completes it', async () => {
    const size = 16 * 1024 * 1024;
    const expected = new Map([['20251118/f.bin', await serve('20251118/f.bin', size)]]);
    proxy.setRateLimit(1024 * 1024, 'down');
    const run = startDaemon(mirrorArgs(), { env: env() });
    await waitFor(async () => (await partialBytes()) >= 2 * 1024 * 1024, 'a partial of 2 MiB', 60_000);
    run.kill('SIGTERM');
    const exit = await run.waitForExit(15_000);
    assert.deepEqual(exit, { code: 0, signal: null }, run.output());
    assert.match(run.output(), /mirror stopped/);
    const kept = await partialBytes();
    assert.ok(kept >= 2 * 1024 * 1024 && kept < size, `partial kept (${kept} bytes)`);
    const summary = await waitForMetric('sftp_mirror_summary');
    assert.equal(summary.fields.files_downloaded, 0);
    assert.ok(Number(summary.fields.bytes_downloaded) >= 2 * 1024 * 1024, 'the bytes fetched before the stop are counted');

    proxy.setRateLimit(0, 'down');
    const next = await mirror();
    assert.equal(next.code, 0, next.stdout);
    await assertMirrored(expected);
  });

  it('a link that keeps dropping: every file arrives intact', async () => {
    const expected = new Map<string, string>();
    for (let i = 0; i < 6; i++) expected.set(`d${i}/f.bin`, await serve(`d${i}/f.bin`, 3_000_000 + i));
    const run = startDaemon(mirrorArgs('-j', '3'), { env: env() });
    // Cut the link a few times while data flows.
    for (let cut = 0; cut < 4; cut++) {
      await waitFor(() => proxy.bytesDown > (cut + 1) * 3_000_000 || run.output().includes('mirror finished'), 'data moving', 60_000);
      if (run.output().includes('mirror finished')) break;
      proxy.cutAll();
    }
    const exit = await run.waitForExit(120_000);
    assert.equal(exit.code, 0, run.output());
    await assertMirrored(expected);
  });

  it('remote symlinks: a link to a file is mirrored as a file; links to directories and dangling links are skipped', async () => {
    const expected = new Map([['real/data.bin', await serve('real/data.bin', 10_000)]]);
    expected.set('real/alias.bin', expected.get('real/data.bin')!);
    await symlink('data.bin', server.hostPath(join(remote, 'real/alias.bin')));
    await symlink(join(remote, 'real'), server.hostPath(join(remote, 'real/loop')));
    await symlink('nowhere', server.hostPath(join(remote, 'real/dangling')));
    const r = await mirror();
    assert.equal(r.code, 0, r.stdout);
    await assertMirrored(expected);
    assert.match(r.stdout, /WARN\s+skipped: is a symlink to a directory \(not followed\) path=\S+\/real\/loop/);
    assert.match(r.stdout, /WARN\s+skipped: is a symlink whose target does not exist path=\S+\/real\/dangling/);
  });

  it('a partial of an older version of the file is discarded, not completed', async () => {
    await serve('v/f.bin', 1_000_000, 1);
    proxy.setRateLimit(512 * 1024, 'down');
    const first = startDaemon(mirrorArgs(), { env: env() });
    await waitFor(async () => (await partialBytes()) >= 256 * 1024, 'a partial', 60_000);
    first.kill('SIGKILL');
    await first.waitForExit();
    proxy.setRateLimit(0, 'down');
    // The server's file is replaced by another of the same size but a newer mtime.
    const newer = await serve('v/f.bin', 1_000_000, 2);
    const later = new Date(Date.now() + 5000);
    const { utimes } = await import('node:fs/promises');
    await utimes(server.hostPath(join(remote, 'v/f.bin')), later, later);
    const r = await mirror();
    assert.equal(r.code, 0, r.stdout);
    assert.doesNotMatch(r.stdout, /resuming/);
    await assertMirrored(new Map([['v/f.bin', newer]]));
  });

  it('host keys: first use is recorded; a changed key is refused naming both; --host-key pins', async () => {
    await serve('f.bin', 100);
    assert.equal((await mirror()).code, 0);
    const { readFile } = await import('node:fs/promises');
    assert.equal((await readFile(hostKeys, 'utf8')).trim(), `127.0.0.1:${proxy.port} ${server.hostKeyFingerprint}`);

    const fake = 'SHA256:AAAAaaaaAAAAaaaaAAAAaaaaAAAAaaaaAAAAaaaaAAA';
    await writeFile(hostKeys, `127.0.0.1:${proxy.port} ${fake}\n`);
    proxy.resetCounters();
    const changed = await mirror(['-a']);
    assert.equal(changed.code, 1);
    assert.match(changed.stdout, /host key of server 127\.0\.0\.1 \S+ changed: recorded SHA256:AAAA\S+, now offered SHA256:/);
    assert.ok(changed.stdout.includes(server.hostKeyFingerprint));
    assert.ok(proxy.bytesDown < 16 * 1024, 'nothing was downloaded');

    assert.equal((await mirror(['-a', '--host-key', server.hostKeyFingerprint, '--host-key-file', join(work, 'other')])).code, 0);
    const wrongPin = await mirror(['-a', '--host-key', fake, '--host-key-file', join(work, 'other')]);
    assert.equal(wrongPin.code, 1);
    assert.match(wrongPin.stdout, /but --host-key pins SHA256:AAAA/);
  });

  it('credentials: missing ones and a wrong password give one clear line and exit 1; no secret is printed', async () => {
    await serve('f.bin', 100);
    const noUser = await mirror([], { SFTP_USERNAME: undefined });
    assert.equal(noUser.code, 1);
    assert.match(noUser.stdout, /SFTP_USERNAME is not set/);
    const noPassword = await mirror([], { SFTP_PASSWORD: undefined });
    assert.equal(noPassword.code, 1);
    assert.match(noPassword.stdout, /no credentials: set SFTP_PASSWORD, or pass -i KEY/);
    const wrong = await mirror(['--log-level', 'trace'], { SFTP_PASSWORD: 'wrong-SFTP-SECRET' });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stdout, /mirror failed: server 127\.0\.0\.1: authentication as root failed/);
    for (const r of [noUser, noPassword, wrong]) {
      assert.equal(r.stderr, '', 'no stack trace');
      assert.ok(!(r.stdout + r.stderr).includes('SFTP-SECRET'), 'no password in the output');
    }
    const traced = await mirror(['--log-level', 'trace']);
    assert.equal(traced.code, 0);
    assert.ok(!(traced.stdout + traced.stderr).includes('SFTP-SECRET'), 'no password at trace level either');
  });

  it('bad input: a missing REMOTE_PATH exits 1, a bad -j exits 2, an absent metrics socket is one warning', async () => {
    const missing = await runCli(['mirror', '127.0.0.1', '/no/such/dir', local, '-p', String(proxy.port), '--host-key-file', hostKeys, '--metrics-socket', ''], { env: env() });
    assert.equal(missing.code, 1);
    assert.match(missing.stdout, /REMOTE_PATH \/no\/such\/dir does not exist on server 127\.0\.0\.1/);
    const emptyLocal = await runCli(['mirror', '127.0.0.1', remote, '', '-p', String(proxy.port)], { env: env() });
    assert.equal(emptyLocal.code, 2, 'an unset variable in a unit must not mirror into the working directory');
    assert.match(emptyLocal.stderr, /LOCAL_PATH is empty/);
    const badJobs = await mirror(['-j', 'many']);
    assert.equal(badJobs.code, 2);
    assert.match(badJobs.stderr, /-j\/--jobs: expected a whole number from 1 to 64, got `many`/);

    const expected = new Map([['a/f.bin', await serve('a/f.bin', 1000)], ['b/f.bin', await serve('b/f.bin', 1000)]]);
    const noSocket = await runCli(['mirror', '127.0.0.1', remote, local, '-p', String(proxy.port), '--host-key-file', hostKeys, '--metrics-socket', join(work, 'absent.sock')], { env: env() });
    assert.equal(noSocket.code, 0, noSocket.stdout);
    assert.equal(noSocket.stdout.match(/metrics socket .* unavailable/g)?.length, 1, 'exactly one warning');
    await assertMirrored(expected);
    // The default socket (no Telegraf on this machine) was not the operator's choice: no warning.
    const byDefault = await runCli(['mirror', '127.0.0.1', remote, local, '-p', String(proxy.port), '--host-key-file', hostKeys, '-a'], { env: env() });
    assert.equal(byDefault.code, 0, byDefault.stdout);
    assert.doesNotMatch(byDefault.stdout, /WARN/, 'a missing default metrics socket is no news');
    assert.match(byDefault.stdout, /mirror finished: .* itemsDownloaded=2 itemsSkipped=0 filesFailed=0/);
    // A read-only LOCAL_PATH is said as such, before anything is fetched (Node's recursive
    // mkdir would say ENOENT).
    const readOnly = join(work, 'read-only');
    await mkdir(readOnly);
    const ro = await runCliReadOnly([readOnly], ['mirror', '127.0.0.1', remote, join(readOnly, 'a', 'b'), '-p', String(proxy.port), '--host-key-file', hostKeys, '--metrics-socket', ''], { env: env() });
    assert.equal(ro.code, 1, ro.stdout + ro.stderr);
    assert.match(ro.stdout, new RegExp(`LOCAL_PATH ${readOnly}/a/b cannot be created: read-only file system`));
    const roExisting = await runCliReadOnly([readOnly], ['mirror', '127.0.0.1', remote, readOnly, '-p', String(proxy.port), '--host-key-file', hostKeys, '--metrics-socket', ''], { env: env() });
    assert.equal(roExisting.code, 1, roExisting.stdout + roExisting.stderr);
    assert.match(roExisting.stdout, new RegExp(`LOCAL_PATH ${readOnly} is not writable: read-only file system`));
    assert.deepEqual(await readdir(readOnly), [], 'nothing fetched');
  });
});
