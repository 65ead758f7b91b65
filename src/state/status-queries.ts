/**
 * The summaries `status` shows, read from the state store (next to a running daemon: each is
 * one query, and StateStore.snapshot() gives several the same moment). Times are ms since the
 * epoch.
 */
import type { StateConnection, Statement } from './sqlite.js';

/** A file and one vessel it goes to. */
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

/** What the daemon last published of one bandwidth limit; `vessel` '' is the global one. */
export interface BandwidthRow {
  vessel: string;
  /** Bytes a second; null = no limit. */
  limit: number | null;
  rate: number;
  updatedAt: number;
}

export class StatusQueries {
  readonly #waiting: Statement;
  readonly #oldestWaiting: Statement;
  readonly #failed: Statement;
  readonly #failedByVessel: Statement;
  readonly #vesselStats: Statement;
  /** Undefined only when reading a database written before `transfers` existed. */
  readonly #transfers: Statement | undefined;
  /** Undefined when reading a database no daemon with bandwidth limits has written yet. */
  readonly #bandwidth: Statement | undefined;

  constructor(db: StateConnection) {
    // Schema 5 keeps the totals per vessel (see schema.ts); schema 4 has each delivery's size
    // beside it, indexed, so they are counted without touching `files`. A database of an older
    // daemon (read-only here) is summed the slow way.
    const schema4 = db.hasColumn('deliveries', 'size');
    this.#waiting = db.hasTable('waiting_totals')
      ? db.prepare(`SELECT vessel, files, bytes FROM waiting_totals WHERE files > 0 ORDER BY vessel`)
      : schema4
        ? db.prepare(`SELECT vessel, COUNT(*) AS files, SUM(size) AS bytes FROM deliveries WHERE state = 'pending' GROUP BY vessel ORDER BY vessel`)
        : db.prepare(`SELECT d.vessel, COUNT(*) AS files, SUM(f.size) AS bytes FROM deliveries d JOIN files f ON f.id = d.file_id
          WHERE d.state = 'pending' GROUP BY d.vessel ORDER BY d.vessel`);
    // Files oldest first through `files_by_age` until one has a pending delivery: the planner,
    // left to itself, sorted every pending delivery instead (1.3 s for 3 million).
    this.#oldestWaiting = schema4
      ? db.prepare(`SELECT (SELECT d.vessel FROM deliveries d WHERE d.file_id = f.id AND d.state = 'pending' ORDER BY d.vessel LIMIT 1) AS vessel,
        f.directory, f.relpath, f.queued_at AS queuedAt FROM files f INDEXED BY files_by_age
        WHERE EXISTS (SELECT 1 FROM deliveries d WHERE d.file_id = f.id AND d.state = 'pending') ORDER BY f.queued_at, f.id LIMIT 1`)
      : db.prepare(`SELECT d.vessel, f.directory, f.relpath, f.queued_at AS queuedAt FROM files f JOIN deliveries d ON d.file_id = f.id
        WHERE d.state = 'pending' ORDER BY f.queued_at, f.id, d.vessel LIMIT 1`);
    // In queue order where the queue's index has it (schema 6): a vessel given up fails every
    // file it had waiting, and the first 100 of a million are then read off the index, not sorted.
    const queueOrder = db.hasColumn('deliveries', 'tier') ? 'd.tier, d.rank, ' : '';
    this.#failed = db.prepare(`SELECT d.vessel, f.directory, f.relpath, d.error, d.attempts, d.updated_at AS updatedAt
      FROM deliveries d JOIN files f ON f.id = d.file_id WHERE d.state = 'failed' ORDER BY d.vessel, ${queueOrder}d.file_id LIMIT ?`);
    this.#failedByVessel = db.prepare(`SELECT vessel, COUNT(*) AS files FROM deliveries WHERE state = 'failed' GROUP BY vessel ORDER BY vessel`);
    this.#vesselStats = db.prepare(`SELECT vessel, files_done AS filesDone, bytes_done AS bytesDone, last_success_at AS lastSuccessAt,
      last_error AS lastError, last_error_at AS lastErrorAt FROM vessel_stats ORDER BY vessel`);
    this.#transfers = db.hasTable('transfers')
      ? db.prepare(`SELECT t.vessel, f.directory, f.relpath, t.bytes_sent AS bytesSent, t.size, t.started_at AS startedAt, t.updated_at AS updatedAt
        FROM transfers t JOIN files f ON f.id = t.file_id ORDER BY t.vessel, t.started_at, f.relpath`)
      : undefined;
    this.#bandwidth = db.hasTable('bandwidth')
      ? db.prepare(`SELECT vessel, limit_bps AS "limit", rate_bps AS rate, updated_at AS updatedAt FROM bandwidth ORDER BY vessel`)
      : undefined;
  }

  bandwidth(): BandwidthRow[] {
    return (this.#bandwidth?.all() ?? []) as BandwidthRow[];
  }

  /** Deliveries under way; empty for a database from before they were recorded. */
  transfers(): Transfer[] {
    return (this.#transfers?.all() ?? []) as Transfer[];
  }

  /** Pending deliveries (those in flight included) per vessel that has any. */
  waitingByVessel(): Waiting[] {
    return this.#waiting.all() as Waiting[];
  }

  /** The pending delivery whose file has been queued longest. */
  oldestWaiting(): OldestWaiting | undefined {
    return this.#oldestWaiting.get() as OldestWaiting | undefined;
  }

  /** The first `limit` failed deliveries, by vessel and in the order they go when tried again. */
  failedDeliveries(limit: number): FailedDelivery[] {
    return this.#failed.all(limit) as FailedDelivery[];
  }

  failedByVessel(): { vessel: string; files: number }[] {
    return this.#failedByVessel.all() as { vessel: string; files: number }[];
  }

  vesselStats(): VesselStats[] {
    return this.#vesselStats.all() as VesselStats[];
  }
}
