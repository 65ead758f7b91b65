/**
 * The state store's SQLite connection: opening it (WAL, the schema brought up to date), errors
 * turned into StateDatabaseErrors, and the grouped commits: every write joins the transaction
 * of the current turn of the event loop, committed at the next one.
 */
import Database from 'better-sqlite3';
import { dirname } from 'node:path';
import { StateDatabaseError } from '../errors.js';
import { makeFolders } from '../shore-fs.js';
import { hasColumn, hasTable, migrate, schemaVersion } from './schema.js';

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
export interface Statement {
  run(...params: unknown[]): Database.RunResult;
  get(...params: unknown[]): unknown;
  all(...params: unknown[]): unknown[];
}

/** SQLite's page cache, in KiB (see the constructor). */
const CACHE_KIB = 4096;

export class StateConnection {
  readonly #db: Database.Database;
  readonly #file: string;
  #onFailure: ((err: StateDatabaseError) => void) | undefined;
  /** A deferred commit that failed (see write()). */
  #commitError: Error | undefined;

  /** Opens (creating it and its folders unless read-only) and migrates; failures are thrown as they are. */
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
    // Each write is a savepoint inside the turn's transaction (see write()), and SQLite copies
    // every page a savepoint first touches into a sub-journal, by default a temporary file: in
    // memory, recording a file's version costs half as much (40 instead of 75-100 µs measured
    // with its 3 deliveries). Statements that touch a large share of the database run outside
    // any transaction instead (see alone()), so that memory stays a few pages.
    this.#db.pragma('temp_store = MEMORY');
    // SQLite's page cache (better-sqlite3 sets 16 MiB) fills once the database outgrows it: with
    // a million files waiting, the daemon's RSS was 95 MiB against 76 MiB with ten thousand.
    // 4 MiB holds what the queue's pages and a scan's lookups reuse (the rest is in the
    // kernel's page cache): recording 1M files (in readdir order) and looking each up again
    // cost the same as with 16 MiB (43-47 and 13-19 µs per file with either).
    this.#db.pragma(`cache_size = -${CACHE_KIB}`);
    if (options.readonly) schemaVersion(this.#db);
    else migrate(this.#db);
  }

  /** From now on, the first SQLite failure also goes to `onFailure` (once). */
  reportFailuresTo(onFailure: ((err: StateDatabaseError) => void) | undefined): void {
    this.#onFailure = onFailure;
  }

  get open(): boolean {
    return this.#db.open;
  }

  hasColumn(table: string, column: string): boolean {
    return hasColumn(this.#db, table, column);
  }

  hasTable(name: string): boolean {
    return hasTable(this.#db, name);
  }

  prepare(sql: string): Statement {
    const s = this.#db.prepare(sql);
    return {
      run: (...params) => this.#sql(() => s.run(...params)),
      get: (...params) => this.#sql(() => s.get(...params)),
      all: (...params) => this.#sql(() => s.all(...params)),
    };
  }

  /** `fn` in one transaction (a savepoint inside the turn's open one). */
  transaction<T>(fn: () => T): T {
    return this.#sql(() => this.#db.transaction(fn)());
  }

  /**
   * Called before every write: it joins the transaction of the current turn of the event loop,
   * committed at the next one: one commit for all the rows a burst of small files touches,
   * instead of one each. A crash loses at most that turn's rows, which the next start redoes
   * from what is on the shore and the vessels (a file found at its destination is confirmed,
   * not sent again).
   */
  write(): void {
    this.#reportCommitError();
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

  /**
   * Runs `fn`, whose statements each touch many rows (every delivery of a vessel), each as its
   * own transaction: this turn's writes are committed first. Inside a transaction, SQLite keeps
   * a copy of every page such a statement changes, in memory (temp_store): tens of MB for a
   * million rows. A crash between two of its statements leaves each whole.
   */
  alone<T>(fn: () => T): T {
    this.#reportCommitError();
    this.flush();
    return this.#sql(fn);
  }

  /** A deferred commit that failed is reported by the next write (SQLite has rolled it back). */
  #reportCommitError(): void {
    if (!this.#commitError) return;
    const err = this.#commitError;
    this.#commitError = undefined;
    throw err;
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
}
