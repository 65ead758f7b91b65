/**
 * The state database's tables, and the steps that bring a database written by an older
 * contentmonster up to them.
 *
 * A `files` row is the version of one shore file being replicated (path, size, mtime, and its
 * SHA-256 once read). A `deliveries` row says, per vessel that should have it, whether it is
 * pending, done (confirmed on the vessel) or failed. `leftovers` are chunk sets and
 * half-assembled files on vessels that belong to no live version any more; they are removed
 * when the vessel is reachable. `transfers` lists the deliveries under way and how far they got,
 * for `status`. `host_keys` are the fingerprints trusted on first use; `vessel_stats` the
 * counts and last outcomes per vessel, for `status`; `bandwidth` the limit in force and the rate
 * measured per vessel (and `''` for all of them), which the daemon writes every few seconds for
 * `status` (it needs no migration step: a table only the daemon writes and `status` reads when
 * it is there). What each vessel already has of a version
 * is not kept here: a resumed transfer asks the vessel (the sizes of its chunks in TempDir).
 */
import type Database from 'better-sqlite3';

/**
 * 1: files, deliveries, chunks, leftovers, host_keys, vessel_stats. 2 added `transfers`. 3
 * dropped `chunks`, which was written once per chunk and never read. 4 gave `deliveries` the
 * file's size and the indexes a queue of millions is read through (see below). 5 keeps the
 * per-vessel totals of what waits in `waiting_totals`, maintained by triggers. 6 gave
 * `deliveries` their place in the vessel's queue (`tier`, `rank`: see queue-order.ts) and the
 * index that reads the queue in that order.
 */
export const SCHEMA_VERSION = 6;

const tables = `
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
CREATE TABLE IF NOT EXISTS bandwidth (
  vessel TEXT PRIMARY KEY,
  limit_bps INTEGER,
  rate_bps REAL NOT NULL,
  updated_at INTEGER NOT NULL
);
`;

/** The index each vessel's queue is read through, in its order (see queue-order.ts). */
export const QUEUE_INDEX = 'CREATE INDEX IF NOT EXISTS deliveries_queue ON deliveries (state, vessel, tier, rank, file_id, size)';

/**
 * What takes a database from the version before to this one, beyond the tables above (which
 * are created when missing: version 2's `transfers` needs nothing else).
 */
const migrations: ReadonlyArray<{ version: number; sql: string }> = [
  { version: 3, sql: 'DROP TABLE IF EXISTS chunks' },
  {
    // The waiting queue lives here, not in memory: each vessel reads its next files a page at a
    // time, small and large apart, in the order they came (`deliveries_waiting`, which holds the
    // size so that neither the pages nor the per-vessel totals of `status` touch `files`: 0.3 s
    // for 3 million deliveries instead of 1 s); `files_by_age` finds the oldest waiting file.
    version: 4,
    sql: `ALTER TABLE deliveries ADD COLUMN size INTEGER NOT NULL DEFAULT 0;
      UPDATE deliveries SET size = (SELECT size FROM files WHERE files.id = deliveries.file_id);
      CREATE INDEX IF NOT EXISTS deliveries_waiting ON deliveries (state, vessel, file_id, size);
      CREATE INDEX IF NOT EXISTS files_by_age ON files (queued_at, id);`,
  },
  {
    // What waits per vessel, kept up to date by every change to `deliveries` (cascaded deletes
    // included), so that `status` reads a row per vessel instead of counting: with a million
    // files to 3 vessels, counting the index took 0.3 s on a quiet machine and seconds on a
    // busy one. The cost is one small upsert per delivery state change.
    version: 5,
    sql: `CREATE TABLE IF NOT EXISTS waiting_totals (vessel TEXT PRIMARY KEY, files INTEGER NOT NULL, bytes INTEGER NOT NULL);
      DELETE FROM waiting_totals;
      INSERT INTO waiting_totals (vessel, files, bytes)
        SELECT vessel, COUNT(*), SUM(size) FROM deliveries WHERE state = 'pending' GROUP BY vessel;
      CREATE TRIGGER IF NOT EXISTS waiting_added AFTER INSERT ON deliveries WHEN NEW.state = 'pending' BEGIN
        INSERT INTO waiting_totals (vessel, files, bytes) VALUES (NEW.vessel, 1, NEW.size)
          ON CONFLICT (vessel) DO UPDATE SET files = files + 1, bytes = bytes + excluded.bytes;
      END;
      CREATE TRIGGER IF NOT EXISTS waiting_removed AFTER DELETE ON deliveries WHEN OLD.state = 'pending' BEGIN
        UPDATE waiting_totals SET files = files - 1, bytes = bytes - OLD.size WHERE vessel = OLD.vessel;
      END;
      CREATE TRIGGER IF NOT EXISTS waiting_changed AFTER UPDATE OF state, vessel, size ON deliveries
        WHEN OLD.state = 'pending' OR NEW.state = 'pending' BEGIN
        UPDATE waiting_totals SET files = files - 1, bytes = bytes - OLD.size WHERE vessel = OLD.vessel AND OLD.state = 'pending';
        INSERT INTO waiting_totals (vessel, files, bytes) SELECT NEW.vessel, 1, NEW.size WHERE NEW.state = 'pending'
          ON CONFLICT (vessel) DO UPDATE SET files = files + 1, bytes = bytes + excluded.bytes;
      END;`,
  },
  {
    // Each vessel reads its queue in the order of queue-order.ts (started files, Priority,
    // Order, arrival) from `deliveries_queue`, which replaces `deliveries_waiting` (same
    // columns, the key added before file_id). What the rows of an older database get is the
    // key of the default Priority and Order (0, size): their Directories' settings are not known
    // here, and the daemon re-keys those that differ at its start (StateStore.syncQueueOrder).
    // `rank` has no declared type, so that SQLite keeps a path such as `123` as text (a column
    // of numeric affinity would turn it into a number).
    version: 6,
    sql: `ALTER TABLE deliveries ADD COLUMN tier INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE deliveries ADD COLUMN rank NOT NULL DEFAULT 0;
      UPDATE deliveries SET rank = size;
      DROP INDEX IF EXISTS deliveries_waiting;
      ${QUEUE_INDEX};`,
  },
];

/** Brings a database opened for writing to SCHEMA_VERSION, in one transaction; a newer one is refused. */
export function migrate(db: Database.Database): void {
  db.transaction(() => {
    db.exec(tables);
    const stored = schemaVersion(db);
    for (const step of migrations) {
      if (step.version > (stored ?? 0)) db.exec(step.sql);
    }
    if (stored === undefined) {
      db.prepare(`INSERT INTO meta (key, value) VALUES ('schema_version', ?)`).run(String(SCHEMA_VERSION));
    } else if (stored < SCHEMA_VERSION) {
      db.prepare(`UPDATE meta SET value = ? WHERE key = 'schema_version'`).run(String(SCHEMA_VERSION));
    }
  })();
}

/** The stored schema version (undefined when none is stored yet); a newer one is refused. */
export function schemaVersion(db: Database.Database): number | undefined {
  const row = db.prepare(`SELECT value FROM meta WHERE key = 'schema_version'`).get() as { value: string } | undefined;
  if (row && Number(row.value) > SCHEMA_VERSION) {
    throw new Error(`state database schema ${row.value} is newer than this contentmonster understands (${SCHEMA_VERSION})`);
  }
  return row ? Number(row.value) : undefined;
}

export function hasTable(db: Database.Database, name: string): boolean {
  return db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(name) !== undefined;
}

export function hasColumn(db: Database.Database, table: string, column: string): boolean {
  return (db.prepare(`SELECT 1 FROM pragma_table_info(?) WHERE name = ?`).get(table, column)) !== undefined;
}
