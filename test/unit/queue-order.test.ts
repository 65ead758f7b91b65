// The order a vessel's waiting files start in (issue 20 point 4): started files first, then by
// the Directory's Priority, then by its Order, then as they came; read from the state database's
// index a page at a time, and compared in memory exactly as SQLite orders them.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import {
  BEFORE_ALL, MAX_PRIORITY, ORDERS, STARTED_TIER, compareKeys, justBefore, tierOf, type DirectoryOrder, type QueueKey,
} from '../../src/state/queue-order.js';
import { StateStore, type WaitingRow } from '../../src/state/store.js';

let root: string;
let n = 0;
const open: { close(): void }[] = [];

before(() => {
  root = mkdtempSync(join(tmpdir(), 'cm-queue-order-'));
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

function newStore(): StateStore {
  const store = new StateStore(join(root, `db-${++n}.sqlite3`));
  open.push(store);
  return store;
}

interface Spec {
  directory: string;
  relpath: string;
  size: number;
  mtimeMs: number;
}

/** Records each file for vessel `v` with its Directory's order; returns the ids by relpath. */
function record(store: StateStore, files: Spec[], orders: Record<string, DirectoryOrder>): Map<string, number> {
  const ids = new Map<string, number>();
  for (const f of files) {
    const v = store.recordVersion({ ...f, versionKey: `${f.relpath}-${f.size}` }, ['v'], () => {}, orders[f.directory]);
    ids.set(f.relpath, v.id);
  }
  return ids;
}

/** The whole queue of vessel `v`, read `page` rows at a time as a vessel worker reads it. */
function readQueue(store: StateStore, page = 2): WaitingRow[] {
  const all: WaitingRow[] = [];
  for (const kind of ['small', 'large'] as const) {
    let after: QueueKey = BEFORE_ALL;
    for (;;) {
      const rows = store.waitingPage('v', kind, 1000, after, page);
      all.push(...rows);
      if (rows.length < page) break;
      after = rows[rows.length - 1];
    }
  }
  return all.sort(compareKeys);
}

function namesOf(rows: WaitingRow[], ids: Map<string, number>): string[] {
  const byId = new Map([...ids].map(([name, id]) => [id, name]));
  return rows.map((r) => byId.get(r.id)!);
}

const file = (directory: string, relpath: string, size: number, mtimeMs = 1_700_000_000_000): Spec => ({ directory, relpath, size, mtimeMs });

describe('queue order', () => {
  it('a higher Priority goes first; each Priority has a tier per Order; a started file goes before every tier', () => {
    const tiers = [MAX_PRIORITY, 1, 0, -1, -MAX_PRIORITY].flatMap((priority) => ORDERS.map((order) => tierOf({ priority, order })));
    assert.deepEqual(tiers, [...tiers].sort((a, b) => a - b), 'higher Priority, then size before mtime before name');
    assert.equal(new Set(tiers).size, tiers.length, 'no two share a tier');
    assert.ok(tiers.every((t) => STARTED_TIER < t));
    assert.ok(BEFORE_ALL.tier < STARTED_TIER);
  });

  it('compareKeys orders keys as SQLite does: numbers (integer or not) before text, text by its UTF-8 bytes, then ids', () => {
    const db = new Database(':memory:');
    try {
      db.exec('CREATE TABLE k (tier INTEGER, rank, id INTEGER)');
      const keys: QueueKey[] = [
        { tier: 0, rank: 10, id: 3 }, { tier: 0, rank: 10, id: 2 }, { tier: 0, rank: 9.5, id: 9 }, { tier: -3, rank: 'z', id: 1 },
        { tier: 0, rank: 'a/b', id: 4 }, { tier: 0, rank: 'a-b', id: 5 }, { tier: 0, rank: '\u{1F600}', id: 6 }, { tier: 0, rank: '\uFF5E', id: 7 },
        { tier: 0, rank: 'B', id: 8 }, { tier: 0, rank: '123', id: 10 }, { tier: 0, rank: 124, id: 11 }, { tier: STARTED_TIER, rank: 5e9, id: 12 },
      ];
      const insert = db.prepare('INSERT INTO k VALUES (?, ?, ?)');
      for (const k of keys) insert.run(k.tier, k.rank, k.id);
      const sqlite = (db.prepare('SELECT id FROM k ORDER BY tier, rank, id').all() as { id: number }[]).map((r) => r.id);
      assert.deepEqual([...keys].sort(compareKeys).map((k) => k.id), sqlite);
      // A cursor at justBefore(k) reads k again, and nothing before it (id 2 of the same rank).
      assert.ok(compareKeys(justBefore(keys[0]), keys[0]) < 0 && compareKeys(justBefore(keys[0]), keys[1]) >= 0);
    } finally {
      db.close();
    }
  });

  it('the queue is read in order across Directories: Priority, then each Order (size, mtime, name), then as the files came', () => {
    const store = newStore();
    const orders: Record<string, DirectoryOrder> = {
      video: { priority: 0, order: 'size' },
      reports: { priority: 10, order: 'size' },
      logs: { priority: 0, order: 'mtime' },
      names: { priority: 0, order: 'name' },
      later: { priority: -5, order: 'size' },
    };
    const ids = record(store, [
      file('later', 'l-tiny', 1),
      file('video', 'v-big', 5000),
      file('video', 'v-small', 50),
      file('reports', 'r-2k', 2000),
      file('logs', 'g-new', 10, 3000),
      file('logs', 'g-old', 5000, 1000),
      file('names', 'n/b', 1),
      file('names', 'n/a', 9000),
      file('reports', 'r-20', 20),
      file('video', 'v-small-too', 50),
    ], orders);
    // Small (<= 1000) and large files are read apart, each in order; sorted together here.
    assert.deepEqual(namesOf(readQueue(store), ids), [
      'r-20', 'r-2k', // Priority 10, smallest first
      'v-small', 'v-small-too', 'v-big', // Priority 0 by size; equal sizes as they came
      'g-old', 'g-new', // Priority 0 by mtime: oldest first, whatever the size
      'n/a', 'n/b', // Priority 0 by name
      'l-tiny', // Priority -5
    ]);
  });

  it('a started file goes first until a new version of it replaces it; a changed Priority re-keys the rest in place, not the started', () => {
    const store = newStore();
    const orders: Record<string, DirectoryOrder> = { video: { priority: 0, order: 'size' }, reports: { priority: 5, order: 'size' } };
    const ids = record(store, [file('video', 'movie', 4000), file('video', 'clip', 2000), file('reports', 'pos', 2)], orders);
    assert.deepEqual(namesOf(readQueue(store), ids), ['pos', 'clip', 'movie']);
    store.markStarted(ids.get('movie')!, 'v');
    assert.deepEqual(namesOf(readQueue(store), ids), ['movie', 'pos', 'clip'], 'the started movie first, after a restart too');

    // The settings changed between runs: video above reports now.
    const changed = new Map([['video', { priority: 9, order: 'size' as const }], ['reports', orders.reports]]);
    store.syncQueueOrder(changed);
    assert.deepEqual(namesOf(readQueue(store), ids), ['movie', 'clip', 'pos']);
    assert.equal(readQueue(store).find((r) => r.id === ids.get('movie'))!.tier, STARTED_TIER, 'the started file keeps its place');

    // A new version of the movie has not started: it takes its Directory's place again.
    store.recordVersion({ directory: 'video', relpath: 'movie', size: 4001, mtimeMs: 1, versionKey: 'movie-2' }, ['v'], () => {}, changed.get('video'));
    assert.deepEqual(namesOf(readQueue(store), ids), ['clip', 'movie', 'pos']);
  });

  it('syncQueueOrder re-keys only what changed, remembers it, and counts a Directory it has not seen as the default', () => {
    const store = newStore();
    const ids = record(store, [file('a', 'a-big', 900), file('b', 'b-small', 10)], {});
    const tiers = () => Object.fromEntries(readQueue(store).map((r) => [r.id, r.tier]));
    store.syncQueueOrder(new Map([['a', { priority: 0, order: 'size' }]]));
    assert.deepEqual(tiers(), { [ids.get('a-big')!]: 0, [ids.get('b-small')!]: 0 });
    store.syncQueueOrder(new Map([['a', { priority: 2, order: 'name' }]]));
    assert.deepEqual(tiers(), { [ids.get('a-big')!]: tierOf({ priority: 2, order: 'name' }), [ids.get('b-small')!]: 0 });
    assert.equal(readQueue(store)[0].rank, 'a-big', 'ranked by name now');
    // The same orders again: nothing to do (the rows are not touched: a row changed by hand stays).
    const db = new Database(join(root, `db-${n}.sqlite3`));
    store.flush();
    db.prepare('UPDATE deliveries SET tier = 77').run();
    db.close();
    store.syncQueueOrder(new Map([['a', { priority: 2, order: 'name' }]]));
    assert.deepEqual(Object.values(tiers()), [77, 77]);
  });

  it('syncAllTargets gives the deliveries of a vessel new in the settings their Directory\'s place', () => {
    const store = newStore();
    const orders = new Map([['inbox', { priority: 3, order: 'mtime' as const }]]);
    const v = store.recordVersion({ directory: 'inbox', relpath: 'f', size: 5, mtimeMs: 42, versionKey: 'k' }, ['old'], () => {}, orders.get('inbox'));
    store.syncAllTargets(new Map([['inbox', ['old', 'v']]]), orders);
    assert.deepEqual(store.waitingOf(v.id, 'v'), [{ vessel: 'v', id: v.id, size: 5, tier: tierOf({ priority: 3, order: 'mtime' }), rank: 42 }]);
  });
});
