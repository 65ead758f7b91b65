/**
 * The order a mirror run works in, as the seed does it: sub-directories first, newest first
 * (reverse natural order, so that `20251118` comes before `20251117` and `day10` before
 * `day9`), then files in the same order. Dated folders are how servers usually publish, and
 * the newest are the ones an operator is waiting for.
 */
import type { RemoteEntry } from '../ssh/remote-fs.js';

const natural = new Intl.Collator('en', { numeric: true, sensitivity: 'variant' });

/** Reverse natural order; names equal to the collator fall back to code points, so it is total. */
export function newestFirst(a: string, b: string): number {
  return natural.compare(b, a) || (a < b ? 1 : a > b ? -1 : 0);
}

/** Directories first, then everything else, each newest first. */
export function mirrorOrder<T extends Pick<RemoteEntry, 'name' | 'kind'>>(entries: T[]): T[] {
  const dirs = entries.filter((e) => e.kind === 'directory').sort((a, b) => newestFirst(a.name, b.name));
  const rest = entries.filter((e) => e.kind !== 'directory').sort((a, b) => newestFirst(a.name, b.name));
  return [...dirs, ...rest];
}
