/**
 * Bandwidth limits as the daemon applies them: one ScheduledLimit per vessel (its
 * `BandwidthLimit`) and one for all of them (`[MONSTER] BandwidthLimit`), each a token bucket
 * whose rate follows its timetable: a timer at the next boundary sets the new rate, live, on
 * the bucket the transfers are waiting on (nothing is dropped or reconnected). Every SFTP write
 * takes its bytes from its vessel's limit, then from the global one (`throttleFor`), before it
 * is issued; with both `off` that costs a counter and no promise.
 */
import type { Logger } from '../../log.js';
import type { Settings, VesselSettings } from '../../settings/load.js';
import { formatBytes } from '../../cli/format.js';
import { pushEvents } from '../events.js';
import { isUnlimited, nextBoundary, rateAt, type Rate, type Timetable } from '../../settings/timetable.js';
import { TokenBucket, realClock, type BucketClock } from './token-bucket.js';

/** Seconds the measured rate is averaged over. */
const METER_SECONDS = 5;

/**
 * The wall clock timetables are read against: `Date.now()`. Test-only: when the environment
 * variable CONTENTMONSTER_TEST_CLOCK holds an ISO 8601 time, this clock reads that time when
 * the process starts and runs on from it, so that an end-to-end test can put a timetable
 * boundary a few seconds after the start. Only timetables read it; operators have no use for it.
 */
export function scheduleClock(env: NodeJS.ProcessEnv = process.env): () => number {
  const fake = env.CONTENTMONSTER_TEST_CLOCK ? Date.parse(env.CONTENTMONSTER_TEST_CLOCK) : NaN;
  if (Number.isNaN(fake)) return () => Date.now();
  const offset = fake - Date.now();
  return () => Date.now() + offset;
}

/** Bytes counted per whole second, for the rate `status` and the metrics show. */
export class RateMeter {
  readonly #now: () => number;
  readonly #slots = new Array<number>(METER_SECONDS + 1).fill(0);
  #second: number;

  constructor(now: () => number = () => performance.now()) {
    this.#now = now;
    this.#second = Math.floor(now() / 1000);
  }

  add(bytes: number): void {
    this.#advance();
    this.#slots[this.#second % this.#slots.length] += bytes;
  }

  /** Bytes a second over the last METER_SECONDS whole seconds. */
  rate(): number {
    this.#advance();
    let sum = 0;
    for (let s = this.#second - METER_SECONDS; s < this.#second; s++) sum += this.#slots[((s % this.#slots.length) + this.#slots.length) % this.#slots.length];
    return sum / METER_SECONDS;
  }

  #advance(): void {
    const second = Math.floor(this.#now() / 1000);
    for (let s = Math.max(this.#second + 1, second - this.#slots.length + 1); s <= second; s++) this.#slots[s % this.#slots.length] = 0;
    this.#second = Math.max(this.#second, second);
  }
}

export interface ScheduledLimitOptions {
  /** The wall clock timetables are read against (see scheduleClock). */
  wallNow?: () => number;
  bucketClock?: BucketClock;
}

/** One bucket that follows a timetable; `vessel` null is the global limit. */
export class ScheduledLimit {
  readonly vessel: string | null;
  readonly #timetable: Timetable;
  readonly #zone: string;
  readonly #log: Logger;
  readonly #wallNow: () => number;
  readonly #bucket: TokenBucket;
  readonly #meter: RateMeter;
  readonly #unlimited: boolean;
  #timer: NodeJS.Timeout | undefined;

  constructor(vessel: string | null, timetable: Timetable, zone: string, log: Logger, options: ScheduledLimitOptions = {}) {
    this.vessel = vessel;
    this.#timetable = timetable;
    this.#zone = zone;
    this.#log = log;
    this.#wallNow = options.wallNow ?? (() => Date.now());
    const clock = options.bucketClock ?? realClock;
    this.#unlimited = isUnlimited(timetable);
    this.#bucket = new TokenBucket(this.#unlimited ? null : rateAt(timetable, this.#wallNow(), zone), clock);
    this.#meter = new RateMeter(() => clock.now());
  }

  /** The limit in force; null = none. */
  get limit(): Rate {
    return this.#bucket.rate;
  }

  /** Whether a limit is configured at any time of the week. */
  get configured(): boolean {
    return !this.#unlimited;
  }

  /** Bytes a second actually taken over the last few seconds. */
  rate(): number {
    return this.#meter.rate();
  }

  /** Says the limit in force, and keeps it in force at every boundary from now on. */
  start(): void {
    if (this.#unlimited) return;
    this.#apply(true);
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#bucket.setRate(null); // lets every waiter go: the transfers are stopping
  }

  /** See TokenBucket.take; counts the bytes for the measured rate. */
  take(bytes: number, signal?: AbortSignal): Promise<void> | undefined {
    this.#meter.add(bytes);
    return this.#bucket.take(bytes, signal);
  }

  #apply(first: boolean): void {
    const now = this.#wallNow();
    const rate = rateAt(this.#timetable, now, this.#zone);
    if (first || rate !== this.#bucket.rate) {
      this.#bucket.setRate(rate);
      const fields = { vessel: this.vessel ?? 'all vessels', limit: rate === null ? 'off' : `${formatBytes(rate)}/s` };
      this.#log.info(fields, first ? 'bandwidth limit' : 'bandwidth limit changed');
      pushEvents.emit({ type: 'bandwidthLimit', vessel: this.vessel, bytesPerSecond: rate });
    }
    const next = nextBoundary(this.#timetable, now, this.#zone);
    if (next === null) return;
    // A timer late by a few ms is harmless; one that fires early (the clock was set back) just
    // finds the same rate and waits for the boundary again.
    this.#timer = setTimeout(() => this.#apply(false), Math.max(10, next - now + 10)).unref();
  }
}

/**
 * What a vessel's writes wait on: its own limit, then the global one. Without a limit in force
 * it returns undefined at once (the bytes are only counted, for the measured rate).
 */
export function throttleFor(vessel: ScheduledLimit, global: ScheduledLimit | undefined): ((bytes: number, signal?: AbortSignal) => Promise<void> | undefined) {
  return (bytes, signal) => {
    const mine = vessel.take(bytes, signal);
    if (!global) return mine;
    if (!mine) return global.take(bytes, signal);
    return mine.then(() => global.take(bytes, signal));
  };
}

/** What `status` and the metrics show of one limit; `vessel` null is the global one. */
export interface BandwidthFigures {
  vessel: string | null;
  /** Bytes a second in force now; null = no limit. */
  limit: Rate;
  /** Bytes a second actually sent over the last few seconds. */
  rate: number;
}

/** Every vessel's limit and the global one, from the settings. */
export class BandwidthLimits {
  readonly #global: ScheduledLimit;
  readonly #vessels: Map<string, { limit: ScheduledLimit; key: string }>;
  readonly #log: Logger;
  readonly #options: ScheduledLimitOptions;
  #started = false;

  constructor(settings: Settings, log: Logger, options: ScheduledLimitOptions = {}) {
    const wallNow = options.wallNow ?? scheduleClock();
    this.#log = log;
    this.#options = { ...options, wallNow };
    this.#global = new ScheduledLimit(null, settings.monster.bandwidthLimit, settings.monster.timeZone, log, this.#options);
    this.#vessels = new Map(settings.vessels.map((v) => [v.name, this.#limitOf(v)]));
  }

  #limitOf(v: VesselSettings): { limit: ScheduledLimit; key: string } {
    return { limit: new ScheduledLimit(v.name, v.bandwidthLimit, v.timeZone, this.#log, this.#options), key: JSON.stringify([v.bandwidthLimit, v.timeZone]) };
  }

  /**
   * The throttle for a vessel's writes, from its settings now: a vessel a reload added or
   * changed gets its limit (a changed limit replaces the old one, whose waiters go at once:
   * its worker is stopping), an unchanged one keeps its own.
   */
  throttleFor(v: VesselSettings): (bytes: number, signal?: AbortSignal) => Promise<void> | undefined {
    let mine = this.#vessels.get(v.name);
    if (!mine || mine.key !== JSON.stringify([v.bandwidthLimit, v.timeZone])) {
      mine?.limit.stop();
      this.#vessels.set(v.name, mine = this.#limitOf(v));
      if (this.#started) mine.limit.start();
    }
    return throttleFor(mine.limit, this.#global.configured ? this.#global : undefined);
  }

  /** After a reload: the limits of vessels no longer in the settings end (and leave `status`). */
  keepOnly(vessels: readonly string[]): void {
    for (const [name, { limit }] of this.#vessels) {
      if (vessels.includes(name)) continue;
      limit.stop();
      this.#vessels.delete(name);
    }
  }

  /** Whether any limit is configured at some time of the week. */
  get configured(): boolean {
    return this.#global.configured || [...this.#vessels.values()].some(({ limit }) => limit.configured);
  }

  start(): void {
    this.#started = true;
    this.#global.start();
    for (const { limit } of this.#vessels.values()) limit.start();
  }

  stop(): void {
    this.#global.stop();
    for (const { limit } of this.#vessels.values()) limit.stop();
  }

  /** Each vessel's figures, then the global one's (whose rate is the sum of all vessels'). */
  figures(): BandwidthFigures[] {
    const vessels = [...this.#vessels.values()].map(({ limit: l }) => ({ vessel: l.vessel, limit: l.limit, rate: l.rate() }));
    const sum = vessels.reduce((n, v) => n + v.rate, 0);
    return [...vessels, { vessel: null, limit: this.#global.limit, rate: sum }];
  }
}
