// The CLI's contract with operators: exit codes, one-line errors without stack traces, help,
// syslog priorities under journald.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/process.js';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cm-cli-'));
  await mkdir(join(dir, 'data'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const valid = (extra = '') => `[Directory d]\nLocation = data\n[Vessel v]\nAddress = 127.0.0.1\nPort = 1\n${extra}\n`;

/** Exactly one non-empty line, naming the problem, and no stack trace. */
function assertOneLine(stderr: string, re: RegExp): void {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  assert.equal(lines.length, 1, `one line expected, got:\n${stderr}`);
  assert.match(lines[0], re);
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
}

describe('cli', () => {
  it('--help lists every command, and the help of each lists its flags (as the README documents them)', async () => {
    const r = await runCli(['--help']);
    assert.equal(r.code, 0);
    for (const command of ['run', 'mirror', 'status', 'check']) assert.match(r.stdout, new RegExp(`^  ${command} `, 'm'));
    assert.match(r.stdout, /Exit codes: 0 success, 1 runtime failure, 2 bad usage or settings/);
    const flags: Record<string, string[]> = {
      run: ['--config', '--once', '--give-up-after', '--log-format', '--log-level'],
      mirror: ['--jobs', '--all', '--port', '--identity-file', '--metrics-socket', '--host-key', '--host-key-file', '--timeout', '--give-up-after', '--log-format', '--log-level'],
      status: ['--config', '--json'],
      check: ['--config', '--log-level'],
    };
    const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
    for (const [command, list] of Object.entries(flags)) {
      const sub = await runCli([command, '--help']);
      assert.equal(sub.code, 0);
      for (const flag of list) {
        assert.match(sub.stdout, new RegExp(`${flag}\\b`), `${command} --help shows ${flag}`);
        assert.ok(readme.includes(flag), `README documents ${flag}`);
      }
    }
  });

  it('every help fits a terminal (no line over 100 characters) and shows number defaults without quotes', async () => {
    const helps = await Promise.all([[], ['run'], ['mirror'], ['status'], ['check']].map((c) => runCli([...c, '--help'])));
    for (const h of helps) {
      assert.equal(h.code, 0);
      for (const line of h.stdout.split('\n')) assert.ok(line.length <= 100, `${line.length} characters: ${line}`);
      assert.doesNotMatch(h.stdout, /default: "\d/, 'a number default in quotes');
    }
    const [, run, mirror] = helps;
    assert.match(run.stdout, /--give-up-after <seconds>[\s\S]*\(default: 60\)/);
    for (const d of ['\\(default: 3\\)', '\\(default: 22\\)', '\\(default: 300\\)']) assert.match(mirror.stdout, new RegExp(d));
  });

  it('a usage error names the help of the command it happened in (exit 2)', async () => {
    const r = await runCli(['run', '--bogus']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown option '--bogus'/);
    assert.match(r.stderr, /contentmonster run --help/);
    assert.doesNotMatch(r.stderr, /contentmonster --help/);
    const m = await runCli(['mirror', 'h', '/r']);
    assert.equal(m.code, 2);
    assert.match(m.stderr, /contentmonster mirror --help/);
    const top = await runCli(['launch']);
    assert.equal(top.code, 2);
    assert.match(top.stderr, /unknown command 'launch'[\s\S]*'contentmonster --help'/);
  });

  it('--version prints the package version', async () => {
    const r = await runCli(['--version']);
    assert.equal(r.code, 0);
    assert.match(r.stdout.trim(), /^\d+\.\d+\.\d+$/);
  });

  it('an unknown flag or command is a usage error (exit 2)', async () => {
    assert.equal((await runCli(['run', '--bogus'])).code, 2);
    assert.equal((await runCli(['launch'])).code, 2);
  });

  it('a misspelt key exits 2 with one line naming file, line, section, key and the right key', async () => {
    const file = join(dir, 'typo.ini');
    await writeFile(file, valid('Concurency = 4'));
    const r = await runCli(['run', '-c', file, '--once']);
    assert.equal(r.code, 2);
    assertOneLine(r.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:6: \\[Vessel v\\] Concurency: .*Concurrency`));
  });

  it('a missing settings file exits 2 with one line', async () => {
    const r = await runCli(['run', '-c', join(dir, 'nope.ini'), '--once']);
    assert.equal(r.code, 2);
    assertOneLine(r.stderr, /nope\.ini.*(no such file|does not exist)/);
  });

  it('the settings path comes from $CONTENTMONSTER_CONFIG when -c is absent', async () => {
    const r = await runCli(['run', '--once'], { env: { CONTENTMONSTER_CONFIG: join(dir, 'from-env.ini') } });
    assert.equal(r.code, 2);
    assertOneLine(r.stderr, /from-env\.ini/);
  });

  it('a bad --give-up-after exits 2', async () => {
    const file = join(dir, 'ok.ini');
    await writeFile(file, valid());
    const r = await runCli(['run', '-c', file, '--once', '--give-up-after', 'soon']);
    assert.equal(r.code, 2);
    assertOneLine(r.stderr, /--give-up-after/);
  });

  it('never prints a password from the settings, even at trace level', async () => {
    const file = join(dir, 'secret.ini');
    await writeFile(file, valid('Password = pa;ss#w0rd-SECRET\nPassphrase = phrase-SECRET'));
    await writeFile(join(dir, 'data', 'x.bin'), 'x'); // something to send, so that it tries to log in
    const r = await runCli(['run', '-c', file, '--once', '--give-up-after', '1', '--log-level', 'trace', '--log-format', 'json']);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.doesNotMatch(r.stdout + r.stderr, /SECRET/);
  });

  it('under systemd (JOURNAL_STREAM set) writes text lines with syslog priority prefixes', async () => {
    const file = join(dir, 'journal.ini');
    await writeFile(file, valid());
    await writeFile(join(dir, 'data', 'y.bin'), 'y');
    const r = await runCli(['run', '-c', file, '--once', '--give-up-after', '1'], { env: { JOURNAL_STREAM: '8:12345' } });
    assert.equal(r.code, 1);
    const lines = r.stdout.split('\n').filter((l) => l !== '');
    assert.ok(lines.length > 0);
    for (const l of lines) assert.match(l, /^<[0-7]>\S/, `priority prefix on: ${l}`);
    assert.ok(lines.some((l) => l.startsWith('<6>starting')), 'info is <6>');
    assert.ok(lines.some((l) => l.startsWith('<4>cannot reach vessel') && l.includes('vessel=v')), 'warn is <4> and names the vessel');
    assert.ok(lines.some((l) => l.startsWith('<3>vessel given up for this run')), 'error is <3>: the cause, once');
    assert.ok(lines.some((l) => l.startsWith('<4>not replicated') && l.includes('reason is logged above')), 'the files it left, at warning');
    assert.ok(lines.some((l) => l.startsWith('<3>finished with failures')), 'the end of a failed --once is an error');
  });

  // journald stores a line without a prefix at info: `journalctl -p warning` would show
  // "Failed with result 'exit-code'" and never why. Everything on stderr is an error.
  const journal = { JOURNAL_STREAM: '8:12345' };
  const allPrefixed = (text: string, prefix: string) => {
    const lines = text.split('\n').filter((l) => l !== '');
    assert.ok(lines.length > 0, 'some output');
    for (const l of lines) assert.ok(l.startsWith(prefix), `${prefix} on: ${l}`);
    return lines;
  };

  it('under systemd, bad settings are one error line <3>', async () => {
    const file = join(dir, 'journal-typo.ini');
    await writeFile(file, valid('Concurency = 4'));
    const r = await runCli(['run', '-c', file, '--once'], { env: journal });
    assert.equal(r.code, 2);
    const [line, ...more] = allPrefixed(r.stderr, '<3>');
    assert.deepEqual(more, []);
    assert.match(line, /^<3>contentmonster: .*Concurency: .*Concurrency/);
    // The same for status and check, which read the settings the same way.
    for (const command of ['status', 'check']) {
      const c = await runCli([command, '-c', file], { env: journal });
      assert.equal(c.code, 2, command);
      allPrefixed(c.stderr, '<3>');
    }
  });

  it('under systemd, usage errors are <3>: an unknown option, a bad value, a missing argument', async () => {
    for (const args of [['run', '--bogus'], ['run', '--give-up-after', 'soon'], ['mirror', 'h', '/r'], ['mirror', 'h', '/r', dir, '-j', '0'], ['launch']]) {
      const r = await runCli(args, { env: journal });
      assert.equal(r.code, 2, args.join(' '));
      allPrefixed(r.stderr, '<3>');
    }
  });

  it('under systemd, a mirror that fails says so at <3>', async () => {
    const env = { ...journal, HOME: join(dir, 'home'), SSH_AUTH_SOCK: undefined, SFTP_USERNAME: 'nobody', SFTP_PASSWORD: 'x' };
    const out = join(dir, 'mirror-out');
    // Nothing listens on port 1: the run gives up after a second.
    const r = await runCli(['mirror', '127.0.0.1', '/srv', out, '-p', '1', '--give-up-after', '1', '--metrics-socket', '', '--host-key-file', join(dir, 'hk')], { env });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const lines = allPrefixed(r.stdout, '<');
    assert.ok(lines.some((l) => l.startsWith('<3>mirror failed: ')), r.stdout);
    // No credentials at all: one error line, exit 1.
    const none = await runCli(['mirror', '127.0.0.1', '/srv', out], { env: { ...env, SFTP_USERNAME: undefined } });
    assert.equal(none.code, 1);
    assert.match(none.stdout, /^<3>SFTP_USERNAME is not set/m);
  });

  it('under systemd, the state database goes to $STATE_DIRECTORY when Database is not set', async () => {
    const own = join(dir, 'state-test'); // the settings' own folder, which other tests do not use
    const state = join(own, 'state');
    const location = join(own, 'empty-location');
    await mkdir(state, { recursive: true });
    await mkdir(location);
    const file = join(own, 'settings.ini');
    await writeFile(file, `[Directory d]\nLocation = ${location}\n[Vessel v]\nAddress = 127.0.0.1\nPort = 1\n`);
    const r = await runCli(['run', '-c', file, '--once', '--give-up-after', '1'], { env: { STATE_DIRECTORY: state } });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.ok(existsSync(join(state, 'database.sqlite3')), 'database.sqlite3 in $STATE_DIRECTORY');
    assert.ok(!existsSync(join(own, 'database.sqlite3')), 'nothing beside the settings file');
  });

  it('a state database that cannot be opened exits 2 naming the Database key', async () => {
    const file = join(dir, 'db.ini');
    await writeFile(file, `[MONSTER]\nDatabase = ${join(dir, 'data')}\n${valid()}`); // a folder, not a file
    const r = await runCli(['run', '-c', file, '--once']);
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assertOneLine(r.stderr, /\[MONSTER\] Database: cannot open/);
  });

  // Each bad settings file: exit 2, one line naming what is wrong, never a stack trace.
  const broken: [string, string | Buffer, RegExp][] = [
    ['missing Address', '[Directory d]\nLocation = data\n[Vessel v]\nPort = 22\n', /\[Vessel v\] Address: required key missing/],
    ['missing Location', '[Directory d]\n[Vessel v]\nAddress = h\n', /\[Directory d\] Location: required key missing/],
    ['bad number', valid('Timeout = 10s'), /\[Vessel v\] Timeout: .*got `10s`/],
    ['negative ChunkSize', `[MONSTER]\nChunkSize = -5\n${valid()}`, /\[MONSTER\] ChunkSize: .*got `-5`/],
    ['unknown section', `[Vesel w]\nAddress = h\n${valid()}`, /\[Vesel w\]: unknown section/],
    ['unknown key', valid('Adress = h'), /\[Vessel v\] Adress: unknown key; did you mean `Address`\?/],
    ['duplicate section', `${valid()}[Vessel v]\nAddress = other\n`, /\[Vessel v\]: duplicate section/],
    ['no vessel', '[Directory d]\nLocation = data\n', /Vessel/],
    ['empty file', '', /Directory/],
    ['binary garbage', Buffer.from([0x00, 0xff, 0x13, 0x37, 0x00, 0x42]), /not a text settings file/],
  ];
  for (const [name, content, re] of broken) {
    it(`bad settings (${name}): exit 2 with one line`, async () => {
      const file = join(dir, `broken-${name.replace(/\W+/g, '-')}.ini`);
      await writeFile(file, content);
      const r = await runCli(['run', '-c', file, '--once']);
      assert.equal(r.code, 2, r.stdout + r.stderr);
      assertOneLine(r.stderr, re);
      assert.ok(r.stderr.includes(file), 'names the file');
    });
  }

  it('bad settings (directory instead of file): exit 2 with one line', async () => {
    const r = await runCli(['run', '-c', join(dir, 'data'), '--once']);
    assert.equal(r.code, 2);
    assertOneLine(r.stderr, /is a directory/);
  });
});
