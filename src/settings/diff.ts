/**
 * What a reload (SIGHUP) changes: the settings in force against those just read, per vessel,
 * per Directory and per [MONSTER] key. Pure: the daemon acts on the result (push/reload.ts).
 *
 * A vessel or Directory is "changed" when any of its values differs; the daemon then treats it
 * as a new one (a vessel reconnects, a Directory is watched and scanned afresh). [MONSTER] keys
 * are applied live where the running daemon can take the new value, and kept at their old value
 * with a warning where it cannot (RESTART_KEYS).
 */
import { isDeepStrictEqual } from 'node:util';
import type { MonsterSettings, Settings } from './load.js';
import { monsterOptions } from './table.js';

/**
 * [MONSTER] keys a reload cannot apply: the daemon keeps their old value until it restarts.
 * `Database`: the open state database and its lock belong to this run. `ChunkSize`: it is part
 * of every file version's key (and of its chunks' names on the vessels), so a new value
 * mid-run would make every waiting file a new version at once; a restart does the same, but
 * on purpose. `Threads`: the SSH threads are started with the run (vessels a reload adds share them).
 * `BandwidthLimit` and `TimeZone` of [MONSTER]: every vessel's throttle holds the global limit
 * it started with (a vessel's own limit is reloaded with the vessel: a changed vessel).
 */
export const RESTART_KEYS: readonly (keyof MonsterSettings)[] = ['database', 'chunkSize', 'threads', 'bandwidthLimit', 'timeZone'];

export interface NamedChanges {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
}

export interface SettingsDiff {
  vessels: NamedChanges;
  directories: NamedChanges;
  /** [MONSTER] keys (their settings.ini names) whose new value the reload applies. */
  monster: string[];
  /** [MONSTER] keys whose new value needs a restart (the old one stays in force). */
  needRestart: string[];
  /** The settings to run with: the new ones, with the old value of every key in `needRestart`. */
  next: Settings;
}

export function diffSettings(old: Settings, read: Settings): SettingsDiff {
  const monster: string[] = [];
  const needRestart: string[] = [];
  const kept: Partial<MonsterSettings> = {};
  for (const field of Object.keys(monsterOptions) as (keyof MonsterSettings)[]) {
    if (isDeepStrictEqual(old.monster[field], read.monster[field])) continue;
    const key = monsterOptions[field].key;
    if (RESTART_KEYS.includes(field)) {
      needRestart.push(key);
      (kept as Record<string, unknown>)[field] = old.monster[field];
    } else monster.push(key);
  }
  return {
    vessels: changes(old.vessels, read.vessels),
    directories: changes(old.directories, read.directories),
    monster,
    needRestart,
    next: { ...read, monster: { ...read.monster, ...kept } },
  };
}

/** Sections by name: in the new list only, in the old only, in both with any value different, the same. */
function changes<T extends { name: string }>(old: readonly T[], read: readonly T[]): NamedChanges {
  const before = new Map(old.map((s) => [s.name, s]));
  const after = new Map(read.map((s) => [s.name, s]));
  const result: NamedChanges = { added: [], removed: [], changed: [], unchanged: [] };
  for (const [name, s] of after) {
    const was = before.get(name);
    if (!was) result.added.push(name);
    else if (isDeepStrictEqual(was, s)) result.unchanged.push(name);
    else result.changed.push(name);
  }
  for (const name of before.keys()) if (!after.has(name)) result.removed.push(name);
  return result;
}
