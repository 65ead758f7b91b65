/**
 * A token bucket whose waiters share it fairly: bytes are granted in portions of at most
 * GRANT_BYTES, and a waiter that needs more goes to the back of the line after each portion,
 * so a small file's one write is not stuck behind the window of a large file (each write of
 * which waits in the same line). The bucket holds at most `burst` bytes, a quarter of a second
 * of the rate but at least one portion, so what crosses the link over any window is the rate
 * times the window plus one burst at most.
 *
 * The rate can change at any time (a timetable boundary): the new one applies from that moment,
 * to the waiters too. Without a rate (null, `off`) nothing waits: `take` returns undefined at
 * once, and every waiter is let go.
 */

/** The largest portion granted to one waiter at a time. */
export const GRANT_BYTES = 32 * 1024;

/** What the bucket needs of time; tests pass their own. */
export interface BucketClock {
  /** Milliseconds, monotonic. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(timer: unknown): void;
}

export const realClock: BucketClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout),
};

interface Waiter {
  remaining: number;
  resolve(): void;
  reject(err: unknown): void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

export class TokenBucket {
  readonly #clock: BucketClock;
  #rate: number | null;
  #tokens = 0;
  #at: number;
  readonly #line: Waiter[] = [];
  #timer: unknown;

  constructor(rate: number | null, clock: BucketClock = realClock) {
    this.#clock = clock;
    this.#rate = rate;
    this.#at = clock.now();
    this.#tokens = this.#burst();
  }

  get rate(): number | null {
    return this.#rate;
  }

  /** Applies a new rate from now on; what was earned at the old rate is kept (up to the new burst). */
  setRate(rate: number | null): void {
    this.#refill();
    this.#rate = rate;
    this.#tokens = Math.min(this.#tokens, this.#burst());
    this.#pump();
  }

  /**
   * Waits until `bytes` may be sent: undefined when they may go at once (no limit, or the bucket
   * holds them and nobody waits), else a promise that resolves when they are granted, or rejects
   * with the signal's reason when it is aborted first (the bytes not yet granted are not spent).
   */
  take(bytes: number, signal?: AbortSignal): Promise<void> | undefined {
    if (this.#rate === null || bytes <= 0) return undefined;
    this.#refill();
    if (this.#line.length === 0 && this.#tokens >= bytes) {
      this.#tokens -= bytes;
      return undefined;
    }
    if (signal?.aborted) return Promise.reject(abortReason(signal));
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { remaining: bytes, resolve, reject, signal };
      if (signal) {
        waiter.onAbort = () => {
          const at = this.#line.indexOf(waiter);
          if (at >= 0) this.#line.splice(at, 1);
          reject(abortReason(signal));
          this.#pump();
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#line.push(waiter);
      this.#pump();
    });
  }

  /** Waiters in line, for tests. */
  get waiting(): number {
    return this.#line.length;
  }

  #burst(): number {
    return this.#rate === null ? 0 : Math.max(GRANT_BYTES, this.#rate / 4);
  }

  #refill(): void {
    const now = this.#clock.now();
    if (this.#rate !== null) this.#tokens = Math.min(this.#burst(), this.#tokens + (now - this.#at) * this.#rate / 1000);
    this.#at = now;
  }

  /** Grants portions, round-robin, while the bucket holds enough for the next one; else waits for it. */
  #pump(): void {
    if (this.#timer !== undefined) {
      this.#clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#rate === null) {
      for (const w of this.#line.splice(0)) this.#done(w);
      return;
    }
    this.#refill();
    while (this.#line.length > 0) {
      const head = this.#line[0];
      const portion = Math.min(head.remaining, GRANT_BYTES);
      if (this.#tokens < portion) {
        const ms = Math.ceil((portion - this.#tokens) * 1000 / this.#rate);
        this.#timer = this.#clock.setTimeout(() => {
          this.#timer = undefined;
          this.#pump();
        }, Math.max(1, ms));
        return;
      }
      this.#tokens -= portion;
      head.remaining -= portion;
      this.#line.shift();
      if (head.remaining > 0) this.#line.push(head);
      else this.#done(head);
    }
  }

  #done(w: Waiter): void {
    if (w.onAbort) w.signal!.removeEventListener('abort', w.onAbort);
    w.resolve();
  }
}

function abortReason(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new Error('aborted');
}
