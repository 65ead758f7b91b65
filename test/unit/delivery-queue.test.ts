import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeliveryQueue, type QueuedFile } from '../../src/push/delivery-queue.js';

// Of one tier and rank unless said: then they go in the order they came (their ids).
const small = (id: number, extra: Partial<QueuedFile> = {}): QueuedFile => ({ id, kind: 'small', size: 1000, tier: 0, rank: 0, ...extra });
const large = (id: number, extra: Partial<QueuedFile> = {}): QueuedFile => ({ id, kind: 'large', size: 50_000_000, tier: 0, rank: 0, ...extra });
const any = () => true;

function takeAll(q: DeliveryQueue, accept: (f: QueuedFile) => boolean = any): number[] {
  const ids: number[] = [];
  for (let f = q.take(accept); f; f = q.take(accept)) ids.push(f.id);
  return ids;
}

describe('DeliveryQueue', () => {
  it('new files go in the order they came, small and large mixed', () => {
    const q = new DeliveryQueue();
    [small(1), large(2), small(3), large(4), small(5)].forEach((f) => q.add(f));
    assert.equal(q.size, 5);
    assert.deepEqual(takeAll(q), [1, 2, 3, 4, 5]);
    assert.equal(q.size, 0);
  });

  it('started files go first: all bytes sent before partly sent, then new ones', () => {
    const q = new DeliveryQueue();
    [small(1), small(2), large(3)].forEach((f) => q.add(f));
    q.add(small(10, { stage: 'started' }));
    q.add(large(11, { stage: 'sent' }));
    q.add(small(12, { stage: 'placing' }));
    q.add(small(13, { stage: 'started' }));
    assert.deepEqual(takeAll(q), [11, 12, 10, 13, 1, 2, 3]);
  });

  it('a file put back with a stage leaves its place among the new ones', () => {
    const q = new DeliveryQueue();
    [small(1), small(2)].forEach((f) => q.add(f));
    q.add(small(2, { stage: 'started' }));
    assert.equal(q.size, 2);
    assert.deepEqual(takeAll(q), [2, 1]);
  });

  it('a stream of small files does not keep a large one waiting when the large one may start', () => {
    const q = new DeliveryQueue();
    q.add(large(1));
    for (let id = 2; id < 100; id++) q.add(small(id));
    // Only small files fit now: they go, the large one keeps its place.
    assert.equal(q.take((f) => f.kind === 'small')?.id, 2);
    // Both could start: the oldest, the large one.
    assert.equal(q.take(any)?.id, 1);
  });

  it('new files go in queue order (tier, rank, then as they came), whatever order they were added in; of both kinds, the first in that order', () => {
    const q = new DeliveryQueue();
    q.add(small(1, { tier: 0, rank: 500 }));
    q.add(large(2, { tier: -30, rank: 9e9 })); // a higher Priority
    q.add(small(3, { tier: 0, rank: 20 }));
    q.add(small(4, { tier: 0, rank: 20 }));
    q.add(large(5, { tier: 0, rank: 5e7 }));
    q.add(small(6, { tier: 3, rank: 1 })); // a lower Priority
    assert.deepEqual(takeAll(q), [2, 3, 4, 1, 5, 6]);
  });

  it('dropLast gives back the new file of a kind that goes last', () => {
    const q = new DeliveryQueue();
    [small(1, { rank: 5 }), small(2, { rank: 9 }), small(3, { rank: 7 }), large(4, { rank: 99 })].forEach((f) => q.add(f));
    assert.equal(q.dropLast('small')?.id, 2);
    assert.ok(!q.has(2));
    assert.equal(q.freshCount('small'), 2);
    assert.deepEqual(takeAll(q), [1, 3, 4]);
  });

  it('takes nothing that is not accepted, and keeps it', () => {
    const q = new DeliveryQueue();
    q.add(large(1));
    q.add(large(2, { stage: 'started' }));
    assert.equal(q.take((f) => f.kind === 'small'), undefined);
    assert.equal(q.size, 2);
    assert.ok(q.has(1) && q.has(2));
  });

  it('delete and drain', () => {
    const q = new DeliveryQueue();
    [small(1), large(2), small(3, { stage: 'started' })].forEach((f) => q.add(f));
    q.delete(2);
    assert.ok(!q.has(2));
    assert.deepEqual(q.drain().map((f) => f.id).sort(), [1, 3]);
    assert.equal(q.size, 0);
    assert.equal(q.take(any), undefined);
  });
});
