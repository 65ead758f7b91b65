// The CLI's contract with operators: exit codes, one-line errors without stack traces, help.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
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
  assert.match(lines[0]!, re);
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
    assertOneLine(r.stderr, /nope\.ini.*no such file/);
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
    assert.ok(lines.some((l) => l.startsWith('<3>not replicated')), 'error is <3>');
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
