/**
 * Turns stable shore files into deliveries and finished deliveries into `processed/` moves.
 *
 * Every version is written to the state store before any vessel queue sees it, so a crash
 * between the two loses nothing: `replay()` at startup re-queues every pending row. When all
 * vessels that should have a version confirmed it, the shore file moves to `processed/` and
 * its row is forgotten.
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { join, posix } from 'node:path';
import { describe } from '../errors.js';
import type { Logger } from '../log.js';
import { pushEvents } from './events.js';
import type { Delivered } from './report.js';
import { moveToProcessed } from './processed.js';
import { lstatOrNone } from '../shore-fs.js';
import type { DirectorySettings, Settings } from '../settings/load.js';
import type { StableFile } from './stabilizer.js';
import type { FileVersion, StateStore } from '../state/store.js';
import { isStorageMarker, type StoragePair } from './same-storage.js';
import type { DeliveryOutcome } from './upload/upload.js';
import type { VesselWorker, WorkerHost, WorkerJob } from './vessel-worker.js';

export interface Failure {
  vessel: string;
  file: string;
  reason: string;
}

/** `--once`: failures listed one by one at most; the rest are counted. */
export const FAILURES_LISTED = 1000;
/** Files the startup replay looks at between two turns of the event loop. */
const REPLAY_PAGE = 500;

export class Replicator implements WorkerHost {
  /** The settings in force: replaced by a reload (see reconfigure). */
  #settings: Settings;
  readonly #store: StateStore;
  readonly #log: Logger;
  #directories: Map<string, DirectorySettings>;
  readonly #workers = new Map<string, VesselWorker>();
  /** Workers of vessels removed by a reload, while their transfers in flight end. */
  readonly #leaving = new Set<VesselWorker>();
  readonly #shore = hostname();
  /** Files whose processed/ move is under way. */
  readonly #moving = new Set<number>();
  /** Called when a file must be looked at again (it changed under a transfer). */
  onRecheck: (directory: string, relpath: string) => void = () => {};
  /**
   * `--once` only: what did not make it, for the final report (a daemon would grow it forever);
   * the first FAILURES_LISTED, and `failuresNotListed` counts the rest.
   */
  readonly failures: Failure[] = [];
  failuresNotListed = 0;
  /** The startup pass over every recorded file (see replay), while it runs. */
  #replaying: Promise<void> | undefined;
  readonly #collectFailures: boolean;
  readonly #report: { delivered(d: Delivered): void } | undefined;

  constructor(settings: Settings, store: StateStore, log: Logger, options: { collectFailures: boolean; report?: { delivered(d: Delivered): void } }) {
    this.#collectFailures = options.collectFailures;
    this.#report = options.report;
    this.#settings = settings;
    this.#store = store;
    this.#log = log;
    this.#directories = new Map(settings.directories.map((d) => [d.name, d]));
  }

  addWorker(worker: VesselWorker): void {
    this.#workers.set(worker.name, worker);
  }

  /** The vessel's worker leaves (removed or changed by a reload): nothing is queued for it any more. */
  removeWorker(name: string): void {
    this.#workers.delete(name);
  }

  /**
   * A vessel removed by a reload: nothing is queued for it, and until `retired`, no file it has
   * in flight is moved to processed/ (its transfer reads the shore file to the end).
   */
  retireWorker(name: string): void {
    const worker = this.#workers.get(name);
    this.#workers.delete(name);
    if (worker) this.#leaving.add(worker);
  }

  retired(worker: VesselWorker): void {
    this.#leaving.delete(worker);
  }

  /**
   * A reload: the vessels and Directories files are sent to from now on. The delivery rows
   * follow at the next replay (as at a start), which the daemon runs right after.
   */
  reconfigure(settings: Settings): void {
    this.#settings = settings;
    this.#directories = new Map(settings.directories.map((d) => [d.name, d]));
  }

  /**
   * A Directory removed or changed by a reload: its files are forgotten, as a start without it
   * forgets them. They stay where they are on the shore, never moved to processed/; should the
   * Directory come back, its scan finds them again (and their chunks on the vessels, which
   * belong to the same versions). Transfers in flight end; what they deliver is not recorded.
   */
  forgetDirectory(directory: string): void {
    const n = this.#store.forgetDirectory(directory);
    if (n > 0) this.#log.info({ directory, files: n }, 'Directory removed or changed by the reload; its waiting files are forgotten (they stay on the shore)');
  }

  /** True while a processed move or other bookkeeping is under way. */
  get busy(): boolean {
    return this.#moving.size > 0 || this.#replaying !== undefined;
  }

  /** The vessels that should have files of this Directory. */
  targets(directory: string): string[] {
    return this.#settings.vessels.filter((v) => !v.ignoreDirs.includes(directory)).map((v) => v.name);
  }

  #versionKey(directory: DirectorySettings, f: StableFile): string {
    return createHash('sha256')
      .update([this.#shore, directory.location, f.relpath, f.size, f.mtimeMs, this.#settings.monster.chunkSize].join('\0'))
      .digest('hex').slice(0, 32);
  }

  /** A stable file: record its version and queue it for every vessel that lacks it. */
  dispatch(f: StableFile): void {
    // A vessel worker's marker (see same-storage.ts), should the Ignore globs let one through.
    if (f.relpath.indexOf('/') === -1 && isStorageMarker(f.relpath)) return;
    const directory = this.#directories.get(f.directory);
    if (!directory) return; // removed by a reload while the file was settling
    const version = this.#store.recordVersion(
      { directory: f.directory, relpath: f.relpath, size: f.size, mtimeMs: f.mtimeMs, versionKey: this.#versionKey(directory, f) },
      this.targets(f.directory),
      (old, vessels) => {
        this.#log.info({ file: join(directory.location, f.relpath) }, 'file changed before it was everywhere; replicating the new version');
        pushEvents.emit({ type: 'changed', file: join(directory.location, f.relpath) });
        this.#recordLeftovers(old, vessels);
        this.#cancelTransfers(old.id);
      },
      directory,
    );
    this.#queueVersion(version);
  }

  #queueVersion(version: FileVersion): void {
    const waiting = this.#store.waitingOf(version.id);
    for (const row of waiting) this.#workers.get(row.vessel)?.enqueue(row);
    if (waiting.length === 0 && this.#store.deliveries(version.id).every((d) => d.state === 'done')) void this.#process(version.id);
  }

  /** A path disappeared from the shore: forget it unless it has been processed meanwhile. */
  gone(directory: string, relpath: string): void {
    const version = this.#store.fileByPath(directory, relpath);
    if (version) this.#forget(version, 'file removed from the shore before it was everywhere; dropped');
  }

  #forget(version: FileVersion, why: string): void {
    this.#recordLeftovers(version, this.#store.deliveries(version.id).filter((d) => d.state !== 'done').map((d) => d.vessel));
    this.#store.deleteFile(version.id);
    this.#cancelTransfers(version.id);
    this.#log.info({ file: this.#localPath(version) }, why);
    pushEvents.emit({ type: 'dropped', directory: version.directory, file: this.#localPath(version) });
  }

  /**
   * Stops every transfer of a version that is replaced or dropped, and removes what the vessels
   * already have of it (each worker removes a cancelled transfer's chunks again once it stopped).
   */
  #cancelTransfers(fileId: number): void {
    for (const w of this.#workers.values()) {
      w.cancel(fileId);
      w.cleanLeftovers();
    }
  }

  #recordLeftovers(version: FileVersion, vessels: string[]): void {
    for (const vessel of vessels) {
      const v = this.#settings.vessels.find((s) => s.name === vessel);
      const directory = this.#directories.get(version.directory);
      if (!v || !directory) continue;
      const paths = this.#remotePaths(version, directory, v.tempDir, vessel);
      this.#store.addLeftover({ vessel, chunkPrefix: paths.chunkPrefix, assemblyPrefix: paths.assemblyPrefix });
    }
  }

  #localPath(version: { directory: string; relpath: string }): string {
    return join(this.#directories.get(version.directory)?.location ?? '?', version.relpath);
  }

  #remotePaths(version: FileVersion, directory: DirectorySettings, tempDir: string, vessel: string) {
    const destination = posix.join(directory.remoteLocation, version.relpath);
    // Per vessel, so two vessel entries that are one host never share a chunk or a temporary name.
    const key = createHash('sha256').update(`${version.versionKey}\0${vessel}`).digest('hex').slice(0, 32);
    return {
      destination,
      chunkPrefix: `${tempDir}/cm-${key}`,
      assemblyPrefix: posix.join(posix.dirname(destination), `.cm-${key}`),
    };
  }

  storagePairs(vessel: string): StoragePair[] {
    const v = this.#settings.vessels.find((s) => s.name === vessel);
    return this.#settings.directories
      .filter((d) => !v?.ignoreDirs.includes(d.name))
      .map((d) => ({ directory: d.name, location: d.location, remoteLocation: d.remoteLocation }));
  }

  /** A Location became usable after the start: every vessel proves its RemoteLocation again. */
  locationTakenUp(directory: string): void {
    for (const w of this.#workers.values()) w.locationTakenUp(directory);
  }

  jobFor(fileId: number, vessel: string): WorkerJob | undefined {
    const version = this.#store.file(fileId);
    const delivery = version && this.#store.delivery(fileId, vessel);
    const directory = version && this.#directories.get(version.directory);
    const v = this.#settings.vessels.find((s) => s.name === vessel);
    if (!version || delivery?.state !== 'pending' || !directory || !v) return undefined;
    return {
      vessel,
      directory: directory.name,
      versionKey: version.versionKey,
      localPath: join(directory.location, version.relpath),
      size: version.size,
      mtimeMs: version.mtimeMs,
      sha256: version.sha256,
      chunkSize: this.#settings.monster.chunkSize,
      ...this.#remotePaths(version, directory, v.tempDir, vessel),
    };
  }

  outcome(fileId: number, vessel: string, versionKey: string, outcome: DeliveryOutcome, seconds: number): void {
    const version = this.#store.file(fileId);
    if (!version || version.versionKey !== versionKey) return; // replaced meanwhile: its own jobs decide
    const file = this.#localPath(version);
    switch (outcome.kind) {
      case 'done': {
        this.#store.markDone(fileId, vessel, version.size);
        this.#report?.delivered({ vessel, directory: version.directory, bytes: outcome.bytesSent, durationS: seconds });
        // MiB/s, the unit of every rate the program shows (logs, status, the mirror's display).
        const mibps = seconds > 0 ? +(outcome.bytesSent / seconds / 2 ** 20).toFixed(1) : 0;
        this.#log.info(
          { vessel, file, bytes: version.size, sent: outcome.bytesSent, seconds: +seconds.toFixed(3), MiBps: mibps, sha256: outcome.sha256 },
          outcome.alreadyThere ? 'already on vessel (same size and SHA-256); confirmed' : 'replicated',
        );
        pushEvents.emit({ type: 'delivered', vessel, file, bytes: version.size, alreadyThere: outcome.alreadyThere });
        if (this.#store.deliveries(fileId).every((d) => d.state === 'done')) void this.#process(fileId);
        return;
      }
      case 'gone':
        this.#forget(version, 'file removed from the shore before it was everywhere; dropped');
        return;
      case 'changed':
        this.#log.info({ vessel, file }, 'file changed during transfer; will replicate the new version once it is stable');
        pushEvents.emit({ type: 'changed', file, vessel });
        this.onRecheck(version.directory, version.relpath);
    }
  }

  failed(fileId: number, vessel: string, reason: string): void {
    const version = this.#store.file(fileId);
    if (!version) return;
    this.#store.markAttemptFailed(fileId, vessel, reason, true);
    this.#failure({ vessel, file: this.#localPath(version), reason });
  }

  failedAll(vessel: string, reason: string): void {
    const { count, listed } = this.#store.failPending(vessel, reason, FAILURES_LISTED);
    if (!this.#collectFailures) return;
    for (const f of listed) this.#failure({ vessel, file: this.#localPath(f), reason });
    this.failuresNotListed += count - listed.length;
  }

  #failure(f: Failure): void {
    if (!this.#collectFailures) return;
    if (this.failures.length < FAILURES_LISTED) this.failures.push(f);
    else this.failuresNotListed++;
  }

  /**
   * Every vessel has the version: move the shore file to processed/ and forget it. Startup
   * replay and the first scan can both get here for one file; only one move runs.
   */
  async #process(fileId: number): Promise<void> {
    if (this.#moving.has(fileId)) return;
    // Looked at again once that vessel has retired (see Fleet).
    for (const w of this.#leaving) if (w.carries(fileId)) return;
    this.#moving.add(fileId);
    try {
      const version = this.#store.file(fileId);
      if (!version) return;
      const directory = this.#directories.get(version.directory)!;
      const file = join(directory.location, version.relpath);
      const st = lstatOrNone(file);
      if (!st) {
        // Already moved by an earlier run that stopped before forgetting it, or removed by hand.
        this.#store.deleteFile(fileId);
        return;
      }
      if (st.size !== version.size || st.mtimeMs !== version.mtimeMs) {
        this.onRecheck(version.directory, version.relpath); // a newer version: replicate that too
        return;
      }
      const moved = await moveToProcessed(directory.location, version.relpath);
      this.#store.deleteFile(fileId);
      this.#log.info({ file, to: moved.target, ...(moved.keptOlderAs ? { olderKeptAs: moved.keptOlderAs } : {}) }, 'on every vessel; moved to processed');
      pushEvents.emit({ type: 'processed', directory: version.directory, file, to: moved.target });
    } catch (err) {
      const version = this.#store.file(fileId);
      const file = version ? this.#localPath(version) : String(fileId);
      this.#log.error({ file, err: describe(err) }, 'on every vessel, but cannot move to processed; will try again at the next rescan');
      this.#failure({ vessel: '(shore)', file, reason: `cannot move to processed: ${describe(err)}` });
    } finally {
      this.#moving.delete(fileId);
    }
  }

  /**
   * Startup: bring every row in line with the settings and the shore. The delivery rows follow
   * the settings first (vessels and Directories added or removed, in a few statements); then
   * every file is looked at, a page at a time, yielding between pages so that deliveries run
   * meanwhile (the workers read what waits from the database themselves): rows whose file is
   * gone are forgotten, changed ones are looked at again, those every vessel has are moved to
   * processed/. Rows of a Directory whose Location cannot be used now are left for when it can.
   * Resolves when done; `busy` is true until then.
   */
  replay(usable: (directory: string) => boolean = () => true, signal?: AbortSignal): Promise<void> {
    // Each delivery's place in its vessel's queue follows the settings: a changed Priority or
    // Order moves what waits, and rows added for a vessel new in the settings take theirs.
    const orders = new Map(this.#settings.directories.map((d) => [d.name, { priority: d.priority, order: d.order }]));
    this.#store.syncQueueOrder(orders);
    this.#store.syncAllTargets(new Map(this.#settings.directories.map((d) => [d.name, this.targets(d.name)])), orders);
    for (const w of this.#workers.values()) w.rewind();
    const replaying = this.#replayPages(usable, signal).finally(() => {
      this.#replaying = undefined;
    });
    this.#replaying = replaying;
    return replaying;
  }

  async #replayPages(usable: (directory: string) => boolean, signal: AbortSignal | undefined): Promise<void> {
    for (let after = 0; !signal?.aborted;) {
      const page = this.#store.filesAfter(after, REPLAY_PAGE);
      for (const version of page) this.#replayOne(version, usable);
      if (page.length < REPLAY_PAGE) return;
      after = page[page.length - 1].id;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  #replayOne(version: FileVersion, usable: (directory: string) => boolean): void {
    if (this.#moving.has(version.id)) return;
    if (!this.#directories.has(version.directory)) {
      this.#log.warn({ directory: version.directory, file: version.relpath }, 'Directory no longer in the settings; forgetting its queued file');
      this.#store.deleteFile(version.id);
      return;
    }
    if (!usable(version.directory)) return;
    const st = lstatOrNone(this.#localPath(version));
    const deliveries = this.#store.deliveries(version.id);
    const allDone = deliveries.every((d) => d.state === 'done');
    if (!st && allDone) this.#store.deleteFile(version.id);
    else if (!st) this.#forget(version, 'file removed from the shore while stopped; dropped');
    else if (st.size !== version.size || st.mtimeMs !== version.mtimeMs) this.onRecheck(version.directory, version.relpath);
    else if (allDone) void this.#process(version.id);
  }

  /** A retry round: every failed delivery is pending again, and every worker reads its queue again. */
  retryFailed(): void {
    if (this.#store.retryFailed() === 0) return;
    for (const w of this.#workers.values()) w.rewind();
  }
}
