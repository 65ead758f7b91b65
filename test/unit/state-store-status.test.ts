// The state store's side of `status`: transfers in flight, and the summaries read next to a
// running daemon (waiting per vessel, failed list, oldest waiting, vessel stats), plus the
// report built from them.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ConfigError } from '../../src/errors.js';
import { parseSettings } from '../../src/settings/load.js';
import { BEFORE_ALL } from '../../src/state/queue-order.js';
import { StateStore } from '../../src/state/store.js';
import { percentOf, readStatus } from '../../src/status.js';

let root: string;
let n = 0;
const open: { close(): void }[] = [];

before(() => {
  root = mkdtempSync(join(tmpdir(), 'cm-state-status-'));
});
afterEach(() => {
  for (const s of open.splice(0)) s.close();
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

function newStore(): { store: StateStore; file: string } {
  const file = join(root, `db-${++n}`, 'state.sqlite');
  const store = new StateStore(file);
  open.push(store);
  return { store, file };
}

function reader(file: string): StateStore {
  const r = new StateStore(file, { readonly: true });
  open.push(r);
  return r;
}

function version(relpath: string, size = 100, directory = 'inbox') {
  return { directory, relpath, size, mtimeMs: 1_700_000_000_000, versionKey: `k-${relpath}-${size}` };
}

/** Runs SQL on the database through a connection of its own (to set times the store sets to now). */
function sql(file: string, text: string, ...params: unknown[]): void {
  const db = new Database(file);
  try {
    db.prepare(text).run(...params);
  } finally {
    db.close();
  }
}

describe('StateStore transfers', () => {
  it('a transfer is listed from start to end, with its bytes and file', () => {
    const { store } = newStore();
    const v = store.recordVersion(version('a/big.bin', 1000), ['s1', 's2'], () => {});
    const before = Date.now();
    store.transferStarted(v.id, 's1');
    const [t] = store.transfers();
    assert.deepEqual({ ...t, startedAt: 0, updatedAt: 0 }, { vessel: 's1', directory: 'inbox', relpath: 'a/big.bin', bytesSent: 0, size: 1000, startedAt: 0, updatedAt: 0 });
    assert.ok(t.startedAt >= before && t.updatedAt === t.startedAt);
    store.transferProgress(v.id, 's1', 400);
    assert.equal(store.transfers()[0].bytesSent, 400);
    store.transferEnded(v.id, 's1');
    assert.deepEqual(store.transfers(), []);
  });

  it('a retry keeps the start time and bytes; the other vessel is a transfer of its own', () => {
    const { store, file } = newStore();
    const v = store.recordVersion(version('f', 1000), ['s1', 's2'], () => {});
    store.transferStarted(v.id, 's1');
    store.transferProgress(v.id, 's1', 300);
    store.flush();
    sql(file, 'UPDATE transfers SET started_at = 5');
    store.transferStarted(v.id, 's1');
    store.transferStarted(v.id, 's2');
    const byVessel = Object.fromEntries(store.transfers().map((t) => [t.vessel, t]));
    assert.equal(byVessel.s1.startedAt, 5);
    assert.equal(byVessel.s1.bytesSent, 300);
    assert.equal(byVessel.s2.bytesSent, 0);
  });

  it('a file forgotten before its transfer starts adds no row; forgetting a file ends its transfers', () => {
    const { store } = newStore();
    const gone = store.recordVersion(version('gone'), ['s1'], () => {});
    store.deleteFile(gone.id);
    store.transferStarted(gone.id, 's1');
    assert.deepEqual(store.transfers(), []);
    const v = store.recordVersion(version('f'), ['s1'], () => {});
    store.transferStarted(v.id, 's1');
    store.deleteFile(v.id);
    assert.deepEqual(store.transfers(), []);
  });

  it('opening the store for writing (a daemon start) forgets every transfer', () => {
    const { store, file } = newStore();
    const v = store.recordVersion(version('f'), ['s1'], () => {});
    store.transferStarted(v.id, 's1');
    store.close();
    assert.deepEqual(reader(file).transfers().length, 1, 'a reader does not clear them');
    const again = new StateStore(file);
    open.push(again);
    assert.deepEqual(again.transfers(), []);
  });

  it('calls after close are harmless (a stop that outran its jobs)', () => {
    const { store } = newStore();
    const v = store.recordVersion(version('f'), ['s1'], () => {});
    store.close();
    store.transferStarted(v.id, 's1');
    store.transferProgress(v.id, 's1', 1);
    store.transferEnded(v.id, 's1');
  });

  it('a readonly store reads transfers and summaries while the writer changes them, and cannot write', () => {
    const { store, file } = newStore();
    const v = store.recordVersion(version('f', 1000), ['s1'], () => {});
    store.flush();
    const r = reader(file);
    assert.deepEqual(r.transfers(), []);
    store.transferStarted(v.id, 's1');
    store.transferProgress(v.id, 's1', 250);
    store.flush();
    assert.equal(r.transfers()[0].bytesSent, 250);
    store.transferProgress(v.id, 's1', 750);
    store.flush();
    assert.equal(r.transfers()[0].bytesSent, 750, 'sees each later commit');
    // The writer is never blocked by the reader, even inside a read snapshot.
    r.snapshot(() => {
      assert.equal(r.transfers()[0].bytesSent, 750);
      store.transferProgress(v.id, 's1', 900);
      store.markDone(v.id, 's1', 1000);
      store.flush();
      assert.equal(r.transfers()[0].bytesSent, 750, 'a snapshot is one moment');
      assert.deepEqual(r.waitingByVessel(), [{ vessel: 's1', files: 1, bytes: 1000 }]);
    });
    assert.deepEqual(r.waitingByVessel(), []);
    assert.equal(r.vesselStats()[0].filesDone, 1);
    assert.throws(() => r.transferStarted(v.id, 's1'), /readonly/i);
  });
});

describe('StateStore summaries for status', () => {
  it('waitingByVessel counts pending deliveries and their bytes per vessel; done and failed ones are not waiting', () => {
    const { store } = newStore();
    const a = store.recordVersion(version('a', 100), ['s1', 's2'], () => {});
    const b = store.recordVersion(version('b', 20), ['s1', 's2'], () => {});
    const c = store.recordVersion(version('c', 3, 'other'), ['s1'], () => {});
    store.markDone(a.id, 's2', 100);
    store.markAttemptFailed(b.id, 's2', 'permission denied', true);
    store.markAttemptFailed(c.id, 's1', 'hiccup', false); // not final: still pending
    assert.deepEqual(store.waitingByVessel(), [{ vessel: 's1', files: 3, bytes: 123 }]);
    store.markDone(b.id, 's1', 20);
    store.markDone(a.id, 's1', 100);
    store.markDone(c.id, 's1', 3);
    assert.deepEqual(store.waitingByVessel(), []);
  });

  it('the totals of what waits follow every change to the deliveries: new, replaced, done, failed, retried, forgotten, retargeted, given up', () => {
    const { store, file } = newStore();
    /** What waits, counted from the deliveries themselves (as schema 4 did). */
    const counted = () => {
      store.flush();
      const db = new Database(file, { readonly: true });
      try {
        return db.prepare(`SELECT vessel, COUNT(*) AS files, SUM(size) AS bytes FROM deliveries WHERE state = 'pending' GROUP BY vessel ORDER BY vessel`).all();
      } finally {
        db.close();
      }
    };
    const same = (step: string) => assert.deepEqual(store.waitingByVessel(), counted(), step);
    const files = Array.from({ length: 12 }, (_, i) => store.recordVersion(version(`f${i}`, 10 + i, i % 3 ? 'inbox' : 'other'), ['s1', 's2', 's3'], () => {}));
    same('recorded');
    store.markDone(files[0].id, 's1', 10);
    store.markDone(files[1].id, 's2', 11);
    same('done');
    store.markAttemptFailed(files[2].id, 's1', 'refused', true);
    store.markAttemptFailed(files[3].id, 's3', 'hiccup', false);
    same('failed');
    store.recordVersion(version('f4', 500), ['s1', 's2', 's3'], () => {});
    store.recordVersion(version('f1', 7), ['s1', 's2', 's3'], () => {});
    same('replaced by another version');
    store.deleteFile(files[5].id);
    same('forgotten');
    store.syncAllTargets(new Map([['inbox', ['s1', 's4']], ['other', ['s2']]]));
    same('retargeted');
    assert.equal(store.failPending('s4', 'given up', 3).count, 7); // the 8 files of inbox but the one forgotten
    same('given up');
    assert.ok(store.retryFailed() > 0);
    same('retried');
    assert.ok(store.waitingByVessel().some((w) => w.vessel === 's4' && w.files === 7), 'the given-up vessel waits again');
  });

  it('failedDeliveries lists each failed delivery with its file, reason, attempts and time', () => {
    const { store, file } = newStore();
    const a = store.recordVersion(version('x/a'), ['s1', 's2'], () => {});
    const b = store.recordVersion(version('b', 100, 'other'), ['s1'], () => {});
    store.markAttemptFailed(a.id, 's2', 'first', false);
    store.markAttemptFailed(a.id, 's2', 'second', false);
    store.markAttemptFailed(a.id, 's2', 'Read-only file system', true);
    store.markAttemptFailed(b.id, 's1', 'sha256sum: not found', true);
    store.flush();
    sql(file, 'UPDATE deliveries SET updated_at = 42');
    assert.deepEqual(store.failedDeliveries(100), [
      { vessel: 's1', directory: 'other', relpath: 'b', error: 'sha256sum: not found', attempts: 1, updatedAt: 42 },
      { vessel: 's2', directory: 'inbox', relpath: 'x/a', error: 'Read-only file system', attempts: 3, updatedAt: 42 },
    ]);
    assert.deepEqual(store.failedDeliveries(1).map((f) => f.relpath), ['b'], 'at most as many as asked, by vessel');
    assert.deepEqual(store.failedByVessel(), [{ vessel: 's1', files: 1 }, { vessel: 's2', files: 1 }]);
    store.retryFailed();
    assert.deepEqual(store.failedDeliveries(100), []);
    assert.deepEqual(store.failedByVessel(), []);
  });

  it('oldestWaiting is the pending delivery queued first; done files and an empty queue do not count', () => {
    const { store, file } = newStore();
    assert.equal(store.oldestWaiting(), undefined);
    const old = store.recordVersion(version('old'), ['s1'], () => {});
    const mid = store.recordVersion(version('mid'), ['s1', 's2'], () => {});
    const young = store.recordVersion(version('young'), ['s1'], () => {});
    store.flush();
    sql(file, 'UPDATE files SET queued_at = ? WHERE id = ?', 1000, old.id);
    sql(file, 'UPDATE files SET queued_at = ? WHERE id = ?', 2000, mid.id);
    sql(file, 'UPDATE files SET queued_at = ? WHERE id = ?', 3000, young.id);
    assert.deepEqual(store.oldestWaiting(), { vessel: 's1', directory: 'inbox', relpath: 'old', queuedAt: 1000 });
    store.markDone(old.id, 's1', 100);
    store.markDone(mid.id, 's1', 100);
    assert.deepEqual(store.oldestWaiting(), { vessel: 's2', directory: 'inbox', relpath: 'mid', queuedAt: 2000 });
    store.markAttemptFailed(mid.id, 's2', 'no', true);
    assert.equal(store.oldestWaiting()?.relpath, 'young', 'a failed delivery does not wait');
  });

  it('vesselStats: done counts and bytes, last success, last error', () => {
    const { store, file } = newStore();
    const a = store.recordVersion(version('a', 10), ['s1'], () => {});
    const b = store.recordVersion(version('b', 32), ['s1'], () => {});
    store.markDone(a.id, 's1', 10);
    store.markDone(b.id, 's1', 32);
    store.recordVesselError('s2', 'connection refused');
    store.flush();
    sql(file, 'UPDATE vessel_stats SET last_success_at = 7 WHERE last_success_at IS NOT NULL');
    sql(file, 'UPDATE vessel_stats SET last_error_at = 8 WHERE last_error_at IS NOT NULL');
    assert.deepEqual(store.vesselStats(), [
      { vessel: 's1', filesDone: 2, bytesDone: 42, lastSuccessAt: 7, lastError: null, lastErrorAt: null },
      { vessel: 's2', filesDone: 0, bytesDone: 0, lastSuccessAt: null, lastError: 'connection refused', lastErrorAt: 8 },
    ]);
  });
});

describe('older schemas', () => {
  /** The table versions 1 and 2 wrote a row to per chunk uploaded (and never read). */
  const chunksTable = `CREATE TABLE chunks (
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    vessel TEXT NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (file_id, vessel, idx)
  )`;

  /** A database as version 5 left it: deliveries without their place in the queue, read in id order. */
  function versionFiveDatabase(): { file: string; id: number } {
    const { store, file } = newStore();
    const v = store.recordVersion(version('f'), ['s1'], () => {});
    store.close();
    store.flush();
    sql(file, 'DROP INDEX deliveries_queue');
    sql(file, 'ALTER TABLE deliveries DROP COLUMN tier');
    sql(file, 'ALTER TABLE deliveries DROP COLUMN rank');
    sql(file, 'CREATE INDEX deliveries_waiting ON deliveries (state, vessel, file_id, size)');
    sql(file, `UPDATE meta SET value = '5' WHERE key = 'schema_version'`);
    return { file, id: v.id };
  }

  /** A database as version 4 left it: no totals of what waits, nor the triggers that keep them. */
  function versionFourDatabase(): { file: string; id: number } {
    const { file, id } = versionFiveDatabase();
    const v = { id };
    for (const trigger of ['waiting_added', 'waiting_removed', 'waiting_changed']) sql(file, `DROP TRIGGER ${trigger}`);
    sql(file, 'DROP TABLE waiting_totals');
    sql(file, `UPDATE meta SET value = '4' WHERE key = 'schema_version'`);
    return { file, id: v.id };
  }

  /** A database as version 3 left it: deliveries without their size, no indexes for the queue. */
  function versionThreeDatabase(): { file: string; id: number } {
    const { file, id } = versionFourDatabase();
    const v = { id };
    sql(file, 'DROP INDEX deliveries_waiting');
    sql(file, 'DROP INDEX files_by_age');
    sql(file, 'ALTER TABLE deliveries DROP COLUMN size');
    sql(file, `UPDATE meta SET value = '3' WHERE key = 'schema_version'`);
    return { file, id: v.id };
  }

  /** A database as version 2 left it: a `chunks` table with rows in it. */
  function versionTwoDatabase(): string {
    const { file, id } = versionThreeDatabase();
    const v = { id };
    sql(file, chunksTable);
    sql(file, 'INSERT INTO chunks (file_id, vessel, idx) VALUES (?, ?, 0), (?, ?, 1)', v.id, 's1', v.id, 's1');
    sql(file, `UPDATE meta SET value = '2' WHERE key = 'schema_version'`);
    return file;
  }

  /** A database as version 1 left it: no transfers table, a chunks table. */
  function versionOneDatabase(): string {
    const file = versionTwoDatabase();
    sql(file, 'DROP TABLE transfers');
    sql(file, `UPDATE meta SET value = '1' WHERE key = 'schema_version'`);
    return file;
  }

  function tables(file: string): { version: string; tables: string[] } {
    const db = new Database(file, { readonly: true });
    try {
      const { value } = db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string };
      const names = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as { name: string }[]).map((r) => r.name);
      return { version: value, tables: names };
    } finally {
      db.close();
    }
  }

  const current = ['bandwidth', 'deliveries', 'files', 'host_keys', 'leftovers', 'meta', 'transfers', 'vessel_stats', 'waiting_totals'];

  it('a new database is version 6, without a chunks table', () => {
    const { store, file } = newStore();
    store.close();
    assert.deepEqual(tables(file), { version: '6', tables: current });
  });

  it('a reader of a version 5 database (an older daemon still running) reads it as usual', () => {
    const r = reader(versionFiveDatabase().file);
    assert.deepEqual(r.waitingByVessel(), [{ vessel: 's1', files: 1, bytes: 100 }]);
    assert.deepEqual(r.failedDeliveries(10), []);
  });

  it('opening a version 5 database for writing gives each delivery the place of the default Priority and Order, in place, and records version 6', () => {
    const { file, id } = versionFiveDatabase();
    sql(file, `INSERT INTO files (directory, relpath, size, mtime_ms, version_key, queued_at) VALUES ('inbox', 'g', 7, 1, 'k', 1)`);
    sql(file, `INSERT INTO deliveries (file_id, vessel, state, updated_at, size) SELECT id, 's1', 'pending', 1, 7 FROM files WHERE relpath = 'g'`);
    const store = new StateStore(file);
    open.push(store);
    const g = store.fileByPath('inbox', 'g')!;
    // Smallest first: the 7-byte file before the 100-byte one recorded earlier.
    assert.deepEqual(store.waitingPage('s1', 'small', 1000, BEFORE_ALL, 10), [{ id: g.id, size: 7, tier: 0, rank: 7 }, { id, size: 100, tier: 0, rank: 100 }]);
    assert.deepEqual(store.waitingByVessel(), [{ vessel: 's1', files: 2, bytes: 107 }]);
    store.flush();
    assert.deepEqual(tables(file), { version: '6', tables: current });
    const db = new Database(file, { readonly: true });
    try {
      const indexes = (db.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'deliveries' AND sql IS NOT NULL`).all() as { name: string }[]).map((r) => r.name);
      assert.deepEqual(indexes, ['deliveries_queue'], 'the queue index replaces deliveries_waiting');
    } finally {
      db.close();
    }
  });

  it('a reader of a version 4 database (an older daemon still running) counts what waits', () => {
    const r = reader(versionFourDatabase().file);
    assert.deepEqual(r.waitingByVessel(), [{ vessel: 's1', files: 1, bytes: 100 }]);
  });

  it('opening a version 4 database for writing totals what waits from its deliveries, and keeps the totals from then on', () => {
    const { file, id } = versionFourDatabase();
    const store = new StateStore(file);
    open.push(store);
    assert.deepEqual(store.waitingByVessel(), [{ vessel: 's1', files: 1, bytes: 100 }]);
    store.markDone(id, 's1', 100);
    assert.deepEqual(store.waitingByVessel(), []);
    store.flush();
    assert.deepEqual(tables(file), { version: '6', tables: current });
  });

  it('a reader of a version 3 database (an older daemon still running) sums what waits from the files', () => {
    const r = reader(versionThreeDatabase().file);
    assert.deepEqual(r.waitingByVessel(), [{ vessel: 's1', files: 1, bytes: 100 }]);
  });

  it('opening a version 3 database for writing gives each delivery its file\'s size and records version 6', () => {
    const { file, id } = versionThreeDatabase();
    const store = new StateStore(file);
    open.push(store);
    assert.deepEqual(store.waitingByVessel(), [{ vessel: 's1', files: 1, bytes: 100 }]);
    assert.deepEqual(store.waitingPage('s1', 'small', 1000, BEFORE_ALL, 10), [{ id, size: 100, tier: 0, rank: 100 }]);
    assert.deepEqual(tables(file), { version: '6', tables: current });
  });

  it('a reader of a version 2 database (an older daemon still running) reads it as usual, chunks and all', () => {
    const file = versionTwoDatabase();
    const r = reader(file);
    assert.deepEqual(r.waitingByVessel(), [{ vessel: 's1', files: 1, bytes: 100 }]);
    assert.deepEqual(r.transfers(), []);
    assert.equal(tables(file).version, '2', 'a reader changes nothing');
  });

  it('opening a version 2 database for writing drops the chunks table and records version 6, keeping the rest', () => {
    const file = versionTwoDatabase();
    const store = new StateStore(file);
    open.push(store);
    assert.equal(store.fileByPath('inbox', 'f')!.relpath, 'f');
    assert.equal(store.deliveries(store.fileByPath('inbox', 'f')!.id).length, 1);
    assert.deepEqual(tables(file), { version: '6', tables: current });
  });

  it('a reader of a version 1 database (an older daemon still running) sees no transfers, the rest as usual', () => {
    const r = reader(versionOneDatabase());
    assert.deepEqual(r.transfers(), []);
    assert.deepEqual(r.waitingByVessel(), [{ vessel: 's1', files: 1, bytes: 100 }]);
  });

  it('opening a version 1 database for writing adds transfers, drops chunks and records version 6', () => {
    const file = versionOneDatabase();
    const store = new StateStore(file);
    open.push(store);
    const v = store.fileByPath('inbox', 'f')!;
    store.transferStarted(v.id, 's1');
    assert.equal(store.transfers().length, 1);
    store.flush();
    assert.deepEqual(tables(file), { version: '6', tables: current });
  });

  it('a reader refuses a newer schema too', () => {
    const { store, file } = newStore();
    store.close();
    store.flush();
    sql(file, `UPDATE meta SET value = '999' WHERE key = 'schema_version'`);
    assert.throws(() => reader(file), /newer/);
  });
});

/** The bandwidth of a vessel (or of all) without a BandwidthLimit, and no daemon running. */
const unlimited = { setting: 'off', limitBytesPerSecond: null, bytesPerSecond: null };

describe('readStatus', () => {
  function settingsFor(database: string) {
    return parseSettings([
      '[MONSTER]',
      `Database = ${database}`,
      '[Directory outbox]',
      'Location = /srv/outbox',
      '[Vessel fast]',
      'Address = 127.0.0.1',
      '[Vessel slow]',
      'Address = 127.0.0.1',
      '[Vessel idle]',
      'Address = 127.0.0.1',
    ].join('\n'), join(root, 'settings.ini'));
  }

  it('a missing database: a report with every vessel and every count 0, databaseFound false; nothing is created', () => {
    const database = join(root, 'never', 'state.sqlite');
    const report = readStatus(settingsFor(database), () => new Date('2025-01-01T00:02:00Z'));
    const idle = (name: string) => ({ name, waiting: { files: 0, bytes: 0 }, inFlight: [], done: { files: 0, bytes: 0 }, lastSuccessAt: null, lastError: null, bandwidth: unlimited });
    assert.deepEqual(report, {
      database,
      databaseFound: false,
      generatedAt: '2025-01-01T00:02:00.000Z',
      vessels: [idle('fast'), idle('slow'), idle('idle')],
      oldestWaiting: null,
      failed: [],
      failedTotal: 0,
      bandwidth: unlimited,
    });
    assert.throws(() => reader(database));
  });

  it('a database that is not one: a ConfigError naming the settings file, the key and the database', () => {
    const database = join(root, 'garbage.sqlite');
    writeFileSync(database, 'this is not a database, but it is long enough to have a header of sorts\n'.repeat(20));
    assert.throws(() => readStatus(settingsFor(database)), (err: Error) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.message, `${join(root, 'settings.ini')}: [MONSTER] Database: cannot open ${database}: file is not a database`);
      return true;
    });
  });

  it('reports every vessel of the settings, in flight with %, waiting, done, errors, failures, oldest waiting', () => {
    const { store, file } = newStore();
    const big = store.recordVersion({ ...version('big.bin', 4000), directory: 'outbox' }, ['fast', 'slow'], () => {});
    const small = store.recordVersion({ ...version('small.bin', 1000), directory: 'outbox' }, ['fast', 'slow'], () => {});
    const orphan = store.recordVersion({ ...version('x.bin', 5), directory: 'removed' }, ['slow'], () => {});
    store.markDone(big.id, 'fast', 4000);
    store.markDone(small.id, 'fast', 1000);
    store.transferStarted(big.id, 'slow');
    store.transferProgress(big.id, 'slow', 1000);
    store.markAttemptFailed(orphan.id, 'slow', 'permission denied', true);
    store.flush();
    sql(file, 'UPDATE files SET queued_at = ?', Date.parse('2025-01-01T00:00:00Z'));
    sql(file, 'UPDATE transfers SET started_at = ?, updated_at = ?', Date.parse('2025-01-01T00:01:00Z'), Date.parse('2025-01-01T00:01:30Z'));
    sql(file, 'UPDATE deliveries SET updated_at = ?', Date.parse('2025-01-01T00:01:40Z'));
    sql(file, 'UPDATE vessel_stats SET last_success_at = ? WHERE last_success_at IS NOT NULL', Date.parse('2025-01-01T00:01:50Z'));
    sql(file, 'UPDATE vessel_stats SET last_error_at = ? WHERE last_error_at IS NOT NULL', Date.parse('2025-01-01T00:01:55Z'));
    const report = readStatus(settingsFor(file), () => new Date('2025-01-01T00:02:00Z'));
    assert.deepEqual(report, {
      database: file,
      databaseFound: true,
      generatedAt: '2025-01-01T00:02:00.000Z',
      vessels: [
        {
          name: 'fast', waiting: { files: 0, bytes: 0 }, inFlight: [], done: { files: 2, bytes: 5000 },
          lastSuccessAt: '2025-01-01T00:01:50.000Z', lastError: null, bandwidth: unlimited,
        },
        {
          name: 'slow',
          waiting: { files: 2, bytes: 5000 },
          inFlight: [{
            path: '/srv/outbox/big.bin', bytesSent: 1000, size: 4000, percent: 25,
            startedAt: '2025-01-01T00:01:00.000Z', updatedAt: '2025-01-01T00:01:30.000Z',
          }],
          done: { files: 0, bytes: 0 },
          lastSuccessAt: null,
          lastError: { message: 'permission denied', at: '2025-01-01T00:01:55.000Z' },
          bandwidth: unlimited,
        },
        { name: 'idle', waiting: { files: 0, bytes: 0 }, inFlight: [], done: { files: 0, bytes: 0 }, lastSuccessAt: null, lastError: null, bandwidth: unlimited },
      ],
      oldestWaiting: { path: '/srv/outbox/big.bin', vessel: 'slow', queuedAt: '2025-01-01T00:00:00.000Z', ageSeconds: 120 },
      failed: [{ vessel: 'slow', path: 'removed/x.bin', reason: 'permission denied', attempts: 1, at: '2025-01-01T00:01:40.000Z' }],
      failedTotal: 1,
      bandwidth: unlimited,
    });
  });

  it('bandwidth: what a running daemon published (limit and rate), else the limit the settings give now and no rate', () => {
    const { store, file } = newStore();
    const settings = parseSettings([
      '[MONSTER]', `Database = ${file}`, 'BandwidthLimit = 08:00,4M 18:00,off', 'TimeZone = Europe/Berlin',
      '[Directory outbox]', 'Location = /srv/outbox',
      '[Vessel fast]', 'Address = 127.0.0.1', 'BandwidthLimit = 512k',
      '[Vessel slow]', 'Address = 127.0.0.1',
    ].join('\n'), join(root, 'settings.ini'));
    const at = new Date();
    // 12:00 in Berlin: the 4M of the timetable.
    const noon = new Date('2025-01-01T11:00:00Z');
    let report = readStatus(settings, () => noon);
    assert.deepEqual(report.bandwidth, { setting: '08:00,4M 18:00,off', limitBytesPerSecond: 4 * 1024 * 1024, bytesPerSecond: null });
    assert.deepEqual(report.vessels.map((v) => v.bandwidth), [
      { setting: '512k', limitBytesPerSecond: 512 * 1024, bytesPerSecond: null },
      unlimited,
    ]);
    store.recordBandwidth([{ vessel: 'fast', limit: 512 * 1024, rate: 500_000.4 }, { vessel: 'slow', limit: null, rate: 2_000_000 }, { vessel: '', limit: null, rate: 2_500_000 }]);
    store.flush();
    report = readStatus(settings, () => at);
    assert.deepEqual(report.bandwidth, { setting: '08:00,4M 18:00,off', limitBytesPerSecond: null, bytesPerSecond: 2_500_000 });
    assert.deepEqual(report.vessels.map((v) => v.bandwidth), [
      { setting: '512k', limitBytesPerSecond: 512 * 1024, bytesPerSecond: 500_000 },
      { setting: 'off', limitBytesPerSecond: null, bytesPerSecond: 2_000_000 },
    ]);
    // A minute later, with no daemon publishing any more: the rate is unknown.
    report = readStatus(settings, () => new Date(at.getTime() + 60_000));
    assert.equal(report.vessels[0].bandwidth.bytesPerSecond, null);
    store.close();
  });

  it('percentOf rounds down to a tenth, never reads 100 before the last byte, and is 0 for an empty file', () => {
    assert.equal(percentOf(0, 1000), 0);
    assert.equal(percentOf(333, 1000), 33.3);
    assert.equal(percentOf(9999, 10000), 99.9);
    assert.equal(percentOf(999_999, 1_000_000), 99.9);
    assert.equal(percentOf(1000, 1000), 100);
    assert.equal(percentOf(2000, 1000), 100);
    assert.equal(percentOf(0, 0), 0);
  });
});
