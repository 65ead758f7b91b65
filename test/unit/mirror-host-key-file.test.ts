import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../src/errors.js';
import { HostKeyFile, defaultHostKeyFile } from '../../src/mirror/host-key-file.js';
import { fingerprint } from '../../src/ssh/host-key.js';

const fpA = fingerprint(Buffer.from('host key A'));
const fpB = fingerprint(Buffer.from('host key B'));

const noWriteError = (message: string): void => assert.fail(`unexpected write error: ${message}`);

describe('HostKeyFile', () => {
  let root: string;
  let n = 0;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'cm-mirror-hostkeys-'));
  });
  after(() => {
    rmSync(root, { recursive: true, force: true });
  });

  /** A fresh folder for one case. */
  function caseDir(): string {
    const dir = join(root, `case-${++n}`);
    mkdirSync(dir);
    return dir;
  }

  it('knows no keys when the file does not exist, and does not create it by reading', () => {
    const path = join(caseDir(), 'missing', 'mirror-host-keys');
    const keys = new HostKeyFile(path, noWriteError);
    assert.equal(keys.path, path);
    assert.equal(keys.hostKey('example.com:22'), undefined);
    assert.throws(() => statSync(path), { code: 'ENOENT' });
  });

  it('records a key that a new instance reads back', () => {
    const path = join(caseDir(), 'mirror-host-keys');
    const first = new HostKeyFile(path, noWriteError);
    first.recordHostKey('example.com:22', fpA);
    assert.equal(first.hostKey('example.com:22'), fpA, 'known at once to the instance that recorded it');
    first.recordHostKey('10.0.0.1:2222', fpB);

    const second = new HostKeyFile(path, noWriteError);
    assert.equal(second.hostKey('example.com:22'), fpA);
    assert.equal(second.hostKey('10.0.0.1:2222'), fpB);
    assert.equal(second.hostKey('example.com:2222'), undefined);
    assert.equal(readFileSync(path, 'utf8'), `example.com:22 ${fpA}\n10.0.0.1:2222 ${fpB}\n`);
  });

  it('creates missing folders and the file with mode 0600', () => {
    const dir = join(caseDir(), 'state', 'contentmonster');
    const path = join(dir, 'mirror-host-keys');
    new HostKeyFile(path, noWriteError).recordHostKey('h:22', fpA);
    assert.ok(statSync(dir).isDirectory());
    assert.equal(statSync(path).mode & 0o777, 0o600);
    assert.equal(statSync(dir).mode & 0o077, 0, 'the created folder is private');
  });

  it('ignores comments, blank lines and surrounding spaces', () => {
    const path = join(caseDir(), 'mirror-host-keys');
    writeFileSync(path, `# servers we mirror\n\n   \n  # indented comment\n  a.example:22   ${fpA}  \r\n\tb.example:22\t${fpB}\n`);
    const keys = new HostKeyFile(path, noWriteError);
    assert.equal(keys.hostKey('a.example:22'), fpA);
    assert.equal(keys.hostKey('b.example:22'), fpB);
    assert.equal(keys.hostKey('#'), undefined);
  });

  for (const [label, line] of [
    ['a host with no fingerprint', 'c.example:22'],
    ['a fingerprint without SHA256:', `c.example:22 ${fpA.slice('SHA256:'.length)}`],
    ['an MD5 fingerprint', 'c.example:22 MD5:12:34:56'],
    ['a third word', `c.example:22 ${fpA} extra`],
  ] as const) {
    it(`refuses ${label} with a ConfigError naming path:line`, () => {
      const path = join(caseDir(), 'mirror-host-keys');
      writeFileSync(path, `# comment\na.example:22 ${fpA}\n${line}\n`);
      assert.throws(() => new HostKeyFile(path, noWriteError), (err: unknown) => {
        assert.ok(err instanceof ConfigError, `got ${String(err)}`);
        assert.ok(err.message.startsWith(`${path}:3: `), err.message);
        assert.ok(err.message.includes(line), err.message);
        return true;
      });
    });
  }

  it('refuses a file it cannot read (a folder) with a ConfigError', () => {
    const path = caseDir();
    assert.throws(() => new HostKeyFile(path, noWriteError), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /cannot read/);
      assert.ok(err.message.includes(path));
      return true;
    });
  });

  it('reports a key it cannot save through onWriteError, without throwing, and still trusts it this run', () => {
    const dir = caseDir();
    const path = join(dir, 'state', 'mirror-host-keys');
    const errors: string[] = [];
    const keys = new HostKeyFile(path, (message) => errors.push(message));
    // The parent "folder" is now a regular file, so creating it fails even as root. (Were it
    // a file already when the key file is read, reading would fail with ENOTDIR instead.)
    writeFileSync(join(dir, 'state'), 'x');
    assert.doesNotThrow(() => keys.recordHostKey('h:22', fpA));
    assert.equal(errors.length, 1);
    assert.ok(errors[0].includes(path), errors[0]);
    assert.equal(keys.hostKey('h:22'), fpA);
  });

  it('reports a key it cannot save below a dangling symlink', () => {
    const dir = caseDir();
    symlinkSync(join(dir, 'nowhere'), join(dir, 'state'));
    const path = join(dir, 'state', 'mirror-host-keys');
    const errors: string[] = [];
    const keys = new HostKeyFile(path, (message) => errors.push(message));
    assert.equal(keys.hostKey('h:22'), undefined);
    assert.doesNotThrow(() => keys.recordHostKey('h:22', fpA));
    assert.equal(errors.length, 1);
    assert.ok(errors[0].includes(path), errors[0]);
  });

  it('reports a key it cannot save when the path itself has become a folder', () => {
    const path = join(caseDir(), 'mirror-host-keys');
    const errors: string[] = [];
    const keys = new HostKeyFile(path, (message) => errors.push(message));
    mkdirSync(path);
    assert.doesNotThrow(() => keys.recordHostKey('h:22', fpA));
    assert.equal(errors.length, 1);
  });

  it('keeps reading the file after a key is recorded into a hand-written file', () => {
    const path = join(caseDir(), 'mirror-host-keys');
    writeFileSync(path, `# pinned by hand\na.example:22 ${fpA}\n`);
    new HostKeyFile(path, noWriteError).recordHostKey('b.example:22', fpB);
    const keys = new HostKeyFile(path, noWriteError);
    assert.equal(keys.hostKey('a.example:22'), fpA);
    assert.equal(keys.hostKey('b.example:22'), fpB);
  });

  it('keeps reading the file after a key is recorded into a file with no final newline', () => {
    const path = join(caseDir(), 'mirror-host-keys');
    writeFileSync(path, `a.example:22 ${fpA}`); // no final newline, as some editors save
    new HostKeyFile(path, noWriteError).recordHostKey('b.example:22', fpB);
    const keys = new HostKeyFile(path, noWriteError);
    assert.equal(keys.hostKey('a.example:22'), fpA);
    assert.equal(keys.hostKey('b.example:22'), fpB);
  });
});

describe('defaultHostKeyFile', () => {
  it('uses STATE_DIRECTORY when systemd sets it', () => {
    assert.equal(defaultHostKeyFile({ STATE_DIRECTORY: '/var/lib/contentmonster' }), '/var/lib/contentmonster/mirror-host-keys');
  });

  it('uses the first of several STATE_DIRECTORY entries', () => {
    assert.equal(defaultHostKeyFile({ STATE_DIRECTORY: '/var/lib/mirror:/var/lib/other' }), '/var/lib/mirror/mirror-host-keys');
  });

  it('prefers STATE_DIRECTORY to XDG_STATE_HOME', () => {
    assert.equal(defaultHostKeyFile({ STATE_DIRECTORY: '/var/lib/cm', XDG_STATE_HOME: '/home/u/.state' }), '/var/lib/cm/mirror-host-keys');
  });

  it('uses XDG_STATE_HOME without STATE_DIRECTORY, or with an empty one', () => {
    assert.equal(defaultHostKeyFile({ XDG_STATE_HOME: '/home/u/.state' }), '/home/u/.state/contentmonster/mirror-host-keys');
    assert.equal(defaultHostKeyFile({ STATE_DIRECTORY: '', XDG_STATE_HOME: '/home/u/.state' }), '/home/u/.state/contentmonster/mirror-host-keys');
  });

  it('falls back to ~/.local/state when neither is set (or XDG_STATE_HOME is empty)', () => {
    const expected = join(homedir(), '.local', 'state', 'contentmonster', 'mirror-host-keys');
    assert.equal(defaultHostKeyFile({}), expected);
    assert.equal(defaultHostKeyFile({ XDG_STATE_HOME: '' }), expected);
  });
});
