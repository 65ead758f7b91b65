import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BufferPool } from '../../src/push/upload/buffer-pool.js';

describe('BufferPool', () => {
  it('hands back a buffer given to it, of the size asked for', () => {
    const pool = new BufferPool(1024);
    const a = pool.take(100);
    assert.equal(a.length, 100);
    pool.give(a);
    assert.equal(pool.heldBytes, 100);
    assert.equal(pool.take(100), a, 'the same buffer, reused');
    assert.equal(pool.heldBytes, 0);
    assert.notEqual(pool.take(100), a, 'a new one once the pool is empty');
  });

  it('keeps sizes apart', () => {
    const pool = new BufferPool(1024);
    const small = pool.take(10);
    pool.give(small);
    const big = pool.take(20);
    assert.equal(big.length, 20);
    assert.notEqual(big, small);
    assert.equal(pool.heldBytes, 10);
  });

  it('holds no more than its limit', () => {
    const pool = new BufferPool(250);
    const bufs = [pool.take(100), pool.take(100), pool.take(100)];
    for (const b of bufs) pool.give(b);
    assert.equal(pool.heldBytes, 200, 'the third did not fit and was dropped');
    assert.equal(pool.take(100), bufs[1]);
    assert.equal(pool.take(100), bufs[0]);
    assert.notEqual(pool.take(100), bufs[2]);
  });
});
