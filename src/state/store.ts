/**
 * The daemon's memory across restarts, in SQLite (WAL).
 *
 * A `files` row is the version of one shore file being replicated (path, size, mtime, and its
 * SHA-256 once read). A `deliveries` row says, per vessel that should have it, whether it is
 * pending, done (confirmed on the vessel) or failed. `chunks` lists the chunks a vessel has of
 * that version, so a restart resumes instead of resending. `leftovers` are chunk sets and
 * half-assembled files on vessels that belong to no live version any more; they are removed
 * when the vessel is reachable. Rows are written before work is queued, so a crash loses nothing:
 * startup replays every pending row. `transfers` lists the deliveries under way and how far
 * they got, for `status`; it is emptied whenever the daemon opens the store (after a restart
 * nothing is in flight).
 */
import Database from 'better-sqlite3';
import { dirname } from 'node:path';
import { StateDatabaseError } from '../errors.js';
import { makeFolders } from '../shore-fs.js';

/** 2 added `transfers`; every change so far only adds tables, so older databases are upgraded in place. */
const SCHEMA_VERSION = 2;

const schema = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
  id INTEGER PRIMARY KEY,
  directory TEXT NOT NULL,
  relpath TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime_ms REAL NOT NULL,
  version_key TEXT NOT NULL,
  sha256 TEXT,
  queued_at INTEGER NOT NULL,
  UNIQUE (directory, relpath)
);
CREATE TABLE IF NOT EXISTS deliveries (
  file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  vessel TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
  attempts INTEGER NOT NULL DEFAULT 0,
  error TEXT,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (file_id, vessel)
);
CREATE TABLE IF NOT EXISTS chunks (
  file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  vessel TEXT NOT NULL,
  idx INTEGER NOT NULL,
  PRIMARY KEY (file_id, vessel, idx)
);
CREATE TABLE IF NOT EXISTS leftovers (
  vessel TEXT NOT NULL,
  chunk_prefix TEXT NOT NULL,
  assembly_path TEXT NOT NULL,
  PRIMARY KEY (vessel, chunk_prefix)
);
CREATE TABLE IF NOT EXISTS host_keys (
  host TEXT PRIMARY KEY,
  fingerprint TEXT NOT NULL,
  first_seen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS vessel_stats (
  vessel TEXT PRIMARY KEY,
  files_done INTEGER NOT NULL DEFAULT 0,
  bytes_done INTEGER NOT NULL DEFAULT 0,
  last_success_at INTEGER,
  last_error TEXT,
  last_error_at INTEGER
);
CREATE TABLE IF NOT EXISTS transfers (
  file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
  vessel TEXT NOT NULL,
  bytes_sent INTEGER NOT NULL DEFAULT 0,
  size INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (file_id, vessel)
);
`;

export type DeliveryState = 'pending' | 'done' | 'failed';

export interface FileVersion {
  id: number;
  directory: string;
  relpath: string;
  size: number;
  mtimeMs: number;
  versionKey: string;
  sha256: string | null;
}

export interface Delivery {
  fileId: number;
  vessel: string;
  state: DeliveryState;
  attempts: number;
  error: string | null;
}

/** A file and one vessel it goes to, in the summaries for `status` (whose times are ms since the epoch). */
interface FileRef {
  vessel: string;
  directory: string;
  relpath: string;
}

export interface Waiting {
  vessel: string;
  files: number;
  bytes: number;
}

export interface Transfer extends FileRef {
  bytesSent: number;
  size: number;
  startedAt: number;
  updatedAt: number;
}

export interface FailedDelivery extends FileRef {
  error: string | null;
  attempts: number;
  updatedAt: number;
}

export interface OldestWaiting extends FileRef {
  queuedAt: number;
}

export interface VesselStats {
  vessel: string;
  filesDone: number;
  bytesDone: number;
  lastSuccessAt: number | null;
  lastError: string | null;
  lastErrorAt: number | null;
}

export interface Leftover {
  vessel: string;
  chunkPrefix: string;
  assemblyPrefix: string;
}

interface FileRow {
  id: number;
  directory: string;
  relpath: string;
  size: number;
  mtime_ms: number;
  version_key: string;
  sha256: string | null;
}

const toVersion = (r: FileRow): FileVersion => ({
  id: r.id, directory: r.directory, relpath: r.relpath, size: r.size, mtimeMs: r.mtime_ms,
  versionKey: r.version_key, sha256: r.sha256,
});

export interface StateStoreOptions {
  /** Opened by `status` and `check` next to a running daemon: nothing is written. */
  readonly?: boolean;
  /** How long a statement waits for a lock held by another connection. @default 5000 */
  busyTimeoutMs?: number;
  /**
   * Called once with the first failure to read or write the database after it was opened (disk
   * full, read-only, I/O error, a lock never released); the failing call also throws it.
   */
  onFailure?: (err: StateDatabaseError) => void;
}

/** A prepared statement whose SQLite errors become StateDatabaseErrors. */
interface Statement {
  run(...params: unknown[]): Database.RunResult;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

export class StateStore {
  readonly #db: Database.Database;
  readonly #file: string;
  #onFailure: ((err: StateDatabaseError) => void) | undefined;
  readonly #stmt: ReturnType<StateStore['prepare']>;
  /** Undefined only when reading a database written before `transfers` existed. */
  readonly #transfer: ReturnType<StateStore['prepareTransfers']> | undefined;
  /** A deferred commit that failed (see #write). */
  #commitError: Error | undefined;

  constructor(file: string, options: StateStoreOptions = {}) {
    this.#file = file;
    // One level at a time, so that a read-only filesystem is reported as such (not as ENOENT).
    if (!options.readonly) makeFolders(dirname(file));
    this.#db = new Database(file, { readonly: options.readonly ?? false, fileMustExist: options.readonly ?? false, timeout: options.busyTimeoutMs ?? 5000 });
    // WAL lets `status` read while the daemon writes; NORMAL is durable across process crashes
    // (the only crash the daemon can cause) and much cheaper than FULL per commit.
    if (!options.readonly) {
      this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('synchronous = NORMAL');
    }
    this.#db.pragma('foreign_keys = ON');
    if (options.readonly) this.#checkVersion();
    else this.#migrate();
    this.#stmt = this.prepare();
    const hasTransfers = this.#db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'transfers'`).get();
    this.#transfer = hasTransfers ? this.prepareTransfers() : undefined;
    // Only the daemon opens the store for writing, and a daemon that starts has nothing in flight.
    if (!options.readonly) this.#transfer!.clear.run();
    this.#onFailure = options.onFailure;
  }

  /** Runs SQLite work; its errors become one StateDatabaseError naming the database (and reach onFailure once). */
  #sql<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw this.#failure(err);
    }
  }

  #failure(err: unknown): unknown {
    if (!(err instanceof Database.SqliteError)) return err; // ours (StateDatabaseError), or a bug: as it is
    const failure = new StateDatabaseError(`state database ${this.#file}: ${err.message} (${err.code})`, { cause: err });
    const notify = this.#onFailure;
    this.#onFailure = undefined;
    notify?.(failure);
    return failure;
  }

  #prepare(sql: string): Statement {
    const s = this.#db.prepare(sql);
    return {
      run: (...params) => this.#sql(() => s.run(...params)),
      get: (...params) => this.#sql(() => s.get(...params)),
      all: (...params) => this.#sql(() => s.all(...params)),
    };
  }

  /** `fn` in one transaction (a savepoint inside the turn's open one). */
  #transaction<T>(fn: () => T): T {
    return this.#sql(() => this.#db.transaction(fn)());
  }

  #migrate(): void {
    this.#db.transaction(() => {
      this.#db.exec(schema);
      const stored = this.#checkVersion();
      if (stored === undefined) {
        this.#db.prepare(`INSERT INTO meta (key, value) VALUES ('schema_version', ?)`).run(String(SCHEMA_VERSION));
      } else if (stored < SCHEMA_VERSION) {
        this.#db.prepare(`UPDATE meta SET value = ? WHERE key = 'schema_version'`).run(String(SCHEMA_VERSION));
      }
    })();
  }

  /** The stored schema version (undefined when none is stored yet); a newer one is refused. */
  #checkVersion(): number | undefined {
    const row = this.#db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string } | undefined;
    if (row && Number(row.value) > SCHEMA_VERSION) {
      throw new Error(`state database schema ${row.value} is newer than this contentmonster understands (${SCHEMA_VERSION})`);
    }
    return row ? Number(row.value) : undefined;
  }

  private prepare() {
    const db = { prepare: (sql: string) => this.#prepare(sql) };
    return {
      fileByPath: db.prepare(`SELECT * FROM files WHERE directory = ? AND relpath = ?`),
      fileById: db.prepare(`SELECT * FROM files WHERE id = ?`),
      allFiles: db.prepare(`SELECT * FROM files ORDER BY id`),
      insertFile: db.prepare(`INSERT INTO files (directory, relpath, size, mtime_ms, version_key, queued_at) VALUES (?, ?, ?, ?, ?, ?)`),
      updateFile: db.prepare(`UPDATE files SET size = ?, mtime_ms = ?, version_key = ?, sha256 = NULL, queued_at = ? WHERE id = ?`),
      setSha: db.prepare(`UPDATE files SET sha256 = ? WHERE id = ? AND version_key = ?`),
      deleteFile: db.prepare(`DELETE FROM files WHERE id = ?`),
      deliveries: db.prepare(`SELECT file_id AS fileId, vessel, state, attempts, error FROM deliveries WHERE file_id = ?`),
      delivery: db.prepare(`SELECT file_id AS fileId, vessel, state, attempts, error FROM deliveries WHERE file_id = ? AND vessel = ?`),
      upsertDelivery: db.prepare(`INSERT INTO deliveries (file_id, vessel, state, updated_at) VALUES (?, ?, 'pending', ?)
        ON CONFLICT (file_id, vessel) DO NOTHING`),
      resetDeliveries: db.prepare(`UPDATE deliveries SET state = 'pending', attempts = 0, error = NULL, updated_at = ? WHERE file_id = ?`),
      setDelivery: db.prepare(`UPDATE deliveries SET state = ?, error = ?, attempts = attempts + ?, updated_at = ? WHERE file_id = ? AND vessel = ?`),
      deleteDelivery: db.prepare(`DELETE FROM deliveries WHERE file_id = ? AND vessel = ?`),
      retryFailed: db.prepare(`UPDATE deliveries SET state = 'pending', attempts = 0, updated_at = ? WHERE state = 'failed'`),
      failedDeliveries: db.prepare(`SELECT d.vessel, d.error, f.directory, f.relpath FROM deliveries d JOIN files f ON f.id = d.file_id WHERE d.state = 'failed' ORDER BY f.id`),
      chunks: db.prepare(`SELECT idx FROM chunks WHERE file_id = ? AND vessel = ?`),
      addChunk: db.prepare(`INSERT OR IGNORE INTO chunks (file_id, vessel, idx) VALUES (?, ?, ?)`),
      clearChunks: db.prepare(`DELETE FROM chunks WHERE file_id = ? AND vessel = ?`),
      clearAllChunks: db.prepare(`DELETE FROM chunks WHERE file_id = ?`),
      addLeftover: db.prepare(`INSERT OR IGNORE INTO leftovers (vessel, chunk_prefix, assembly_path) VALUES (?, ?, ?)`),
      leftovers: db.prepare(`SELECT vessel, chunk_prefix AS chunkPrefix, assembly_path AS assemblyPrefix FROM leftovers WHERE vessel = ?`),
      deleteLeftover: db.prepare(`DELETE FROM leftovers WHERE vessel = ? AND chunk_prefix = ?`),
      hostKey: db.prepare(`SELECT fingerprint FROM host_keys WHERE host = ?`),
      addHostKey: db.prepare(`INSERT OR IGNORE INTO host_keys (host, fingerprint, first_seen) VALUES (?, ?, ?)`),
      statsDone: db.prepare(`INSERT INTO vessel_stats (vessel, files_done, bytes_done, last_success_at) VALUES (?, 1, ?, ?)
        ON CONFLICT (vessel) DO UPDATE SET files_done = files_done + 1, bytes_done = bytes_done + excluded.bytes_done, last_success_at = excluded.last_success_at`),
      statsError: db.prepare(`INSERT INTO vessel_stats (vessel, last_error, last_error_at) VALUES (?, ?, ?)
        ON CONFLICT (vessel) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at`),
      // For `status`: summaries over every row, read next to a running daemon.
      waiting: db.prepare(`SELECT d.vessel, COUNT(*) AS files, SUM(f.size) AS bytes FROM deliveries d JOIN files f ON f.id = d.file_id
        WHERE d.state = 'pending' GROUP BY d.vessel ORDER BY d.vessel`),
      oldestWaiting: db.prepare(`SELECT d.vessel, f.directory, f.relpath, f.queued_at AS queuedAt FROM deliveries d JOIN files f ON f.id = d.file_id
        WHERE d.state = 'pending' ORDER BY f.queued_at, f.id, d.vessel LIMIT 1`),
      failedList: db.prepare(`SELECT d.vessel, f.directory, f.relpath, d.error, d.attempts, d.updated_at AS updatedAt
        FROM deliveries d JOIN files f ON f.id = d.file_id WHERE d.state = 'failed' ORDER BY d.vessel, f.directory, f.relpath`),
      vesselStats: db.prepare(`SELECT vessel, files_done AS filesDone, bytes_done AS bytesDone, last_success_at AS lastSuccessAt,
        last_error AS lastError, last_error_at AS lastErrorAt FROM vessel_stats ORDER BY vessel`),
    };
  }

  private prepareTransfers() {
    const db = { prepare: (sql: string) => this.#prepare(sql) };
    return {
      clear: db.prepare(`DELETE FROM transfers`),
      // Through SELECT, so a file forgotten meanwhile (processed, removed) adds no row.
      start: db.prepare(`INSERT INTO transfers (file_id, vessel, bytes_sent, size, started_at, updated_at)
        SELECT id, @vessel, 0, size, @now, @now FROM files WHERE id = @fileId
        ON CONFLICT (file_id, vessel) DO UPDATE SET size = excluded.size, updated_at = excluded.updated_at`),
      progress: db.prepare(`UPDATE transfers SET bytes_sent = ?, updated_at = ? WHERE file_id = ? AND vessel = ?`),
      end: db.prepare(`DELETE FROM transfers WHERE file_id = ? AND vessel = ?`),
      list: db.prepare(`SELECT t.vessel, f.directory, f.relpath, t.bytes_sent AS bytesSent, t.size, t.started_at AS startedAt, t.updated_at AS updatedAt
        FROM transfers t JOIN files f ON f.id = t.file_id ORDER BY t.vessel, t.started_at, f.relpath`),
    };
  }

  fileByPath(directory: string, relpath: string): FileVersion | undefined {
    const row = this.#stmt.fileByPath.get(directory, relpath) as FileRow | undefined;
    return row && toVersion(row);
  }

  file(id: number): FileVersion | undefined {
    const row = this.#stmt.fileById.get(id) as FileRow | undefined;
    return row && toVersion(row);
  }

  allFiles(): FileVersion[] {
    return (this.#stmt.allFiles.all() as FileRow[]).map(toVersion);
  }

  /**
   * Records a version of a shore file and which vessels should have it. A different earlier
   * version of the same path is replaced: its deliveries start over, and `onSuperseded` gets the
   * old version so its chunks on the vessels can be queued for removal.
   */
  recordVersion(
    v: Omit<FileVersion, 'id' | 'sha256'>,
    vessels: readonly string[],
    onSuperseded: (old: FileVersion, vesselsWithChunks: string[]) => void,
  ): FileVersion {
    this.#write();
    return this.#transaction(() => {
      const now = Date.now();
      const existing = this.fileByPath(v.directory, v.relpath);
      let id: number;
      if (existing && existing.versionKey === v.versionKey) {
        id = existing.id;
      } else if (existing) {
        id = existing.id;
        const withChunks = this.deliveries(id).map((d) => d.vessel);
        onSuperseded(existing, withChunks);
        this.#stmt.clearAllChunks.run(id);
        this.#stmt.updateFile.run(v.size, v.mtimeMs, v.versionKey, now, id);
        this.#stmt.resetDeliveries.run(now, id);
      } else {
        id = Number(this.#stmt.insertFile.run(v.directory, v.relpath, v.size, v.mtimeMs, v.versionKey, now).lastInsertRowid);
      }
      this.#syncTargets(id, vessels, now);
      return this.file(id)!;
    });
  }

  /** Makes the delivery rows of a file match the vessels that should have it now. */
  #syncTargets(fileId: number, vessels: readonly string[], now: number): void {
    const wanted = new Set(vessels);
    for (const d of this.deliveries(fileId)) {
      if (wanted.has(d.vessel)) continue;
      this.#stmt.deleteDelivery.run(fileId, d.vessel);
      this.#stmt.clearChunks.run(fileId, d.vessel);
    }
    for (const vessel of wanted) this.#stmt.upsertDelivery.run(fileId, vessel, now);
  }

  syncTargets(fileId: number, vessels: readonly string[]): void {
    this.#write();
    this.#transaction(() => this.#syncTargets(fileId, vessels, Date.now()));
  }

  /** Stores the shore hash of a version; a no-op when the row has moved on to another version. */
  setSha256(fileId: number, versionKey: string, sha256: string): void {
    this.#write();
    this.#stmt.setSha.run(sha256, fileId, versionKey);
  }

  /** Forgets a file (processed, or gone from the shore); its deliveries and chunks go with it. */
  deleteFile(fileId: number): void {
    this.#write();
    this.#stmt.deleteFile.run(fileId);
  }

  deliveries(fileId: number): Delivery[] {
    return this.#stmt.deliveries.all(fileId) as Delivery[];
  }

  delivery(fileId: number, vessel: string): Delivery | undefined {
    return this.#stmt.delivery.get(fileId, vessel) as Delivery | undefined;
  }

  markDone(fileId: number, vessel: string, bytes: number): void {
    this.#write();
    this.#transaction(() => {
      const now = Date.now();
      this.#stmt.setDelivery.run('done', null, 0, now, fileId, vessel);
      this.#stmt.clearChunks.run(fileId, vessel);
      this.#stmt.statsDone.run(vessel, bytes, now);
    });
  }

  /** A failed attempt: `final` marks the delivery failed (until the next retry round). */
  markAttemptFailed(fileId: number, vessel: string, error: string, final: boolean): void {
    this.#write();
    this.#transaction(() => {
      const now = Date.now();
      this.#stmt.setDelivery.run(final ? 'failed' : 'pending', error, 1, now, fileId, vessel);
      this.#stmt.statsError.run(vessel, error, now);
    });
  }

  recordVesselError(vessel: string, error: string): void {
    this.#write();
    this.#stmt.statsError.run(vessel, error, Date.now());
  }

  /** Puts every failed delivery back in line; returns how many. */
  retryFailed(): number {
    this.#write();
    return this.#stmt.retryFailed.run(Date.now()).changes;
  }

  failures(): { vessel: string; error: string | null; directory: string; relpath: string }[] {
    return this.#stmt.failedDeliveries.all() as { vessel: string; error: string | null; directory: string; relpath: string }[];
  }

  chunksPresent(fileId: number, vessel: string): Set<number> {
    return new Set((this.#stmt.chunks.all(fileId, vessel) as { idx: number }[]).map((r) => r.idx));
  }

  addChunk(fileId: number, vessel: string, idx: number): void {
    this.#write();
    this.#stmt.addChunk.run(fileId, vessel, idx);
  }

  clearChunks(fileId: number, vessel: string): void {
    this.#write();
    this.#stmt.clearChunks.run(fileId, vessel);
  }

  addLeftover(l: Leftover): void {
    this.#write();
    this.#stmt.addLeftover.run(l.vessel, l.chunkPrefix, l.assemblyPrefix);
  }

  leftovers(vessel: string): Leftover[] {
    return this.#stmt.leftovers.all(vessel) as Leftover[];
  }

  deleteLeftover(l: Leftover): void {
    this.#write();
    this.#stmt.deleteLeftover.run(l.vessel, l.chunkPrefix);
  }

  hostKey(host: string): string | undefined {
    return (this.#stmt.hostKey.get(host) as { fingerprint: string } | undefined)?.fingerprint;
  }

  recordHostKey(host: string, fingerprint: string): void {
    this.#write();
    this.#stmt.addHostKey.run(host, fingerprint, Date.now());
  }

  /**
   * A vessel worker starts (or resumes after a retry) delivering a file. A row already there
   * keeps its start time and bytes, so a retry does not look like a new transfer.
   */
  transferStarted(fileId: number, vessel: string): void {
    if (!this.#db.open) return;
    this.#write();
    this.#transfer!.start.run({ fileId, vessel, now: Date.now() });
  }

  /** Bytes of the file the vessel has now (resumed ones included); called about once a second. */
  transferProgress(fileId: number, vessel: string, bytesSent: number): void {
    if (!this.#db.open) return;
    this.#write();
    this.#transfer!.progress.run(bytesSent, Date.now(), fileId, vessel);
  }

  /** The delivery ended, whatever the outcome. Harmless after close (a stop that outran its jobs). */
  transferEnded(fileId: number, vessel: string): void {
    if (!this.#db.open) return;
    this.#write();
    this.#transfer!.end.run(fileId, vessel);
  }

  /** Runs `fn` in one transaction: every query in it sees the database as of the same moment. */
  snapshot<T>(fn: () => T): T {
    return this.#transaction(fn);
  }

  /** Deliveries under way; empty for a database from before they were recorded. */
  transfers(): Transfer[] {
    return (this.#transfer?.list.all() ?? []) as Transfer[];
  }

  /** Pending deliveries (those in flight included) per vessel that has any. */
  waitingByVessel(): Waiting[] {
    return this.#stmt.waiting.all() as Waiting[];
  }

  /** The pending delivery whose file has been queued longest. */
  oldestWaiting(): OldestWaiting | undefined {
    return this.#stmt.oldestWaiting.get() as OldestWaiting | undefined;
  }

  failedDeliveries(): FailedDelivery[] {
    return this.#stmt.failedList.all() as FailedDelivery[];
  }

  vesselStats(): VesselStats[] {
    return this.#stmt.vesselStats.all() as VesselStats[];
  }

  /** Commits this turn's writes now rather than at the next turn, for a reader that must see them at once. */
  flush(): void {
    if (this.#db.open && this.#db.inTransaction) this.#sql(() => this.#db.exec('COMMIT'));
  }

  close(): void {
    if (!this.#db.open) return;
    try {
      this.flush();
    } finally {
      this.#db.close(); // also when the last commit failed: SQLite rolls it back
    }
  }

  /**
   * Every write joins the transaction of the current turn of the event loop, committed at the
   * next one: one commit for all the rows a burst of small files touches, instead of one each.
   * A crash loses at most that turn's rows, which the next start redoes from what is on the
   * shore and the vessels (a file found at its destination is confirmed, not sent again).
   */
  #write(): void {
    if (this.#commitError) {
      const err = this.#commitError;
      this.#commitError = undefined;
      throw err;
    }
    if (this.#db.inTransaction) return;
    // IMMEDIATE: the write lock is taken here, waiting (busy timeout) for any other writer,
    // rather than on the first write after a read, where a conflict is an error at once.
    this.#sql(() => this.#db.exec('BEGIN IMMEDIATE'));
    setImmediate(() => {
      try {
        this.flush();
      } catch (err) {
        // SQLite has rolled back; the next write reports it to its caller.
        this.#commitError = err as Error;
      }
    });
  }

}
