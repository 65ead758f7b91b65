import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { partialName } from '../../src/mirror/partial.js';
import { NAME_MAX, PATH_MAX, escapeName, isRefused, localPathOf, quoteName, safeLocalName } from '../../src/mirror/safe-name.js';

const refusal = (name: string): string | undefined => {
  const v = safeLocalName(name);
  return isRefused(v) ? v.refused : undefined;
};

describe('safeLocalName', () => {
  it('keeps ordinary names unchanged', () => {
    for (const name of [
      'a.txt', '20251118', '.hidden', '..x', 'x..', '...', 'a b', 'notes, "v2" = final.txt', 'back\\slash', 'ünïcødé-日本語',
      '-rf', '~', '$HOME', 'emoji-😀', 'x'.repeat(NAME_MAX), 'é'.repeat(Math.floor(NAME_MAX / 2)),
    ]) {
      assert.equal(safeLocalName(name), name, JSON.stringify(name));
    }
  });

  const cases: [string, string, RegExp][] = [
    ['empty', '', /empty/],
    ['.', '.', /itself or its parent/],
    ['..', '..', /itself or its parent/],
    ['../ at the start', '../escape1.txt', /contains "\/"/],
    ['.. inside', 'sub/../../escape2.txt', /contains "\/"/],
    ['a slash', 'a/b', /contains "\/"/],
    ['a lone slash', '/', /contains "\/"/],
    ['an absolute path', '/etc/passwd', /contains "\/"/],
    ['a trailing slash', 'dir/', /contains "\/"/],
    ['NUL', 'nul\0name', /NUL/],
    ['newline', 'new\nline', /control character/],
    ['carriage return', 'cr\r', /control character/],
    ['tab', 'tab\there', /control character/],
    ['\\x01', 'ctl\x01name', /control character/],
    ['escape', 'esc\x1b[31mred', /control character/],
    ['DEL', 'del\x7f', /control character/],
    ['C1 control', 'c1\u0085', /control character/],
    ['256 bytes', 'x'.repeat(NAME_MAX + 1), /256 bytes long, more than the 255/],
    ['300 bytes', 'y'.repeat(300), /300 bytes/],
    ['128 two-byte characters (256 bytes)', 'é'.repeat(128), /256 bytes/],
  ];
  for (const [label, name, reason] of cases) {
    it(`refuses ${label}`, () => {
      const why = refusal(name);
      assert.ok(why !== undefined, `${JSON.stringify(name)} was accepted`);
      assert.match(why, reason);
      assert.ok(!/[\x00-\x1f\x7f-\x9f]/.test(why), 'the reason is printable');
    });
  }

  it('checks bytes, not characters, against the limit', () => {
    assert.equal(safeLocalName('é'.repeat(127) + 'x'), 'é'.repeat(127) + 'x', '255 bytes');
    assert.ok(isRefused(safeLocalName('😀'.repeat(64))), '64 four-byte characters are 256 bytes');
  });
});

describe('escapeName / quoteName', () => {
  it('gives one printable line for any name', () => {
    const nasty = ['new\nline', 'ctl\x01name', 'nul\0name', 'esc\x1b[2J', 'del\x7f', 'c1\u0085', 'rlo\u202eexe.txt', 'ls\u2028ps', 'zw\u200bsp', 'bom\ufeff'];
    for (const name of nasty) {
      const printed = quoteName(name);
      assert.match(printed, /^"[\x20-\x7e]*"$|^"[^\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\ufeff]*"$/, `${printed} is printable`);
      assert.ok(!/[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\ufeff]/.test(printed), `${JSON.stringify(printed)} has no control or invisible character`);
    }
    assert.equal(quoteName('new\nline'), '"new\\nline"');
    assert.equal(quoteName('ctl\x01name'), '"ctl\\u0001name"');
    assert.equal(quoteName('nul\0name'), '"nul\\u0000name"');
    assert.equal(quoteName('rlo\u202eexe'), '"rlo\\u202eexe"');
    assert.equal(quoteName('say "hi"\\'), '"say \\"hi\\"\\\\"');
    assert.equal(quoteName(''), '""');
    assert.equal(escapeName('../escape1.txt'), '../escape1.txt');
    assert.equal(escapeName('日本語 ok'), '日本語 ok', 'ordinary characters stay readable');
  });

  it('is unambiguous: JSON.parse gives back the name', () => {
    for (const name of ['a', 'new\nline', 'ctl\x01', 'q"\\', 'rlo\u202e', '\u0085']) assert.equal(JSON.parse(quoteName(name)), name);
  });
});

describe('localPathOf', () => {
  const root = '/srv/mirror';

  it('joins a safe relative path below the root', () => {
    assert.equal(localPathOf(root, 'a.txt'), '/srv/mirror/a.txt');
    assert.equal(localPathOf(root, '20251118/deep/b.bin'), '/srv/mirror/20251118/deep/b.bin');
    assert.equal(localPathOf('/srv/mirror/', '..x/x..'), '/srv/mirror/..x/x..');
  });

  it('refuses any path that leaves the root or names it', () => {
    for (const rel of ['..', '../x', 'a/../../x', 'a/..', '.', 'a/./b', '', 'a//b', '/etc/passwd', 'a/']) {
      const v = localPathOf(root, rel);
      assert.ok(isRefused(v), `${JSON.stringify(rel)} gave ${JSON.stringify(v)}`);
    }
  });

  it('refuses a component that is not a safe name, naming it escaped', () => {
    const v = localPathOf(root, 'item/new\nline');
    assert.ok(isRefused(v));
    assert.match(v.refused, /"new\\nline" contains a control character/);
    assert.ok(!v.refused.includes('\n'));
  });

  it('refuses a path longer than the filesystem allows, counting the partial name beside it', () => {
    const deep = Array.from({ length: 20 }, () => 'd'.repeat(200)).join('/');
    const dir = `${root}/${deep}`;
    assert.equal(Buffer.byteLength(dir), 4031);
    const name = 'f'.repeat(40);
    // 4031 + 1 + 40 = 4072 bytes: the file itself fits (at most PATH_MAX - 1 = 4095)...
    assert.equal(localPathOf(root, `${deep}/${name}`), `${dir}/${name}`);
    assert.equal(typeof localPathOf(root, `${deep}/${'f'.repeat(63)}`), 'string', '4095 bytes fit');
    const over = localPathOf(root, `${deep}/${'f'.repeat(64)}`);
    assert.ok(isRefused(over), '4096 bytes do not');
    assert.match(over.refused, new RegExp(`local path would be ${PATH_MAX} bytes long, more than the ${PATH_MAX - 1}`));
    // ...but its partial (a longer name beside it) would not.
    const partial = partialName(name, 123_456_789, 1_700_000_000);
    const v = localPathOf(root, `${deep}/${name}`, partial);
    assert.ok(isRefused(v), `a ${partial.length}-byte partial name does not fit`);
    assert.match(v.refused, /would be 4105 bytes long/);
    assert.equal(typeof localPathOf(root, `${deep}/${name}`, 'p'.repeat(63)), 'string', 'a 63-byte partial name fits');
  });
});
