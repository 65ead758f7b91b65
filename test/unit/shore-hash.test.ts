import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { versionHash } from '../../src/push/upload/shore-hash.js';

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('versionHash', () => {
  it('senders of one version share one hash: each byte is taken once, from whoever gets there first', () => {
    const data = randomBytes(10_000);
    const a = versionHash('a', data.length);
    const b = versionHash('a', data.length);
    assert.equal(a, b);
    a.feed(0, data.subarray(0, 3000));
    b.feed(0, data.subarray(0, 1000)); // already there: ignored
    b.feed(1000, data.subarray(1000, 5000)); // overlaps: only 3000..5000 taken
    assert.equal(a.hashed, 5000);
    a.feed(3000, data.subarray(3000, 10_000));
    assert.equal(b.hashed, data.length);
    assert.equal(a.digest(), sha(data));
    assert.equal(b.digest(), sha(data));
    a.release();
    b.release();
  });

  it('bytes past the end of the hash are a bug, not a wrong digest', () => {
    const vh = versionHash('b', 10);
    assert.throws(() => vh.feed(4, Buffer.alloc(2)), /fed while the hash is at 0/);
    assert.throws(() => vh.digest(), /digest asked at 0 of 10/);
    vh.release();
  });
});

describe('versionHash kept for a retry', () => {
  it('a version whose senders all let go keeps its hash: the next attempt goes on where it was', () => {
    const data = randomBytes(64);
    const first = versionHash('kept', data.length);
    first.feed(0, data.subarray(0, 40));
    first.release();
    const again = versionHash('kept', data.length);
    assert.equal(again, first);
    assert.equal(again.hashed, 40);
    again.feed(0, data); // the retry reads from where the vessel's bytes start: only 40.. is taken
    assert.equal(again.digest(), sha(data));
    again.release();
  });

  it('at most 32 idle hashes are kept, the oldest let go first; one in use is never dropped', () => {
    const busy = versionHash('busy', 1);
    const idle = Array.from({ length: 40 }, (_, i) => {
      const vh = versionHash(`idle-${i}`, 1);
      vh.release();
      return vh;
    });
    assert.equal(versionHash('busy', 1), busy); // in use all along: kept
    const newest = versionHash('idle-39', 1);
    assert.equal(newest, idle[39]);
    newest.release();
    const oldest = versionHash('idle-0', 1);
    assert.notEqual(oldest, idle[0]); // let go: a new one
    oldest.release();
    busy.release();
    busy.release();
  });
});
