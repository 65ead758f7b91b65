/**
 * Sends line-protocol points to a unix stream socket (Telegraf `socket_listener`).
 *
 * Metrics must never slow or break the program that sends them, so `send` never throws and
 * never waits: while the socket is missing, points are dropped; while it is connected but
 * slow, at most `maxBufferedBytes` wait in memory and the rest are dropped. Drops are
 * counted and reported once the socket is back (info) or drains (debug).
 *
 * An outage gets one warning, however long it lasts. After a failed connect, the next
 * attempt is made by a send at least `reconnectMs` later. A connection that was up and
 * closes (Telegraf restarted, or its `read_timeout` closed an idle connection) is retried
 * by the very next send, so a short restart loses no more than what was in flight.
 */
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { formatPoint, type Point } from './line-protocol.js';

/** What the sink needs from a logger; a pino `Logger` fits. */
export interface SinkLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  debug?(obj: object, msg: string): void;
}

export interface SinkOptions {
  /**
   * The least time between a failed connect and the next attempt, in milliseconds.
   * @default 30000
   */
  reconnectMs?: number;
  /**
   * The most bytes waiting to be written (while connecting or while the reader is slow);
   * points beyond it are dropped.
   * @default 1048576
   */
  maxBufferedBytes?: number;
  /**
   * An outage is said at debug, not as a warning: for a default socket the operator did not
   * choose, whose absence only means that no Telegraf runs here.
   * @default false
   */
  quietOutage?: boolean;
}

type State =
  | 'idle' //      no socket; the next send connects
  | 'connecting'
  | 'connected'
  | 'down' //      the last connect failed; the next send after reconnectMs connects
  | 'closed'; //   close() was called; sends are ignored

function reason(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
}

export class MetricsSink {
  readonly #path: string | undefined;
  readonly #log: SinkLogger;
  readonly #reconnectMs: number;
  readonly #maxBufferedBytes: number;
  #state: State = 'idle';
  #socket: net.Socket | undefined;
  #failedAt = 0;
  /** A warning was logged for the current outage; cleared when a connection succeeds. */
  #warned = false;
  readonly #quietOutage: boolean;
  /** Points dropped since the last report. */
  #dropped = 0;

  constructor(path: string | undefined, log: SinkLogger, options: SinkOptions = {}) {
    this.#path = path || undefined;
    this.#log = log;
    this.#reconnectMs = options.reconnectMs ?? 30_000;
    this.#maxBufferedBytes = options.maxBufferedBytes ?? 1024 * 1024;
    this.#quietOutage = options.quietOutage ?? false;
  }

  /** Queue one point for the socket, or drop it. Never throws, never waits. */
  send(point: Point): void {
    if (this.#path === undefined || this.#state === 'closed') return;
    try {
      const line = formatPoint(point);
      if (line === undefined) return;
      if (this.#state === 'down' && performance.now() - this.#failedAt >= this.#reconnectMs) this.#state = 'idle';
      if (this.#state === 'idle') this.#connect(this.#path);
      const socket = this.#socket;
      if (socket === undefined || socket.destroyed || this.#state === 'down') {
        this.#dropped++;
        return;
      }
      if (socket.writableLength + Buffer.byteLength(line) > this.#maxBufferedBytes) {
        if (this.#dropped === 0) this.#log.debug?.({ path: this.#path, maxBufferedBytes: this.#maxBufferedBytes }, 'metrics socket is slow; dropping points until it drains');
        this.#dropped++;
        return;
      }
      socket.write(line);
    } catch (err) {
      // Not expected (errors arrive as 'error' events); metrics must not break the caller.
      this.#log.debug?.({ path: this.#path, err }, 'metrics point not sent');
    }
  }

  /**
   * Flush what is buffered, for at most `timeoutMs`, then close the socket. Later sends are
   * ignored. The socket is ref'd meanwhile so that an awaited close() really flushes before
   * the process exits. Never rejects.
   */
  async close(timeoutMs = 1000): Promise<void> {
    // A connect still under way is let finish first: an absent socket must still be reported
    // (a short run sends its points just before it closes the sink).
    const connecting = this.#socket;
    if (this.#state === 'connecting' && connecting) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          resolve();
        };
        connecting.once('connect', done);
        connecting.once('close', done);
      });
    }
    const socket = this.#socket;
    const wasOpen = this.#state === 'connecting' || this.#state === 'connected';
    this.#state = 'closed';
    this.#socket = undefined;
    if (this.#dropped > 0) this.#log.debug?.({ path: this.#path, dropped: this.#dropped }, 'metrics points dropped');
    if (socket === undefined || !wasOpen) {
      socket?.destroy();
      return Promise.resolve();
    }
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        socket.destroy();
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      socket.ref();
      socket.once('close', done);
      socket.end(done);
    });
  }

  #connect(path: string): void {
    this.#state = 'connecting';
    const socket = net.createConnection({ path });
    this.#socket = socket;
    // A metrics socket must never keep the process alive.
    socket.unref();
    // Telegraf never writes; reading anyway lets us see its end of the connection close.
    socket.resume();
    let established = false;
    socket.on('connect', () => {
      if (this.#socket !== socket) return;
      established = true;
      this.#state = 'connected';
      if (this.#warned) {
        this.#log.info({ path, dropped: this.#dropped }, `metrics socket ${path} is back; ${this.#dropped} points were dropped meanwhile`);
        this.#warned = false;
        this.#dropped = 0;
      }
    });
    socket.on('drain', () => {
      if (this.#socket !== socket || this.#dropped === 0) return;
      this.#log.debug?.({ path, dropped: this.#dropped }, 'metrics socket drained; points were dropped while it was slow');
      this.#dropped = 0;
    });
    // Every socket error lands here, so none goes unhandled; 'close' always follows.
    socket.on('error', (err) => {
      if (this.#socket !== socket) return;
      if (established) this.#outage(path, `metrics socket ${path} lost (${reason(err)}); metrics are dropped until it comes back`, err);
      else {
        this.#state = 'down';
        this.#failedAt = performance.now();
        this.#outage(path, `metrics socket ${path} unavailable (${reason(err)}); metrics are dropped until it comes back`, err);
      }
    });
    socket.on('close', () => {
      if (this.#socket !== socket) return;
      this.#socket = undefined;
      if (this.#state !== 'down') {
        this.#log.debug?.({ path }, 'metrics socket closed; the next point reconnects');
        this.#state = 'idle';
      }
    });
  }

  /** One warning per outage; later failures of the same outage only at debug. */
  #outage(path: string, msg: string, err: unknown): void {
    if (this.#warned) {
      this.#log.debug?.({ path, reason: reason(err) }, 'metrics socket still unavailable');
      return;
    }
    this.#warned = true;
    if (this.#quietOutage) this.#log.debug?.({ path, reason: reason(err) }, msg);
    else this.#log.warn({ path, reason: reason(err) }, msg);
  }
}
