/**
 * What the push daemon is doing, read from its state database: per vessel what waits, what is
 * in flight and how far, what is done and the last error; the oldest waiting file; the failed
 * files with their reasons. The database is opened read-only: WAL lets this run next to the
 * daemon without taking a lock it would wait for. The report is plain data (ISO times, raw byte
 * counts) so that `--json` prints it as it is.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Settings } from './settings/load.js';
import { rateAt, type Timetable } from './settings/timetable.js';
import type { BandwidthRow } from './state/status-queries.js';
import { openStateStore } from './state/database.js';
import type { StateStore } from './state/store.js';

export interface StatusReport {
  /** The state database read. */
  database: string;
  /** False when there is no state database yet (the daemon has not run): every count is then 0. */
  databaseFound: boolean;
  /** When the database was read (ISO 8601); ages are relative to it. */
  generatedAt: string;
  /** Every vessel in the settings, in their order, then any other vessel with work in the database. */
  vessels: VesselStatus[];
  /** The file that has waited longest for some vessel; null when nothing waits. */
  oldestWaiting: OldestWaitingFile | null;
  /**
   * Deliveries given up for this round (retried at the next rescan and at every start): the
   * first FAILED_LISTED of them, by vessel; `failedTotal` counts them all.
   */
  failed: FailedFile[];
  failedTotal: number;
  /** `[MONSTER] BandwidthLimit`: the limit on all vessels together, and their rate. */
  bandwidth: Bandwidth;
}

/** A bandwidth limit (`BandwidthLimit`) and the rate actually sent. */
export interface Bandwidth {
  /** The setting as written (`off` when not set). */
  setting: string;
  /** Bytes a second in force now (what the daemon applies, else what the settings give now); null = no limit. */
  limitBytesPerSecond: number | null;
  /** Bytes a second sent over the last few seconds, as the daemon measured it; null when no daemon runs. */
  bytesPerSecond: number | null;
}

/** A published rate older than this is a daemon's that stopped (it publishes every 2 s). */
const BANDWIDTH_FRESH_MS = 10_000;

/** Failed deliveries listed at most (a vessel given up with a million files waiting fails them all). */
export const FAILED_LISTED = 100;

export interface VesselStatus {
  name: string;
  /** Pending deliveries, those in flight included. */
  waiting: { files: number; bytes: number };
  inFlight: InFlightFile[];
  /** Confirmed on this vessel since the state database was created. */
  done: { files: number; bytes: number };
  lastSuccessAt: string | null;
  lastError: { message: string; at: string } | null;
  /** Its `BandwidthLimit` and the rate it is sent. */
  bandwidth: Bandwidth;
}

export interface InFlightFile {
  /** Local path (Location + relative path), or `Directory name/relative path` for a Directory gone from the settings. */
  path: string;
  /** Bytes of the file the vessel has, resumed ones included. Updated about once a second. */
  bytesSent: number;
  size: number;
  /** bytesSent / size in %, rounded down to a tenth, so 100 means all bytes are there. */
  percent: number;
  startedAt: string;
  updatedAt: string;
}

export interface OldestWaitingFile {
  path: string;
  vessel: string;
  queuedAt: string;
  ageSeconds: number;
}

export interface FailedFile {
  vessel: string;
  path: string;
  reason: string;
  attempts: number;
  at: string;
}

/**
 * Reads the report. Without a database yet (the daemon has not run), the report of one that
 * knows nothing: `databaseFound` false, every count 0. A database that cannot be read is a
 * ConfigError naming it, as for `run` and `check`.
 */
export function readStatus(settings: Settings, now: () => Date = () => new Date()): StatusReport {
  const file = settings.monster.database;
  if (!existsSync(file)) return empty(settings, now());
  const store = openStateStore(settings, { readonly: true });
  try {
    // One snapshot, so a file that finishes meanwhile is not counted both waiting and done.
    return store.snapshot(() => summarize(settings, store, now()));
  } finally {
    store.close();
  }
}

function summarize(settings: Settings, store: StateStore, at: Date): StatusReport {
  const locations = new Map(settings.directories.map((d) => [d.name, d.location]));
  const pathOf = (r: { directory: string; relpath: string }) => {
    const location = locations.get(r.directory);
    return location === undefined ? `${r.directory}/${r.relpath}` : join(location, r.relpath);
  };
  const waiting = new Map(store.waitingByVessel().map((w) => [w.vessel, w]));
  const stats = new Map(store.vesselStats().map((s) => [s.vessel, s]));
  const transfers = store.transfers();
  const names = [...new Set([...settings.vessels.map((v) => v.name), ...waiting.keys(), ...transfers.map((t) => t.vessel)])];
  const published = new Map(store.bandwidth().filter((b) => at.getTime() - b.updatedAt <= BANDWIDTH_FRESH_MS).map((b) => [b.vessel, b]));
  const vessels = names.map((name): VesselStatus => {
    const w = waiting.get(name);
    const s = stats.get(name);
    const configured = settings.vessels.find((v) => v.name === name);
    return {
      name,
      waiting: { files: w?.files ?? 0, bytes: w?.bytes ?? 0 },
      inFlight: transfers.filter((t) => t.vessel === name).map((t) => ({
        path: pathOf(t),
        bytesSent: t.bytesSent,
        size: t.size,
        percent: percentOf(t.bytesSent, t.size),
        startedAt: iso(t.startedAt),
        updatedAt: iso(t.updatedAt),
      })),
      done: { files: s?.filesDone ?? 0, bytes: s?.bytesDone ?? 0 },
      lastSuccessAt: s?.lastSuccessAt == null ? null : iso(s.lastSuccessAt),
      lastError: s?.lastError == null || s.lastErrorAt == null ? null : { message: s.lastError, at: iso(s.lastErrorAt) },
      bandwidth: bandwidthOf(configured, published.get(name), at),
    };
  });
  const oldest = store.oldestWaiting();
  return {
    database: settings.monster.database,
    databaseFound: true,
    generatedAt: at.toISOString(),
    vessels,
    oldestWaiting: oldest ? {
      path: pathOf(oldest),
      vessel: oldest.vessel,
      queuedAt: iso(oldest.queuedAt),
      ageSeconds: Math.max(0, Math.round((at.getTime() - oldest.queuedAt) / 1000)),
    } : null,
    failedTotal: store.failedByVessel().reduce((n, v) => n + v.files, 0),
    failed: store.failedDeliveries(FAILED_LISTED).map((f) => ({
      vessel: f.vessel,
      path: pathOf(f),
      reason: f.error ?? '(no reason recorded)',
      attempts: f.attempts,
      at: iso(f.updatedAt),
    })),
    bandwidth: bandwidthOf(settings.monster, published.get(''), at),
  };
}

/**
 * The limit the daemon applies and the rate it measured, when it published them lately; else
 * the limit the settings give now (in UTC or the zone set) and no rate.
 */
function bandwidthOf(configured: { bandwidthLimit: Timetable; timeZone: string } | undefined, row: BandwidthRow | undefined, at: Date): Bandwidth {
  const setting = configured?.bandwidthLimit.text ?? 'off';
  if (row) return { setting, limitBytesPerSecond: row.limit, bytesPerSecond: Math.round(row.rate) };
  const limit = configured ? rateAt(configured.bandwidthLimit, at.getTime(), configured.timeZone) : null;
  return { setting, limitBytesPerSecond: limit, bytesPerSecond: null };
}

function empty(settings: Settings, at: Date): StatusReport {
  return {
    database: settings.monster.database,
    databaseFound: false,
    generatedAt: at.toISOString(),
    vessels: settings.vessels.map((v) => ({
      name: v.name, waiting: { files: 0, bytes: 0 }, inFlight: [], done: { files: 0, bytes: 0 }, lastSuccessAt: null, lastError: null,
      bandwidth: bandwidthOf(v, undefined, at),
    })),
    oldestWaiting: null,
    failed: [],
    failedTotal: 0,
    bandwidth: bandwidthOf(settings.monster, undefined, at),
  };
}

/** Rounded down, so a transfer short of its last byte never reads 100. */
export function percentOf(bytes: number, size: number): number {
  if (size <= 0) return 0;
  return Math.floor(Math.min(bytes, size) * 1000 / size) / 10;
}

const iso = (ms: number) => new Date(ms).toISOString();
