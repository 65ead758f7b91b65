// The kinds of vessels found in the wild (issue 15, point 6), each the real thing on 127.0.0.1:
// OpenSSH with users whose login shells are bash, dash, zsh, ksh, busybox ash, tcsh, csh and
// fish; Dropbear with OpenSSH's sftp-server; all of which must take every file, SHA-256 checked.
// And those that cannot run commands: an SFTP-only account (ForceCommand internal-sftp),
// ProFTPD mod_sftp, and a wrapper that exits 0 without running anything. Pushing to them must
// fail at once and clearly, record nothing and leave nothing behind; `mirror` from ProFTPD
// must work. The users exist only in the vessels' private /etc (see test/helpers/sshd.ts).
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { appendFile, mkdir, mkdtemp, readdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { onTestExit } from '../helpers/cleanup.js';
import { startVesselFarm, TEST_UID_BASE, type TestUser, type Vessel, type VesselFarm } from '../helpers/sshd.js';
import { startDropbearVessel } from '../helpers/dropbear.js';
import { startProftpdVessel, type ProftpdVessel } from '../helpers/proftpd.js';
import { runCli, startDaemon, waitFor, type RunResult } from '../helpers/process.js';
import { exists, listFiles, sha256File, writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, databasePath, resetFarm } from '../helpers/push.js';

const CHUNK = 1024 * 1024;
const SFTP_SERVER = '/usr/lib/openssh/sftp-server';

// Tools the vessels' users must reach: a busybox `ash` (busybox runs the applet its argv[0]
// names, and sshd starts a shell with argv[0] = its base name), and the wrapper. Outside the
// farm, whose path is known only once it runs; world-readable, removed on every exit path.
const tools = mkdtempSync('/var/tmp/cm-kinds-');
chmodSync(tools, 0o755);
onTestExit(() => rmSync(tools, { recursive: true, force: true }));
const ASH = join(tools, 'ash');
/**
 * A ForceCommand that pretends: every command "succeeds" without running. SFTP still works:
 * with ForceCommand, sshd runs it for the sftp subsystem too, with SSH_ORIGINAL_COMMAND set to
 * the Subsystem line's command (here the sftp-server path), so it passes that one on.
 */
const SWALLOW = join(tools, 'swallow');

/** Login shells, by user name. */
const shells: TestUser[] = [
  { name: 'cmbash', shell: '/bin/bash' },
  { name: 'cmdash', shell: '/bin/dash' },
  { name: 'cmzsh', shell: '/bin/zsh' },
  { name: 'cmksh', shell: '/bin/ksh' }, // ksh93 on Debian 12
  { name: 'cmash', shell: ASH },
  { name: 'cmtcsh', shell: '/bin/tcsh' },
  { name: 'cmcsh', shell: '/bin/csh' }, // tcsh as csh
  { name: 'cmfish', shell: '/usr/bin/fish' },
];

let farm: VesselFarm;
let sftpOnly: Vessel;
let swallowing: Vessel;
let dropbear: Vessel;
let proftpd: ProftpdVessel;
let home: string;

before(async () => {
  await symlink('/bin/busybox', ASH);
  await writeFile(
    SWALLOW,
    ['#!/bin/sh', `case $SSH_ORIGINAL_COMMAND in`, `  ${SFTP_SERVER}) exec ${SFTP_SERVER} ;;`, 'esac', 'exit 0', ''].join('\n'),
    { mode: 0o755 },
  );
  farm = await startVesselFarm({
    count: shells.length + 2,
    perVessel: [...shells.map((user) => ({ user })), { forceCommand: 'internal-sftp' }, { forceCommand: SWALLOW }],
  });
  sftpOnly = farm.vessels[shells.length]!;
  swallowing = farm.vessels[shells.length + 1]!;
  dropbear = await startDropbearVessel(farm, { name: 'dropbear' });
  proftpd = await startProftpdVessel(farm, { name: 'proftpd' });
  // An empty home: no default key of the machine's root (~/.ssh/id_*) takes part.
  home = await mkdtemp(join(farm.root, 'shore-home-'));
});
after(async () => {
  await farm?.stop();
  rmSync(tools, { recursive: true, force: true });
});

/** Names that mean something to one shell or another; the newline too, which the shore allows. */
const names = [
  'plain.txt',
  `it's "quoted".txt`,
  'back\\slash.txt',
  '$HOME $(id) ${x}.txt',
  'bang!history!!.txt',
  '`tick`;semi&amp|pipe.txt',
  'star*question?[ab]{c,d}.txt', // globs and braces: fish and csh fail on a glob that matches nothing
  '%percent ~tilde #hash.txt',
  'with space.txt',
  'ünïcödé ファイル.txt',
  'new\nline.txt',
  '-leading-dash.txt',
];

/** The mixed set under the shore: small files, an empty one, and one of three chunks and a bit. */
async function makeFiles(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  let seed = 15_000;
  const add = async (rel: string, size: number): Promise<void> => {
    files.set(rel, await writeRandomFile(join(farm.viewPath, rel), size, seed++));
  };
  for (const n of names) await add(n, 1000 + seed % 97);
  await add('empty.txt', 0);
  await add(`nested dir/it's/deeper $x/small.bin`, 70_000);
  await add(`large 'file' $(x).bin`, 3 * CHUNK + 12_345);
  return files;
}

/** A settings file for exactly one vessel. */
async function settingsFor(v: Vessel, o: { remoteLocation?: string; giveUpAfter?: number } = {}): Promise<string> {
  const file = join(farm.root, `settings-${v.name}.ini`);
  await writeFile(
    file,
    [
      '[MONSTER]',
      `ChunkSize = ${CHUNK}`,
      'StableTime = 0',
      `Database = ${databasePath(farm)}`,
      '[Directory data]',
      `Location = ${farm.viewPath}`,
      ...(o.remoteLocation ? [`RemoteLocation = ${o.remoteLocation}`] : []),
      `[Vessel ${v.name}]`,
      'Address = 127.0.0.1',
      `Port = ${v.port}`,
      `Username = ${v.username}`,
      `IdentityFile = ${farm.clientKey}`,
      `HostKey = ${v.hostKeyFingerprint}`,
      'Timeout = 10',
      '',
    ].join('\n'),
  );
  return file;
}

/** The CLI's environment: text log lines, and only the settings' key (an empty HOME, no agent). */
const cliEnv = (): NodeJS.ProcessEnv => ({ HOME: home, SSH_AUTH_SOCK: undefined, JOURNAL_STREAM: undefined });

async function runOnce(settings: string): Promise<RunResult> {
  // A long --give-up-after: a refusal must come from knowing, not from giving up.
  const r = await runCli(['run', '-c', settings, '--once', '--give-up-after', '300', '--log-format', 'text'], { cwd: farm.root, env: cliEnv(), timeoutMs: 240_000 });
  return r;
}

function check(settings: string): Promise<RunResult> {
  return runCli(['check', '-c', settings], { cwd: farm.root, env: cliEnv(), timeoutMs: 60_000 });
}

/** Pushes the mixed set to `v` and checks every byte of it there and on the shore. */
async function assertDelivers(v: Vessel, uid = 0): Promise<void> {
  const files = await makeFiles();
  const settings = await settingsFor(v);
  const r = await runOnce(settings);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  await assertOnVessel(v, farm.viewPath, files);
  assert.deepEqual(await listFiles(v.backing), [...files.keys()].sort(), `exactly the shore's files on ${v.name}, no leftovers`);
  assert.deepEqual(await readdir(v.hostPath('/tmp/.ContentMonster')).catch(() => []), [], `TempDir on ${v.name} is left clean`);
  for (const rel of files.keys()) assert.equal((await stat(join(v.backing, rel))).uid, uid, `${rel} written as ${v.username}`);
  // The shore: everything moved to processed/, intact.
  for (const [rel, sha] of files) assert.equal(await sha256File(join(farm.viewPath, 'processed', rel)), sha, `processed/${rel}`);
  assert.deepEqual(await listFiles(farm.viewPath), [...files.keys()].map((f) => `processed/${f}`).sort());
  // `check` agrees that this vessel is ready.
  const c = await check(settings);
  assert.equal(c.code, 0, c.stdout + c.stderr);
}

/** Deliveries the state database records as done (0 without a database). */
function deliveredCount(): number {
  try {
    const db = new Database(databasePath(farm), { readonly: true, fileMustExist: true });
    try {
      return (db.prepare("SELECT count(*) AS n FROM deliveries WHERE state = 'done'").get() as { n: number }).n;
    } finally {
      db.close();
    }
  } catch {
    return 0;
  }
}

/**
 * Pushes the mixed set to a vessel that cannot run commands: exit 1 well before
 * --give-up-after, nothing recorded as delivered, every file still in Location, nothing of
 * ours at the destination or in TempDir. Returns the run for more specific checks.
 */
async function assertRefuses(v: Vessel, settings: string, tempDir: string): Promise<RunResult> {
  const files = await makeFiles();
  const r = await runOnce(settings);
  const out = r.stdout + r.stderr;
  assert.equal(r.code, 1, out);
  // At once: refused for what it is, not given up after --give-up-after (no timing asserted).
  assert.ok(!/no progress for/.test(out), `refused, not given up for lack of progress\n${out}`);
  assert.equal(deliveredCount(), 0, 'no delivery recorded');
  assert.deepEqual(await listFiles(farm.viewPath), [...files.keys()].sort(), 'every file still in Location, nothing in processed/');
  const ours = (await listFiles(v.backing)).filter((f) => /(^|\/)\.(cm-|ContentMonster)/.test(f));
  assert.deepEqual(ours, [], `nothing of ours left at the destination on ${v.name}`);
  assert.deepEqual(await listFiles(tempDir), [], `nothing left in TempDir on ${v.name}`);
  if (process.env.SHOW_FAILURE_LINES) console.log(out.split('\n').filter((l) => /ERROR/.test(l) && !/not replicated/.test(l)).join('\n'));
  return r;
}

/** The ERROR lines of a run's output that say the vessel cannot run commands. */
function cannotRunCommandsErrors(r: RunResult): string[] {
  return (r.stdout + r.stderr).split('\n').filter((l) => /\bERROR\b/.test(l) && l.includes('cannot run commands'));
}

const occurrences = (text: string, word: string): number => text.split(word).length - 1;

describe('vessel kinds: push delivers through every login shell and Dropbear', () => {
  beforeEach(() => resetFarm(farm));

  for (const [i, user] of shells.entries()) {
    it(`OpenSSH, login shell ${user.shell === ASH ? 'busybox ash' : user.shell}`, async () => {
      const v = farm.vessels[i];
      assert.equal(v.username, user.name);
      await assertDelivers(v, TEST_UID_BASE + i + 1);
    });
  }

  it('Dropbear with OpenSSH sftp-server', async () => {
    await assertDelivers(dropbear);
  });
});

describe('vessel kinds: push refuses a vessel that cannot run commands', () => {
  beforeEach(() => resetFarm(farm));

  it('SFTP-only account (ForceCommand internal-sftp): one clear ERROR, exit 1 at once, nothing recorded or left', async () => {
    const r = await assertRefuses(sftpOnly, await settingsFor(sftpOnly), sftpOnly.hostPath('/tmp/.ContentMonster'));
    assert.equal(cannotRunCommandsErrors(r).length, 1, r.stdout + r.stderr);
  });

  it('ProFTPD mod_sftp: one clear ERROR, exit 1 at once, nothing recorded or left', async () => {
    const settings = await settingsFor(proftpd, { remoteLocation: proftpd.remotePath(farm.viewPath) });
    // TempDir /tmp/.ContentMonster is, for a jailed ProFTPD user, under the jail.
    const r = await assertRefuses(proftpd, settings, join(proftpd.backing, 'tmp', '.ContentMonster'));
    assert.equal(cannotRunCommandsErrors(r).length, 1, `${r.stdout}${r.stderr}\nproftpd:\n${await proftpd.logs()}`);
  });

  it('the daemon: one ERROR for the SFTP-only vessel, no reconnect loop, the other vessel served meanwhile', async () => {
    const served = farm.vessels[0]; // login shell bash
    const files = await makeFiles();
    const settings = await settingsFor(sftpOnly);
    await appendFile(settings, [
      `[Vessel ${served.name}]`, 'Address = 127.0.0.1', `Port = ${served.port}`, `Username = ${served.username}`,
      `IdentityFile = ${farm.clientKey}`, `HostKey = ${served.hostKeyFingerprint}`, '',
    ].join('\n'));
    const daemon = startDaemon(['run', '-c', settings, '--log-format', 'text'], { cwd: farm.root, env: cliEnv() });
    try {
      await daemon.waitForEvent('refused', (e) => e.vessel === sftpOnly.name && /cannot run commands/.test(e.reason));
      await waitFor(async () => {
        await assertOnVessel(served, farm.viewPath, files);
        return true;
      }, `every file on ${served.name}`);
      // One more file after the refusal: a loop of reconnections would show by now many times.
      const late = new Map([['late.bin', await writeRandomFile(join(farm.viewPath, 'late.bin'), 5000, 17_001)]]);
      await waitFor(async () => {
        await assertOnVessel(served, farm.viewPath, late);
        return true;
      }, `late.bin on ${served.name}`);
    } finally {
      daemon.kill('SIGTERM');
    }
    assert.equal((await daemon.waitForExit()).code, 0);
    const out = daemon.output();
    const errors = out.split('\n').filter((l) => /\bERROR\b/.test(l));
    assert.equal(errors.length, 1, out);
    assert.match(errors[0], new RegExp(`vessel=${sftpOnly.name}.*cannot run commands`));
    assert.ok(!new RegExp(`connected vessel=${sftpOnly.name}`).test(out), `never taken as connected\n${out}`);
    assert.ok(!new RegExp(`WARN.*vessel=${sftpOnly.name}`).test(out), `no retries at WARN\n${out}`);
    assert.equal(deliveredCount(), files.size + 1, 'only the other vessel\'s deliveries recorded');
    assert.deepEqual((await listFiles(sftpOnly.backing)), [], 'nothing written to the refused vessel');
    for (const rel of files.keys()) assert.ok(await exists(join(farm.viewPath, rel)), `${rel} waits on the shore for the refused vessel`);
  });

  it('a wrapper that exits 0 without running anything: exit 1 at once, never a delivery', async () => {
    await assertRefuses(swallowing, await settingsFor(swallowing), swallowing.hostPath('/tmp/.ContentMonster'));
  });
});

describe('vessel kinds: check', () => {
  beforeEach(() => resetFarm(farm));

  it('SFTP-only account: not ready, the commands column says why, once', async () => {
    const r = await check(await settingsFor(sftpOnly));
    const out = r.stdout + r.stderr;
    assert.equal(r.code, 1, out);
    const row = r.stdout.split('\n').find((l) => l.startsWith(`${sftpOnly.name} `));
    assert.ok(row, `a table row for ${sftpOnly.name}\n${out}`);
    assert.match(row, /FAIL/, `a failing column in the row\n${out}`);
    assert.equal(occurrences(out, 'cannot run commands'), 1, out);
    assert.deepEqual(await readdir(sftpOnly.backing), [], 'check created nothing');
  });

  it('ProFTPD and the swallowing wrapper: not ready', async () => {
    for (const [v, settings] of [
      [proftpd, await settingsFor(proftpd, { remoteLocation: proftpd.remotePath(farm.viewPath) })],
      [swallowing, await settingsFor(swallowing)],
    ] as const) {
      const r = await check(settings);
      assert.equal(r.code, 1, `${v.name}\n${r.stdout}${r.stderr}`);
    }
  });
});

describe('vessel kinds: mirror', () => {
  it('mirror from ProFTPD mod_sftp (password login, pinned host key) copies every file intact', async () => {
    const remote = join(farm.viewPath, 'pub');
    const tree = new Map<string, string>();
    let seed = 16_000;
    for (const [rel, size] of [
      ['a.txt', 1000],
      ['with space.bin', 70_000],
      ['ünïcödé/ファイル.bin', 5000],
      ['2026-01/02/large.bin', 3 * CHUNK + 7],
      ['empty', 0],
    ] as const) {
      tree.set(rel, await writeRandomFile(proftpd.hostPath(join(remote, rel)), size, seed++));
    }
    const work = await mkdtemp(join(farm.root, 'mirror-'));
    const local = join(work, 'local');
    await mkdir(join(work, 'home'));
    const r = await runCli(
      ['mirror', '127.0.0.1', proftpd.remotePath(remote), local, '-p', String(proftpd.port), '--host-key', proftpd.hostKeyFingerprint,
        '--host-key-file', join(work, 'host-keys'), '--metrics-socket', '', '--give-up-after', '60'],
      { env: { HOME: join(work, 'home'), SSH_AUTH_SOCK: undefined, JOURNAL_STREAM: undefined, SFTP_USERNAME: proftpd.username, SFTP_PASSWORD: proftpd.password } },
    );
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\nproftpd:\n${await proftpd.logs()}`);
    assert.deepEqual(await listFiles(local), [...tree.keys()].sort(), 'exactly the remote files, no partials left');
    for (const [rel, sha] of tree) assert.equal(await sha256File(join(local, rel)), sha, `${rel} intact`);
    assert.ok(!r.stdout.includes(proftpd.password) && !r.stderr.includes(proftpd.password), 'the password never appears');
  });
});
