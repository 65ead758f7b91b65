// `contentmonster check` (issue 5, item 1) against real sshd vessels, each broken in one way in
// its own mount namespace and restored afterwards: the table names the failing step, one line
// says why, the others stay ok, and check itself records and creates nothing.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFile, chmod, mkdir, mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { StateStore } from '../../src/state/store.js';
import { freePorts, startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { runCli, type RunResult } from '../helpers/process.js';
import { exists, writeRandomFile } from '../helpers/tree.js';
import { databasePath, onVessel, resetFarm, writeSettings, type SettingsOptions } from '../helpers/push.js';

const PASSWORD = 'pa;ss#w0rd-VESSEL-SECRET';
const PASSPHRASE = 'key-PASSPHRASE-SECRET';
const fakeFingerprint = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';
const columns = ['CONNECT', 'HOST KEY', 'AUTH', 'COMMANDS', 'TEMPDIR', 'CAT/SHA256SUM', 'REMOTELOCATIONS'];

let farm: VesselFarm;
let home: string;
let lockedKey: string;

before(async () => {
  farm = await startVesselFarm({ count: 3, rootPassword: PASSWORD });
  // An empty home: no default key of the machine's root (~/.ssh/id_*) takes part.
  home = await mkdtemp(join(farm.root, 'shore-home-'));
  lockedKey = join(farm.root, 'locked-key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', PASSPHRASE, '-f', lockedKey]);
  await appendFile(join(farm.root, 'keys', 'authorized_keys'), await readFile(`${lockedKey}.pub`, 'utf8'));
});
after(async () => {
  await farm?.stop();
});

interface Checked extends RunResult {
  rows: Map<string, Record<string, string>>;
}

async function check(settings: string, args: string[] = []): Promise<Checked> {
  const r = await runCli(['check', '-c', settings, ...args], { cwd: farm.root, env: { HOME: home, SSH_AUTH_SOCK: undefined }, timeoutMs: 60_000 });
  if (process.env.SHOW_CHECK_OUTPUT) console.log(r.stdout);
  return { ...r, rows: parseTable(r.stdout) };
}

/** The table's rows by vessel name, each cell by column header. */
function parseTable(stdout: string): Map<string, Record<string, string>> {
  const lines = stdout.split('\n');
  const start = lines.findIndex((l) => l.startsWith('VESSEL '));
  const rows = new Map<string, Record<string, string>>();
  if (start < 0) return rows;
  const headers = lines[start].split(/ {2,}/);
  for (const line of lines.slice(start + 1)) {
    if (!line) break;
    const cells = line.split(/ {2,}/);
    rows.set(cells[0], Object.fromEntries(headers.map((h, i) => [h, cells[i] ?? ''])));
  }
  return rows;
}

/** Every column ok (a new host key too) except those given. */
function assertRow(r: Checked, vessel: string, expected: Record<string, string> = {}): void {
  const row = r.rows.get(vessel);
  assert.ok(row, `a row for ${vessel}\n${r.stdout}${r.stderr}`);
  for (const column of columns) {
    const want = expected[column];
    if (want !== undefined) assert.equal(row[column], want, `${vessel} ${column}\n${r.stdout}`);
    else assert.match(row[column], column === 'HOST KEY' ? /^(ok|new)$/ : /^ok$/, `${vessel} ${column}\n${r.stdout}`);
  }
}

/** The lines `vessel: ...` of the report. */
function linesFor(r: Checked, vessel: string): string[] {
  return r.stdout.split('\n').filter((l) => l.startsWith(`${vessel}: `));
}

const notReached = (...names: string[]) => Object.fromEntries(names.map((n) => [n, '-']));

function assertNoSecrets(output: string): void {
  assert.ok(!output.includes('VESSEL-SECRET'), 'the password never appears');
  assert.ok(!output.includes('PASSPHRASE-SECRET'), 'the passphrase never appears');
}

/** A read-only view of `path` in the vessel's namespace; undone by umount. */
function readOnly(i: number, path: string): void {
  onVessel(farm.vessels[i], `mkdir -p '${path}' && mount --bind '${path}' '${path}' && mount -o remount,bind,ro '${path}'`);
}

/** Injects `faults`, runs `body`, and always undoes them (each undo on its own). */
async function withFaults(faults: { inject: () => void | Promise<void>; heal: () => void }[], body: () => Promise<void>): Promise<void> {
  const injected: (() => void)[] = [];
  try {
    for (const f of faults) {
      await f.inject();
      injected.push(f.heal);
    }
    await body();
  } finally {
    for (const heal of injected.reverse()) {
      try {
        heal();
      } catch (err) {
        console.error(`restoring a vessel failed: ${(err as Error).message}`);
      }
    }
  }
}

async function settingsWith(o: SettingsOptions = {}): Promise<string> {
  return writeSettings(farm, o);
}

describe('contentmonster check', () => {
  beforeEach(() => resetFarm(farm));

  it('all ready: exit 0, every cell ok, new host keys named; then ok once a run recorded them, even while the database is locked', async () => {
    const local = join(farm.root, 'later-local');
    await mkdir(local, { recursive: true });
    const hostileRemote = join(farm.viewPath, `new 'dir' $(touch MARKER) \`touch MARKER\`; x`, 'sub');
    const settings = await settingsWith({
      directories: [
        { name: 'data', location: farm.viewPath },
        { name: 'later', location: local, extra: `RemoteLocation = ${hostileRemote}` },
      ],
    });
    const r = await check(settings);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.stderr, '', 'no log lines without --log-level');
    assert.equal(r.rows.size, 3);
    for (const [i, v] of farm.vessels.entries()) {
      assertRow(r, v.name, { 'HOST KEY': 'new' });
      assert.equal(r.rows.get(v.name)!.ADDRESS, `127.0.0.1:${v.port}`);
      const lines = linesFor(r, v.name);
      assert.ok(lines.some((l) => l.includes(v.hostKeyFingerprint) && /recorded on the first run/.test(l) && l.includes(`HostKey = ${v.hostKeyFingerprint}`)), lines.join('\n'));
      assert.ok(lines.some((l) => l.includes(`RemoteLocation ${hostileRemote} of [Directory later] does not exist yet; it will be created (${farm.viewPath} is writable)`)), lines.join('\n'));
      assert.deepEqual(await readdir(v.backing), [], `check created nothing on v${i + 1}`);
      assert.ok(!(await exists(join(farm.root, `home-${i + 1}`, 'MARKER'))), 'no injection');
    }
    assert.match(r.stdout, /all 3 vessels ready\n$/);
    assert.ok(!(await exists(databasePath(farm))), 'check creates no state database');

    await writeRandomFile(join(farm.viewPath, 'first.bin'), 1000, 1);
    const run = await runCli(['run', '-c', settings, '--once'], { cwd: farm.root, env: { HOME: home, SSH_AUTH_SOCK: undefined } });
    assert.equal(run.code, 0, run.stdout + run.stderr);

    // A writer holding the database (as the daemon does) does not block check.
    const db = new Database(databasePath(farm));
    try {
      db.exec('BEGIN IMMEDIATE');
      const again = await check(settings);
      assert.equal(again.code, 0, again.stdout + again.stderr);
      for (const v of farm.vessels) assertRow(again, v.name, { 'HOST KEY': 'ok' });
      assert.doesNotMatch(again.stdout, /is new/);
    } finally {
      db.close();
    }
  });

  it('TempDir not writable (existing and missing): FAIL with the reason, the other vessel ok', async () => {
    const settings = await settingsWith({ vesselExtra: (i) => ['TempDir = /tmp/ro/chunks', 'TempDir = /tmp/ro2/missing/chunks', ''][i] });
    await withFaults([
      { inject: () => {
        onVessel(farm.vessels[0], 'mkdir -p /tmp/ro/chunks');
        readOnly(0, '/tmp/ro');
      }, heal: () => onVessel(farm.vessels[0], 'umount /tmp/ro && rm -r /tmp/ro') },
      { inject: () => readOnly(1, '/tmp/ro2'), heal: () => onVessel(farm.vessels[1], 'umount /tmp/ro2 && rm -r /tmp/ro2') },
    ], async () => {
      const r = await check(settings);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assertRow(r, 'v1', { TEMPDIR: 'FAIL' });
      assertRow(r, 'v2', { TEMPDIR: 'FAIL' });
      assertRow(r, 'v3');
      assert.ok(linesFor(r, 'v1').includes('v1: TempDir /tmp/ro/chunks is not writable: Read-only file system'), r.stdout);
      assert.ok(linesFor(r, 'v2').includes('v2: TempDir /tmp/ro2/missing/chunks is not writable: it does not exist, and /tmp/ro2, where it would be created, is not writable: Read-only file system'), r.stdout);
      assert.match(r.stdout, /2 of 3 vessels not ready\n$/);
    });
  });

  it('sha256sum missing, cat failing: FAIL naming the command', async () => {
    const fake = async (name: string, body: string) => {
      const path = join(farm.root, `fake-${name}`);
      await writeFile(path, `#!/bin/sh\n${body}\n`);
      await chmod(path, 0o755);
      return path;
    };
    const missing = await fake('sha256sum', 'echo "sh: 1: sha256sum: not found" >&2; exit 127');
    const broken = await fake('cat', 'echo "cat: Input/output error" >&2; exit 1');
    const settings = await settingsWith();
    await withFaults([
      { inject: () => onVessel(farm.vessels[0], `mount --bind '${missing}' /usr/bin/sha256sum`), heal: () => onVessel(farm.vessels[0], 'umount /usr/bin/sha256sum') },
      { inject: () => onVessel(farm.vessels[1], `mount --bind '${broken}' /usr/bin/cat`), heal: () => onVessel(farm.vessels[1], 'umount /usr/bin/cat') },
    ], async () => {
      const r = await check(settings);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assertRow(r, 'v1', { 'CAT/SHA256SUM': 'FAIL' });
      assertRow(r, 'v2', { 'CAT/SHA256SUM': 'FAIL' });
      assertRow(r, 'v3');
      assert.deepEqual(linesFor(r, 'v1').filter((l) => /sha256sum|cat/.test(l)), ['v1: sha256sum not found on the vessel (it is in coreutils)']);
      assert.deepEqual(linesFor(r, 'v2').filter((l) => /sha256sum|cat/.test(l)), ['v2: cat does not work: `printf abc | cat` exited with 1: cat: Input/output error']);
    });
  });

  it('a RemoteLocation not writable: FAIL for the vessel that receives it, ok where IgnoreDirs skips it; a missing one will be created', async () => {
    const spareLocal = join(farm.root, 'spare-local');
    await mkdir(spareLocal, { recursive: true });
    const spareRemote = join(farm.root, 'spare-remote', 'inbox');
    const settings = await settingsWith({
      directories: [
        { name: 'data', location: farm.viewPath },
        { name: 'spare', location: spareLocal, extra: `RemoteLocation = ${spareRemote}` },
      ],
      vesselExtra: (i) => (i === 1 ? 'IgnoreDirs = data' : ''),
    });
    await withFaults([0, 1].map((i) => ({ inject: () => readOnly(i, farm.viewPath), heal: () => onVessel(farm.vessels[i], `umount '${farm.viewPath}'`) })), async () => {
      const r = await check(settings);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assertRow(r, 'v1', { REMOTELOCATIONS: 'FAIL' });
      assertRow(r, 'v2');
      assertRow(r, 'v3');
      assert.ok(linesFor(r, 'v1').includes(`v1: RemoteLocation ${farm.viewPath} of [Directory data] is not writable: Read-only file system`), r.stdout);
      for (const v of ['v2', 'v3']) {
        assert.ok(linesFor(r, v).includes(`${v}: RemoteLocation ${spareRemote} of [Directory spare] does not exist yet; it will be created (${farm.root} is writable)`), r.stdout);
      }
      assert.ok(!(await exists(join(farm.root, 'spare-remote'))), 'not created by check');
      assert.match(r.stdout, /1 of 3 vessels not ready\n$/);
    });
  });

  it('credentials: a wrong password or passphrase is an AUTH FAIL; the right ones pass; no secret in any output, even at trace level', async () => {
    const withCredentials = async (lines: string[]) => {
      const file = await settingsWith({ vesselExtra: (i) => lines[i] });
      // writeSettings names the farm's key for every vessel; only these credentials count.
      await writeFile(file, (await readFile(file, 'utf8')).replaceAll(`IdentityFile = ${farm.clientKey}\n`, ''));
      return file;
    };
    const right = [`Password = ${PASSWORD}`, `IdentityFile = ${lockedKey}\nPassphrase = ${PASSPHRASE}`];
    const wrongPassword = await withCredentials(['Password = wrong-VESSEL-SECRET', ...right]);
    const r = await check(wrongPassword, ['--log-level', 'trace']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assertRow(r, 'v1', { AUTH: 'FAIL', ...notReached('COMMANDS', 'TEMPDIR', 'CAT/SHA256SUM', 'REMOTELOCATIONS') });
    assertRow(r, 'v2');
    assertRow(r, 'v3');
    assert.match(linesFor(r, 'v1').join('\n'), /^v1: authentication as root failed/m);
    assert.notEqual(r.stderr, '', 'log lines on stderr with --log-level');
    assertNoSecrets(r.stdout + r.stderr);

    const wrongPassphrase = await withCredentials([...right, `IdentityFile = ${lockedKey}\nPassphrase = wrong-PASSPHRASE-SECRET`]);
    const p = await check(wrongPassphrase);
    assert.equal(p.code, 1, p.stdout + p.stderr);
    assertRow(p, 'v3', { AUTH: 'FAIL', ...notReached('CONNECT', 'HOST KEY', 'COMMANDS', 'TEMPDIR', 'CAT/SHA256SUM', 'REMOTELOCATIONS') });
    assert.match(linesFor(p, 'v3').join('\n'), /is the passphrase right\?/);
    assertNoSecrets(p.stdout + p.stderr);
  });

  it('a changed host key and a wrong pin: HOST KEY FAIL naming both fingerprints; a recorded key is ok; nothing is recorded', async () => {
    const [v1, v2, v3] = farm.vessels as [typeof farm.vessels[0], typeof farm.vessels[0], typeof farm.vessels[0]];
    const store = new StateStore(databasePath(farm));
    store.recordHostKey(`127.0.0.1:${v1.port}`, fakeFingerprint);
    store.recordHostKey(`127.0.0.1:${v2.port}`, v2.hostKeyFingerprint);
    store.close();
    const settings = await settingsWith({ vesselExtra: (i) => (i === 2 ? `HostKey = ${fakeFingerprint}` : '') });
    const r = await check(settings);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assertRow(r, 'v1', { 'HOST KEY': 'FAIL', ...notReached('AUTH', 'COMMANDS', 'TEMPDIR', 'CAT/SHA256SUM', 'REMOTELOCATIONS') });
    assertRow(r, 'v2', { 'HOST KEY': 'ok' });
    assertRow(r, 'v3', { 'HOST KEY': 'FAIL', ...notReached('AUTH', 'COMMANDS', 'TEMPDIR', 'CAT/SHA256SUM', 'REMOTELOCATIONS') });
    assert.ok(linesFor(r, 'v1').some((l) => l.startsWith(`v1: host key changed: recorded ${fakeFingerprint}, now offered ${v1.hostKeyFingerprint}`)), r.stdout);
    assert.ok(linesFor(r, 'v3').some((l) => l.includes(v3.hostKeyFingerprint) && l.includes(fakeFingerprint)), r.stdout);

    const db = new Database(databasePath(farm), { readonly: true });
    try {
      const recorded = db.prepare('SELECT host, fingerprint FROM host_keys ORDER BY host').all();
      assert.deepEqual(recorded, [
        { host: `127.0.0.1:${v1.port}`, fingerprint: fakeFingerprint },
        { host: `127.0.0.1:${v2.port}`, fingerprint: v2.hostKeyFingerprint },
      ].sort((a, b) => a.host.localeCompare(b.host)));
    } finally {
      db.close();
    }
  });

  it('one vessel down (connection refused): CONNECT FAIL, the others still ok, exit 1', async () => {
    const [deadPort] = await freePorts(1);
    const settings = await settingsWith({ portFor: (i) => (i === 1 ? deadPort : farm.vessels[i].port) });
    const r = await check(settings);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assertRow(r, 'v1');
    assertRow(r, 'v2', { CONNECT: 'FAIL', ...notReached('HOST KEY', 'AUTH', 'COMMANDS', 'TEMPDIR', 'CAT/SHA256SUM', 'REMOTELOCATIONS') });
    assertRow(r, 'v3');
    assert.match(linesFor(r, 'v2').join('\n'), new RegExp(`^v2: cannot connect to 127\\.0\\.0\\.1:${deadPort}: .*ECONNREFUSED`, 'm'));
  });

  it('broken settings: exit 2, one line on stderr, nothing on stdout', async () => {
    const settings = await settingsWith({ vesselExtra: (i) => (i === 0 ? 'Concurency = 4' : '') });
    const r = await check(settings);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /\[Vessel v1\] Concurency.*Concurrency/);

    const missing = await check(join(farm.root, 'no-such-settings.ini'));
    assert.equal(missing.code, 2);
    assert.equal(missing.stderr.trim().split('\n').length, 1, missing.stderr);
  });
});
