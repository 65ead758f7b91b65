// Shared set-up for push tests: a settings.ini for a farm of vessels, and assertions on what
// each vessel holds. The shore's Directory is under farm.viewPath, which every vessel sees as
// its own backing directory, so RemoteLocation defaults to Location as in the seed.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import type { VesselFarm, Vessel } from './sshd.js';
import { sha256File, listFiles } from './tree.js';

export interface SettingsOptions {
  chunkSize?: number;
  stableTime?: number;
  directories?: { name: string; location: string; extra?: string }[];
  /** Per vessel extra lines, by index. */
  vesselExtra?: (i: number) => string;
  /** Port per vessel (e.g. a proxy's) by index; default the vessel's own. */
  portFor?: (i: number) => number;
  vessels?: number[];
  monsterExtra?: string;
  /** Vessel Timeout in seconds (default 5). */
  timeout?: number;
}

export function settingsPath(farm: VesselFarm): string {
  return join(farm.root, 'settings.ini');
}

export function databasePath(farm: VesselFarm): string {
  return join(farm.root, 'state', 'database.sqlite3');
}

export async function writeSettings(farm: VesselFarm, o: SettingsOptions = {}): Promise<string> {
  const dirs = o.directories ?? [{ name: 'data', location: farm.viewPath }];
  const indexes = o.vessels ?? farm.vessels.map((_, i) => i);
  const text = [
    '[MONSTER]',
    `ChunkSize = ${o.chunkSize ?? 65536}  # small, so that files have several chunks`,
    `StableTime = ${o.stableTime ?? 0}`,
    `Database = ${databasePath(farm)}`,
    o.monsterExtra ?? '',
    ...dirs.flatMap((d) => [`[Directory ${d.name}]  # comment after a header`, `Location = ${d.location}`, d.extra ?? '']),
    ...indexes.flatMap((i) => {
      const v = farm.vessels[i];
      return [
        `[Vessel ${v.name}]`,
        'Address = 127.0.0.1',
        `Port = ${o.portFor ? o.portFor(i) : v.port}`,
        'Username = root',
        `IdentityFile = ${farm.clientKey}`,
        `Timeout = ${o.timeout ?? 5}`,
        o.vesselExtra?.(i) ?? '',
      ];
    }),
  ].join('\n');
  const file = settingsPath(farm);
  await writeFile(file, `${text}\n`);
  return file;
}

/** Every listed file is on the vessel under the same relative path with the same SHA-256. */
export async function assertOnVessel(vessel: Vessel, viewPath: string, expected: Map<string, string>, sub = ''): Promise<void> {
  for (const [rel, sha] of expected) {
    const path = vessel.hostPath(join(viewPath, sub, rel));
    assert.equal(await sha256File(path).catch((e) => `missing (${(e as Error).message})`), sha, `${rel} on ${vessel.name}`);
  }
}

/** TempDir on the vessel holds nothing, and no half-joined file is left in the destination tree. */
export async function assertVesselClean(vessel: Vessel, viewPath: string, tempDir = '/tmp/.ContentMonster'): Promise<void> {
  const temp = await readdir(vessel.hostPath(tempDir)).catch(() => []);
  assert.deepEqual(temp, [], `TempDir on ${vessel.name} is left clean`);
  const stray = (await listFiles(vessel.hostPath(viewPath))).filter((f) => /(^|\/)\.cm-[0-9a-f]+\.(\d+|up)\.tmp$/.test(f));
  assert.deepEqual(stray, [], `no half-joined file on ${vessel.name}`);
}

/**
 * Bytes of chunks in a vessel's TempDir (`cm-<hex>.<n>` files): what a resumed upload finds
 * there, so that a test can wait for a phase of an upload instead of a time. They stay across a
 * kill, as the chunks do, and are gone once their file is placed.
 */
export function chunkBytes(vessel: Vessel, tempDir = '/tmp/.ContentMonster'): number {
  const dir = vessel.hostPath(tempDir);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0;
  }
  let total = 0;
  for (const name of names.filter((n) => /^cm-[0-9a-f]+\.\d+$/.test(n))) {
    try {
      const st = statSync(join(dir, name));
      if (st.isFile()) total += st.size;
    } catch {
      // removed meanwhile (joined and placed)
    }
  }
  return total;
}

/**
 * Empties the shore, every vessel and the state between tests; the vessels keep running. The
 * folders themselves stay: they are mount points in the vessels' namespaces, and removing one
 * would detach the vessel's view.
 */
export async function resetFarm(farm: VesselFarm): Promise<void> {
  for (const dir of [farm.viewPath, ...farm.vessels.map((v) => v.backing), join(farm.root, 'state')]) {
    await mkdir(dir, { recursive: true });
    for (const name of await readdir(dir)) await rm(join(dir, name), { recursive: true, force: true });
  }
}

/** Runs a shell command inside a vessel's mount namespace, as that vessel's root sees it. */
export function onVessel(vessel: Vessel, script: string): void {
  execFileSync('nsenter', ['-t', String(vessel.pid), '-m', '--', 'sh', '-c', script], { stdio: 'pipe' });
}
