// Shared by the unstable-link tests: a set of files, a `run --once` through emulated links, and
// what every such test asserts: every file intact on every vessel, nothing left behind, and the
// bytes that crossed the links within a factor of the payload (bytes the vessels acknowledged
// are never sent again).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Link } from './link.js';
import { runCli, waitFor } from './process.js';
import { assertOnVessel, assertVesselClean, writeSettings, type SettingsOptions } from './push.js';
import type { Vessel, VesselFarm } from './sshd.js';
import { writeRandomFile } from './tree.js';

export const KiB = 1024;
export const MiB = 1024 * 1024;

/** Relative path → size. */
export type FileSet = [string, number][];

/** The file mixes of the grid: small files with one large one, small files only, one large file. */
export const mixes: Record<'mixed' | 'small' | 'large', FileSet> = {
  mixed: [...smallFiles(12, 'mixed'), ['mixed/large.bin', 40 * MiB]],
  small: smallFiles(30, 'small'),
  large: [['large/only.bin', 24 * MiB]],
};

/** `n` files of 1 MiB and under: a few bytes to exactly 1 MiB, most of them between. */
export function smallFiles(n: number, folder: string): FileSet {
  const sizes = [1 * MiB, 700, 64 * KiB, 300 * KiB, 1 * MiB - 1, 5 * KiB, 900 * KiB, 0, 128 * KiB, 512 * KiB];
  return Array.from({ length: n }, (_, i) => [`${folder}/f${String(i).padStart(2, '0')}.bin`, sizes[i % sizes.length]]);
}

export function payloadOf(files: FileSet): number {
  return files.reduce((n, [, size]) => n + size, 0);
}

/** Writes the files on the shore; returns their SHA-256 by path. */
export async function writeFiles(farm: VesselFarm, files: FileSet, seed = 1): Promise<Map<string, string>> {
  const shas = new Map<string, string>();
  for (const [rel, size] of files) shas.set(rel, await writeRandomFile(join(farm.viewPath, rel), size, seed++));
  return shas;
}

export interface Crossing {
  /** Bytes up through all links / (payload × vessels). */
  ratio: number;
  cuts: number;
  stalls: number;
  refused: number;
  connections: number;
}

/** What crossed the links, against what had to. */
export function crossing(links: Link[], payload: number): Crossing {
  const sum = (f: (l: Link) => number) => links.reduce((n, l) => n + f(l), 0);
  return {
    ratio: sum((l) => l.bytesUp) / (payload * links.length),
    cuts: sum((l) => l.cuts),
    stalls: sum((l) => l.stalls),
    refused: sum((l) => l.refused),
    connections: sum((l) => l.connections),
  };
}

/**
 * `run --once` for `files` through `links` (one per vessel of the farm), then the assertions:
 * exit 0, every file on every vessel by SHA-256, no chunk or hidden file left, and at most
 * `maxRatio` times the payload through the links.
 */
export async function deliverThrough(
  farm: VesselFarm, links: Link[], shas: Map<string, string>, payload: number,
  settings: SettingsOptions & { maxRatio?: number; giveUpAfterS?: number; timeoutMs?: number } = {},
): Promise<Crossing> {
  const file = await writeSettings(farm, { portFor: (i) => links[i].port, ...settings });
  const r = await runCli(['run', '-c', file, '--once', '--give-up-after', String(settings.giveUpAfterS ?? 120)], { cwd: farm.root, timeoutMs: settings.timeoutMs ?? 600_000 });
  assert.equal(r.code, 0, `${r.stdout.slice(-8000)}\n${r.stderr}`);
  assertNoLeakWarning(r.stdout + r.stderr);
  for (const v of farm.vessels) {
    await assertOnVessel(v, farm.viewPath, shas);
    await assertVesselCleanOnceQuiet(v, farm.viewPath);
  }
  const c = crossing(links, payload);
  assert.ok(c.ratio <= (settings.maxRatio ?? 1.5), `bytes through the links / payload = ${c.ratio.toFixed(3)} (${JSON.stringify(c)})`);
  return c;
}

/** Node warns when listeners pile up on one emitter or signal: that grows per attempt, and must not happen. */
export function assertNoLeakWarning(output: string): void {
  assert.doesNotMatch(output, /MaxListenersExceededWarning|memory leak detected/);
}

/**
 * A cut leaves the vessel's side of a connection open until its sshd notices (the link
 * emulator says so SERVER_NOTICES_MS later, a real link never does): its joiner may hold a
 * hidden file that long. Waits for such sessions to end, then nothing may be left.
 */
export async function assertVesselCleanOnceQuiet(v: Vessel, viewPath: string): Promise<void> {
  await waitFor(() => assertVesselClean(v, viewPath).then(() => true), `${v.name} clean`, 15_000).catch(() => {});
  await assertVesselClean(v, viewPath);
}
