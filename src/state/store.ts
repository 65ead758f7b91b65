/**
 * The daemon's memory across restarts, in SQLite (WAL); the tables are described in
 * ./schema.ts. Rows are written before work is queued, so a crash loses nothing: startup replays
 * every pending row. `transfers` is emptied whenever the daemon opens the store (after a
 * restart nothing is in flight). The connection and its grouped commits are in ./sqlite.ts,
 * the summaries for `status` in ./status-queries.ts.
 */
import { DEFAULT_ORDER, RANK_SQL, STARTED_TIER, tierOf, type DirectoryOrder, type QueueKey } from './queue-order.js';
import { QUEUE_INDEX } from './schema.js';
import { StateConnection, type StateStoreOptions, type Statement } from './sqlite.js';
import { StatusQueries, type BandwidthRow, type FailedDelivery, type OldestWaiting, type Transfer, type VesselStats, type Waiting } from './status-queries.js';

export type { StateStoreOptions } from './sqlite.js';
export type { FailedDelivery, OldestWaiting, Transfer, VesselStats, Waiting } from './status-queries.js';

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

/** A pending delivery to one vessel, and its place in that vessel's queue. */
export interface WaitingRow extends QueueKey {
  size: number;
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

function prepare(db: StateConnection) {
  const statements = {
    fileByPath: `SELECT * FROM files WHERE directory = ? AND relpath = ?`,
    fileById: `SELECT * FROM files WHERE id = ?`,
    filesAfter: `SELECT * FROM files WHERE id > ? ORDER BY id LIMIT ?`,
    fileCount: `SELECT COUNT(*) AS n FROM files`,
    // The queue in its order, from a key on (see queue-order.ts): a range of `deliveries_queue`.
    waitingSmall: `SELECT file_id AS id, size, tier, rank FROM deliveries WHERE state = 'pending' AND vessel = @vessel
      AND (tier, rank, file_id) > (@tier, @rank, @id) AND size <= @smallMax ORDER BY tier, rank, file_id LIMIT @limit`,
    waitingLarge: `SELECT file_id AS id, size, tier, rank FROM deliveries WHERE state = 'pending' AND vessel = @vessel
      AND (tier, rank, file_id) > (@tier, @rank, @id) AND size > @smallMax ORDER BY tier, rank, file_id LIMIT @limit`,
    waitingOf: `SELECT vessel, file_id AS id, size, tier, rank FROM deliveries WHERE file_id = ? AND state = 'pending'`,
    waitingPaths: `SELECT f.directory, f.relpath FROM deliveries d JOIN files f ON f.id = d.file_id WHERE d.state = 'pending' AND d.vessel = ?
      ORDER BY d.tier, d.rank, d.file_id LIMIT ?`,
    failPending: `UPDATE deliveries SET state = 'failed', error = ?, attempts = attempts + 1, updated_at = ? WHERE state = 'pending' AND vessel = ?`,
    insertFile: `INSERT INTO files (directory, relpath, size, mtime_ms, version_key, queued_at) VALUES (?, ?, ?, ?, ?, ?)`,
    updateFile: `UPDATE files SET size = ?, mtime_ms = ?, version_key = ?, sha256 = NULL, queued_at = ? WHERE id = ?`,
    setSha: `UPDATE files SET sha256 = ? WHERE id = ? AND version_key = ?`,
    deleteFile: `DELETE FROM files WHERE id = ?`,
    deleteDirectory: `DELETE FROM files WHERE directory = ?`,
    deliveries: `SELECT file_id AS fileId, vessel, state, attempts, error FROM deliveries WHERE file_id = ?`,
    delivery: `SELECT file_id AS fileId, vessel, state, attempts, error FROM deliveries WHERE file_id = ? AND vessel = ?`,
    upsertDelivery: `INSERT INTO deliveries (file_id, vessel, state, updated_at, size, tier, rank)
      SELECT f.id, @vessel, 'pending', @now, f.size, @tier, ${RANK_SQL} FROM files f WHERE f.id = @id
      ON CONFLICT (file_id, vessel) DO NOTHING`,
    // A new version: its place in the queue is that of a file not started (its size may differ too).
    resetDeliveries: `UPDATE deliveries SET state = 'pending', attempts = 0, error = NULL, updated_at = @now, size = @size, tier = @tier,
      rank = (SELECT ${RANK_SQL} FROM files f WHERE f.id = deliveries.file_id) WHERE file_id = @id`,
    // The targets of every file of a Directory at once (see syncAllTargets).
    addTargets: `INSERT INTO deliveries (file_id, vessel, state, updated_at, size, tier, rank)
      SELECT f.id, v.value, 'pending', @now, f.size, @tier, ${RANK_SQL} FROM files f, json_each(@vessels) v WHERE f.directory = @directory
      ON CONFLICT (file_id, vessel) DO NOTHING`,
    // A Directory's Priority or Order changed: every delivery of its files takes its new place,
    // but those already started, which keep theirs (see STARTED_TIER).
    rekey: `UPDATE deliveries SET tier = @tier, rank = (SELECT ${RANK_SQL} FROM files f WHERE f.id = deliveries.file_id)
      WHERE file_id IN (SELECT id FROM files WHERE directory = @directory) AND tier <> @started`,
    markStarted: `UPDATE deliveries SET tier = ? WHERE file_id = ? AND vessel = ? AND state = 'pending'`,
    dropQueueIndex: `DROP INDEX IF EXISTS deliveries_queue`,
    createQueueIndex: QUEUE_INDEX,
    ordersSaid: `SELECT value FROM meta WHERE key = 'queue_order'`,
    saveOrders: `INSERT INTO meta (key, value) VALUES ('queue_order', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    dropTargets: `DELETE FROM deliveries WHERE file_id IN (SELECT id FROM files WHERE directory = ?)
      AND vessel NOT IN (SELECT value FROM json_each(?))`,
    targetsSaid: `SELECT value FROM meta WHERE key = 'targets'`,
    saveTargets: `INSERT INTO meta (key, value) VALUES ('targets', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    setDelivery: `UPDATE deliveries SET state = ?, error = ?, attempts = attempts + ?, updated_at = ? WHERE file_id = ? AND vessel = ?`,
    deleteDelivery: `DELETE FROM deliveries WHERE file_id = ? AND vessel = ?`,
    retryFailed: `UPDATE deliveries SET state = 'pending', attempts = 0, updated_at = ? WHERE state = 'failed'`,
    failedDeliveries: `SELECT d.vessel, d.error, f.directory, f.relpath FROM deliveries d JOIN files f ON f.id = d.file_id WHERE d.state = 'failed' ORDER BY f.id`,
    addLeftover: `INSERT OR IGNORE INTO leftovers (vessel, chunk_prefix, assembly_path) VALUES (?, ?, ?)`,
    leftovers: `SELECT vessel, chunk_prefix AS chunkPrefix, assembly_path AS assemblyPrefix FROM leftovers WHERE vessel = ?`,
    deleteLeftover: `DELETE FROM leftovers WHERE vessel = ? AND chunk_prefix = ?`,
    hostKey: `SELECT fingerprint FROM host_keys WHERE host = ?`,
    addHostKey: `INSERT OR IGNORE INTO host_keys (host, fingerprint, first_seen) VALUES (?, ?, ?)`,
    statsDone: `INSERT INTO vessel_stats (vessel, files_done, bytes_done, last_success_at) VALUES (?, 1, ?, ?)
      ON CONFLICT (vessel) DO UPDATE SET files_done = files_done + 1, bytes_done = bytes_done + excluded.bytes_done, last_success_at = excluded.last_success_at`,
    statsError: `INSERT INTO vessel_stats (vessel, last_error, last_error_at) VALUES (?, ?, ?)
      ON CONFLICT (vessel) DO UPDATE SET last_error = excluded.last_error, last_error_at = excluded.last_error_at`,
    bandwidthClear: `DELETE FROM bandwidth`,
    bandwidth: `INSERT INTO bandwidth (vessel, limit_bps, rate_bps, updated_at) VALUES (?, ?, ?, ?)`,
  };
  // Each prepared on first use: `status` reading an older daemon's database (schema 3 has no
  // `deliveries.size`) never prepares what it cannot, and never needs.
  const prepared = {} as Record<keyof typeof statements, Statement>;
  for (const [name, sql] of Object.entries(statements)) {
    let statement: Statement | undefined;
    Object.defineProperty(prepared, name, { get: () => (statement ??= db.prepare(sql)) });
  }
  return prepared;
}

/** Only the daemon writes them, and a database from before they existed is only ever read. */
function prepareTransfers(db: StateConnection) {
  return {
    clear: db.prepare(`DELETE FROM transfers`),
    // Through SELECT, so a file forgotten meanwhile (processed, removed) adds no row.
    start: db.prepare(`INSERT INTO transfers (file_id, vessel, bytes_sent, size, started_at, updated_at)
      SELECT id, @vessel, 0, size, @now, @now FROM files WHERE id = @fileId
      ON CONFLICT (file_id, vessel) DO UPDATE SET size = excluded.size, updated_at = excluded.updated_at`),
    progress: db.prepare(`UPDATE transfers SET bytes_sent = ?, updated_at = ? WHERE file_id = ? AND vessel = ?`),
    end: db.prepare(`DELETE FROM transfers WHERE file_id = ? AND vessel = ?`),
  };
}

export class StateStore {
  readonly #db: StateConnection;
  readonly #stmt: ReturnType<typeof prepare>;
  /** Undefined only when reading a database written before `transfers` existed. */
  readonly #transfer: ReturnType<typeof prepareTransfers> | undefined;
  readonly #status: StatusQueries;

  constructor(file: string, options: StateStoreOptions = {}) {
    this.#db = new StateConnection(file, options);
    this.#stmt = prepare(this.#db);
    this.#transfer = this.#db.hasTable('transfers') ? prepareTransfers(this.#db) : undefined;
    this.#status = new StatusQueries(this.#db);
    // Only the daemon opens the store for writing, and a daemon that starts has nothing in flight.
    if (!options.readonly) this.#transfer!.clear.run();
    this.#db.reportFailuresTo(options.onFailure);
  }

  fileByPath(directory: string, relpath: string): FileVersion | undefined {
    const row = this.#stmt.fileByPath.get(directory, relpath) as FileRow | undefined;
    return row && toVersion(row);
  }

  file(id: number): FileVersion | undefined {
    const row = this.#stmt.fileById.get(id) as FileRow | undefined;
    return row && toVersion(row);
  }

  /** Up to `limit` files after id `afterId`, in id order: the whole table, a page at a time. */
  filesAfter(afterId: number, limit: number): FileVersion[] {
    return (this.#stmt.filesAfter.all(afterId, limit) as FileRow[]).map(toVersion);
  }

  /** Files recorded and not yet processed. */
  fileCount(): number {
    return (this.#stmt.fileCount.get() as { n: number }).n;
  }

  /**
   * The next pending deliveries to `vessel` after file id `afterId`, in the order the files
   * came: small ones (size ≤ `smallMax`) or large ones, as asked. The queue is read this way, a
   * page at a time, so that a backlog of millions costs memory only for a page.
   */
  waitingPage(vessel: string, kind: 'small' | 'large', smallMax: number, after: QueueKey, limit: number): WaitingRow[] {
    const statement = kind === 'small' ? this.#stmt.waitingSmall : this.#stmt.waitingLarge;
    return statement.all({ vessel, tier: after.tier, rank: after.rank, id: after.id, smallMax, limit }) as WaitingRow[];
  }

  /** The pending deliveries of a file, each with its place in its vessel's queue; only `vessel`'s when given. */
  waitingOf(fileId: number, vessel?: string): Array<WaitingRow & { vessel: string }> {
    const rows = this.#stmt.waitingOf.all(fileId) as Array<WaitingRow & { vessel: string }>;
    return vessel === undefined ? rows : rows.filter((r) => r.vessel === vessel);
  }

  /**
   * The upload of a file to `vessel` has begun (chunks may be on it): from now on, also after a
   * restart, it goes before any file not started (see STARTED_TIER), until a new version of it
   * replaces it.
   */
  markStarted(fileId: number, vessel: string): void {
    if (!this.#db.open) return;
    this.#db.write();
    this.#stmt.markStarted.run(STARTED_TIER, fileId, vessel);
  }

  /**
   * Gives every delivery of each Directory whose Priority or Order changed since the last call
   * its new place in the queue; a no-op when none did. A Directory the database has not seen
   * yet counts as having had the default (what schema 6 gave every row it found, and what
   * every new row had until now). Settings change between runs, not during one.
   */
  syncQueueOrder(orders: ReadonlyMap<string, DirectoryOrder>): void {
    const said = JSON.parse((this.#stmt.ordersSaid.get() as { value: string } | undefined)?.value ?? '{}') as Record<string, DirectoryOrder>;
    // Equal tiers are equal Priorities and Orders (see tierOf).
    const changed = [...orders].filter(([directory, o]) => tierOf(said[directory] ?? DEFAULT_ORDER) !== tierOf(o));
    if (changed.length === 0) return;
    // Moving each row within the queue's index is slow (100,000 rows of 200,000: 5.4 and 8.3 s
    // in two rounds on a busy machine); the index dropped and built again, sorted once, took 3.5
    // and 2.8 s with the same rows. In one transaction (no savepoint: see
    // StateConnection.alone), so that a crash never leaves the database without the index, and
    // the orders are remembered with the rows (those of Directories no longer in the settings
    // too: their rows keep the key they had until the replay forgets them).
    this.#db.alone(() => this.#db.transaction(() => {
      this.#stmt.dropQueueIndex.run();
      for (const [directory, o] of changed) this.#stmt.rekey.run({ directory, tier: tierOf(o), order: o.order, started: STARTED_TIER });
      this.#stmt.createQueueIndex.run();
      this.#stmt.saveOrders.run(JSON.stringify({ ...said, ...Object.fromEntries(orders) }));
    }));
  }

  /**
   * Every pending delivery to `vessel` fails with `reason` (the vessel was given up); returns
   * how many, and the first `list` of them, as [directory, relpath].
   */
  failPending(vessel: string, reason: string, list: number): { count: number; listed: { directory: string; relpath: string }[] } {
    // Outside a transaction (see StateConnection.alone): the list is read just before; a file
    // recorded in between is failed without being listed, which the count still says.
    return this.#db.alone(() => {
      const listed = this.#stmt.waitingPaths.all(vessel, list) as { directory: string; relpath: string }[];
      const count = this.#stmt.failPending.run(reason, Date.now(), vessel).changes;
      return { count, listed };
    });
  }

  /**
   * Makes every file's delivery rows match the vessels that should have it (`targets`:
   * Directory -> vessels), in a few statements; a no-op when the targets are those of the last
   * call, which the database remembers. Settings change between runs, not during one.
   */
  syncAllTargets(targets: ReadonlyMap<string, readonly string[]>, orders: ReadonlyMap<string, DirectoryOrder> = new Map()): void {
    const said = JSON.stringify([...targets].sort(([a], [b]) => (a < b ? -1 : 1)));
    if ((this.#stmt.targetsSaid.get() as { value: string } | undefined)?.value === said) return;
    // Each statement on its own (see StateConnection.alone); the targets are remembered last,
    // so a crash before that redoes them all at the next start.
    this.#db.alone(() => {
      const now = Date.now();
      for (const [directory, vessels] of targets) {
        this.#stmt.dropTargets.run(directory, JSON.stringify(vessels));
        const o = orders.get(directory) ?? DEFAULT_ORDER;
        this.#stmt.addTargets.run({ now, vessels: JSON.stringify(vessels), directory, tier: tierOf(o), order: o.order });
      }
      this.#stmt.saveTargets.run(said);
    });
  }

  /**
   * Records a version of a shore file and which vessels should have it. A different earlier
   * version of the same path is replaced: its deliveries start over, and `onSuperseded` gets the
   * old version and the vessels it went to, so its chunks there can be queued for removal.
   * `order`: the Directory's, which places the deliveries in their vessels' queues.
   */
  recordVersion(
    v: Omit<FileVersion, 'id' | 'sha256'>,
    vessels: readonly string[],
    onSuperseded: (old: FileVersion, vesselsWithChunks: string[]) => void,
    order: DirectoryOrder = DEFAULT_ORDER,
  ): FileVersion {
    // The same version seen again (every rescan sees every waiting file): nothing to write.
    // Read once: nothing else writes on this connection between here and the transaction.
    const existing = this.fileByPath(v.directory, v.relpath);
    if (existing && existing.versionKey === v.versionKey) return existing;
    this.#db.write();
    return this.#db.transaction(() => {
      const now = Date.now();
      let id: number;
      if (existing) {
        id = existing.id;
        onSuperseded(existing, this.deliveries(id).map((d) => d.vessel));
        this.#stmt.updateFile.run(v.size, v.mtimeMs, v.versionKey, now, id);
        this.#stmt.resetDeliveries.run({ now, size: v.size, id, tier: tierOf(order), order: order.order });
      } else {
        id = Number(this.#stmt.insertFile.run(v.directory, v.relpath, v.size, v.mtimeMs, v.versionKey, now).lastInsertRowid);
      }
      this.#syncTargets(id, vessels, now, order);
      return this.file(id)!;
    });
  }

  /** Makes the delivery rows of a file match the vessels that should have it now. */
  #syncTargets(fileId: number, vessels: readonly string[], now: number, order: DirectoryOrder): void {
    const wanted = new Set(vessels);
    for (const d of this.deliveries(fileId)) {
      if (!wanted.has(d.vessel)) this.#stmt.deleteDelivery.run(fileId, d.vessel);
    }
    for (const vessel of wanted) this.#stmt.upsertDelivery.run({ id: fileId, vessel, now, tier: tierOf(order), order: order.order });
  }

  /** Stores the shore hash of a version; a no-op when the row has moved on to another version. */
  setSha256(fileId: number, versionKey: string, sha256: string): void {
    this.#db.write();
    this.#stmt.setSha.run(sha256, fileId, versionKey);
  }

  /** Forgets a file (processed, or gone from the shore); its deliveries and transfers go with it. */
  deleteFile(fileId: number): void {
    this.#db.write();
    this.#stmt.deleteFile.run(fileId);
  }

  /** Forgets every file of a Directory (removed or changed by a reload); returns how many. */
  forgetDirectory(directory: string): number {
    return this.#db.alone(() => this.#stmt.deleteDirectory.run(directory).changes);
  }

  deliveries(fileId: number): Delivery[] {
    return this.#stmt.deliveries.all(fileId) as Delivery[];
  }

  delivery(fileId: number, vessel: string): Delivery | undefined {
    return this.#stmt.delivery.get(fileId, vessel) as Delivery | undefined;
  }

  markDone(fileId: number, vessel: string, bytes: number): void {
    this.#db.write();
    this.#db.transaction(() => {
      const now = Date.now();
      this.#stmt.setDelivery.run('done', null, 0, now, fileId, vessel);
      this.#stmt.statsDone.run(vessel, bytes, now);
    });
  }

  /** A failed attempt: `final` marks the delivery failed (until the next retry round). */
  markAttemptFailed(fileId: number, vessel: string, error: string, final: boolean): void {
    this.#db.write();
    this.#db.transaction(() => {
      const now = Date.now();
      this.#stmt.setDelivery.run(final ? 'failed' : 'pending', error, 1, now, fileId, vessel);
      this.#stmt.statsError.run(vessel, error, now);
    });
  }

  recordVesselError(vessel: string, error: string): void {
    this.#db.write();
    this.#stmt.statsError.run(vessel, error, Date.now());
  }

  /** Puts every failed delivery back in line; returns how many. */
  retryFailed(): number {
    return this.#db.alone(() => this.#stmt.retryFailed.run(Date.now()).changes);
  }

  failures(): { vessel: string; error: string | null; directory: string; relpath: string }[] {
    return this.#stmt.failedDeliveries.all() as { vessel: string; error: string | null; directory: string; relpath: string }[];
  }

  addLeftover(l: Leftover): void {
    this.#db.write();
    this.#stmt.addLeftover.run(l.vessel, l.chunkPrefix, l.assemblyPrefix);
  }

  leftovers(vessel: string): Leftover[] {
    return this.#stmt.leftovers.all(vessel) as Leftover[];
  }

  deleteLeftover(l: Leftover): void {
    this.#db.write();
    this.#stmt.deleteLeftover.run(l.vessel, l.chunkPrefix);
  }

  hostKey(host: string): string | undefined {
    return (this.#stmt.hostKey.get(host) as { fingerprint: string } | undefined)?.fingerprint;
  }

  recordHostKey(host: string, fingerprint: string): void {
    this.#db.write();
    this.#stmt.addHostKey.run(host, fingerprint, Date.now());
  }

  /**
   * A vessel worker starts (or resumes after a retry) delivering a file. A row already there
   * keeps its start time and bytes, so a retry does not look like a new transfer.
   */
  transferStarted(fileId: number, vessel: string): void {
    if (!this.#db.open) return;
    this.#db.write();
    this.#transfer!.start.run({ fileId, vessel, now: Date.now() });
  }

  /** Bytes of the file the vessel has now (resumed ones included); called about once a second. */
  transferProgress(fileId: number, vessel: string, bytesSent: number): void {
    if (!this.#db.open) return;
    this.#db.write();
    this.#transfer!.progress.run(bytesSent, Date.now(), fileId, vessel);
  }

  /** The delivery ended, whatever the outcome. Harmless after close (a stop that outran its jobs). */
  transferEnded(fileId: number, vessel: string): void {
    if (!this.#db.open) return;
    this.#db.write();
    this.#transfer!.end.run(fileId, vessel);
  }

  /** The bandwidth limits in force and the rates measured (`vessel` '' for all vessels), for `status`. */
  recordBandwidth(rows: { vessel: string; limit: number | null; rate: number }[]): void {
    if (!this.#db.open) return;
    this.#db.write();
    const now = Date.now();
    // All rows anew: a vessel no longer in the settings leaves none behind.
    this.#stmt.bandwidthClear.run();
    for (const r of rows) this.#stmt.bandwidth.run(r.vessel, r.limit, r.rate, now);
  }

  /** What the daemon last published of the bandwidth limits. */
  bandwidth(): BandwidthRow[] {
    return this.#status.bandwidth();
  }

  /** Runs `fn` in one transaction: every query in it sees the database as of the same moment. */
  snapshot<T>(fn: () => T): T {
    return this.#db.transaction(fn);
  }

  /** Deliveries under way; empty for a database from before they were recorded. */
  transfers(): Transfer[] {
    return this.#status.transfers();
  }

  /** Pending deliveries (those in flight included) per vessel that has any. */
  waitingByVessel(): Waiting[] {
    return this.#status.waitingByVessel();
  }

  /** The pending delivery whose file has been queued longest. */
  oldestWaiting(): OldestWaiting | undefined {
    return this.#status.oldestWaiting();
  }

  /** The first `limit` failed deliveries, by vessel and in the order they go when tried again. */
  failedDeliveries(limit: number): FailedDelivery[] {
    return this.#status.failedDeliveries(limit);
  }

  /** Failed deliveries per vessel that has any. */
  failedByVessel(): { vessel: string; files: number }[] {
    return this.#status.failedByVessel();
  }

  vesselStats(): VesselStats[] {
    return this.#status.vesselStats();
  }

  /** Commits this turn's writes now rather than at the next turn, for a reader that must see them at once. */
  flush(): void {
    this.#db.flush();
  }

  close(): void {
    this.#db.close();
  }
}
