// The scratch folder and checks shared by the tests of the vessel scripts (src/push/upload/join.ts,
// digest-scripts.ts, probes.ts, file-attrs.ts) and of ssh/quote.ts: each script runs in /bin/sh
// with cwd = root, and every case gets a folder of its own.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';

export const root = mkdtempSync(join(tmpdir(), 'cm-shell-'));
export const markerName = 'MARKER';
/** Every injection attempt tries to create this file (by absolute path and, with cwd = root, by name). */
export const marker = join(root, markerName);

/** Removes `root`: `after(removeScratch)` in each test file. */
export function removeScratch(): void {
  rmSync(root, { recursive: true, force: true });
}

// File names cannot hold `/`, so injections hidden in names use the bare marker name; every
// script runs with cwd = root, where that name resolves to `marker`.
export function assertNoMarker(): void {
  assert.equal(existsSync(marker), false, `an injection created ${marker}`);
}

/** No half-joined file `${prefix}.<pid>.tmp` is left beside the destination. */
export function assertNoAssembly(prefix: string): void {
  const dir = dirname(prefix);
  const left = existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith(`${basename(prefix)}.`) && n.endsWith('.tmp')) : [];
  assert.deepEqual(left, [], `assembly files left in ${dir}`);
}

export function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

export interface ShResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function sh(script: string): ShResult {
  const r = spawnSync('/bin/sh', ['-c', script], { cwd: root, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let caseNo = 0;
/** A fresh directory per case, so cases never see each other's files. */
export function caseDir(name = 'case'): string {
  const dir = join(root, `${name}-${++caseNo}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

export function writeChunks(prefix: string, chunks: (string | Buffer)[]): void {
  chunks.forEach((c, i) => writeFileSync(`${prefix}.${i}`, c));
}

export function chunksLeft(prefix: string, count: number): number[] {
  const left: number[] = [];
  for (let i = 0; i < count; i++) if (existsSync(`${prefix}.${i}`)) left.push(i);
  return left;
}
