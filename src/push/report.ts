/**
 * What the push daemon tells operators while it works, besides one line per file:
 * - metrics to Telegraf (`MetricsSocket`): `contentmonster_transfer` per file and vessel, and
 *   `contentmonster_queue` per vessel every `intervalMs`;
 * - a summary log line per vessel at info once a minute while there is work, so `journalctl` shows
 *   progress on a long backlog without reading every transfer line;
 * - under a `Type=notify` unit, the one-line STATUS= `systemctl status` shows (statusLine),
 *   looked at every few seconds and sent when it changed.
 * The sink never blocks or throws: a missing or dead socket cannot slow replication.
 */
import type { Logger } from '../log.js';
import type { ServiceNotifier } from '../systemd-notify.js';
import { transferFields, type Point } from '../metrics/line-protocol.js';
import { formatBytes } from '../cli/format.js';

export interface QueueDepth {
  vessel: string;
  files: number;
  bytes: number;
  /** The vessel's bandwidth limit in force (BandwidthLimit), bytes a second; null or absent = none. */
  limitBytesPerSecond?: number | null;
  /** Bytes a second sent to the vessel over the last few seconds. */
  bytesPerSecond?: number;
}

export interface Delivered {
  vessel: string;
  directory: string;
  /** Bytes that crossed the link for this file (0 when it was on the vessel already). */
  bytes: number;
  durationS: number;
}

export function transferPoint(d: Delivered, time = new Date()): Point {
  return {
    measurement: 'contentmonster_transfer',
    tags: { vessel: d.vessel, directory: d.directory },
    fields: transferFields(d.bytes, d.durationS),
    time,
  };
}

/** Without a limit in force, `bandwidth_limit_bytes_per_second` is left out (no number means "none"). */
export function queuePoint(q: QueueDepth, time = new Date()): Point {
  const fields: Point['fields'] = { files: q.files, bytes: q.bytes };
  if (q.bytesPerSecond !== undefined) fields.bytes_per_second = q.bytesPerSecond;
  if (q.limitBytesPerSecond != null) fields.bandwidth_limit_bytes_per_second = q.limitBytesPerSecond;
  return { measurement: 'contentmonster_queue', tags: { vessel: q.vessel }, fields, time };
}

export interface PushReportOptions {
  /** Between two `contentmonster_queue` points. */
  queueIntervalMs?: number;
  /** Between two summary lines while busy. */
  summaryIntervalMs?: number;
  /** Where the STATUS= line goes (the daemon's service manager), if anywhere. */
  service?: Pick<ServiceNotifier, 'status'>;
  /** Between two looks at the STATUS= line (sent only when it changed). */
  statusIntervalMs?: number;
}

export class PushReport {
  readonly #metrics: { send(point: Point): void };
  readonly #log: Logger;
  readonly #waiting: () => QueueDepth[];
  readonly #timers: NodeJS.Timeout[] = [];
  readonly #summaryEvery: string;
  /** Delivered since the last summary line, per vessel. */
  #recent = new Map<string, { files: number; bytes: number }>();

  constructor(metrics: { send(point: Point): void }, log: Logger, waiting: () => QueueDepth[], options: PushReportOptions = {}) {
    this.#metrics = metrics;
    this.#log = log;
    this.#waiting = waiting;
    this.#timers.push(setInterval(() => this.#sendQueue(), options.queueIntervalMs ?? 10_000).unref());
    const summaryMs = options.summaryIntervalMs ?? 60_000;
    this.#summaryEvery = summaryMs === 60_000 ? 'minute' : `${summaryMs / 1000} s`;
    this.#timers.push(setInterval(() => this.#summarize(), summaryMs).unref());
    const service = options.service;
    if (service) this.#timers.push(setInterval(() => service.status(statusLine(this.#waiting())), options.statusIntervalMs ?? 5000).unref());
  }

  delivered(d: Delivered): void {
    this.#metrics.send(transferPoint(d));
    const r = this.#recent.get(d.vessel) ?? { files: 0, bytes: 0 };
    r.files++;
    r.bytes += d.bytes;
    this.#recent.set(d.vessel, r);
  }

  #sendQueue(): void {
    const now = new Date();
    for (const q of this.#waiting()) this.#metrics.send(queuePoint(q, now));
  }

  /**
   * While there is work, one line per vessel: what waits and what went out since the last
   * line, in files and bytes an operator can read (`waiting="80 files (1.20 GiB)"`).
   */
  #summarize(): void {
    const waiting = this.#waiting();
    const recent = this.#recent;
    this.#recent = new Map();
    if (waiting.every((q) => q.files === 0) && recent.size === 0) return;
    for (const q of waiting) {
      const r = recent.get(q.vessel) ?? { files: 0, bytes: 0 };
      if (q.files === 0 && r.files === 0) continue;
      this.#log.info({ vessel: q.vessel, waiting: amount(q.files, q.bytes), sent: amount(r.files, r.bytes) }, `progress in the last ${this.#summaryEvery}`);
    }
  }

  stop(): void {
    for (const t of this.#timers) clearInterval(t);
    this.#sendQueue();
  }
}

/** systemd shows STATUS= on one line of `systemctl status`: past this, the line is shortened. */
export const STATUS_MAX_CHARS = 160;

/**
 * The STATUS= line: every vessel, in the order of the settings, with what waits for it
 * (`2 vessels: backup1 12 waiting (3.4 MiB), backup2 up to date`). Too long for one line (many
 * vessels, long names), it names the vessels with the most bytes waiting first and counts the rest.
 */
export function statusLine(depths: readonly QueueDepth[], maxChars = STATUS_MAX_CHARS): string {
  if (depths.length === 0) return 'no vessels';
  const head = `${depths.length} ${depths.length === 1 ? 'vessel' : 'vessels'}`;
  const part = (q: QueueDepth) => (q.files === 0 ? `${q.vessel} up to date` : `${q.vessel} ${q.files} waiting (${formatBytes(q.bytes)})`);
  const full = `${head}: ${depths.map(part).join(', ')}`;
  if (full.length <= maxChars) return full;
  const waiting = depths.filter((q) => q.files > 0).sort((a, b) => b.bytes - a.bytes || b.files - a.files);
  if (waiting.length === 0) return `${head}, all up to date`;
  const upToDate = depths.length - waiting.length;
  const tail = upToDate > 0 ? `; ${upToDate} up to date` : '';
  // As many of the vessels with the most waiting as fit, then how many more wait and how much.
  for (let shown = waiting.length; shown > 0; shown--) {
    const rest = waiting.slice(shown);
    const more = rest.length === 0 ? '' : `, ${rest.length} more with ${sumOf(rest)}`;
    const line = `${head}: ${waiting.slice(0, shown).map(part).join(', ')}${more}${tail}`;
    if (line.length <= maxChars) return line;
  }
  return `${head}, ${waiting.length} with ${sumOf(waiting)}${tail}`;
}

function sumOf(depths: readonly QueueDepth[]): string {
  const files = depths.reduce((n, q) => n + q.files, 0);
  return `${files} waiting (${formatBytes(depths.reduce((n, q) => n + q.bytes, 0))})`;
}

function amount(files: number, bytes: number): string {
  return `${files} ${files === 1 ? 'file' : 'files'} (${formatBytes(bytes)})`;
}
