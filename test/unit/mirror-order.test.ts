import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mirrorOrder, newestFirst } from '../../src/mirror/order.js';
import type { EntryKind } from '../../src/ssh/remote-fs.js';

const sorted = (names: string[]): string[] => [...names].sort(newestFirst);

/** Deterministic shuffles, so that a failure can be reproduced. */
function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let s = seed;
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

describe('newestFirst', () => {
  it('puts later dates first', () => {
    assert.deepEqual(sorted(['20251117', '20251118', '20241231', '20260101']), ['20260101', '20251118', '20251117', '20241231']);
  });

  it('compares numbers inside names by value: day10 before day9', () => {
    assert.deepEqual(sorted(['day9', 'day10', 'day1', 'day2']), ['day10', 'day9', 'day2', 'day1']);
    assert.ok(newestFirst('day10', 'day9') < 0);
    assert.ok(newestFirst('day9', 'day10') > 0);
  });

  it('compares dated names with a common prefix', () => {
    assert.deepEqual(sorted(['run-2025-11-17', 'run-2025-11-18', 'run-2025-9-30']), ['run-2025-11-18', 'run-2025-11-17', 'run-2025-9-30']);
  });

  it('is zero only for identical strings', () => {
    assert.equal(newestFirst('same', 'same'), 0);
    assert.notEqual(newestFirst('a', 'A'), 0);
    assert.notEqual(newestFirst('\u00e9', 'e\u0301'), 0); // é composed vs e + combining acute
    assert.notEqual(newestFirst('day10', 'day010'), 0);
    assert.notEqual(newestFirst('x', 'x\u0000'), 0);
  });

  // Names the collator alone considers equal (or nearly so), which a plain sort would leave in
  // input order: the result must not depend on how the server happened to list them.
  const tricky = ['a', 'A', 'b', 'B', '\u00e9', 'e\u0301', 'e', 'E', 'day9', 'day10', 'day010', 'x', 'x\u0000', '\u00c5', 'A\u030a', '\u212b', '', '1', '01', '001'];

  it('is antisymmetric and transitive over names equal under the collator', () => {
    for (const a of tricky) {
      for (const b of tricky) {
        const ab = Math.sign(newestFirst(a, b));
        const ba = Math.sign(newestFirst(b, a));
        assert.equal(ab, -ba || 0, `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
        if (a !== b) assert.notEqual(ab, 0, `${JSON.stringify(a)} vs ${JSON.stringify(b)} compare equal`);
        for (const c of tricky) {
          if (ab < 0 && newestFirst(b, c) < 0) assert.ok(newestFirst(a, c) < 0, `not transitive: ${JSON.stringify([a, b, c])}`);
        }
      }
    }
  });

  it('gives the same order whatever the input order', () => {
    const reference = sorted(tricky);
    for (let seed = 1; seed <= 20; seed++) assert.deepEqual(sorted(shuffled(tricky, seed)), reference);
    assert.deepEqual(sorted([...tricky].reverse()), reference);
  });

  it('orders the pairs that differ only in case or normalization deterministically', () => {
    assert.deepEqual(sorted(['a', 'A']), sorted(['A', 'a']));
    assert.deepEqual(sorted(['\u00e9', 'e\u0301']), sorted(['e\u0301', '\u00e9']));
  });
});

describe('mirrorOrder', () => {
  const entry = (name: string, kind: EntryKind) => ({ name, kind });

  it('returns an empty list for no entries', () => {
    assert.deepEqual(mirrorOrder([]), []);
  });

  it('puts directories first, then everything else, each newest first', () => {
    const entries = [
      entry('20251117.tar', 'file'),
      entry('20251117', 'directory'),
      entry('link', 'symlink'),
      entry('20251118.tar', 'file'),
      entry('day9', 'directory'),
      entry('20251118', 'directory'),
      entry('day10', 'directory'),
    ];
    assert.deepEqual(mirrorOrder(entries).map((e) => e.name), ['day10', 'day9', '20251118', '20251117', 'link', '20251118.tar', '20251117.tar']);
  });

  it('puts a directory before a file even when the file name sorts first', () => {
    assert.deepEqual(mirrorOrder([entry('zzz', 'file'), entry('aaa', 'directory')]).map((e) => e.name), ['aaa', 'zzz']);
  });

  it('keeps the objects it was given, with their other properties, and does not touch the input', () => {
    const input = [{ name: 'a', kind: 'file' as const, size: 1, mtime: 2 }, { name: 'b', kind: 'directory' as const, size: 3, mtime: 4 }];
    const copy = structuredClone(input);
    const out = mirrorOrder(input);
    assert.equal(out[0], input[1]);
    assert.equal(out[1], input[0]);
    assert.deepEqual(input, copy);
  });

  it('is stable for names equal under the collator, whatever the listing order', () => {
    const names = ['a', 'A', '\u00e9', 'e\u0301'];
    const reference = mirrorOrder(names.map((n) => entry(n, 'file'))).map((e) => e.name);
    for (let seed = 1; seed <= 10; seed++) {
      assert.deepEqual(mirrorOrder(shuffled(names, seed).map((n) => entry(n, 'file'))).map((e) => e.name), reference);
    }
  });
});
