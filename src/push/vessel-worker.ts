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
 *
 * When a lane may connect, how long it waits, what a refusal does and when the vessel is given
 * up is the link policy's (ssh/link.ts): the worker reports what its lanes meet. The lanes are
 * lanes.ts; what a transfer records as it goes, transfer-hooks.ts; the proof asked of a vessel
 * before anything is written, vessel-proof.ts; removing what cancelled transfers left, leftovers.ts.
 */
import type { QueuedFile } from './delivery-queue.js';
import { pushEvents } from './events.js';
import { failpoint } from './failpoint.js';
import { FlightControl } from './flight-control.js';
import { FileError, UnexpectedError, classify, describe } from '../errors.js';
import type { Logger } from '../log.js';
import type { VesselSettings } from '../settings/load.js';
import type { StateStore, WaitingRow } from '../state/store.js';
import { logFirstUse } from '../ssh/host-key.js';
import { LinkPolicy, isRefusal, type LinkFailure } from '../ssh/link.js';
import type { VesselConnection } from '../ssh/remote-fs.js';
import type { OpenVesselConnection } from '../ssh/ssh-threads.js';
import { vesselEndpoint } from './endpoint.js';
import { Lanes, SMALL_FILES_PER_LANE, type Lane } from './lanes.js';
import { LeftoverRemover } from './leftovers.js';
import type { StoragePair } from './same-storage.js';
import { TransferHooks } from './transfer-hooks.js';
import { PagedQueue } from './paged-queue.js';
import { deliverFile, isSmallFile, smallFileMax, type DeliveryJob, type DeliveryOutcome } from './upload/upload.js';
import { VesselProof } from './vessel-proof.js';

/** Connection attempts under way at once per vessel (see #connectLanes). */
const MAX_HANDSHAKES = 4;

const maxAttempts = 3;

/** A delivery, and the Directory it belongs to (whose storage is proven before it starts). */
export interface WorkerJob extends DeliveryJob {
  directory: string;
}

/** What the worker asks of the replicator, which owns files and directories. */
export interface WorkerHost {
  /** The delivery to make now, or undefined when there is none (done, gone, replaced). */
  jobFor(fileId: number, vessel: string): WorkerJob | undefined;
  outcome(fileId: number, vessel: string, versionKey: string, outcome: DeliveryOutcome, seconds: number): void;
  /** The delivery failed for good (for this round): records the attempt and the reason. */
  failed(fileId: number, vessel: string, reason: string): void;
  /** The vessel was given up: every delivery still waiting for it fails with `reason`. */
  failedAll(vessel: string, reason: string): void;
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
  /** Where its connections live: on this thread or in an SSH thread (see ssh-threads.ts). */
  openConnection: OpenVesselConnection;
  /** Waits for this vessel's bandwidth limits before each write (see push/bandwidth/limiter.ts). */
  throttle?: (bytes: number, signal: AbortSignal) => Promise<void> | undefined;
}

interface Running {
  file: QueuedFile;
  lane: Lane;
  /** Aborted when the version is replaced or dropped, and on stop. */
  cancel: AbortController;
  done: Promise<void>;
}

export class VesselWorker {
  readonly name: string;
  readonly #settings: VesselSettings;
  readonly #store: StateStore;
  readonly #host: WorkerHost;
  readonly #log: Logger;
  /** What waits: a window in memory, the rest in the state database (see PagedQueue). */
  readonly #queue: PagedQueue;
  readonly #running = new Map<number, Running>();
  /** Files enqueued again while in flight: looked at again when their attempt ends. */
  readonly #again = new Set<number>();
  /** Files whose transfer `status` shows (large ones, from their first attempt until they leave). */
  readonly #tracked = new Set<number>();
  readonly #lanes: Lanes;
  readonly #flight: FlightControl;
  /** Connecting, backoff, refusals, give-up; its waits end on stop and on give-up. */
  readonly #link: LinkPolicy;
  readonly #proof: VesselProof;
  readonly #leftovers: LeftoverRemover;
  #dispatchQueued = false;
  readonly #stop = new AbortController();
  /** Removed from the settings by a reload: takes no new work, lets what is in flight end (see retire). */
  #retiring = false;
  readonly #hooks: TransferHooks;
  readonly #throttle: WorkerOptions['throttle'];
  #lastError = '';
  readonly #openConnection: OpenVesselConnection;

  constructor(settings: VesselSettings, store: StateStore, host: WorkerHost, log: Logger, options: WorkerOptions) {
    this.name = settings.name;
    this.#settings = settings;
    this.#store = store;
    this.#host = host;
    this.#throttle = options.throttle;
    this.#log = log.child({ vessel: settings.name });
    this.#openConnection = options.openConnection;
    const smallMax = smallFileMax(options.chunkSize);
    this.#queue = new PagedQueue(
      (kind, after, limit) => store.waitingPage(settings.name, kind, smallMax, after, limit),
      (size) => (isSmallFile(size, options.chunkSize) ? 'small' : 'large'),
      (id) => this.#running.has(id),
    );
    this.#lanes = new Lanes(settings.concurrency);
    this.#flight = new FlightControl(settings.concurrency * (1 + SMALL_FILES_PER_LANE));
    this.#proof = new VesselProof(settings.name, this.#log, () => host.storagePairs?.(settings.name) ?? []);
    this.#leftovers = new LeftoverRemover(settings.name, store);
    this.#hooks = new TransferHooks(settings.name, store, this.#log, this.#flight, (now) => this.#link.progress(now));
    this.#link = new LinkPolicy({
      refusal: options.once ? 'give-up' : 'retry',
      maxAttempts: MAX_HANDSHAKES,
      giveUpAfterMs: options.giveUpAfterMs,
      onGiveUp: (reason) => this.#givenUp(reason),
    });
    this.#dispatchSoon(); // what an earlier run left waiting is read from the database
    if (options.once) {
      this.#link.watch(() => this.idle, (quiet) => `no progress for ${Math.round(quiet / 1000)} s${this.#lastError ? ` (last error: ${this.#lastError})` : ''}`);
    }
  }

  /** Why this vessel was given up (`--once` only), if it was. */
  get gaveUp(): string | undefined {
    const reason = this.#link.gaveUp;
    return reason === undefined ? undefined : `vessel ${this.name} given up: ${reason}`;
  }

  /** Nothing waiting or in flight. */
  get idle(): boolean {
    return this.#queue.empty && this.#running.size === 0;
  }

  /**
   * A delivery of this file to this vessel is pending: it is queued in its place, or read from
   * the database later; a file in flight is looked at again when its attempt ends.
   */
  enqueue(row: WaitingRow): void {
    if (this.#stop.signal.aborted || this.#retiring) return;
    if (this.#running.has(row.id)) {
      this.#again.add(row.id);
      return;
    }
    this.#queue.offer(row);
    this.#dispatchSoon();
  }

  /** Deliveries may have become pending anywhere in the database (a retry round, a Location taken up): read it all again. */
  rewind(): void {
    if (this.#stop.signal.aborted || this.#retiring) return;
    this.#queue.rewind();
    this.#dispatchSoon();
  }

  /** The file is in flight to this vessel now. */
  carries(fileId: number): boolean {
    return this.#running.has(fileId);
  }

  cancel(fileId: number): void {
    this.#running.get(fileId)?.cancel.abort();
  }

  /** A Location became usable after the start: its RemoteLocation is proven again before its next file. */
  locationTakenUp(directory: string): void {
    this.#proof.forgetDirectory(directory);
    this.rewind(); // its files were passed over while it could not be used
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
    if (this.#stop.signal.aborted || this.#retiring) return;
    const gaveUp = this.gaveUp;
    if (gaveUp) {
      this.#failQueued(gaveUp);
      return;
    }
    this.#queue.refill();
    if (this.idle) return;
    this.#connectLanes();
    while (this.#running.size < this.#flight.files) {
      const file = this.#queue.take((f) => this.#lanes.laneFor(f) !== undefined);
      if (!file) return;
      this.#start(file, this.#lanes.laneFor(file)!);
    }
  }

  #start(file: QueuedFile, lane: Lane): void {
    const job = this.#host.jobFor(file.id, this.name);
    if (!job) {
      this.#leave(file.id); // done, gone or replaced meanwhile
      return;
    }
    const connection = lane.connection!;
    this.#lanes.occupy(lane, file, 1);
    if (file.kind === 'large' && !this.#tracked.has(file.id)) {
      // A small file is in flight for milliseconds: `status` would never see it, and its state
      // writes would cost more than its transfer. A large one, once begun, goes first from now
      // on, after a restart too (see STARTED_TIER).
      this.#tracked.add(file.id);
      this.#store.transferStarted(file.id, this.name);
      this.#store.markStarted(file.id, this.name);
    }
    const running = { file, lane, cancel: new AbortController() } as Running;
    this.#running.set(file.id, running);
    running.done = this.#attempt(running, job, connection)
      .catch((err: unknown) => this.#log.error({ err, file: job.localPath }, 'unexpected error in delivery job'))
      .finally(() => {
        // The file may already be running again (put back, and taken by another lane first).
        if (this.#running.get(file.id) === running) this.#running.delete(file.id);
        this.#lanes.occupy(lane, file, -1);
        if (this.#again.delete(file.id)) this.#enqueueAgain(file.id);
        this.#dispatchSoon();
      });
  }

  /** One attempt at one file on one connection; it never throws. */
  async #attempt(running: Running, job: WorkerJob, connection: VesselConnection): Promise<void> {
    const { file, lane, cancel } = running;
    const started = performance.now();
    try {
      if (!this.#proof.isProven(job.directory)) await this.#proof.proveDirectory(connection, job.directory);
      const outcome = await deliverFile(
        connection,
        { ...job, resumeFrom: file.stage === 'started' ? undefined : file.stage },
        this.#hooks.for(file, job, lane, cancel.signal),
        {
          execBaseMs: this.#settings.timeoutS * 1000,
          pieceBytes: () => this.#flight.piece(connection.maxWriteLength, lane.carried),
          windowBytes: () => this.#flight.window(),
          joinWhileSending: (bytes) => this.#flight.lasts(bytes),
          throttle: this.#throttle,
        },
      );
      if (outcome.kind === 'done') await failpoint('after-remote-rename');
      this.#link.progress();
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
      const gaveUp = this.gaveUp;
      if (gaveUp) {
        this.#leave(file.id);
        this.#host.failed(file.id, this.name, gaveUp);
        return;
      }
      const err = classify(raw, { vessel: this.name, path: job.localPath });
      this.#lastError = describe(err);
      if (err instanceof UnexpectedError) this.#log.error({ file: job.localPath, err: raw }, 'unexpected error (a bug: please report it); counted against the file');
      if (err instanceof FileError) {
        if (this.#fileFailed(file.id, job, err)) this.#queue.putBack({ ...file, stage: 'started' });
        else this.#leave(file.id);
        return;
      }
      if (isRefusal(err)) {
        // Refused on a connection (a Directory found to be the shore's own storage): the whole
        // vessel waits for an operator, so every lane stops, not only this one.
        this.#refused(this.#link.refused(err));
        this.#queue.putBack({ ...file, stage: file.stage ?? 'started' });
        this.#lanes.cut('refused', true);
        return;
      }
      // The link failed (the lane's connection logs it once for all it carried): what the
      // vessel has stays, and the file goes first on the next connection that can take it.
      this.#log.debug({ file: job.localPath, err: describe(err) }, 'transfer interrupted');
      this.#queue.putBack({ ...file, stage: file.stage ?? 'started' });
      if (!connection.closed) connection.disconnect(`dropped after: ${describe(err)}`);
    }
  }

  /** A file enqueued while in flight: queued again if its delivery is still pending. */
  #enqueueAgain(fileId: number): void {
    for (const row of this.#store.waitingOf(fileId, this.name)) this.enqueue(row);
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
      pushEvents.emit({ type: 'failed', vessel: this.name, file: job.localPath, reason: describe(err), attempt: attempts, final: false });
      return true;
    }
    this.#log.error({ file: job.localPath, attempts, err: describe(err) }, 'delivery failed; the file stays queued and is retried at the next rescan');
    pushEvents.emit({ type: 'failed', vessel: this.name, file: job.localPath, reason: describe(err), attempt: attempts, final: true });
    this.#host.failed(fileId, this.name, describe(err)); // records the final attempt
    return false;
  }

  /**
   * Connects every lane that has no connection, while there is work: a few at a time (sshd
   * drops new connections beyond MaxStartups, 10 by default, that have not logged in yet), and
   * one at a time while the vessel cannot be reached (the link policy says which).
   */
  #connectLanes(): void {
    if (this.#stop.signal.aborted || this.#link.gaveUp) return;
    for (const lane of this.#lanes.all) {
      if (lane.connecting || (lane.connection && !lane.connection.closed)) continue;
      if (!this.#link.mayAttempt(this.#lanes.connecting)) return;
      const attempt = new AbortController();
      lane.connecting = attempt;
      void this.#connectLane(lane, attempt.signal).finally(() => {
        lane.connecting = undefined;
        this.#dispatchSoon();
      });
    }
  }

  async #connectLane(lane: Lane, signal: AbortSignal): Promise<void> {
    await this.#link.wait();
    if (this.#stop.signal.aborted || this.#link.gaveUp || this.idle) return;
    try {
      const connection = await this.#openConnection({
        endpoint: vesselEndpoint(this.#settings),
        hostKeys: this.#store,
        signal,
        onHostKey: logFirstUse(this.#log),
      });
      if (this.#stop.signal.aborted) {
        connection.disconnect('stopping');
        return;
      }
      await this.#proof.prove(connection);
      if (this.#stop.signal.aborted || this.#link.gaveUp) {
        connection.disconnect('stopping');
        return;
      }
      lane.connection = connection;
      lane.carried = 0;
      this.#link.connected();
      this.#log.info({ address: `${this.#settings.address}:${this.#settings.port}`, ...(this.#lanes.all.length > 1 ? { connection: lane.number } : {}) }, 'connected');
      pushEvents.emit({ type: 'connected', vessel: this.name, ...(this.#lanes.all.length > 1 ? { connection: lane.number } : {}) });
      connection.onClose((err) => this.#lost(lane, connection, err));
      void this.#leftovers.removeOver(connection);
    } catch (raw) {
      if (this.#stop.signal.aborted || this.#link.gaveUp) return; // a connection cut short by the stop or the give-up
      const err = classify(raw, { vessel: this.name });
      this.#lastError = describe(err);
      this.#store.recordVesselError(this.name, describe(err));
      if (err instanceof UnexpectedError) this.#log.error({ err: raw }, 'unexpected error while connecting (a bug: please report it)');
      const failure = this.#link.failed(err);
      if (failure.kind !== 'unreachable') this.#refused(failure);
      else {
        this.#log.warn({ err: describe(err), retryInSeconds: +(failure.delayMs / 1000).toFixed(1) }, 'cannot reach vessel; will retry');
        pushEvents.emit({ type: 'unreachable', vessel: this.name, reason: describe(err), retryInMs: failure.delayMs });
      }
    }
  }

  /**
   * A lane's connection ended. Its transfers fail and go back to the queue by themselves (see
   * #attempt); here the drop is logged once, FlightControl learns how long the connection
   * lived, and the link policy how long the next connection waits: briefly after a link that
   * moved data, longer and longer after one that did not.
   */
  #lost(lane: Lane, connection: VesselConnection, err: Error): void {
    if (lane.connection !== connection) return;
    lane.connection = undefined;
    if (this.#stop.signal.aborted || this.#link.gaveUp) return;
    const inFlight = lane.large + lane.small;
    if (inFlight === 0) {
      this.#log.debug({ err: describe(err) }, 'connection closed');
      this.#dispatchSoon();
      return;
    }
    this.#flight.dropped(lane.carried);
    const delayMs = this.#link.dropped(lane.carried > 0);
    this.#store.recordVesselError(this.name, describe(err));
    this.#log.warn({ err: describe(err), files: inFlight, carriedBytes: lane.carried, reconnectInSeconds: +(delayMs / 1000).toFixed(2) }, 'transfer interrupted; will resume');
    pushEvents.emit({ type: 'interrupted', vessel: this.name, files: inFlight, reason: describe(err) });
    this.#dispatchSoon();
  }

  /** Authentication, host key, key file: an operator must act. Said once; the policy retries slowly or gives up. */
  #refused(failure: LinkFailure): void {
    this.#proof.forget(); // the vessel may have been fixed (or broken) when it is tried again
    if (failure.kind !== 'refused' || failure.repeated) return;
    this.#log.error({ err: failure.reason, retryInSeconds: failure.retryInMs / 1000 }, 'vessel refused; fix the settings or the vessel');
    pushEvents.emit({ type: 'refused', vessel: this.name, reason: failure.reason, retryInMs: failure.retryInMs });
  }

  /** New leftovers were recorded: remove them now if connected. */
  cleanLeftovers(): void {
    const connection = this.#lanes.anyConnection;
    if (connection) void this.#leftovers.removeOver(connection);
  }

  /** The link policy gave the vessel up (`--once`): said once; attempts and connections end. */
  #givenUp(reason: string): void {
    this.#log.error({ err: reason }, 'vessel given up for this run');
    pushEvents.emit({ type: 'gaveUp', vessel: this.name, reason });
    this.#lanes.cut('given up');
    this.#dispatchSoon();
  }

  /** Every waiting file fails with `reason` (the vessel was given up), those only in the database too. */
  #failQueued(reason: string): void {
    const inMemory = this.#queue.drain();
    for (const f of inMemory) {
      if (this.#host.jobFor(f.id, this.name)) this.#host.failed(f.id, this.name, reason);
      this.#leave(f.id);
    }
    this.#host.failedAll(this.name, reason);
  }

  /**
   * The vessel was removed by a reload: no new work; the transfers in flight end as they would
   * (delivered, or put back when their connection drops: nothing reconnects for them), then the
   * connections close. `stop()` meanwhile cuts them short (a second reload).
   */
  async retire(): Promise<void> {
    this.#retiring = true;
    this.#queue.drain();
    while (this.#running.size > 0 && !this.#stop.signal.aborted) {
      await Promise.all([...this.#running.values()].map((r) => r.done));
    }
    await this.stop();
  }

  /** Takes no new work, cuts transfers short (the vessel keeps what it has), and waits for them to end. */
  async stop(): Promise<void> {
    this.#stop.abort();
    this.#link.halt();
    this.#queue.drain();
    for (const r of this.#running.values()) r.cancel.abort();
    this.#lanes.cut('stopping');
    await Promise.all([...this.#running.values()].map((r) => r.done));
    for (const id of [...this.#tracked]) this.#leave(id);
  }
}
