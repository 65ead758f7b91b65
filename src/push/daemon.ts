/**
 * Wiring of the push side: settings → state store → one worker per vessel → replicator →
 * stabilizer → watcher and scanner; and the two ways it ends: `--once` when everything present
 * at start is processed, or a signal (no new work, transfers cut short, exit 0 within 10 s).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { StateDatabaseError, describe } from '../errors.js';
import { makeIgnoreMatcher } from '../settings/glob.js';
import type { Logger } from '../log.js';
import { MetricsSink } from '../metrics/sink.js';
import { BandwidthLimits } from './bandwidth/limiter.js';
import { pushEvents } from './events.js';
import { PushReport, statusLine, type QueueDepth } from './report.js';
import { Replicator, type Failure } from './replicator.js';
import { Scanner } from './scanner.js';
import type { DirectorySettings, Settings } from '../settings/load.js';
import { locationProblem } from '../check/shore.js';
import { Stabilizer } from './stabilizer.js';
import { lockStateFolder, openStateStore } from '../state/database.js';
import type { StateStore } from '../state/store.js';
import { sshThreadCount, vesselConnections } from '../ssh/ssh-threads.js';
import type { ServiceNotifier } from '../systemd-notify.js';
import type { VesselWorker } from './vessel-worker.js';
import { Watcher } from './watcher.js';
import { Fleet } from './fleet.js';
import { reload, type Reloadable } from './reload.js';

export interface PushOptions {
  once: boolean;
  /** `--once`: a vessel without progress for this long is given up. */
  giveUpAfterMs: number;
  /** Aborted when the process is asked to stop. */
  signal: AbortSignal;
  /**
   * Daemon mode: subscribes to reload requests (SIGHUP); returns the unsubscribe. Each one reads
   * the settings file again and applies what changed (push/reload.ts).
   */
  hangups?: (onHangup: () => void) => () => void;
  /** `--log-level` was given: a reload leaves the level alone. */
  logLevelFixed?: boolean;
  /** The service manager (a `Type=notify` unit): READY=1, STATUS=, STOPPING=1. */
  service?: ServiceNotifier;
}

export interface PushResult {
  /** `--once`: what was not replicated, the first FAILURES_LISTED of it; `failuresNotListed` counts the rest. */
  failures: Failure[];
  failuresNotListed: number;
  /** Vessels given up (`--once`), each said once, with its reason, when it happened. */
  gaveUp: { vessel: string; reason: string }[];
  /** Locations nothing could be sent from (missing, not a folder, unreadable, read-only), each logged once when found. */
  shoreProblems: string[];
  /** `--once` stopped by a signal before everything present was processed. */
  interrupted?: {
    /** Files found and not yet processed (on the vessels and moved to processed/). */
    waiting: number;
    /** False when the signal came before every Location was scanned: more files may wait. */
    scanned: boolean;
  };
}

/** How long a stop may wait for transfers to wind down before the store is closed anyway. */
const STOP_GRACE_MS = 7000;
/** How often a Location that cannot be used (yet) is looked at again, in daemon mode. */
const LOCATION_RETRY_MS = 1000;

export async function runPush(initial: Settings, log: Logger, options: PushOptions): Promise<PushResult> {
  /** The settings in force: those of the start, then of each reload. */
  let settings = initial;
  // One daemon per database: the lock comes before anything is opened, cleared or replayed.
  const lock = lockStateFolder(settings);
  // Aborted by the caller's signal, or when the state database fails under us.
  const stop = new AbortController();
  const signal = stop.signal;
  const onSignal = () => stop.abort();
  options.signal.addEventListener('abort', onSignal, { once: true });
  if (options.signal.aborted) stop.abort();
  let fatal: StateDatabaseError | undefined;
  const databaseFailed = (err: StateDatabaseError) => {
    if (fatal) return;
    fatal = err;
    log.error({ err: describe(err) }, 'the state database cannot be used; stopping (the next start resumes)');
    stop.abort();
  };
  // A failed write surfaces as a StateDatabaseError wherever it was made, timers included: it
  // is said once (above) and the daemon stops, never with a stack trace. The capture callback
  // takes uncaught exceptions before any 'uncaughtException' listener (main.ts has one, which
  // prints the stack); everything else is handed on to where it would have gone without us.
  const onUncaught = (err: unknown) => {
    if (err instanceof StateDatabaseError) {
      databaseFailed(err);
      return;
    }
    if (process.listenerCount('uncaughtException') > 0) {
      (process as NodeJS.EventEmitter).emit('uncaughtException', err, 'uncaughtException');
      return;
    }
    process.setUncaughtExceptionCaptureCallback(null);
    process.nextTick(() => {
      throw err;
    });
  };
  const onRejection = (reason: unknown) => {
    if (reason instanceof StateDatabaseError) {
      databaseFailed(reason);
      return;
    }
    throw reason; // what Node does with an unhandled rejection when nobody listens
  };
  let store: StateStore;
  try {
    store = openStateStore(settings, { onFailure: databaseFailed });
  } catch (err) {
    lock.release();
    options.signal.removeEventListener('abort', onSignal);
    throw err;
  }
  const capturing = !process.hasUncaughtExceptionCaptureCallback();
  if (capturing) process.setUncaughtExceptionCaptureCallback(onUncaught);
  process.on('unhandledRejection', onRejection);
  let metrics = new MetricsSink(settings.monster.metricsSocket ?? undefined, log);
  const bandwidth = new BandwidthLimits(settings, log);
  // Every vessel appears in the queue figures, also one with nothing waiting.
  const waiting = (): QueueDepth[] => {
    const rows = new Map(store.waitingByVessel().map((w) => [w.vessel, w]));
    const figures = new Map(bandwidth.figures().map((f) => [f.vessel, f]));
    return settings.vessels.map((v) => ({
      vessel: v.name, files: rows.get(v.name)?.files ?? 0, bytes: rows.get(v.name)?.bytes ?? 0,
      limitBytesPerSecond: figures.get(v.name)?.limit ?? null, bytesPerSecond: figures.get(v.name)?.rate ?? 0,
    }));
  };
  // Through the variable: a reload may point the metrics at another socket.
  const service = options.service;
  const report = new PushReport({ send: (point) => metrics.send(point) }, log, waiting, { service });
  const replicator = new Replicator(settings, store, log, { collectFailures: options.once, report });
  // Threads are counted for the vessels at the start; vessels a reload adds share them.
  const sshThreads = sshThreadCount(settings.monster.threads, settings.vessels.length);
  if (sshThreads > 0) log.info({ threads: sshThreads }, 'vessel connections in SSH threads');
  const openConnection = vesselConnections(sshThreads);
  const fleet = new Fleet(store, replicator, log, {
    once: options.once, giveUpAfterMs: options.giveUpAfterMs, chunkSize: settings.monster.chunkSize, openConnection,
  }, (v) => bandwidth.throttleFor(v));
  // For `status`, a separate process: the limits in force and the rates measured, every 2 s,
  // where a limit is set (status shows nothing of them otherwise: no write every 2 s for it).
  const publishBandwidth = () => store.recordBandwidth(bandwidth.figures().map((f) => ({ vessel: f.vessel ?? '', limit: f.limit, rate: f.rate })));
  bandwidth.start();
  for (const v of settings.vessels) fleet.start(v);
  if (bandwidth.configured) publishBandwidth();
  // Checked at each turn: a reload may set a limit where there was none.
  const bandwidthTimer = setInterval(() => bandwidth.configured && publishBandwidth(), 2000).unref();
  // Resolved by the stop, also one that came before this line (an abort listener added late
  // never hears it: waiting for one after a stop during the first scan hung the daemon until
  // the 9.5 s hard stop).
  const stopped = new Promise<void>((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));
  // No new work from the moment of the stop, not from when the scan or the watcher's walk
  // notice it: under load, with deliveries keeping the event loop busy, a scan of a large tree
  // took more than the stop's 9.5 s to come back, and the workers went on taking files until
  // the process was ended (thousands of small files delivered after SIGTERM).
  let workersStopped: Promise<unknown> | undefined;
  const stopWorkers = () => (workersStopped ??= fleet.stop());
  // STOPPING=1 at the stop itself (a signal, or the database failing), not once the watcher is closed.
  void stopped.then(() => service?.stopping());
  void stopped.then(stopWorkers);
  // What the start waits for (the watcher's walk, the first scan) is left behind on a stop: a
  // walk of a hung mount may never come back, and the stop must.
  const unlessStopped = (work: Promise<unknown>) => Promise.race([work, stopped]);
  // One object for the scanner and the watcher: a reload replaces its matcher.
  const filter = { isIgnored: makeIgnoreMatcher(settings.monster.ignore) };
  const scanner = new Scanner(filter, log);
  const locations = new Map(settings.directories.map((d) => [d.name, d.location]));
  const scanFolder = (d: string, r: string) => {
    const location = locations.get(d);
    if (location !== undefined) void scanner.scan(location, (rel) => stabilizer.observe(d, rel), signal, r);
  };
  const stabilizer: Stabilizer = new Stabilizer(settings.monster.stableTimeMs, locations, {
    stable: (f) => replicator.dispatch(f),
    gone: (d, r) => replicator.gone(d, r),
    folder: scanFolder,
    symlink: (p) => scanner.warnLink(p),
  });
  replicator.onRecheck = (d, r) => stabilizer.observe(d, r);
  const shore = new ShoreLocations(settings.directories, log, options.once);
  const scanOne = (d: DirectorySettings) => scanner.scan(d.location, (rel) => stabilizer.observe(d.name, rel), signal);
  const scanAll = async () => {
    for (const d of shore.usable()) await scanOne(d);
  };

  let watcher: Watcher | undefined;
  let rescanTimer: NodeJS.Timeout | undefined;
  const rescanEvery = (seconds: number) => {
    clearInterval(rescanTimer);
    rescanTimer = undefined;
    if (seconds <= 0) return;
    rescanTimer = setInterval(() => {
      replicator.retryFailed();
      void scanAll();
    }, seconds * 1000);
  };
  let retryTimer: NodeJS.Timeout | undefined;
  let settled = false;
  let scanned = false;
  let interrupted: PushResult['interrupted'];
  const live: Reloadable = {
    fleet, replicator, stabilizer, locations, filter,
    unwatch: (d) => watcher?.remove(d),
    takeUp: (all, fresh) => {
      for (const d of shore.replace(all, fresh)) {
        replicator.locationTakenUp(d.name); // proven again on every vessel before its files go out
        void watcher?.add({ directory: d.name, location: d.location }).then(() => (signal.aborted ? undefined : scanOne(d)));
      }
    },
    replay: () => void replicator.replay((d) => shore.isUsable(d), signal),
    rescanEvery,
    metricsTo: (socket) => {
      void metrics.close();
      metrics = new MetricsSink(socket ?? undefined, log);
    },
    ...(options.logLevelFixed ? {} : { logLevel: (level) => void (log.level = level) }),
  };
  // One reload at a time, in the order asked, the first once the daemon is watching (one asked
  // for during the start waits for that); each first stops at once the removed vessels an
  // earlier reload left finishing their transfers.
  let watching = () => {};
  let reloading = new Promise<void>((resolve) => (watching = resolve));
  fleet.onRetired = () => live.replay();
  const stopHangups = options.hangups?.(() => {
    fleet.hurry();
    reloading = reloading.then(async () => {
      if (!signal.aborted) {
        settings = await reload(settings, live, log);
        bandwidth.keepOnly(settings.vessels.map((v) => v.name));
      }
    }).catch((err: unknown) => {
      if (err instanceof StateDatabaseError) databaseFailed(err);
      else log.error({ err }, 'unexpected error while reloading the settings (a bug: please report it)');
    });
  }) ?? (() => {});
  try {
    log.info({ directories: settings.directories.length, vessels: settings.vessels.length, once: options.once }, 'starting');
    for (const w of settings.warnings) log.warn(w);
    shore.lookAtAll();
    store.retryFailed(); // a new start gives every earlier failure another round
    // Rows of a Location left out stay as they are: a read-only one would have its files sent
    // and then not moved, an unmounted one would have them forgotten as removed.
    // Concurrent with everything below: the workers read what waits from the database
    // themselves, so the first delivery does not wait for a pass over a million rows.
    void replicator.replay((d) => shore.isUsable(d), signal);
    if (!options.once) {
      // Watch before the first scan, so nothing written during the scan is missed.
      const w = new Watcher(shore.usable().map((d) => ({ directory: d.name, location: d.location })), filter, {
        path: (d, r) => stabilizer.observe(d, r),
        folder: scanFolder,
      }, log);
      watcher = w;
      await unlessStopped(w.ready());
      // A Location that is not there (or not usable) yet is taken up as soon as it is.
      retryTimer = setInterval(() => {
        for (const d of shore.retry()) {
          replicator.locationTakenUp(d.name); // proven again on every vessel before its files go out
          void w.add({ directory: d.name, location: d.location }).then(() => (signal.aborted ? undefined : scanOne(d)));
        }
      }, LOCATION_RETRY_MS);
    }
    const firstScan = unlessStopped(scanAll());
    // READY=1 now: the state database is open, the Locations are watched (daemon) and the first
    // scan is under way, so nothing written from here on is missed. Not once the scan is done:
    // recording a first backlog of a million files takes about two minutes, past systemd's 90 s
    // start timeout (TimeoutStartSec=).
    if (!signal.aborted) service?.ready(statusLine(waiting()));
    await firstScan;
    scanned = !signal.aborted;
    if (options.once) {
      settled = await untilSettled(stabilizer, replicator, fleet.workers, signal);
    } else {
      rescanEvery(settings.monster.rescanIntervalS);
      // Not after a stop that cut the first scan short: nothing is being watched any more.
      if (!signal.aborted) {
        log.info('watching for new files');
        pushEvents.emit({ type: 'ready' });
        watching();
      }
      await stopped;
    }
  } finally {
    stopHangups();
    clearInterval(rescanTimer);
    clearInterval(retryTimer);
    if (options.once && !settled && !fatal) interrupted = { waiting: unprocessed(store, stabilizer), scanned };
    stabilizer.stop();
    await watcher?.close();
    if (signal.aborted) {
      log.info('stopping: no new work; transfers in flight keep their chunks for the next start');
      pushEvents.emit({ type: 'stopping' });
    }
    await Promise.race([stopWorkers(), sleep(STOP_GRACE_MS)]);
    clearInterval(bandwidthTimer);
    report.stop(); // its last points carry the limits in force, so before they are stopped
    bandwidth.stop(); // the writes still waiting for their bytes were cancelled with their transfers
    try {
      store.close();
    } catch (err) {
      if (err instanceof StateDatabaseError) databaseFailed(err);
      else throw err;
    } finally {
      lock.release();
      options.signal.removeEventListener('abort', onSignal);
      if (capturing) process.setUncaughtExceptionCaptureCallback(null);
      process.off('unhandledRejection', onRejection);
      await metrics.close();
    }
  }
  if (fatal) throw fatal;
  return {
    failures: replicator.failures,
    failuresNotListed: replicator.failuresNotListed,
    gaveUp: fleet.workers.flatMap((w) => (w.gaveUp ? [{ vessel: w.name, reason: w.gaveUp }] : [])),
    shoreProblems: shore.problems,
    ...(interrupted ? { interrupted } : {}),
  };
}

/** Files found and not processed yet: recorded in the store, or still settling (each counted once). */
function unprocessed(store: StateStore, stabilizer: Stabilizer): number {
  const settling = stabilizer.pendingPaths();
  try {
    return store.fileCount() + settling.filter(([d, r]) => !store.fileByPath(d, r)).length;
  } catch {
    return settling.length; // the database failed: that is what gets reported
  }
}

/**
 * Which Locations files are sent from. One that is missing, not a folder, unreadable or
 * read-only (its files could not be moved to processed/ once replicated) is left out, said once
 * (again only when the reason changes); with `--once` it is a failure. The daemon looks at it
 * again every second and takes it up as soon as it is usable: a Location made after the start
 * is watched from then on, not from the next rescan.
 */
class ShoreLocations {
  #all: readonly DirectorySettings[];
  readonly #log: Logger;
  readonly #once: boolean;
  /** Directory name -> the problem last said. */
  readonly #unusable = new Map<string, string>();
  /** Every problem found, for `--once`'s result. */
  readonly problems: string[] = [];

  constructor(all: readonly DirectorySettings[], log: Logger, once: boolean) {
    this.#all = all;
    this.#log = log;
    this.#once = once;
  }

  usable(): DirectorySettings[] {
    return this.#all.filter((d) => !this.#unusable.has(d.name));
  }

  isUsable(directory: string): boolean {
    return !this.#unusable.has(directory);
  }

  lookAtAll(): void {
    for (const d of this.#all) this.#lookAt(d);
  }

  /** A reload: the Directories are now `all`; returns those of `fresh` (added or changed) usable now. */
  replace(all: readonly DirectorySettings[], fresh: readonly DirectorySettings[]): DirectorySettings[] {
    this.#all = all;
    const names = new Set(all.map((d) => d.name));
    for (const name of [...this.#unusable.keys()]) if (!names.has(name)) this.#unusable.delete(name);
    for (const d of fresh) this.#unusable.delete(d.name);
    return fresh.filter((d) => this.#lookAt(d));
  }

  /** True when the Location can be used; else the problem is said and it is looked at again later. */
  #lookAt(d: DirectorySettings): boolean {
    const p = locationProblem(d);
    if (!p) return true;
    this.#unusable.set(d.name, p.message);
    this.problems.push(p.message);
    pushEvents.emit({ type: 'locationUnusable', directory: d.name, reason: p.message });
    if (this.#once) this.#log.error({ directory: d.name }, `${p.message}; nothing is sent from it`);
    else if (p.kind === 'missing') this.#log.warn({ directory: d.name }, `${p.message}; it is taken up as soon as it appears`);
    else this.#log.error({ directory: d.name }, `${p.message}; nothing is sent from it until this is fixed`);
    return false;
  }

  /** The Locations that have become usable since the last look. */
  retry(): DirectorySettings[] {
    const ready: DirectorySettings[] = [];
    for (const d of this.#all) {
      const said = this.#unusable.get(d.name);
      if (said === undefined) continue;
      const p = locationProblem(d);
      if (!p) {
        this.#unusable.delete(d.name);
        this.#log.info({ directory: d.name }, `Location ${d.location} of [Directory ${d.name}] is usable now; watching it`);
        pushEvents.emit({ type: 'locationUsable', directory: d.name, location: d.location });
        ready.push(d);
      } else if (p.message !== said) {
        this.#unusable.set(d.name, p.message);
        this.#log.error({ directory: d.name }, `${p.message}; nothing is sent from it until this is fixed`);
        pushEvents.emit({ type: 'locationUnusable', directory: d.name, reason: p.message });
      }
    }
    return ready;
  }
}

/**
 * `--once`: resolves true when no file is waiting to settle, queued, in transfer or being
 * moved; false when stopped first.
 */
async function untilSettled(stabilizer: Stabilizer, replicator: Replicator, workers: VesselWorker[], signal: AbortSignal): Promise<boolean> {
  // Polling a few cheap counters is simpler and more robust than stitching together the
  // completion events of three components; 25 ms is noise next to any transfer.
  let quietRounds = 0;
  while (!signal.aborted && quietRounds < 2) {
    const settled = stabilizer.size === 0 && !replicator.busy && workers.every((w) => w.idle);
    quietRounds = settled ? quietRounds + 1 : 0;
    await sleep(25);
  }
  return quietRounds >= 2;
}
