import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { StateStore, type FileVersion } from '../../src/state/store.js';

let root: string;
let n = 0;
const open: { close(): void }[] = [];

before(() => {
  root = mkdtempSync(join(tmpdir(), 'cm-state-'));
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A new store in a fresh (not yet existing) folder. */
function newStore(): { store: StateStore; file: string } {
  const file = join(root, `db-${++n}`, 'nested', 'state.sqlite');
  const store = new StateStore(file);
  open.push(store);
  return { store, file };
}

type Superseded = { old: FileVersion; vessels: string[] };

function version(relpath: string, versionKey: string, size = 100, directory = 'inbox') {
  return { directory, relpath, size, mtimeMs: 1_700_000_000_000.5, versionKey };
}

function states(store: StateStore, fileId: number): Record<string, string> {
  return Object.fromEntries(store.deliveries(fileId).map((d) => [d.vessel, d.state]));
}

describe('StateStore', () => {
  it('recordVersion inserts the file and a pending delivery per vessel', () => {
    const { store } = newStore();
    const superseded: Superseded[] = [];
    const v = store.recordVersion(version('a/b.txt', 'k1', 42), ['ship1', 'ship2'], (old, vessels) => superseded.push({ old, vessels }));
    assert.equal(typeof v.id, 'number');
    assert.deepEqual(v, { id: v.id, directory: 'inbox', relpath: 'a/b.txt', size: 42, mtimeMs: 1_700_000_000_000.5, versionKey: 'k1', sha256: null });
    assert.deepEqual(store.fileByPath('inbox', 'a/b.txt'), v);
    assert.deepEqual(store.file(v.id), v);
    assert.deepEqual(store.filesAfter(0, 1000), [v]);
    const deliveries = store.deliveries(v.id).sort((a, b) => a.vessel.localeCompare(b.vessel));
    assert.deepEqual(deliveries, [
      { fileId: v.id, vessel: 'ship1', state: 'pending', attempts: 0, error: null },
      { fileId: v.id, vessel: 'ship2', state: 'pending', attempts: 0, error: null },
    ]);
    assert.deepEqual(store.delivery(v.id, 'ship1'), deliveries[0]);
    assert.equal(store.delivery(v.id, 'nope'), undefined);
    assert.deepEqual(superseded, []);
  });

  it('the same path in two directories is two files', () => {
    const { store } = newStore();
    const a = store.recordVersion(version('x', 'k', 1, 'd1'), ['s'], () => assert.fail('superseded'));
    const b = store.recordVersion(version('x', 'k', 1, 'd2'), ['s'], () => assert.fail('superseded'));
    assert.notEqual(a.id, b.id);
    assert.equal(store.filesAfter(0, 1000).length, 2);
  });

  it('recording the same version again is a no-op: same id, deliveries untouched, done stays done', () => {
    const { store } = newStore();
    const v = store.recordVersion(version('f', 'k1'), ['ship1', 'ship2'], () => assert.fail('superseded'));
    store.setSha256(v.id, 'k1', 'ab'.repeat(32));
    store.markDone(v.id, 'ship1', 100);
    store.markAttemptFailed(v.id, 'ship2', 'permission denied', false);
    const before = store.deliveries(v.id);
    const again = store.recordVersion(version('f', 'k1'), ['ship1', 'ship2'], () => assert.fail('superseded'));
    assert.equal(again.id, v.id);
    assert.equal(again.sha256, 'ab'.repeat(32), 'the hash of the same version is kept');
    assert.deepEqual(store.deliveries(v.id), before);
    assert.equal(store.delivery(v.id, 'ship1')!.state, 'done');
    assert.deepEqual(store.delivery(v.id, 'ship2'), { fileId: v.id, vessel: 'ship2', state: 'pending', attempts: 1, error: 'permission denied' });
  });

  it('a late hash for a replaced version is not stored on the new one', () => {
    const { store } = newStore();
    const v1 = store.recordVersion(version('f', 'k1', 100), ['ship1'], () => {});
    store.recordVersion(version('f', 'k2', 200), ['ship1'], () => {});
    store.setSha256(v1.id, 'k1', 'ee'.repeat(32)); // from a transfer of k1 still winding down
    assert.equal(store.file(v1.id)!.sha256, null);
    store.setSha256(v1.id, 'k2', 'ff'.repeat(32));
    assert.equal(store.file(v1.id)!.sha256, 'ff'.repeat(32));
  });

  it('a new version of the same path resets deliveries and the hash, and reports the old version', () => {
    const { store } = newStore();
    const superseded: Superseded[] = [];
    const onSuperseded = (old: FileVersion, vessels: string[]) => superseded.push({ old, vessels });
    const v1 = store.recordVersion(version('f', 'k1', 100), ['ship1', 'ship2', 'ship3'], onSuperseded);
    store.setSha256(v1.id, 'k1', 'cd'.repeat(32));
    const old = store.file(v1.id)!;
    store.markDone(v1.id, 'ship1', 100);
    store.markAttemptFailed(v1.id, 'ship2', 'boom', true);

    const v2 = store.recordVersion(version('f', 'k2', 250), ['ship1', 'ship2', 'ship3'], onSuperseded);
    assert.equal(v2.id, v1.id, 'the row is reused');
    assert.equal(v2.versionKey, 'k2');
    assert.equal(v2.size, 250);
    assert.equal(v2.sha256, null);
    assert.equal(superseded.length, 1);
    assert.deepEqual(superseded[0].old, old);
    assert.deepEqual([...superseded[0].vessels].sort(), ['ship1', 'ship2', 'ship3']);
    for (const d of store.deliveries(v2.id)) {
      assert.deepEqual({ state: d.state, attempts: d.attempts, error: d.error }, { state: 'pending', attempts: 0, error: null }, d.vessel);
    }
  });

  it('a new version with a different vessel list: onSuperseded gets the old vessels, deliveries follow the new list', () => {
    const { store } = newStore();
    const superseded: Superseded[] = [];
    const v1 = store.recordVersion(version('f', 'k1'), ['ship1', 'ship2'], () => {});
    store.recordVersion(version('f', 'k2'), ['ship2', 'ship3'], (old, vessels) => superseded.push({ old, vessels }));
    assert.deepEqual([...superseded[0].vessels].sort(), ['ship1', 'ship2']);
    assert.deepEqual(states(store, v1.id), { ship2: 'pending', ship3: 'pending' });
  });

  it('a throwing onSuperseded rolls the whole change back', () => {
    const { store } = newStore();
    const v1 = store.recordVersion(version('f', 'k1'), ['ship1'], () => {});
    store.markDone(v1.id, 'ship1', 1);
    assert.throws(() => store.recordVersion(version('f', 'k2'), ['ship1'], () => { throw new Error('no'); }), /no/);
    assert.equal(store.file(v1.id)!.versionKey, 'k1');
    assert.equal(store.delivery(v1.id, 'ship1')!.state, 'done');
  });

  it('syncAllTargets adds and removes vessels per Directory, keeping the state of the others, and does nothing for targets it has seen', () => {
    const { store } = newStore();
    const v = store.recordVersion(version('f', 'k'), ['a', 'b'], () => {});
    store.markDone(v.id, 'a', 10);
    store.syncAllTargets(new Map([['inbox', ['a', 'c']]]));
    assert.deepEqual(states(store, v.id), { a: 'done', c: 'pending' });
    assert.equal(store.delivery(v.id, 'c')!.state, 'pending');
    store.syncAllTargets(new Map([['inbox', []]]));
    assert.deepEqual(store.deliveries(v.id), []);
    store.syncAllTargets(new Map([['inbox', ['a']]]));
    assert.deepEqual(states(store, v.id), { a: 'pending' });
    store.markDone(v.id, 'a', 10);
    store.syncAllTargets(new Map([['inbox', ['a']]]));
    assert.deepEqual(states(store, v.id), { a: 'done' }, 'the same targets again: nothing is touched');
    store.syncAllTargets(new Map([['other', ['z']]]));
    assert.deepEqual(states(store, v.id), { a: 'done' }, 'another Directory\'s targets leave this one alone');
  });

  it('markDone marks that vessel\'s delivery done, leaves the others pending and counts it in the vessel\'s stats', () => {
    const { store } = newStore();
    const v = store.recordVersion(version('f', 'k'), ['a', 'b'], () => {});
    store.markAttemptFailed(v.id, 'a', 'boom', false);
    store.markDone(v.id, 'a', 100);
    assert.equal(store.delivery(v.id, 'a')!.state, 'done');
    assert.equal(store.delivery(v.id, 'a')!.error, null);
    assert.equal(store.delivery(v.id, 'b')!.state, 'pending');
    assert.deepEqual(store.vesselStats().map((s) => [s.vessel, s.filesDone, s.bytesDone]), [['a', 1, 100]]);
  });

  it('markAttemptFailed counts attempts, keeps the error and marks failed when final', () => {
    const { store } = newStore();
    const v = store.recordVersion(version('f', 'k'), ['a'], () => {});
    store.markAttemptFailed(v.id, 'a', 'first', false);
    assert.deepEqual(store.delivery(v.id, 'a'), { fileId: v.id, vessel: 'a', state: 'pending', attempts: 1, error: 'first' });
    store.markAttemptFailed(v.id, 'a', 'second', false);
    assert.deepEqual(store.delivery(v.id, 'a'), { fileId: v.id, vessel: 'a', state: 'pending', attempts: 2, error: 'second' });
    store.markAttemptFailed(v.id, 'a', 'third', true);
    assert.deepEqual(store.delivery(v.id, 'a'), { fileId: v.id, vessel: 'a', state: 'failed', attempts: 3, error: 'third' });
  });

  it('failures() lists failed deliveries with their file; retryFailed puts them back to pending', () => {
    const { store } = newStore();
    const f1 = store.recordVersion(version('one.txt', 'k1'), ['a', 'b'], () => {});
    const f2 = store.recordVersion(version('two.txt', 'k2', 5, 'other'), ['a'], () => {});
    store.markAttemptFailed(f1.id, 'b', 'permission denied: /x', true);
    store.markAttemptFailed(f2.id, 'a', 'no such file', true);
    store.markAttemptFailed(f1.id, 'a', 'not final', false);
    assert.deepEqual(store.failures(), [
      { vessel: 'b', error: 'permission denied: /x', directory: 'inbox', relpath: 'one.txt' },
      { vessel: 'a', error: 'no such file', directory: 'other', relpath: 'two.txt' },
    ]);
    assert.equal(store.retryFailed(), 2);
    assert.deepEqual(store.failures(), []);
    assert.equal(store.delivery(f1.id, 'b')!.state, 'pending');
    assert.equal(store.delivery(f2.id, 'a')!.state, 'pending');
    assert.equal(store.retryFailed(), 0);
  });

  // vessel-worker.ts decides "final" as (stored attempts + 1) >= maxAttempts (3). retryFailed()
  // keeps the attempt count, so the "another round" it promises (daemon.ts: "a new start gives
  // every earlier failure another round") is a single attempt, after which the delivery is
  // marked failed again, instead of a fresh set of maxAttempts tries.
  it('retryFailed gives a fresh round: attempts start over', () => {
    const { store } = newStore();
    const v = store.recordVersion(version('f', 'k'), ['a'], () => {});
    for (let i = 0; i < 3; i++) store.markAttemptFailed(v.id, 'a', `try ${i}`, i === 2);
    store.retryFailed();
    assert.equal(store.delivery(v.id, 'a')!.attempts, 0);
  });

  it('leftovers: add (idempotent per vessel and prefix), list per vessel, delete', () => {
    const { store } = newStore();
    const l1 = { vessel: 'a', chunkPrefix: '/tmp/cm-1', assemblyPrefix: '/dest/.cm-1.tmp' };
    const l2 = { vessel: 'a', chunkPrefix: '/tmp/cm-2', assemblyPrefix: '/dest/.cm-2.tmp' };
    const l3 = { vessel: 'b', chunkPrefix: '/tmp/cm-1', assemblyPrefix: '/dest/.cm-1.tmp' };
    store.addLeftover(l1);
    store.addLeftover(l1);
    store.addLeftover(l2);
    store.addLeftover(l3);
    assert.deepEqual(store.leftovers('a').sort((x, y) => x.chunkPrefix.localeCompare(y.chunkPrefix)), [l1, l2]);
    assert.deepEqual(store.leftovers('b'), [l3]);
    assert.deepEqual(store.leftovers('c'), []);
    store.deleteLeftover(l1);
    assert.deepEqual(store.leftovers('a'), [l2]);
    assert.deepEqual(store.leftovers('b'), [l3]);
  });

  it('host keys are recorded once: a later record does not replace the first', () => {
    const { store } = newStore();
    assert.equal(store.hostKey('h:22'), undefined);
    store.recordHostKey('h:22', 'SHA256:first');
    store.recordHostKey('h:22', 'SHA256:second');
    assert.equal(store.hostKey('h:22'), 'SHA256:first');
    assert.equal(store.hostKey('other:22'), undefined);
  });

  it('deleteFile cascades to deliveries and transfers', () => {
    const { store, file } = newStore();
    const v = store.recordVersion(version('f', 'k'), ['a', 'b'], () => {});
    const keep = store.recordVersion(version('g', 'k'), ['a'], () => {});
    store.transferStarted(v.id, 'a');
    store.transferStarted(keep.id, 'a');
    store.deleteFile(v.id);
    assert.equal(store.file(v.id), undefined);
    assert.equal(store.fileByPath('inbox', 'f'), undefined);
    assert.deepEqual(store.deliveries(v.id), []);
    // Check the tables directly: no orphaned rows.
    store.flush();
    const db = new Database(file, { readonly: true });
    try {
      for (const table of ['deliveries', 'transfers']) {
        assert.deepEqual(db.prepare(`SELECT COUNT(*) AS c FROM ${table} WHERE file_id = ?`).get(v.id), { c: 0 }, table);
        assert.deepEqual(db.prepare(`SELECT COUNT(*) AS c FROM ${table} WHERE file_id = ?`).get(keep.id), { c: 1 }, table);
      }
    } finally {
      db.close();
    }
  });

  it('uses WAL: a second connection sees journal_mode wal', () => {
    const { file } = newStore();
    const db = new Database(file, { readonly: true });
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    } finally {
      db.close();
    }
  });

  it('a readonly StateStore reads while the writer is open, and sees later commits', () => {
    const { store, file } = newStore();
    const v = store.recordVersion(version('f', 'k'), ['a'], () => {});
    store.recordHostKey('h', 'SHA256:x');
    store.flush();
    const reader = new StateStore(file, { readonly: true });
    open.push(reader);
    assert.deepEqual(reader.filesAfter(0, 1000), [store.file(v.id)]);
    assert.equal(reader.hostKey('h'), 'SHA256:x');
    store.markAttemptFailed(v.id, 'a', 'nope', true);
    store.flush();
    assert.deepEqual(reader.failures(), [{ vessel: 'a', error: 'nope', directory: 'inbox', relpath: 'f' }]);
    assert.throws(() => reader.recordHostKey('h2', 'SHA256:y'), /readonly/i);
  });

  it('the writes of one turn of the event loop are committed together at the next turn, and by close', async () => {
    const { store, file } = newStore();
    const reader = new StateStore(file, { readonly: true });
    open.push(reader);
    const v = store.recordVersion(version('f', 'k'), ['a'], () => {});
    store.markAttemptFailed(v.id, 'a', 'nope', true);
    assert.deepEqual(reader.filesAfter(0, 1000), [], 'not committed within the turn');
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(reader.filesAfter(0, 1000), [store.file(v.id)]);
    assert.equal(reader.failures().length, 1);
    store.recordHostKey('h', 'SHA256:x');
    store.close();
    assert.equal(reader.hostKey('h'), 'SHA256:x', 'close commits what is pending');
  });

  it('a readonly StateStore on a missing database throws instead of creating it', () => {
    assert.throws(() => new StateStore(join(root, 'missing', 'state.sqlite'), { readonly: true }));
  });

  it('state survives closing and reopening', () => {
    const { store, file } = newStore();
    const v = store.recordVersion(version('f', 'k'), ['a'], () => {});
    store.markDone(v.id, 'a', 7);
    store.close();
    store.close(); // closing twice is harmless
    const again = new StateStore(file);
    open.push(again);
    assert.equal(again.delivery(v.id, 'a')!.state, 'done');
    assert.equal(again.recordVersion(version('f', 'k'), ['a'], () => assert.fail('superseded')).id, v.id);
  });

  it('refuses a database written by a newer schema', () => {
    const { store, file } = newStore();
    store.close();
    const db = new Database(file);
    db.prepare(`UPDATE meta SET value = '999' WHERE key = 'schema_version'`).run();
    db.close();
    assert.throws(() => open.push(new StateStore(file)), /newer/);
  });
});
