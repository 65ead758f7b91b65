// The window of a vessel's queue over the state database (issue 18): what is in memory stays
// bounded whatever waits, nothing pending is ever skipped, and the order is the order files came.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FileKind } from '../../src/push/delivery-queue.js';
import { PagedQueue, WINDOW, type WaitingRow } from '../../src/push/paged-queue.js';
import { compareKeys, type QueueKey } from '../../src/state/queue-order.js';

const SMALL_MAX = 100;
const kindOf = (size: number): FileKind => (size <= SMALL_MAX ? 'small' : 'large');

/** A fake database: pending rows by id; counts the pages read. */
function database(rows: WaitingRow[]) {
  const pending = new Map(rows.map((r) => [r.id, r]));
  const db = {
    pending,
    pages: 0,
    source: (kind: FileKind, after: QueueKey, limit: number): WaitingRow[] => {
      db.pages++;
      return [...pending.values()].filter((r) => kindOf(r.size) === kind && compareKeys(r, after) > 0).sort(compareKeys).slice(0, limit);
    },
  };
  return db;
}

/** Rows of one tier and rank: in the order they came (their ids). */
const rows = (from: number, n: number, size: number): WaitingRow[] => Array.from({ length: n }, (_, i) => row(from + i, size));
const row = (id: number, size: number, tier = 0, rank: number | string = 0): WaitingRow => ({ id, size, tier, rank });

/** Takes everything, as a vessel would, deleting each taken row as delivered; returns the ids in order. */
function deliverAll(q: PagedQueue, db: ReturnType<typeof database>, accept: (kind: FileKind) => boolean = () => true): number[] {
  const order: number[] = [];
  for (;;) {
    q.refill();
    const f = q.take((x) => accept(x.kind));
    if (!f) break;
    db.pending.delete(f.id);
    order.push(f.id);
  }
  return order;
}

describe('PagedQueue', () => {
  it('a backlog far larger than the window is read a page at a time, every row once, in the order it came, small and large each in order', () => {
    const db = database([...rows(1, 3000, 10), ...rows(3001, 100, 1000), ...rows(3101, 2000, 10)]);
    const q = new PagedQueue(db.source, kindOf, () => false);
    let peak = 0;
    const order: number[] = [];
    for (;;) {
      q.refill();
      peak = Math.max(peak, q.size);
      const f = q.take(() => true);
      if (!f) break;
      db.pending.delete(f.id);
      order.push(f.id);
    }
    assert.equal(order.length, 5100);
    assert.equal(new Set(order).size, 5100, 'each once');
    const small = order.filter((id) => id <= 3000 || id > 3100);
    const large = order.filter((id) => id > 3000 && id <= 3100);
    assert.deepEqual(small, [...small].sort((a, b) => a - b));
    assert.deepEqual(large, [...large].sort((a, b) => a - b));
    assert.ok(peak <= WINDOW.small + WINDOW.large, `at most a window of each kind in memory (${peak})`);
    assert.ok(q.empty);
  });

  it('a run of large files never hides the small ones behind it: each kind has its own cursor', () => {
    const db = database([...rows(1, 1000, 1000), ...rows(1001, 10, 10)]);
    const q = new PagedQueue(db.source, kindOf, () => false);
    q.refill();
    // Only small files can start now (the large slots are busy): they are there.
    const first = q.take((f) => f.kind === 'small');
    assert.equal(first?.id, 1001);
  });

  it('a file offered behind a full window is read later, not held in memory; one offered while nothing else waits goes straight in', () => {
    const db = database(rows(1, WINDOW.small, 10));
    const q = new PagedQueue(db.source, kindOf, () => false);
    q.refill();
    assert.equal(q.size, WINDOW.small);
    db.pending.set(5000, row(5000, 10));
    q.offer(row(5000, 10));
    assert.equal(q.size, WINDOW.small, 'not in memory while the window is full');
    assert.deepEqual(deliverAll(q, db).slice(-1), [5000], 'read from the database when its turn came');
    assert.ok(q.empty);
    const pages = db.pages;
    db.pending.set(6000, row(6000, 10));
    q.offer(row(6000, 10));
    assert.equal(q.size, 1, 'nothing else waits: taken in at once');
    assert.deepEqual(deliverAll(q, db), [6000]);
    assert.equal(db.pages, pages, 'without reading the database');
  });

  it('a file pending again behind the cursor (a retry) is not skipped, and rewind reads everything again', () => {
    const db = database(rows(1, 2 * WINDOW.small, 10));
    const q = new PagedQueue(db.source, kindOf, () => false);
    const taken: number[] = [];
    for (let i = 0; i < WINDOW.small + 10; i++) {
      q.refill();
      const f = q.take(() => true)!;
      taken.push(f.id);
      if (f.id !== 3) db.pending.delete(f.id); // file 3 failed this round: still pending, not in memory
    }
    // Fill the window up so that the offer cannot take it in.
    q.refill();
    q.offer(row(3, 10));
    const rest = deliverAll(q, db);
    assert.ok(rest.includes(3), 'read again from where it is');
    db.pending.set(7, row(7, 10));
    q.rewind();
    assert.deepEqual(deliverAll(q, db), [7]);
  });

  it('a file of a higher Priority offered while the window is full of lower ones goes next; the one it pushed out is read again, none is lost', () => {
    const db = database(rows(1, WINDOW.small + 100, 10));
    const q = new PagedQueue(db.source, kindOf, () => false);
    q.refill();
    assert.equal(q.size, WINDOW.small);
    const urgent = row(9000, 10, -30);
    db.pending.set(urgent.id, urgent);
    q.offer(urgent);
    assert.equal(q.size, WINDOW.small, 'the window stays its size');
    const order = deliverAll(q, db);
    assert.equal(order[0], 9000, 'the urgent file first');
    assert.deepEqual(order.slice(1), rows(1, WINDOW.small + 100, 10).map((r) => r.id), 'then the rest in order, the one pushed out included');
    assert.ok(q.empty);
  });

  it('a file offered after the cursor while nothing more waits in the database goes in at its place', () => {
    const db = database([row(1, 10, 0, 5), row(2, 10, 0, 50)]);
    const q = new PagedQueue(db.source, kindOf, () => false);
    q.refill();
    const later = row(3, 10, 0, 500);
    const between = row(4, 10, 0, 20);
    for (const r of [later, between]) {
      db.pending.set(r.id, r);
      q.offer(r);
    }
    assert.deepEqual(deliverAll(q, db), [1, 4, 2, 3]);
  });

  it('rows in flight are not queued again when a page reads them; drain empties memory and stops reading', () => {
    const db = database(rows(1, 5, 10));
    const running = new Set([2, 4]);
    const q = new PagedQueue(db.source, kindOf, (id) => running.has(id));
    q.refill();
    assert.equal(q.size, 3);
    assert.equal(q.drain().length, 3);
    assert.ok(q.empty);
    q.refill();
    assert.equal(q.size, 0, 'a drained queue reads nothing until rewound');
  });
});
