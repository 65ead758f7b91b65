// Passwords and key passphrases against a real sshd (issue 3, item 10): the right ones work,
// wrong ones give one clear error and a slow retry, and neither secret ever reaches the output.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { appendFile, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { startLink, type Link } from '../helpers/link.js';
import { runCli, startDaemon } from '../helpers/process.js';
import { writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, writeSettings, resetFarm } from '../helpers/push.js';

const PASSWORD = 'pa;ss#w0rd-VESSEL-SECRET';
const PASSPHRASE = 'key-PASSPHRASE-SECRET';
let farm: VesselFarm;
let proxy: Link;
let home: string;
let lockedKey: string;

before(async () => {
  farm = await startVesselFarm({ count: 1, rootPassword: PASSWORD });
  proxy = await startLink(farm.vessels[0].port);
  // An empty home, so that no default key of the machine's root (~/.ssh/id_*) takes part.
  home = await mkdtemp(join(farm.root, 'home-'));
  lockedKey = join(farm.root, 'locked-key');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', PASSPHRASE, '-f', lockedKey]);
  await appendFile(join(farm.root, 'keys', 'authorized_keys'), await readFile(`${lockedKey}.pub`, 'utf8'));
});
after(async () => {
  await proxy?.stop();
  await farm?.stop();
});

const env = () => ({ HOME: home, SSH_AUTH_SOCK: undefined });

async function reset(): Promise<Map<string, string>> {
  await resetFarm(farm);
  return new Map([['secret.bin', await writeRandomFile(join(farm.viewPath, 'secret.bin'), 100_000, 41)]]);
}

/** Vessel v1 with these credential lines instead of the farm's client key. */
async function settingsWith(lines: string): Promise<string> {
  // A generous Timeout: password logins through the proxy are slow on a loaded machine.
  const file = await writeSettings(farm, { portFor: () => proxy.port, vesselExtra: () => lines, timeout: 20 });
  // writeSettings always names the farm's key; take it out so only these credentials count.
  const text = (await readFile(file, 'utf8')).replace(/^IdentityFile = .*\n/m, '');
  await writeFile(file, text);
  return file;
}

function assertNoSecrets(output: string): void {
  assert.ok(!output.includes('VESSEL-SECRET'), 'the password never appears');
  assert.ok(!output.includes('PASSPHRASE-SECRET'), 'the passphrase never appears');
}

describe('credentials', () => {
  it('a password with ; and # logs in (and is never printed, even at trace level)', async () => {
    const files = await reset();
    const r = await runCli(['run', '-c', await settingsWith(`Password = ${PASSWORD}`), '--once', '--log-level', 'trace'], { cwd: farm.root, env: env() });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await assertOnVessel(farm.vessels[0], farm.viewPath, files);
    assertNoSecrets(r.stdout + r.stderr);
  });

  it('a key with a passphrase logs in', async () => {
    const files = await reset();
    const r = await runCli(['run', '-c', await settingsWith(`IdentityFile = ${lockedKey}\nPassphrase = ${PASSPHRASE}`), '--once', '--log-level', 'trace'], { cwd: farm.root, env: env() });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await assertOnVessel(farm.vessels[0], farm.viewPath, files);
    assertNoSecrets(r.stdout + r.stderr);
  });

  it('a password and a passphrase in one settings file appear in no output of any command', async () => {
    const files = await reset();
    // Two vessels' worth of secrets in one file: v1 logs in with the password; a second section
    // (the same sshd) with the locked key and its passphrase.
    const settings = await settingsWith(`Password = ${PASSWORD}`);
    await appendFile(settings, [
      '[Vessel v1key]', 'Address = 127.0.0.1', `Port = ${proxy.port}`, 'Username = root',
      `IdentityFile = ${lockedKey}`, `Passphrase = ${PASSPHRASE}`, 'Timeout = 20', '',
    ].join('\n'));
    const outputs: string[] = [];
    for (const args of [
      ['run', '-c', settings, '--once', '--log-level', 'trace'],
      ['run', '-c', settings, '--once', '--log-level', 'trace', '--log-format', 'json'],
      ['run', '-c', settings, '--once', '--log-format', 'journal'],
      ['check', '-c', settings, '--log-level', 'trace'],
      ['status', '-c', settings],
      ['status', '-c', settings, '--json'],
    ]) {
      const r = await runCli(args, { cwd: farm.root, env: env() });
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      outputs.push(r.stdout + r.stderr);
    }
    await assertOnVessel(farm.vessels[0], farm.viewPath, files);
    for (const out of outputs) assertNoSecrets(out);
  });

  it('a wrong password: one clear error naming the vessel and user, exit 1 with --once', async () => {
    await reset();
    const r = await runCli(['run', '-c', await settingsWith('Password = wrong-VESSEL-SECRET'), '--once'], { cwd: farm.root, env: env() });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /vessel v1: authentication as root failed/);
    assertNoSecrets(r.stdout + r.stderr);
  });

  it('a wrong passphrase: a clear error, no secret printed', async () => {
    await reset();
    const r = await runCli(['run', '-c', await settingsWith(`IdentityFile = ${lockedKey}\nPassphrase = wrong-PASSPHRASE-SECRET`), '--once'], { cwd: farm.root, env: env() });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /\[Vessel v1\] IdentityFile: cannot use \S+locked-key: .*is the passphrase right\?/i);
    assertNoSecrets(r.stdout + r.stderr);
  });

  it('as a daemon, a wrong password is retried slowly: at most 2 connection attempts in a 6 s window', async () => {
    await reset();
    proxy.resetCounters();
    const before = proxy.connections;
    const daemon = startDaemon(['run', '-c', await settingsWith('Password = wrong-VESSEL-SECRET')], { cwd: farm.root, env: env() });
    try {
      const refusal = await daemon.waitForEvent('refused', (e) => e.vessel === 'v1');
      assert.match(refusal.reason, /authentication as root failed/);
      assert.match(daemon.output(), /vessel refused; fix the settings or the vessel/);
      await sleep(6000); // the window in which attempts are counted
      const attempts = proxy.connections - before;
      assert.ok(attempts >= 1 && attempts <= 2, `${attempts} connection attempts`);
      assert.equal(daemon.output().match(/vessel refused/g)?.length, 1, 'logged once, not per attempt');
      assert.equal(daemon.events().filter((e) => e.type === 'refused').length, 1, 'one event, as one line');
      daemon.kill('SIGTERM');
      assert.equal((await daemon.waitForExit(15_000)).code, 0);
      assertNoSecrets(daemon.output());
    } finally {
      daemon.kill('SIGKILL');
    }
  });
});
