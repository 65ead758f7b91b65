/**
 * What the push daemon tells operators while it works, besides one line per file:
 * - metrics to Telegraf (`MetricsSocket`): `contentmonster_transfer` per file and vessel, and
 *   `contentmonster_queue` per vessel every `intervalMs`;
 * - a summary log line per vessel at info once a minute while there is work, so `journalctl` shows
 *   progress on a long backlog without reading every transfer line.
 * The sink never blocks or throws: a missing or dead socket cannot slow replication.
 */
import type { Logger } from '../log.js';
import { transferFields, type Point } from '../metrics/line-protocol.js';
import { formatBytes } from '../cli/format.js';

export interface QueueDepth {
  vessel: string;
  files: number;
  bytes: number;
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

export function queuePoint(q: QueueDepth, time = new Date()): Point {
  return { measurement: 'contentmonster_queue', tags: { vessel: q.vessel }, fields: { files: q.files, bytes: q.bytes }, time };
}

export interface PushReportOptions {
  /** Between two `contentmonster_queue` points. */
  queueIntervalMs?: number;
  /** Between two summary lines while busy. */
  summaryIntervalMs?: number;
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

function amount(files: number, bytes: number): string {
  return `${files} ${files === 1 ? 'file' : 'files'} (${formatBytes(bytes)})`;
}
