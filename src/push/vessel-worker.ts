/**
 * One vessel's side of replication: its connections, its queue, its backoff. Nothing here waits
 * on another vessel, so a slow, full or dead vessel holds back only itself.
 *
 * The vessel is reached over `Concurrency` connections ("lanes"), each carrying one large file
 * at a time and up to SMALL_FILES_PER_LANE small ones. When a connection drops, what it had in
 * flight goes back to the front of the queue and the lanes still up take it on at once, from
 * the bytes the vessel already has, while the dropped lane reconnects: a link whose connections
 * die every few megabytes keeps moving, and every connection moves the queue forward.
 * FlightControl narrows what is in flight while connections die young and widens it again as
 * they survive.
 *
 * Queue entries are file ids; an attempt reads the current state row when it starts, so a file
 * queued twice, or for a version that was replaced meanwhile, does the right thing. A link
 * failure never counts against a file; a FileError counts an attempt and, after `maxAttempts`,
 * marks the delivery failed with its reason until the next retry round.
 */
import { nextDelay, refusedDelayMs } from '../ssh/backoff.js';
import { DeliveryQueue, type QueuedFile } from './delivery-queue.js';
import { failpoint } from './failpoint.js';
import { FlightControl } from './flight-control.js';
import { ConfigError, FileError, UnexpectedError, VesselRefusedError, classify, describe } from '../errors.js';
import type { Logger } from '../log.js';
import type { VesselSettings } from '../settings/load.js';
import type { StateStore } from '../state/store.js';
import { SftpConnection, vesselEndpoint } from '../ssh/connection.js';
import { logFirstUse } from '../ssh/host-key.js';
import { proveCommands, type CommandsProof } from './commands-probe.js';
import { checkByDigests } from './upload/remote-check.js';
import { proveSeparateStorage, type StoragePair } from './same-storage.js';
import { removeLeftoversScript } from './upload/shell.js';
import { deliverFile, isSmallFile, type DeliveryJob, type DeliveryOutcome } from './upload/upload.js';

/**
 * Small files in flight per lane: each is a few round trips and a line to the vessel's checker,
 * so a few at a time leave the link and both ends mostly waiting (2000 files of 64 KiB to one
 * vessel: 8.1 s with 8 in flight, 6.1 s with 32).
 */
const SMALL_FILES_PER_LANE = 16;
/**
 * Bytes of small files in flight per vessel: each is held whole until the vessel has it, and
 * ssh2 keeps a copy of what the channel window does not take yet. 32 files of 64 KiB fit; of
 * 1 MiB files, 8 go at once.
 */
const SMALL_FILE_BYTES_IN_FLIGHT = 8 * 1024 * 1024;

/** Connection attempts under way at once per vessel (see #connectLanes). */
const MAX_HANDSHAKES = 4;

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
  /**
   * The Directories the vessel receives, where they are on the shore and on the vessel: before
   * the first delivery, each RemoteLocation is proven not to be its Location (see same-storage).
   */
  storagePairs?(vessel: string): StoragePair[];
}

export interface WorkerOptions {
  /** `--once`: a refused vessel, or one without progress for `giveUpAfterMs`, is given up. */
  once: boolean;
  giveUpAfterMs: number;
  /** `[MONSTER] ChunkSize`: with the size, it decides which files are small (see isSmallFile). */
  chunkSize: number;
}

/** One connection to the vessel and what it carries. */
interface Lane {
  number: number;
  connection?: SftpConnection;
  /** Aborts the connection attempt under way. */
  connecting?: AbortController;
  large: number;
  small: number;
  /** Bytes the vessel acknowledged on the current connection. */
  carried: number;
}

interface Running {
  file: QueuedFile;
  lane: Lane;
  /** Aborted when the version is replaced or dropped, and on stop. */
  cancel: AbortController;
  done: Promise<void>;
}

/** Sleeps that all end at once when the worker halts (without a listener per sleep on a long-lived signal). */
class Pauses {
  readonly #waking = new Set<() => void>();
  #halted = false;

  sleep(ms: number): Promise<void> {
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

  halt(): void {
    this.#halted = true;
    for (const wake of [...this.#waking]) wake();
  }
}

export class VesselWorker {
  readonly name: string;
  readonly #settings: VesselSettings;
  readonly #store: StateStore;
  readonly #host: WorkerHost;
  readonly #log: Logger;
  readonly #options: WorkerOptions;
  readonly #queue = new DeliveryQueue();
  readonly #running = new Map<number, Running>();
  /** Files enqueued again while in flight: looked at again when their attempt ends. */
  readonly #again = new Set<number>();
  /** Files whose transfer `status` shows (large ones, from their first attempt until they leave). */
  readonly #tracked = new Set<number>();
  readonly #lanes: Lane[];
  readonly #flight: FlightControl;
  #smallBytes = 0;
  #dispatchQueued = false;
  readonly #stop = new AbortController();
  /** Ends every wait of this worker, on stop and on give-up. */
  readonly #pauses = new Pauses();
  #delayMs = 0;
  #nextAttemptAt = 0;
  /** The last connection attempt failed: until one succeeds, one lane at a time tries. */
  #unreachable = false;
  #lastRefusal: string | undefined;
  #gaveUp: string | undefined;
  #lastProgressAt = Date.now();
  #lastError = '';
  #removingLeftovers = false;
  #leftoversAgain = false;
  #watchdog: NodeJS.Timeout | undefined;
  /** What the vessel's commands can do, proven on the first connection (again after a refusal). */
  #commands: CommandsProof | undefined;
  #proving: Promise<CommandsProof> | undefined;
  /** The vessel refused a file's mode or time once: said once, not for every file. */
  #attrsWarned = false;

  constructor(settings: VesselSettings, store: StateStore, host: WorkerHost, log: Logger, options: WorkerOptions) {
    this.name = settings.name;
    this.#settings = settings;
    this.#store = store;
    this.#host = host;
    this.#log = log.child({ vessel: settings.name });
    this.#options = options;
    this.#lanes = Array.from({ length: settings.concurrency }, (_, i) => ({ number: i + 1, large: 0, small: 0, carried: 0 }));
    this.#flight = new FlightControl(settings.concurrency * (1 + SMALL_FILES_PER_LANE));
    if (options.once) this.#watchdog = setInterval(() => this.#checkProgress(), 1000).unref();
  }

  /** Why this vessel was given up (`--once` only), if it was. */
  get gaveUp(): string | undefined {
    return this.#gaveUp;
  }

  /** Nothing waiting or in flight. */
  get idle(): boolean {
    return this.#queue.size === 0 && this.#running.size === 0;
  }

  /** Queues the delivery of a file; a file in flight is looked at again when its attempt ends. */
  enqueue(fileId: number): void {
    if (this.#stop.signal.aborted) return;
    if (this.#running.has(fileId)) {
      this.#again.add(fileId);
      return;
    }
    if (this.#queue.has(fileId)) return;
    const size = this.#store.file(fileId)?.size;
    if (size === undefined) return;
    this.#queue.add({ id: fileId, kind: isSmallFile(size, this.#options.chunkSize) ? 'small' : 'large', size });
    this.#dispatchSoon();
  }

  cancel(fileId: number): void {
    this.#running.get(fileId)?.cancel.abort();
  }

  /** One dispatch per turn of the event loop, however many files were queued in it. */
  #dispatchSoon(): void {
    if (this.#dispatchQueued) return;
    this.#dispatchQueued = true;
    queueMicrotask(() => {
      this.#dispatchQueued = false;
      this.#dispatch();
    });
  }

  /** Starts queued files on lanes with room, as far as FlightControl allows; connects lanes while there is work. */
  #dispatch(): void {
    if (this.#stop.signal.aborted) return;
    if (this.#gaveUp) {
      this.#failQueued(this.#gaveUp);
      return;
    }
    if (this.idle) return;
    this.#connectLanes();
    while (this.#running.size < this.#flight.files) {
      const file = this.#queue.take((f) => this.#laneFor(f) !== undefined);
      if (!file) return;
      this.#start(file, this.#laneFor(file)!);
    }
  }

  /** The connected lane with room for `f` and the least in flight. */
  #laneFor(f: QueuedFile): Lane | undefined {
    if (f.kind === 'small' && this.#smallBytes > 0 && this.#smallBytes + f.size > SMALL_FILE_BYTES_IN_FLIGHT) return undefined;
    let best: Lane | undefined;
    for (const lane of this.#lanes) {
      if (!lane.connection || lane.connection.closed) continue;
      if (f.kind === 'large' ? lane.large > 0 : lane.small >= SMALL_FILES_PER_LANE) continue;
      if (!best || lane.large + lane.small < best.large + best.small) best = lane;
    }
    return best;
  }

  #start(file: QueuedFile, lane: Lane): void {
    const job = this.#host.jobFor(file.id, this.name);
    if (!job) {
      this.#leave(file.id); // done, gone or replaced meanwhile
      return;
    }
    const connection = lane.connection!;
    this.#occupy(lane, file, 1);
    if (file.kind === 'large' && !this.#tracked.has(file.id)) {
      // A small file is in flight for milliseconds: `status` would never see it, and its state
      // writes would cost more than its transfer.
      this.#tracked.add(file.id);
      this.#store.transferStarted(file.id, this.name);
    }
    const running = { file, lane, cancel: new AbortController() } as Running;
    this.#running.set(file.id, running);
    running.done = this.#attempt(running, job, connection)
      .catch((err: unknown) => this.#log.error({ err, file: job.localPath }, 'unexpected error in delivery job'))
      .finally(() => {
        // The file may already be running again (put back, and taken by another lane first).
        if (this.#running.get(file.id) === running) this.#running.delete(file.id);
        this.#occupy(lane, file, -1);
        if (this.#again.delete(file.id)) this.enqueue(file.id);
        this.#dispatchSoon();
      });
  }

  #occupy(lane: Lane, file: QueuedFile, n: 1 | -1): void {
    if (file.kind === 'large') lane.large += n;
    else {
      lane.small += n;
      this.#smallBytes += n * file.size;
    }
  }

  /** One attempt at one file on one connection; it never throws. */
  async #attempt(running: Running, job: DeliveryJob, connection: SftpConnection): Promise<void> {
    const { file, lane, cancel } = running;
    const started = performance.now();
    try {
      const outcome = await deliverFile(
        connection,
        { ...job, resumeFrom: file.stage === 'started' ? undefined : file.stage },
        this.#hooks(file, job, lane, cancel.signal),
        {
          execBaseMs: this.#settings.timeoutS * 1000,
          pieceBytes: () => this.#flight.piece(connection.maxWriteLength, lane.carried),
          joinWhileSending: (bytes) => this.#flight.lasts(bytes),
        },
      );
      if (outcome.kind === 'done') await failpoint('after-remote-rename');
      this.#lastProgressAt = Date.now();
      this.#leave(file.id);
      if (outcome.kind === 'done') this.#flight.delivered();
      else this.#discard(job);
      this.#host.outcome(file.id, this.name, job.versionKey, outcome, (performance.now() - started) / 1000);
    } catch (raw) {
      if (this.#stop.signal.aborted) return;
      if (cancel.signal.aborted) {
        this.#leave(file.id);
        this.#discard(job);
        return;
      }
      if (this.#gaveUp) {
        this.#leave(file.id);
        this.#host.failed(file.id, this.name, this.#gaveUp);
        return;
      }
      const err = classify(raw, { vessel: this.name, path: job.localPath });
      this.#lastError = describe(err);
      if (err instanceof UnexpectedError) this.#log.error({ file: job.localPath, err: raw }, 'unexpected error (a bug: please report it); counted against the file');
      if (err instanceof FileError) {
        if (this.#fileFailed(file.id, job, err)) this.#queue.add({ ...file, stage: 'started' });
        else this.#leave(file.id);
        return;
      }
      if (err instanceof VesselRefusedError || err instanceof ConfigError) this.#refused(err);
      // The link failed (the lane's connection logs it once for all it carried): what the
      // vessel has stays, and the file goes first on the next connection that can take it.
      this.#log.debug({ file: job.localPath, err: describe(err) }, 'transfer interrupted');
      this.#queue.add({ ...file, stage: file.stage ?? 'started' });
      if (!connection.closed) connection.disconnect(`dropped after: ${describe(err)}`);
    }
  }

  /** The file leaves this worker (delivered, failed, gone or replaced). */
  #leave(fileId: number): void {
    if (this.#tracked.delete(fileId)) this.#store.transferEnded(fileId, this.name);
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
  #hooks(file: QueuedFile, job: DeliveryJob, lane: Lane, signal: AbortSignal) {
    const tracked = file.kind === 'large';
    let bytes = 0;
    let savedAt = 0;
    const save = (now: number) => {
      savedAt = now;
      if (tracked && !signal.aborted) this.#store.transferProgress(file.id, this.name, bytes);
    };
    return {
      signal,
      chunkDone: (index: number) => {
        if (!signal.aborted) this.#store.addChunk(file.id, this.name, index);
      },
      chunksReset: () => {
        if (!signal.aborted) this.#store.clearChunks(file.id, this.name);
      },
      sha256Known: (sha256: string) => this.#store.setSha256(file.id, job.versionKey, sha256),
      sending: (bytesPresent: number) => {
        bytes = bytesPresent;
        file.stage ??= 'started';
        save(Date.now());
      },
      progress: (n: number) => {
        const now = Date.now();
        this.#lastProgressAt = now;
        bytes += n;
        lane.carried += n;
        this.#flight.carried(lane.carried);
        if (now - savedAt >= progressSaveMs) save(now);
      },
      joining: () => {
        save(Date.now()); // everything is on the vessel: show 100 % while it is joined and checked
        this.#log.debug({ file: job.localPath, destination: job.destination }, 'joining, verifying and placing on vessel');
      },
      stage: (stage: 'sent' | 'placing') => {
        file.stage = stage;
      },
      attrsRefused: (detail: string) => {
        if (this.#attrsWarned) return;
        this.#attrsWarned = true;
        this.#log.warn({ file: job.localPath, err: detail }, 'vessel refuses to set file modes or times; files are delivered all the same, with what the vessel gives them (said once per vessel)');
      },
    };
  }

  /**
   * Connects every lane that has no connection, while there is work: a few at a time (sshd
   * drops new connections beyond MaxStartups, 10 by default, that have not logged in yet), and
   * one at a time while the vessel cannot be reached.
   */
  #connectLanes(): void {
    if (this.#stop.signal.aborted || this.#gaveUp) return;
    for (const lane of this.#lanes) {
      if (lane.connecting || (lane.connection && !lane.connection.closed)) continue;
      const connecting = this.#lanes.filter((l) => l.connecting).length;
      if (connecting >= (this.#unreachable ? 1 : MAX_HANDSHAKES)) return;
      const attempt = new AbortController();
      lane.connecting = attempt;
      void this.#connectLane(lane, attempt.signal).finally(() => {
        lane.connecting = undefined;
        this.#dispatchSoon();
      });
    }
  }

  async #connectLane(lane: Lane, signal: AbortSignal): Promise<void> {
    await this.#pauses.sleep(this.#nextAttemptAt - Date.now());
    if (this.#stop.signal.aborted || this.#gaveUp || this.idle) return;
    try {
      const connection = await SftpConnection.open({
        endpoint: vesselEndpoint(this.#settings),
        hostKeys: this.#store,
        signal,
        onHostKey: logFirstUse(this.#log),
      });
      if (this.#stop.signal.aborted) {
        connection.disconnect('stopping');
        return;
      }
      await this.#proveCommands(connection);
      if (this.#stop.signal.aborted || this.#gaveUp) {
        connection.disconnect('stopping');
        return;
      }
      lane.connection = connection;
      lane.carried = 0;
      // The backoff is not reset here: only moving data resets it (see #lost), so a vessel that
      // takes connections and fails every transfer (a full disk) is not hammered.
      this.#unreachable = false;
      this.#lastRefusal = undefined;
      this.#log.info({ address: `${this.#settings.address}:${this.#settings.port}`, ...(this.#lanes.length > 1 ? { connection: lane.number } : {}) }, 'connected');
      connection.onClose((err) => this.#lost(lane, connection, err));
      void this.#removeLeftovers(connection);
    } catch (raw) {
      if (this.#stop.signal.aborted || this.#gaveUp) return; // a connection cut short by the stop or the give-up
      const err = classify(raw, { vessel: this.name });
      this.#lastError = describe(err);
      this.#store.recordVesselError(this.name, describe(err));
      if (err instanceof VesselRefusedError || err instanceof ConfigError) {
        this.#refused(err);
        return;
      }
      if (err instanceof UnexpectedError) this.#log.error({ err: raw }, 'unexpected error while connecting (a bug: please report it)');
      this.#unreachable = true;
      this.#delayMs = nextDelay(this.#delayMs);
      this.#nextAttemptAt = Date.now() + this.#delayMs;
      this.#log.warn({ err: describe(err), retryInSeconds: +(this.#delayMs / 1000).toFixed(1) }, 'cannot reach vessel; will retry');
    }
  }

  /**
   * Nothing is written to a vessel before its commands are proven to run (see commands-probe)
   * and its RemoteLocations are proven not to be the shore's own Locations (see same-storage):
   * once per vessel, on the first connection, and again after a refusal; lanes connecting at the
   * same time wait for that one proof. Each connection then checks small files the way the
   * vessel's sha256sum allows.
   */
  async #proveCommands(connection: SftpConnection): Promise<void> {
    try {
      const proof = await this.#commandsProof(connection);
      if (proof.checker === 'batch') checkByDigests(connection);
    } catch (err) {
      connection.disconnect(`cannot use: ${describe(err)}`);
      throw err;
    }
  }

  async #commandsProof(connection: SftpConnection): Promise<CommandsProof> {
    for (;;) {
      if (this.#commands) return this.#commands;
      const mine = this.#proving === undefined;
      const proving = this.#proving ??= proveCommands(connection, this.name).then(async (proof) => {
        const unknown = await proveSeparateStorage(connection, this.name, this.#host.storagePairs?.(this.name) ?? []);
        for (const u of unknown) {
          this.#log.warn({ directory: u.pair.directory, err: u.reason }, 'cannot tell whether RemoteLocation is the shore\'s own Location; sending anyway');
        }
        this.#commands = proof;
        this.#log.debug({ checker: proof.checker }, proof.checker === 'line'
          ? 'commands run; small files are checked by one sha256sum -c per connection'
          : 'commands run; sha256sum answers only at the end of its input (busybox?), so small files are checked by batched digests');
        return proof;
      }).finally(() => {
        if (this.#proving === proving) this.#proving = undefined;
      });
      try {
        return await proving;
      } catch (err) {
        // Another lane's connection failed while it asked: ask again on this one.
        if (mine || err instanceof VesselRefusedError) throw err;
      }
    }
  }

  /**
   * A lane's connection ended. Its transfers fail and go back to the queue by themselves (see
   * #attempt); here the drop is logged once, FlightControl learns how long the connection
   * lived, and the next connection waits: briefly after a link that moved data (the next
   * stretch may well get through), longer and longer after one that did not.
   */
  #lost(lane: Lane, connection: SftpConnection, err: Error): void {
    if (lane.connection !== connection) return;
    lane.connection = undefined;
    if (this.#stop.signal.aborted || this.#gaveUp) return;
    const inFlight = lane.large + lane.small;
    if (inFlight === 0) {
      this.#log.debug({ err: describe(err) }, 'connection closed');
      this.#dispatchSoon();
      return;
    }
    this.#flight.dropped(lane.carried);
    this.#delayMs = nextDelay(this.#delayMs, Math.random, lane.carried > 0);
    this.#nextAttemptAt = Date.now() + this.#delayMs;
    this.#store.recordVesselError(this.name, describe(err));
    this.#log.warn({ err: describe(err), files: inFlight, carriedBytes: lane.carried, reconnectInSeconds: +(this.#delayMs / 1000).toFixed(2) }, 'transfer interrupted; will resume');
    this.#dispatchSoon();
  }

  /** Authentication, host key, key file: an operator must act. Log once, retry slowly. */
  #refused(err: Error): void {
    const reason = describe(err);
    this.#commands = undefined; // the vessel may have been fixed (or broken) when it is tried again
    if (this.#options.once) {
      this.#giveUp(reason);
      return;
    }
    if (reason !== this.#lastRefusal) this.#log.error({ err: reason, retryInSeconds: refusedDelayMs / 1000 }, 'vessel refused; fix the settings or the vessel');
    this.#lastRefusal = reason;
    this.#nextAttemptAt = Date.now() + refusedDelayMs;
  }

  /**
   * Removes chunk sets and half-joined files of versions that no longer exist. Best effort, one
   * pass at a time; leftovers recorded during a pass (a transfer that has just stopped writing)
   * get a pass of their own after it.
   */
  async #removeLeftovers(connection: SftpConnection): Promise<void> {
    if (this.#removingLeftovers) {
      this.#leftoversAgain = true;
      return;
    }
    this.#removingLeftovers = true;
    try {
      do {
        this.#leftoversAgain = false;
        for (const l of this.#store.leftovers(this.name)) {
          if (connection.closed) return;
          const r = await connection.exec(removeLeftoversScript(l.chunkPrefix, l.assemblyPrefix));
          if (r.code === 0) this.#store.deleteLeftover(l);
        }
      } while (this.#leftoversAgain);
    } catch {
      // the next connection tries again
    } finally {
      this.#removingLeftovers = false;
    }
  }

  /** New leftovers were recorded: remove them now if connected. */
  cleanLeftovers(): void {
    const connection = this.#lanes.find((l) => l.connection && !l.connection.closed)?.connection;
    if (connection) void this.#removeLeftovers(connection);
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
    this.#pauses.halt();
    for (const lane of this.#lanes) {
      lane.connecting?.abort();
      lane.connection?.disconnect('given up');
    }
    this.#dispatchSoon();
  }

  /** Every queued file fails with `reason` (the vessel was given up). */
  #failQueued(reason: string): void {
    for (const f of this.#queue.drain()) {
      if (this.#host.jobFor(f.id, this.name)) this.#host.failed(f.id, this.name, reason);
      this.#leave(f.id);
    }
  }

  /** Takes no new work, cuts transfers short (the vessel keeps what it has), and waits for them to end. */
  async stop(): Promise<void> {
    clearInterval(this.#watchdog);
    this.#stop.abort();
    this.#pauses.halt();
    this.#queue.drain();
    for (const r of this.#running.values()) r.cancel.abort();
    for (const lane of this.#lanes) {
      lane.connecting?.abort();
      lane.connection?.disconnect('stopping');
    }
    await Promise.all([...this.#running.values()].map((r) => r.done));
    for (const id of [...this.#tracked]) this.#leave(id);
  }
}
