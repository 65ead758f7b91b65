import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isPartialName, partialName } from '../../src/mirror/partial.js';

const bytes = (s: string): number => Buffer.byteLength(s);

describe('partialName', () => {
  it('is the hidden name with size and mtime and the .cm-partial suffix', () => {
    assert.equal(partialName('report.csv', 1234, 1700000000), '.report.csv.1234.1700000000.cm-partial');
    assert.equal(partialName('empty', 0, 0), '.empty.0.0.cm-partial');
  });

  it('differs when the size or the mtime differs', () => {
    const base = partialName('f.bin', 100, 1700000000);
    assert.notEqual(partialName('f.bin', 101, 1700000000), base);
    assert.notEqual(partialName('f.bin', 100, 1700000001), base);
    assert.notEqual(partialName('g.bin', 100, 1700000000), base);
    assert.equal(partialName('f.bin', 100, 1700000000), base);
  });

  it('truncates a fractional mtime', () => {
    assert.equal(partialName('f', 1, 1700000000.999), partialName('f', 1, 1700000000));
    assert.equal(partialName('f', 1, 1700000000.999), '.f.1.1700000000.cm-partial');
  });

  it('keeps a name that just fits as it is', () => {
    const decoration = bytes('.') + bytes('.7.1700000000.cm-partial');
    const name = 'n'.repeat(255 - decoration);
    const p = partialName(name, 7, 1700000000);
    assert.equal(bytes(p), 255);
    assert.equal(p, `.${name}.7.1700000000.cm-partial`);
  });

  it('hashes a 250-byte name into a name of at most 255 bytes that is still a partial', () => {
    const name = 'x'.repeat(250);
    const p = partialName(name, 123456789, 1700000000);
    assert.ok(bytes(p) <= 255, `${bytes(p)} bytes`);
    assert.ok(isPartialName(p));
    assert.match(p, /^\.[0-9a-f]{32}\.123456789\.1700000000\.cm-partial$/);
    // Still tied to the version, and to the name.
    assert.notEqual(partialName(name, 123456788, 1700000000), p);
    assert.notEqual(partialName(name, 123456789, 1700000001), p);
    assert.notEqual(partialName('y'.repeat(250), 123456789, 1700000000), p);
    assert.equal(partialName(name, 123456789, 1700000000), p);
  });

  it('counts bytes, not characters, for a multibyte UTF-8 name', () => {
    // 84 characters, 252 bytes: short in characters, too long in bytes once decorated.
    const name = '日'.repeat(84);
    assert.equal(name.length, 84);
    assert.equal(bytes(name), 252);
    const p = partialName(name, 1, 1700000000);
    assert.ok(bytes(p) <= 255, `${bytes(p)} bytes`);
    assert.ok(isPartialName(p));
    assert.ok(!p.includes('日'));
  });

  it('keeps a short multibyte name readable', () => {
    assert.equal(partialName('für.txt', 3, 5), '.für.txt.3.5.cm-partial');
  });

  it('stays within 255 bytes for the largest sizes and mtimes', () => {
    const p = partialName('z'.repeat(255), Number.MAX_SAFE_INTEGER, 2 ** 40);
    assert.ok(bytes(p) <= 255);
    assert.ok(isPartialName(p));
  });
});

describe('isPartialName', () => {
  it('recognises what partialName makes', () => {
    for (const name of ['a', '.hidden', 'x.cm-partial', 'with space', 'ünï', 'z'.repeat(300)]) {
      assert.ok(isPartialName(partialName(name, 42, 1700000000)), name);
    }
  });

  it('does not take ordinary names for partials', () => {
    assert.equal(isPartialName('report.csv'), false);
    assert.equal(isPartialName('20251118'), false);
    assert.equal(isPartialName(''), false);
  });

  it('does not take a hidden file for a partial', () => {
    assert.equal(isPartialName('.bashrc'), false);
    assert.equal(isPartialName('.cm-partial-notes'), false);
  });

  it('needs the leading dot: a visible name ending in .cm-partial is an ordinary file', () => {
    assert.equal(isPartialName('data.cm-partial'), false);
    assert.equal(isPartialName('data.1.2.cm-partial'), false);
  });

  it('takes any hidden name ending in .cm-partial for a partial', () => {
    assert.equal(isPartialName('.data.cm-partial'), true);
    assert.equal(isPartialName('.x.1.2.cm-partial'), true);
  });
});
