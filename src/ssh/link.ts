/**
 * The one connection a mirror run works through, kept up across cut links: every transfer asks
 * for the current connection; when it dies, the next ask reconnects (once, shared by all
 * transfers), waiting a growing, jittered delay after failed attempts. Refusals an operator
 * must fix (authentication, host key, key file) end the run at once; a server that cannot be
 * reached and moves no data for `giveUpAfterMs` ends it too.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { nextDelay } from './backoff.js';
import { ConfigError, StoppedError, VesselRefusedError, classify, describe } from '../errors.js';
import type { Logger } from '../log.js';
import { SftpConnection, type Endpoint } from './connection.js';
import { logFirstUse, type HostKeyRecords } from './host-key.js';

export interface ServerLinkOptions {
  giveUpAfterMs: number;
  signal: AbortSignal;
}

export class ServerLink {
  readonly #endpoint: Endpoint;
  readonly #hostKeys: HostKeyRecords;
  readonly #log: Logger;
  readonly #options: ServerLinkOptions;
  #connection: SftpConnection | undefined;
  #connecting: Promise<SftpConnection> | undefined;
  #delayMs = 0;
  #lastProgressAt = Date.now();
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
    options.signal.addEventListener('abort', () => this.close(), { once: true });
  }

  /** Data moved: the server is reachable, the give-up clock starts over. */
  progress(): void {
    this.#lastProgressAt = Date.now();
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
      this.#delayMs = nextDelay(this.#delayMs, Math.random, this.#movedSinceConnect);
      this.#connection = undefined;
    }
    for (;;) {
      if (this.#delayMs > 0) await sleep(this.#delayMs, undefined, { signal: this.#options.signal }).catch(() => {});
      if (this.#options.signal.aborted) throw new StoppedError('stopping');
      try {
        const connection = await SftpConnection.open({
          endpoint: this.#endpoint,
          hostKeys: this.#hostKeys,
          signal: this.#options.signal,
          onHostKey: logFirstUse(this.#log),
        });
        this.#connection = connection;
        this.#movedSinceConnect = false;
        // A reconnect alone is no progress: a link that connects and then stalls every time
        // must still be given up.
        if (!this.#everConnected) this.#lastProgressAt = Date.now();
        this.#everConnected = true;
        this.#log.debug({ address: `${this.#endpoint.address}:${this.#endpoint.port}` }, 'connected');
        connection.onClose((err) => {
          if (!this.#options.signal.aborted && !this.#closed) this.#log.warn({ err: describe(err) }, 'connection lost; transfers resume on a new one');
        });
        return connection;
      } catch (raw) {
        if (this.#options.signal.aborted) throw new StoppedError('stopping');
        const err = classify(raw, { vessel: this.#endpoint.name });
        if (err instanceof VesselRefusedError || err instanceof ConfigError) {
          this.#fatal = err;
          throw err;
        }
        const silentForMs = Date.now() - this.#lastProgressAt;
        if (silentForMs >= this.#options.giveUpAfterMs) {
          this.#fatal = new StoppedError(`giving up: no data from ${this.#endpoint.label} for ${Math.round(silentForMs / 1000)} s; last error: ${describe(err)}`);
          throw this.#fatal;
        }
        this.#delayMs = nextDelay(this.#delayMs);
        this.#log.warn({ err: describe(err), retryInSeconds: +(this.#delayMs / 1000).toFixed(1) }, 'cannot reach the server; will retry');
      }
    }
  }

  /** Drops the connection: requests in flight fail at once (used on stop). */
  close(): void {
    this.#closed = true;
    this.#connection?.disconnect('closed: stopping');
  }
}
