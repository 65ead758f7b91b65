/**
 * Keeping a link to one peer: when the next connection attempt may start, what a refusal does,
 * when to give up. One state machine (LinkPolicy) for the vessel worker's lanes and the
 * mirror's connection (ServerLink, below); the users open the connections and report what
 * happened: connected, dropped (after moving data or not), failed (with the error), progress.
 *
 * - Delays (backoff.ts): a failed attempt waits a growing, jittered delay; a connection that
 *   drops after moving data is retried soon (the next stretch may well get through), one that
 *   moved none waits as after a failed attempt. Connecting alone does not reset the delay: only
 *   moving data does, so a peer that takes connections and fails every transfer (a full disk)
 *   is not hammered.
 * - While the peer cannot be reached (the last attempt failed), one attempt at a time.
 * - Refusals (VesselRefusedError, ConfigError: authentication, host key, key file, a vessel
 *   without commands): an operator must act. `refusal: 'retry'` (the daemon) waits
 *   refusedDelayMs before the next attempt and says a refusal once until it changes or a
 *   connection gets through; `'give-up'` (--once, the mirror) gives up at once.
 * - Giving up for lack of progress: `overdue()` says when nothing moved for giveUpAfterMs (a
 *   reconnect alone is no progress). The daemon's --once asks it every second (`watch`), the
 *   mirror after every failed attempt.
 */
import { nextDelay, refusedDelayMs } from './backoff.js';
import { ConfigError, StoppedError, VesselRefusedError, classify, describe } from '../errors.js';
import type { Logger } from '../log.js';
import type { ConnectOptions, Endpoint } from './connect.js';
import { SftpConnection } from './connection.js';
import { logFirstUse, type HostKeyRecords } from './host-key.js';

/** An operator must act: retrying soon would not help. */
export function isRefusal(err: unknown): boolean {
  return err instanceof VesselRefusedError || err instanceof ConfigError;
}

export interface LinkPolicyOptions {
  /** What a refusal does: retry slowly (the daemon), or give up at once (--once, the mirror). */
  refusal: 'retry' | 'give-up';
  /** Connection attempts under way at once while the peer can be reached. @default 1 */
  maxAttempts?: number;
  /** No progress for this long is overdue (see overdue, watch). @default never */
  giveUpAfterMs?: number;
  /** Called once, with the reason, when the link is given up. */
  onGiveUp?: (reason: string) => void;
  /** For the jitter; tests pass a fixed one. */
  random?: () => number;
}

/** What a failed attempt (or a refusal met later) means for the link. */
export type LinkFailure =
  /** The peer cannot be reached: the next attempt waits `delayMs`. */
  | { kind: 'unreachable'; delayMs: number }
  /** Refused: the next attempt waits `retryInMs`; `repeated` when the reason is the one already said. */
  | { kind: 'refused'; reason: string; retryInMs: number; repeated: boolean }
  /** Refused, and refusals give up: the link is given up (onGiveUp has run). */
  | { kind: 'give-up'; reason: string };

export class LinkPolicy {
  readonly #options: LinkPolicyOptions;
  readonly #random: () => number;
  #delayMs = 0;
  #nextAttemptAt = 0;
  /** When the last refusal's wait ends: a drop that follows it never shortens it. */
  #refusedUntil = 0;
  /** The last attempt failed: until one succeeds, one attempt at a time. */
  #unreachable = false;
  #lastRefusal: string | undefined;
  #lastProgressAt = Date.now();
  #gaveUp: string | undefined;
  #halted = false;
  /** Waits in progress, each ended by halt() (no listener per wait on a long-lived signal). */
  readonly #waking = new Set<() => void>();
  #watchdog: NodeJS.Timeout | undefined;

  constructor(options: LinkPolicyOptions) {
    this.#options = options;
    this.#random = options.random ?? Math.random;
  }

  /** Why the link was given up, if it was. */
  get gaveUp(): string | undefined {
    return this.#gaveUp;
  }

  get unreachable(): boolean {
    return this.#unreachable;
  }

  /** Whether another attempt may start while `underWay` are under way. */
  mayAttempt(underWay: number): boolean {
    if (this.#halted) return false;
    return underWay < (this.#unreachable ? 1 : (this.#options.maxAttempts ?? 1));
  }

  /** Resolves when the next attempt may start; at once when halted or given up. */
  wait(): Promise<void> {
    const ms = this.#nextAttemptAt - Date.now();
    if (this.#halted || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.#waking.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.#waking.add(wake);
    });
  }

  /** An attempt got through: the peer can be reached, and a later refusal is news. */
  connected(): void {
    this.#unreachable = false;
    this.#lastRefusal = undefined;
    this.#refusedUntil = 0;
  }

  /** A connection that carried work ended; returns the wait before the next attempt. */
  dropped(movedData: boolean): number {
    this.#delayMs = nextDelay(this.#delayMs, this.#random, movedData);
    // Never sooner than a refusal met on a connection (which is then dropped because of it).
    this.#nextAttemptAt = Math.max(this.#refusedUntil, Date.now() + this.#delayMs);
    return this.#nextAttemptAt - Date.now();
  }

  /** An attempt failed with `err` (classified). */
  failed(err: Error): LinkFailure {
    if (isRefusal(err)) return this.refused(err);
    this.#unreachable = true;
    this.#delayMs = nextDelay(this.#delayMs, this.#random);
    this.#nextAttemptAt = Date.now() + this.#delayMs;
    return { kind: 'unreachable', delayMs: this.#delayMs };
  }

  /** The peer refused (on connecting, or later on a connection: see isRefusal). */
  refused(err: Error): LinkFailure {
    const reason = describe(err);
    if (this.#options.refusal === 'give-up') {
      this.giveUp(reason);
      return { kind: 'give-up', reason };
    }
    const repeated = reason === this.#lastRefusal;
    this.#lastRefusal = reason;
    this.#nextAttemptAt = this.#refusedUntil = Date.now() + refusedDelayMs;
    return { kind: 'refused', reason, retryInMs: refusedDelayMs, repeated };
  }

  /** Work moved (at `now`, when the caller has read the clock already): the give-up clock starts over. */
  progress(now = Date.now()): void {
    this.#lastProgressAt = now;
  }

  /** How long nothing has moved, when that is giveUpAfterMs or more; otherwise undefined. */
  overdue(): number | undefined {
    if (this.#options.giveUpAfterMs === undefined) return undefined;
    const quiet = Date.now() - this.#lastProgressAt;
    return quiet >= this.#options.giveUpAfterMs ? quiet : undefined;
  }

  /**
   * Gives the link up, every second, once it is overdue; while `idle` (nothing to move) the
   * clock does not run. `reason` says why, from how long nothing moved.
   */
  watch(idle: () => boolean, reason: (quietMs: number) => string): void {
    clearInterval(this.#watchdog);
    this.#watchdog = setInterval(() => {
      if (this.#gaveUp || idle()) {
        this.progress();
        return;
      }
      const quiet = this.overdue();
      if (quiet !== undefined) this.giveUp(reason(quiet));
    }, 1000).unref();
  }

  /** Gives the link up (once): waits end, no attempt starts, onGiveUp runs. */
  giveUp(reason: string): void {
    if (this.#gaveUp !== undefined) return;
    this.#gaveUp = reason;
    this.halt();
    this.#options.onGiveUp?.(reason);
  }

  /** Stops: waits end at once, no attempt starts, the watchdog stops. */
  halt(): void {
    this.#halted = true;
    clearInterval(this.#watchdog);
    for (const wake of [...this.#waking]) wake();
  }
}

export interface ServerLinkOptions {
  giveUpAfterMs: number;
  signal: AbortSignal;
  /** How to connect; tests pass a fake. @default SftpConnection.open */
  open?: (options: ConnectOptions) => Promise<SftpConnection>;
  random?: () => number;
}

/**
 * The one connection a mirror run works through, kept up across cut links: every transfer asks
 * for the current connection; when it dies, the next ask reconnects (once, shared by all
 * transfers). A refusal ends the run at once; so does a failed attempt when no data moved for
 * `giveUpAfterMs` (the first connection starts that clock; a reconnect alone does not).
 */
export class ServerLink {
  readonly #endpoint: Endpoint;
  readonly #hostKeys: HostKeyRecords;
  readonly #log: Logger;
  readonly #options: ServerLinkOptions;
  readonly #policy: LinkPolicy;
  #connection: SftpConnection | undefined;
  #connecting: Promise<SftpConnection> | undefined;
  /** Bytes moved since the last (re)connect: a link that was moving gets a quick retry. */
  #movedSinceConnect = false;
  #fatal: Error | undefined;
  #everConnected = false;
  #closed = false;

  constructor(endpoint: Endpoint, hostKeys: HostKeyRecords, log: Logger, options: ServerLinkOptions) {
    this.#endpoint = endpoint;
    this.#hostKeys = hostKeys;
    this.#log = log;
    this.#options = options;
    this.#policy = new LinkPolicy({ refusal: 'give-up', giveUpAfterMs: options.giveUpAfterMs, random: options.random });
    options.signal.addEventListener('abort', () => {
      this.#policy.halt();
      this.close();
    }, { once: true });
  }

  /** Data moved: the server is reachable, the give-up clock starts over. */
  progress(): void {
    this.#policy.progress();
    this.#movedSinceConnect = true;
  }

  /** The live connection, connecting first when there is none. */
  async get(): Promise<SftpConnection> {
    for (;;) {
      if (this.#fatal) throw this.#fatal;
      if (this.#options.signal.aborted || this.#closed) throw new StoppedError('stopping');
      if (this.#connection && !this.#connection.closed) return this.#connection;
      this.#connecting ??= this.#connect().finally(() => {
        this.#connecting = undefined;
      });
      await this.#connecting.catch(() => {});
    }
  }

  async #connect(): Promise<SftpConnection> {
    if (this.#connection) {
      // The previous connection died: wait before the next try, shorter if it was moving data.
      this.#policy.dropped(this.#movedSinceConnect);
      this.#connection = undefined;
    }
    const open = this.#options.open ?? ((o: ConnectOptions) => SftpConnection.open(o));
    for (;;) {
      await this.#policy.wait();
      if (this.#options.signal.aborted) throw new StoppedError('stopping');
      try {
        const connection = await open({
          endpoint: this.#endpoint,
          hostKeys: this.#hostKeys,
          signal: this.#options.signal,
          onHostKey: logFirstUse(this.#log),
        });
        this.#connection = connection;
        this.#movedSinceConnect = false;
        // A reconnect alone is no progress: a link that connects and then stalls every time
        // must still be given up.
        if (!this.#everConnected) this.#policy.progress();
        this.#everConnected = true;
        this.#policy.connected();
        this.#log.debug({ address: `${this.#endpoint.address}:${this.#endpoint.port}` }, 'connected');
        connection.onClose((err) => {
          if (!this.#options.signal.aborted && !this.#closed) this.#log.warn({ err: describe(err) }, 'connection lost; transfers resume on a new one');
        });
        return connection;
      } catch (raw) {
        if (this.#options.signal.aborted) throw new StoppedError('stopping');
        const err = classify(raw, { vessel: this.#endpoint.name });
        const failure = this.#policy.failed(err);
        if (failure.kind !== 'unreachable') {
          this.#fatal = err;
          throw err;
        }
        const silentForMs = this.#policy.overdue();
        if (silentForMs !== undefined) {
          this.#fatal = new StoppedError(`giving up: no data from ${this.#endpoint.label} for ${Math.round(silentForMs / 1000)} s; last error: ${describe(err)}`);
          this.#policy.giveUp(this.#fatal.message);
          throw this.#fatal;
        }
        this.#log.warn({ err: describe(err), retryInSeconds: +(failure.delayMs / 1000).toFixed(1) }, 'cannot reach the server; will retry');
      }
    }
  }

  /** Drops the connection: requests in flight fail at once (used on stop). */
  close(): void {
    this.#closed = true;
    this.#connection?.disconnect('closed: stopping');
  }
}
