/**
 * One vessel's side of replication: its connection, its queue, its backoff. Nothing here waits
 * on another vessel, so a slow, full or dead vessel holds back only itself.
 *
 * Jobs are file ids; the job reads the current state row when it starts, so a job queued
 * twice, or for a version that was replaced meanwhile, does the right thing. A transient
 * failure (link, timeout, full disk) drops the connection and retries after a backoff, without
 * counting against the file; a FileError counts an attempt and, after `maxAttempts`, marks the
 * delivery failed with its reason until the next retry round.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import PQueue from 'p-queue';
import { nextDelay, refusedDelayMs } from './backoff.js';
import { ByteBudget } from './byte-budget.js';
import { failpoint } from './failpoint.js';
import { ConfigError, FileError, StoppedError, VesselRefusedError, classify, describe } from './errors.js';
import type { Logger } from './log.js';
import type { VesselSettings } from './settings.js';
import type { StateStore } from './state-store.js';
import { SftpConnection, vesselEndpoint } from './transfer/connection.js';
import { logFirstUse } from './transfer/host-key.js';
import { removeLeftoversScript } from './transfer/shell.js';
import { deliverFile, isSmallFile, type DeliveryJob, type DeliveryOutcome } from './transfer/upload.js';

/** Small files in flight per `Concurrency` slot (see #smallQueue). */
const SMALL_FILES_PER_SLOT = 16;
/**
 * Bytes of small files in flight per vessel: each is held whole until the vessel has it, and
 * ssh2 keeps a copy of what the channel window does not take yet. 32 files of 64 KiB fit; of
 * 1 MiB files, 8 go at once.
 */
const SMALL_FILE_BYTES_IN_FLIGHT = 8 * 1024 * 1024;

const maxAttempts = 3;
/**
 * How often a transfer's byte count is written to the state store for `status`. The progress
 * hook runs once per SFTP write (thousands a second); it only compares a clock with this.
 */
const progressSaveMs = 1000;

/** What the worker asks of the replicator, which owns files and directories. */
export interface WorkerHost {
  /** The delivery to make now, or undefined when there is none (done, gone, replaced). */
  jobFor(fileId: number, vessel: string): DeliveryJob | undefined;
  outcome(fileId: number, vessel: string, versionKey: string, outcome: DeliveryOutcome, seconds: number): void;
  /** The delivery failed for good (for this round): records the attempt and the reason. */
  failed(fileId: number, vessel: string, reason: string): void;
}

export interface WorkerOptions {
  /** `--once`: a refused vessel, or one without progress for `giveUpAfterMs`, is given up. */
  once: boolean;
  giveUpAfterMs: number;
  /** `[MONSTER] ChunkSize`: with the size, it decides which files are small (see isSmallFile). */
  chunkSize: number;
}

export class VesselWorker {
  readonly name: string;
  readonly #settings: VesselSettings;
  readonly #store: StateStore;
  readonly #host: WorkerHost;
  readonly #log: Logger;
  readonly #options: WorkerOptions;
  readonly #queue: PQueue;
  /**
   * Small files have their own, wider queue: each is a few round trips and a line to the
   * vessel's checker, so a few at a time leave the link and both ends mostly waiting (2000
   * files of 64 KiB to one vessel: 8.1 s with 8 in flight, 6.1 s with 32). #smallBytes bounds
   * the memory they hold.
   */
  readonly #smallQueue: PQueue;
  readonly #smallBytes = new ByteBudget(SMALL_FILE_BYTES_IN_FLIGHT);
  readonly #queued = new Set<number>();
  /** Files whose transfer `status` shows (see transferStarted in #deliver). */
  readonly #tracked = new Set<number>();
  /** Cancels the transfer in flight for a file (its version was replaced or dropped, or the worker stops). */
  readonly #running = new Map<number, AbortController>();
  readonly #again = new Set<number>();
  readonly #stop = new AbortController();
  /** Aborted on stop and on give-up: ends every wait of this worker. */
  readonly #halt = new AbortController();
  #connection: SftpConnection | undefined;
  #connecting: Promise<void> | undefined;
  #delayMs = 0;
  #nextAttemptAt = 0;
  #lastRefusal: string | undefined;
  #gaveUp: string | undefined;
  #lastProgressAt = Date.now();
  #lastError = '';
  #watchdog: NodeJS.Timeout | undefined;

  constructor(settings: VesselSettings, store: StateStore, host: WorkerHost, log: Logger, options: WorkerOptions) {
    this.name = settings.name;
    this.#settings = settings;
    this.#store = store;
    this.#host = host;
    this.#log = log.child({ vessel: settings.name });
    this.#options = options;
    this.#queue = new PQueue({ concurrency: settings.concurrency });
    this.#smallQueue = new PQueue({ concurrency: settings.concurrency * SMALL_FILES_PER_SLOT });
    if (options.once) this.#watchdog = setInterval(() => this.#checkProgress(), 1000).unref();
  }

  /** Why this vessel was given up (`--once` only), if it was. */
  get gaveUp(): string | undefined {
    return this.#gaveUp;
  }

  /** No job waiting or running. */
  get idle(): boolean {
    return [this.#queue, this.#smallQueue].every((q) => q.size === 0 && q.pending === 0);
  }

  /** Queues the delivery of a file; a file already queued is looked at again when its job ends. */
  enqueue(fileId: number): void {
    if (this.#stop.signal.aborted) return;
    if (this.#queued.has(fileId)) {
      this.#again.add(fileId);
      return;
    }
    this.#queued.add(fileId);
    const size = this.#store.file(fileId)?.size;
    const small = size !== undefined && isSmallFile(size, this.#options.chunkSize);
    const job = small ? this.#smallQueue.add(() => this.#smallBytes.use(size, () => this.#run(fileId))) : this.#queue.add(() => this.#run(fileId));
    job.catch((err: unknown) => {
      // #run handles its own errors; anything here is a bug worth seeing.
      this.#log.error({ err }, 'unexpected error in delivery job');
    });
  }

  async #run(fileId: number): Promise<void> {
    try {
      await this.#deliver(fileId);
    } finally {
      if (this.#tracked.delete(fileId)) this.#store.transferEnded(fileId, this.name);
      this.#queued.delete(fileId);
      if (this.#again.delete(fileId)) this.enqueue(fileId);
    }
  }

  async #deliver(fileId: number): Promise<void> {
    let retryDelay = 0;
    for (;;) {
      const job = this.#host.jobFor(fileId, this.name);
      if (!job || this.#stop.signal.aborted) return;
      if (this.#gaveUp) {
        this.#host.failed(fileId, this.name, this.#gaveUp);
        return;
      }
      let connection: SftpConnection;
      try {
        connection = await this.#connect();
      } catch {
        continue; // stopped or given up: the checks at the top of the loop decide
      }
      const started = performance.now();
      const attemptStarted = Date.now();
      // Aborted by cancel() and by stop(). Not AbortSignal.any([stop, cancel]): in Node 20 every
      // such call leaves an entry in the lifelong stop signal (nodejs/node#55351), about 70 bytes
      // per delivery attempt that a long-running daemon would never get back.
      const cancel = new AbortController();
      this.#running.set(fileId, cancel);
      const signal = cancel.signal;
      // A small file is in flight for milliseconds: `status` would never see it, and its four
      // state writes would cost more than its transfer.
      const tracked = !isSmallFile(job.size, job.chunkSize);
      if (tracked) {
        this.#tracked.add(fileId);
        this.#store.transferStarted(fileId, this.name);
      }
      try {
        const outcome = await deliverFile(connection, job, this.#hooks(fileId, job, signal, tracked), { execBaseMs: this.#settings.timeoutS * 1000 });
        if (outcome.kind === 'done') await failpoint('after-remote-rename');
        this.#lastProgressAt = Date.now();
        if (outcome.kind !== 'done') this.#discard(job);
        this.#host.outcome(fileId, this.name, job.versionKey, outcome, (performance.now() - started) / 1000);
        return;
      } catch (raw) {
        if (this.#stop.signal.aborted) return;
        if (cancel.signal.aborted) {
          this.#discard(job);
          return;
        }
        if (raw instanceof StoppedError) return;
        const err = classify(raw, { vessel: this.name, path: job.localPath });
        this.#lastError = describe(err);
        if (err instanceof FileError) {
          if (!this.#fileFailed(fileId, job, err)) return;
          continue;
        }
        if (err instanceof VesselRefusedError || err instanceof ConfigError) {
          this.#refused(err);
          continue;
        }
        this.#log.warn({ file: job.localPath, err: describe(err) }, 'transfer interrupted; will resume');
        this.#store.recordVesselError(this.name, describe(err));
        // A link that drops every few MB but moves in between is worth retrying soon; only
        // failures without progress make the wait grow.
        const moved = this.#lastProgressAt > attemptStarted;
        this.#dropConnection(connection, err, moved);
        retryDelay = nextDelay(retryDelay, Math.random, moved);
        await sleep(retryDelay, undefined, { signal: this.#halt.signal }).catch(() => {});
      } finally {
        this.#running.delete(fileId);
      }
    }
  }

  cancel(fileId: number): void {
    this.#running.get(fileId)?.abort();
  }

  /**
   * A transfer that ended without placing its version (cancelled, file gone or changed): its
   * chunks are removed now that nothing writes them any more.
   */
  #discard(job: DeliveryJob): void {
    this.#store.addLeftover({ vessel: this.name, chunkPrefix: job.chunkPrefix, assemblyPrefix: job.assemblyPrefix });
    this.cleanLeftovers();
  }

  /** Records a failed attempt; true when the file should be tried again right away. */
  #fileFailed(fileId: number, job: DeliveryJob, err: FileError): boolean {
    const attempts = (this.#store.delivery(fileId, this.name)?.attempts ?? 0) + 1;
    if (attempts < maxAttempts) {
      this.#store.markAttemptFailed(fileId, this.name, describe(err), false);
      this.#log.warn({ file: job.localPath, attempt: attempts, err: describe(err) }, 'delivery failed; trying again');
      return true;
    }
    this.#log.error({ file: job.localPath, attempts, err: describe(err) }, 'delivery failed; the file stays queued and is retried at the next rescan');
    this.#host.failed(fileId, this.name, describe(err)); // records the final attempt
    return false;
  }

  /** State updates from a transfer; once it is cancelled, they would describe a replaced version. */
  #hooks(fileId: number, job: DeliveryJob, signal: AbortSignal, tracked: boolean) {
    let bytes = 0;
    let savedAt = 0;
    const save = (now: number) => {
      savedAt = now;
      if (tracked && !signal.aborted) this.#store.transferProgress(fileId, this.name, bytes);
    };
    return {
      signal,
      chunkDone: (index: number) => {
        if (!signal.aborted) this.#store.addChunk(fileId, this.name, index);
      },
      chunksReset: () => {
        if (!signal.aborted) this.#store.clearChunks(fileId, this.name);
      },
      sha256Known: (sha256: string) => this.#store.setSha256(fileId, job.versionKey, sha256),
      sending: (bytesPresent: number) => {
        bytes = bytesPresent;
        save(Date.now());
      },
      progress: (n: number) => {
        const now = Date.now();
        this.#lastProgressAt = now;
        bytes += n;
        if (now - savedAt >= progressSaveMs) save(now);
      },
      joining: () => {
        save(Date.now()); // everything is on the vessel: show 100 % while it is joined and checked
        this.#log.debug({ file: job.localPath, destination: job.destination }, 'joining, verifying and placing on vessel');
      },
    };
  }

  /** The live connection, connecting (after the backoff wait) when there is none. */
  async #connect(): Promise<SftpConnection> {
    for (;;) {
      if (this.#stop.signal.aborted) throw new StoppedError('stopping');
      if (this.#gaveUp) throw new StoppedError(this.#gaveUp);
      if (this.#connection && !this.#connection.closed) return this.#connection;
      this.#connecting ??= this.#attemptConnection().finally(() => {
        this.#connecting = undefined;
      });
      await this.#connecting;
    }
  }

  async #attemptConnection(): Promise<void> {
    const wait = this.#nextAttemptAt - Date.now();
    if (wait > 0) await sleep(wait, undefined, { signal: this.#halt.signal }).catch(() => {});
    if (this.#stop.signal.aborted || this.#gaveUp) return;
    try {
      const connection = await SftpConnection.open({
        endpoint: vesselEndpoint(this.#settings),
        hostKeys: this.#store,
        signal: this.#stop.signal,
        onHostKey: logFirstUse(this.#log),
      });
      this.#connection = connection;
      this.#delayMs = 0;
      this.#lastRefusal = undefined;
      this.#lastProgressAt = Date.now();
      this.#log.info({ address: `${this.#settings.address}:${this.#settings.port}` }, 'connected');
      connection.onClose((err) => {
        if (!this.#stop.signal.aborted) this.#log.debug({ err: describe(err) }, 'connection closed');
      });
      void this.#removeLeftovers(connection);
    } catch (raw) {
      if (this.#stop.signal.aborted) return;
      const err = classify(raw, { vessel: this.name });
      this.#lastError = describe(err);
      this.#store.recordVesselError(this.name, describe(err));
      if (err instanceof VesselRefusedError || err instanceof ConfigError) {
        this.#refused(err);
        return;
      }
      this.#delayMs = nextDelay(this.#delayMs);
      this.#nextAttemptAt = Date.now() + this.#delayMs;
      this.#log.warn({ err: describe(err), retryInSeconds: +(this.#delayMs / 1000).toFixed(1) }, 'cannot reach vessel; will retry');
    }
  }

  /** Authentication, host key, key file: an operator must act. Log once, retry slowly. */
  #refused(err: Error): void {
    const reason = describe(err);
    if (this.#options.once) {
      this.#giveUp(reason);
      return;
    }
    if (reason !== this.#lastRefusal) this.#log.error({ err: reason, retryInSeconds: refusedDelayMs / 1000 }, 'vessel refused; fix the settings or the vessel');
    this.#lastRefusal = reason;
    this.#nextAttemptAt = Date.now() + refusedDelayMs;
  }

  #dropConnection(connection: SftpConnection, err: Error, moved: boolean): void {
    if (this.#connection !== connection) return;
    connection.disconnect(`dropped after: ${describe(err)}`);
    this.#connection = undefined;
    this.#delayMs = nextDelay(this.#delayMs, Math.random, moved);
    this.#nextAttemptAt = Date.now() + this.#delayMs;
  }

  /** Removes chunk sets and half-joined files of versions that no longer exist. Best effort. */
  async #removeLeftovers(connection: SftpConnection): Promise<void> {
    for (const l of this.#store.leftovers(this.name)) {
      if (connection.closed) return;
      try {
        const r = await connection.exec(removeLeftoversScript(l.chunkPrefix, l.assemblyPrefix));
        if (r.code === 0) this.#store.deleteLeftover(l);
      } catch {
        return; // the next connection tries again
      }
    }
  }

  /** New leftovers were recorded: remove them now if connected. */
  cleanLeftovers(): void {
    if (this.#connection && !this.#connection.closed) void this.#removeLeftovers(this.#connection);
  }

  #checkProgress(): void {
    if (this.#gaveUp || this.idle) {
      this.#lastProgressAt = Date.now();
      return;
    }
    const quiet = Date.now() - this.#lastProgressAt;
    if (quiet >= this.#options.giveUpAfterMs) {
      this.#giveUp(`no progress for ${Math.round(quiet / 1000)} s${this.#lastError ? ` (last error: ${this.#lastError})` : ''}`);
    }
  }

  #giveUp(reason: string): void {
    if (this.#gaveUp) return;
    this.#gaveUp = `vessel ${this.name} given up: ${reason}`;
    this.#log.error({ err: reason }, 'vessel given up for this run');
    this.#halt.abort();
    this.#connection?.disconnect('given up');
  }

  /** Takes no new work, cuts transfers short (the vessel keeps its chunks), and waits for the jobs to end. */
  async stop(): Promise<void> {
    clearInterval(this.#watchdog);
    this.#stop.abort();
    this.#halt.abort();
    for (const cancel of this.#running.values()) cancel.abort();
    this.#queue.clear();
    this.#smallQueue.clear();
    this.#connection?.disconnect('stopping');
    await Promise.all([this.#queue.onIdle(), this.#smallQueue.onIdle()]);
  }
}
