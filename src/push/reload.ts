/**
 * `systemctl reload` (SIGHUP): the settings file is read again with the same loader and what
 * changed is applied to the running daemon (the diff is settings/diff.ts).
 *
 * - Broken settings: one ERROR line naming file, section and key; nothing changes.
 * - Vessels: added ones start; removed ones retire (their transfers in flight end, then they
 *   disconnect; another reload stops them at once); changed ones reconnect with the new
 *   settings; unchanged ones keep their connections and transfers (push/fleet.ts).
 * - Directories: removed ones are no longer watched and their waiting files are forgotten
 *   (they stay on the shore, never moved to processed/); added ones are watched and scanned;
 *   a changed one is both.
 * - Then the delivery rows follow the new vessel sets, as at a start (Replicator.replay): a
 *   vessel added is owed every file still on the shore, and a file whose remaining vessels all
 *   have it moves to processed/. "Delivered everywhere" always means to every vessel the
 *   settings in force name.
 * - [MONSTER]: StableTime, Ignore, RescanInterval, MetricsSocket and LogLevel take effect;
 *   Database, ChunkSize, Threads and the global BandwidthLimit and TimeZone need a restart (one
 *   WARN each, the old value stays); a vessel's own BandwidthLimit changes with the vessel.
 */
import { ConfigError, describe } from '../errors.js';
import type { Logger, LogLevel } from '../log.js';
import { makeIgnoreMatcher } from '../settings/glob.js';
import { diffSettings, type NamedChanges } from '../settings/diff.js';
import { loadSettings, type DirectorySettings, type Settings } from '../settings/load.js';
import { pushEvents } from './events.js';
import type { Fleet } from './fleet.js';
import type { Replicator } from './replicator.js';
import type { Stabilizer } from './stabilizer.js';

/** The parts of a running daemon a reload changes. */
export interface Reloadable {
  fleet: Fleet;
  replicator: Replicator;
  stabilizer: Stabilizer;
  /** Directory name -> Location, as the stabilizer reads it. */
  locations: Map<string, string>;
  /** The scanner's and the watcher's filter: its matcher is replaced when Ignore changes. */
  filter: { isIgnored(baseName: string): boolean };
  /** Stops watching a Directory. */
  unwatch(directory: string): void;
  /** The Directories are now `all`; `fresh` (added or changed) are watched and scanned once usable. */
  takeUp(all: DirectorySettings[], fresh: DirectorySettings[]): void;
  /** Delivery rows follow the settings, and every file is looked at again (as at a start). */
  replay(): void;
  rescanEvery(seconds: number): void;
  metricsTo(socket: string | null): void;
  /** Undefined when `--log-level` was given: the flag wins over the file. */
  logLevel?(level: LogLevel): void;
}

/**
 * Reads the settings file again and applies what changed; returns the settings now in force
 * (the old ones when the file is broken).
 */
export async function reload(current: Settings, daemon: Reloadable, log: Logger): Promise<Settings> {
  let read: Settings;
  try {
    read = loadSettings(current.file);
  } catch (err) {
    const reason = err instanceof ConfigError ? err.message : describe(err);
    log.error(`settings not reloaded: ${reason}; the old settings stay in force`);
    pushEvents.emit({ type: 'reloadRejected', reason });
    return current;
  }
  const diff = diffSettings(current, read);
  const next = diff.next;
  for (const key of diff.needRestart) log.warn({ key }, `[MONSTER] ${key} changed: it takes effect at the next restart; the old value stays in force until then`);
  for (const w of read.warnings) log.warn(w);

  // Directories first: from here on no file of a removed one is looked at or dispatched.
  const { directories, vessels } = diff;
  const leaving = [...directories.removed, ...directories.changed];
  for (const name of leaving) {
    daemon.unwatch(name);
    daemon.stabilizer.forget(name);
    daemon.locations.delete(name);
  }
  daemon.replicator.reconfigure(next);
  for (const name of leaving) daemon.replicator.forgetDirectory(name);
  applyMonster(diff.monster, next, daemon);

  for (const name of vessels.removed) daemon.fleet.retire(name);
  for (const name of vessels.added) daemon.fleet.start(byName(next.vessels, name));
  // Rows first, so that the vessels added find what they are owed when they read the queue.
  daemon.replay();
  const fresh = next.directories.filter((d) => directories.added.includes(d.name) || directories.changed.includes(d.name));
  for (const d of fresh) daemon.locations.set(d.name, d.location);
  daemon.takeUp(next.directories, fresh);
  // A changed vessel's new worker reads what waits for it from the database when it starts.
  await Promise.all(vessels.changed.map((name) => daemon.fleet.replace(byName(next.vessels, name))));

  const summary = { ...named('vessels', vessels), ...named('directories', directories), ...(diff.monster.length ? { monster: diff.monster.join(',') } : {}) };
  log.info(summary, Object.keys(summary).length ? 'settings reloaded' : 'settings reloaded; nothing changed');
  pushEvents.emit({ type: 'reloaded', vessels, directories, monster: diff.monster, needRestart: diff.needRestart });
  return next;
}

function applyMonster(keys: string[], next: Settings, daemon: Reloadable): void {
  const m = next.monster;
  if (keys.includes('StableTime')) daemon.stabilizer.stableTimeMs = m.stableTimeMs;
  if (keys.includes('Ignore')) daemon.filter.isIgnored = makeIgnoreMatcher(m.ignore);
  if (keys.includes('RescanInterval')) daemon.rescanEvery(m.rescanIntervalS);
  if (keys.includes('MetricsSocket')) daemon.metricsTo(m.metricsSocket);
  if (keys.includes('LogLevel')) daemon.logLevel?.(m.logLevel);
}

function byName<T extends { name: string }>(list: readonly T[], name: string): T {
  return list.find((s) => s.name === name)!;
}

/** `vesselsAdded: 'a,b'` and so on, only for the kinds of change there are. */
function named(what: 'vessels' | 'directories', c: NamedChanges): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kind of ['added', 'removed', 'changed'] as const) if (c[kind].length) out[`${what}${kind[0].toUpperCase()}${kind.slice(1)}`] = c[kind].join(',');
  return out;
}
