import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { makeIgnoreMatcher } from '../../src/settings/glob.js';
import { PROCESSED_DIR, Scanner, isExcluded, type ScanFilter } from '../../src/push/scanner.js';

const defaultIgnore = ['.*', '*.part', '*.tmp', '*~', '*.swp'];
const filter: ScanFilter = { isIgnored: makeIgnoreMatcher(defaultIgnore) };

function fakeLogger() {
  const calls: unknown[][] = [];
  const log = { warn: (...a: unknown[]) => calls.push(a), info() {}, debug() {}, error() {} } as any;
  return { log, calls };
}

describe('isExcluded', () => {
  it('the top-level processed/ folder is excluded', () => {
    assert.equal(PROCESSED_DIR, 'processed');
    assert.equal(isExcluded('processed', filter), true);
    assert.equal(isExcluded('processed/x', filter), true);
    assert.equal(isExcluded('processed/a/b/c.txt', filter), true);
  });

  it('a processed folder deeper down is replicated', () => {
    assert.equal(isExcluded('a/processed/x', filter), false);
    assert.equal(isExcluded('a/processed', filter), false);
  });

  it('names that only look like processed are replicated', () => {
    assert.equal(isExcluded('processed.txt', filter), false);
    assert.equal(isExcluded('processed2/x', filter), false);
    assert.equal(isExcluded('Processed/x', filter), false);
  });

  it('an ignored base name anywhere in the path excludes', () => {
    assert.equal(isExcluded('.hidden', filter), true);
    assert.equal(isExcluded('.git/config', filter), true);
    assert.equal(isExcluded('a/.cache/b/c.txt', filter), true);
    assert.equal(isExcluded('a/b/movie.mkv.part', filter), true);
    assert.equal(isExcluded('a/b.tmp/c.txt', filter), true);
    assert.equal(isExcluded('notes.txt~', filter), true);
    assert.equal(isExcluded('x/.notes.txt.swp', filter), true);
  });

  it('ordinary paths are included', () => {
    assert.equal(isExcluded('a.txt', filter), false);
    assert.equal(isExcluded('a/b/c.txt', filter), false);
    assert.equal(isExcluded('a.part.txt', filter), false);
    assert.equal(isExcluded('dir.with.dots/file', filter), false);
  });

  it('with no ignore globs only processed/ is excluded', () => {
    const none: ScanFilter = { isIgnored: makeIgnoreMatcher([]) };
    assert.equal(isExcluded('.hidden', none), false);
    assert.equal(isExcluded('processed/x', none), true);
  });
});

describe('Scanner.scan', () => {
  let loc: string;

  before(() => {
    loc = mkdtempSync(join(tmpdir(), 'cm-scanner-'));
    const files: Record<string, string> = {
      'top.txt': 'top',
      'empty.dat': '',
      'a/one.txt': '1',
      'a/b/c/deep.bin': 'deep',
      'a/processed/kept.txt': 'nested processed is replicated',
      'processed/done.txt': 'already processed',
      'processed/sub/done2.txt': 'already processed',
      '.hidden': 'dotfile',
      'a/.dotfile': 'dotfile',
      '.git/config': 'dot-folder',
      'a/.cache/x/y.txt': 'dot-folder',
      'movie.mkv.part': 'partial',
      'a/b/upload.part': 'partial',
      'a/scratch.tmp': 'tmp',
      'notes.txt~': 'backup',
      'a/.notes.swp': 'swap',
      'ignored.tmp/inside.txt': 'folder with an ignored name',
      'name with spaces.txt': 'spaces',
    };
    for (const [rel, content] of Object.entries(files)) {
      mkdirSync(join(loc, rel, '..'), { recursive: true });
      writeFileSync(join(loc, rel), content);
    }
    mkdirSync(join(loc, 'a', 'empty-dir'));
    symlinkSync(join(loc, 'top.txt'), join(loc, 'link-to-file'));
    symlinkSync(join(loc, 'a'), join(loc, 'a', 'b', 'link-to-dir')); // a loop if followed
    symlinkSync('/nonexistent/target', join(loc, 'dangling'));
  });

  after(() => {
    rmSync(loc, { recursive: true, force: true });
  });

  async function scanAll(scanner: Scanner): Promise<string[]> {
    const found: string[] = [];
    await scanner.scan(loc, (rel) => found.push(rel));
    return found.sort();
  }

  it('reports every replicable regular file with its relative path, empty files included', async () => {
    const { log } = fakeLogger();
    const found = await scanAll(new Scanner(filter, log));
    assert.deepEqual(found, [
      'a/b/c/deep.bin',
      'a/one.txt',
      'a/processed/kept.txt',
      'empty.dat',
      'name with spaces.txt',
      'top.txt',
    ]);
  });

  it('warns about each symlink once, across scans, and never follows one', async () => {
    const { log, calls } = fakeLogger();
    const scanner = new Scanner(filter, log);
    await scanAll(scanner);
    const linkPaths = () => calls.map((c) => (c[0] as { path: string }).path).sort();
    const expected = [join(loc, 'a', 'b', 'link-to-dir'), join(loc, 'dangling'), join(loc, 'link-to-file')].sort();
    assert.deepEqual(linkPaths(), expected);
    for (const c of calls) assert.match(String(c[1]), /symbolic link/);
    await scanAll(scanner);
    assert.deepEqual(linkPaths(), expected, 'a second scan warns about nothing new');
  });

  it('a link named like an ignored file is ignored silently', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cm-scanner-ign-'));
    try {
      symlinkSync('/etc/hostname', join(dir, '.hidden-link'));
      writeFileSync(join(dir, 'f'), 'x');
      const { log, calls } = fakeLogger();
      const found: string[] = [];
      await new Scanner(filter, log).scan(dir, (r) => found.push(r));
      assert.deepEqual(found, ['f']);
      assert.deepEqual(calls, []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an unreadable location is warned about and skipped, not thrown', async () => {
    const { log, calls } = fakeLogger();
    const found: string[] = [];
    await new Scanner(filter, log).scan(join(loc, 'does-not-exist'), (r) => found.push(r));
    assert.deepEqual(found, []);
    assert.equal(calls.length, 1);
    assert.match(String(calls[0][1]), /cannot read folder/);
  });

  it('stops early when the signal is aborted', async () => {
    const { log } = fakeLogger();
    const controller = new AbortController();
    controller.abort();
    const found: string[] = [];
    await new Scanner(filter, log).scan(loc, (r) => found.push(r), controller.signal);
    assert.deepEqual(found, []);
  });

  it('with no ignore globs, dot-files and *.part are reported but processed/ still is not', async () => {
    const { log } = fakeLogger();
    const found: string[] = [];
    await new Scanner({ isIgnored: makeIgnoreMatcher([]) }, log).scan(loc, (r) => found.push(r));
    assert.ok(found.includes('.hidden'));
    assert.ok(found.includes('.git/config'));
    assert.ok(found.includes('movie.mkv.part'));
    assert.ok(!found.some((f) => f.startsWith('processed/')));
    assert.ok(found.includes('a/processed/kept.txt'));
  });
});
