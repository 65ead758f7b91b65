import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { planChunks, type ChunkPart } from '../../src/push/upload/chunk-plan.js';

/** Every byte of [0, size) is covered by exactly one part, in order, indices 0..n-1. */
function assertCoversExactly(parts: ChunkPart[], size: number, chunkSize: number): void {
  let expectedOffset = 0;
  parts.forEach((p, i) => {
    assert.equal(p.index, i, `index of part ${i}`);
    assert.equal(p.offset, expectedOffset, `offset of part ${i}`);
    assert.ok(p.length >= 1 && p.length <= chunkSize, `length of part ${i} is ${p.length}`);
    if (i < parts.length - 1) assert.equal(p.length, chunkSize, `only the last part may be short (part ${i})`);
    expectedOffset += p.length;
  });
  assert.equal(expectedOffset, size, 'the parts add up to the file size');
  assert.equal(parts.length, Math.ceil(size / chunkSize));
}

describe('planChunks', () => {
  it('an empty file has no chunks', () => {
    assert.deepEqual(planChunks(0, 10), []);
    assert.deepEqual(planChunks(0, 1), []);
  });

  it('an exact multiple gives equal chunks', () => {
    assert.deepEqual(planChunks(30, 10), [
      { index: 0, offset: 0, length: 10 },
      { index: 1, offset: 10, length: 10 },
      { index: 2, offset: 20, length: 10 },
    ]);
  });

  it('a remainder becomes a shorter last chunk', () => {
    assert.deepEqual(planChunks(25, 10), [
      { index: 0, offset: 0, length: 10 },
      { index: 1, offset: 10, length: 10 },
      { index: 2, offset: 20, length: 5 },
    ]);
  });

  it('a file smaller than one chunk is one chunk of its own size', () => {
    assert.deepEqual(planChunks(7, 10), [{ index: 0, offset: 0, length: 7 }]);
    assert.deepEqual(planChunks(1, 10 * 1024 * 1024), [{ index: 0, offset: 0, length: 1 }]);
  });

  it('a file exactly one chunk long is one chunk', () => {
    assert.deepEqual(planChunks(10, 10), [{ index: 0, offset: 0, length: 10 }]);
  });

  it('chunkSize 1 gives one chunk per byte', () => {
    assertCoversExactly(planChunks(5, 1), 5, 1);
    assert.equal(planChunks(5, 1).length, 5);
  });

  it('offsets and lengths cover the file exactly once for many sizes', () => {
    for (const chunkSize of [1, 2, 3, 7, 10, 4096]) {
      for (const size of [0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 99, 100, 4095, 4096, 4097, 12289]) {
        assertCoversExactly(planChunks(size, chunkSize), size, chunkSize);
      }
    }
  });

  it('handles sizes beyond 32 bits (no bitwise truncation)', () => {
    const size = 5 * 2 ** 32 + 3;
    const chunkSize = 2 ** 32;
    const parts = planChunks(size, chunkSize);
    assert.equal(parts.length, 6);
    assert.deepEqual(parts.at(-1), { index: 5, offset: 5 * 2 ** 32, length: 3 });
    assertCoversExactly(parts, size, chunkSize);
  });

  it('rejects an invalid size with a RangeError', () => {
    for (const size of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER + 1]) {
      assert.throws(() => planChunks(size, 10), RangeError, `size ${size}`);
    }
  });

  it('rejects an invalid chunkSize with a RangeError', () => {
    for (const chunkSize of [0, -1, 0.5, 2.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => planChunks(10, chunkSize), RangeError, `chunkSize ${chunkSize}`);
    }
    // Even for an empty file: a bad chunk size is a bug in the caller, not "nothing to do".
    assert.throws(() => planChunks(0, 0), RangeError);
  });
});
