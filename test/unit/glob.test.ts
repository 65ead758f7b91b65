import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { globToRegExp, makeIgnoreMatcher } from '../../src/settings/glob.js';

function matches(glob: string, name: string): boolean {
  return globToRegExp(glob).test(name);
}

describe('globToRegExp', () => {
  it('* matches any run of characters, dots and leading dots included', () => {
    assert.ok(matches('*', '.hidden'));
    assert.ok(matches('*', ''));
    assert.ok(matches('*.part', 'movie.mkv.part'));
    assert.ok(matches('.*', '.hidden'));
    assert.ok(!matches('.*', 'visible'));
    assert.ok(matches('*~', 'notes.txt~'));
    assert.ok(!matches('*.tmp', 'a.tmp.bak'));
  });

  it('? matches exactly one character, a whole code point', () => {
    assert.ok(matches('a?c', 'abc'));
    assert.ok(!matches('a?c', 'ac'));
    assert.ok(!matches('a?c', 'abbc'));
    assert.ok(matches('?', '😀'));
    assert.ok(matches('?', '\n'));
  });

  it('supports [abc], [!abc], [^abc] and ranges', () => {
    assert.ok(matches('file[12].txt', 'file1.txt'));
    assert.ok(!matches('file[12].txt', 'file3.txt'));
    assert.ok(matches('file[!12].txt', 'file3.txt'));
    assert.ok(!matches('file[!12].txt', 'file1.txt'));
    assert.ok(matches('file[^12].txt', 'file3.txt'));
    assert.ok(matches('[a-c]x', 'bx'));
    assert.ok(!matches('[a-c]x', 'dx'));
    assert.ok(matches('[-a]', '-'), 'a leading - is literal');
    assert.ok(matches('[a-]', '-'), 'a trailing - is literal');
    assert.ok(matches('[]]', ']'), '] first in a class is a member');
    assert.ok(matches('[!]]', 'x'));
    assert.ok(!matches('[!]]', ']'));
    assert.ok(matches('[\\]', '\\'));
    assert.ok(matches('[*]', '*'));
    assert.ok(!matches('[*]', 'x'));
  });

  it('treats an unclosed [ and everything else literally', () => {
    assert.ok(matches('a[b', 'a[b'));
    assert.ok(matches('[[]', '['));
    for (const special of ['a.b', 'a+b', '(x)', '{1,2}', 'a|b', '^x$', 'a\\b', 'a/b', 'x-y']) {
      assert.ok(matches(special, special), special);
    }
    assert.ok(!matches('a.b', 'axb'));
    assert.ok(!matches('a|b', 'a'));
  });

  it('is anchored at both ends', () => {
    assert.ok(!matches('abc', 'xabc'));
    assert.ok(!matches('abc', 'abcx'));
  });

  it('throws on a reversed range', () => {
    assert.throws(() => globToRegExp('[z-a]'), /reversed range `z-a`/);
  });
});

describe('makeIgnoreMatcher', () => {
  it('matches any of the globs', () => {
    const ignored = makeIgnoreMatcher(['.*', '*.part', '*.tmp', '*~', '*.swp']);
    for (const name of ['.hidden', 'a.part', 'b.tmp', 'c~', '.d.swp']) assert.ok(ignored(name), name);
    for (const name of ['report.pdf', 'part', 'tmp.txt', 'a.swp.txt']) assert.ok(!ignored(name), name);
  });

  it('an empty list ignores nothing', () => {
    const ignored = makeIgnoreMatcher([]);
    assert.ok(!ignored('.hidden'));
    assert.ok(!ignored(''));
  });

  it('keeps each glob anchored inside the alternation', () => {
    const ignored = makeIgnoreMatcher(['a', 'b*']);
    assert.ok(ignored('a'));
    assert.ok(ignored('bee'));
    assert.ok(!ignored('ab'));
    assert.ok(!ignored('xa'));
  });
});
