/**
 * Wiring of the push side: settings → state store → one worker per vessel → replicator →
 * stabilizer → watcher and scanner; and the two ways it ends: `--once` when everything present
 * at start is processed, or a signal (no new work, transfers cut short, exit 0 within 10 s).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError } from './errors.js';
import { makeIgnoreMatcher } from './glob.js';
import type { Logger } from './log.js';
import { MetricsSink } from './metrics/sink.js';
import { PushReport, type QueueDepth } from './push-report.js';
import { Replicator, type Failure } from './replicator.js';
import { Scanner } from './scanner.js';
import type { Settings } from './settings.js';
import { Stabilizer } from './stabilizer.js';
import { StateStore } from './state-store.js';
import { VesselWorker } from './vessel-worker.js';
import { Watcher } from './watcher.js';

export interface PushOptions {
  once: boolean;
  /** `--once`: a vessel without progress for this long is given up. */
  giveUpAfterMs: number;
  /** Aborted when the process is asked to stop. */
  signal: AbortSignal;
}

export interface PushResult {
  failures: Failure[];
  /** Vessels given up (`--once`), each said once, with its reason, when it happened. */
  gaveUp: { vessel: string; reason: string }[];
}

/** How long a stop may wait for transfers to wind down before the store is closed anyway. */
const STOP_GRACE_MS = 7000;

export async function runPush(settings: Settings, log: Logger, options: PushOptions): Promise<PushResult> {
  const store = openStore(settings);
  const metrics = new MetricsSink(settings.monster.metricsSocket ?? undefined, log);
  // Every vessel appears in the queue figures, also one with nothing waiting.
  const waiting = (): QueueDepth[] => {
    const rows = new Map(store.waitingByVessel().map((w) => [w.vessel, w]));
    return settings.vessels.map((v) => ({ vessel: v.name, files: rows.get(v.name)?.files ?? 0, bytes: rows.get(v.name)?.bytes ?? 0 }));
  };
  const report = new PushReport(metrics, log, waiting);
  const replicator = new Replicator(settings, store, log, { collectFailures: options.once, report });
  const workers = settings.vessels.map((v) => new VesselWorker(v, store, replicator, log, { once: options.once, giveUpAfterMs: options.giveUpAfterMs, chunkSize: settings.monster.chunkSize }));
  workers.forEach((w) => replicator.addWorker(w));
  const filter = { isIgnored: makeIgnoreMatcher(settings.monster.ignore) };
  const scanner = new Scanner(filter, log);
  const locations = new Map(settings.directories.map((d) => [d.name, d.location]));
  const scanFolder = (d: string, r: string) => void scanner.scan(locations.get(d)!, (rel) => stabilizer.observe(d, rel), options.signal, r);
  const stabilizer: Stabilizer = new Stabilizer(settings.monster.stableTimeMs, locations, {
    stable: (f) => replicator.dispatch(f),
    gone: (d, r) => replicator.gone(d, r),
    folder: scanFolder,
    symlink: (p) => scanner.warnLink(p),
  });
  replicator.onRecheck = (d, r) => stabilizer.observe(d, r);
  const scanAll = async () => {
    for (const d of settings.directories) await scanner.scan(d.location, (rel) => stabilizer.observe(d.name, rel), options.signal);
  };

  let watcher: Watcher | undefined;
  let rescanTimer: NodeJS.Timeout | undefined;
  try {
    log.info({ directories: settings.directories.length, vessels: settings.vessels.length, once: options.once }, 'starting');
    for (const w of settings.warnings) log.warn(w);
    store.retryFailed(); // a new start gives every earlier failure another round
    await replicator.replay();
    if (!options.once) {
      // Watch before the first scan, so nothing written during the scan is missed.
      watcher = new Watcher(settings.directories.map((d) => ({ directory: d.name, location: d.location })), filter, {
        path: (d, r) => stabilizer.observe(d, r),
        folder: scanFolder,
      }, log);
      await watcher.ready();
    }
    await scanAll();
    if (options.once) {
      await untilSettled(stabilizer, replicator, workers, options.signal);
    } else {
      const every = settings.monster.rescanIntervalS * 1000;
      if (every > 0) {
        rescanTimer = setInterval(() => {
          replicator.retryFailed();
          void scanAll();
        }, every);
      }
      log.info('watching for new files');
      await new Promise<void>((resolve) => options.signal.addEventListener('abort', () => resolve(), { once: true }));
    }
  } finally {
    clearInterval(rescanTimer);
    stabilizer.stop();
    await watcher?.close();
    if (options.signal.aborted) log.info('stopping: no new work; transfers in flight keep their chunks for the next start');
    await Promise.race([Promise.all(workers.map((w) => w.stop())), sleep(STOP_GRACE_MS)]);
    report.stop();
    store.close();
    await metrics.close();
  }
  return {
    failures: replicator.failures,
    gaveUp: workers.flatMap((w) => (w.gaveUp ? [{ vessel: w.name, reason: w.gaveUp }] : [])),
  };
}

function openStore(settings: Settings): StateStore {
  try {
    return new StateStore(settings.monster.database);
  } catch (err) {
    throw new ConfigError(`${settings.file}: [MONSTER] Database: cannot open ${settings.monster.database}: ${(err as Error).message}`, { cause: err });
  }
}

/** `--once`: resolves when no file is waiting to settle, queued, in transfer or being moved. */
async function untilSettled(stabilizer: Stabilizer, replicator: Replicator, workers: VesselWorker[], signal: AbortSignal): Promise<void> {
  // Polling a few cheap counters is simpler and more robust than stitching together the
  // completion events of three components; 25 ms is noise next to any transfer.
  let quietRounds = 0;
  while (!signal.aborted && quietRounds < 2) {
    const settled = stabilizer.size === 0 && !replicator.busy && workers.every((w) => w.idle);
    quietRounds = settled ? quietRounds + 1 : 0;
    await sleep(25);
  }
}
