/**
 * Holds back a file until it has stopped changing: its size and mtime must stay the same for
 * `stableTimeMs`. A file whose mtime is already that old is stable at first sight (catch-up
 * after downtime goes out at once); a fresh one is looked at again when it would be old
 * enough. Repeat events for one path fold into the one pending check.
 */
import { join } from 'node:path';
import { lstatOrNone } from '../shore-fs.js';

export interface StableFile {
  directory: string;
  relpath: string;
  size: number;
  mtimeMs: number;
}

export interface StabilizerEvents {
  stable(file: StableFile): void;
  /** No regular file at this path any more. */
  gone(directory: string, relpath: string): void;
  /** The path is a folder now (it may have replaced a file): its contents need a scan. */
  folder(directory: string, relpath: string): void;
  symlink(path: string): void;
}

interface Pending {
  timer?: NodeJS.Timeout;
  last?: { size: number; mtimeMs: number; since: number };
}

export class Stabilizer {
  readonly #pending = new Map<string, Pending>();
  #stopped = false;

  constructor(
    /** `StableTime`; a reload may change it, for the files that settle from then on. */
    public stableTimeMs: number,
    private readonly locations: ReadonlyMap<string, string>,
    private readonly events: StabilizerEvents,
    private readonly now: () => number = Date.now,
  ) {}

  /** Files still waiting to become stable (or being looked at). */
  get size(): number {
    return this.#pending.size;
  }

  /** The files still waiting to become stable, as [directory, relpath]. */
  pendingPaths(): [string, string][] {
    return [...this.#pending.keys()].map((k) => k.split('\0') as [string, string]);
  }

  /** Something happened to this path: look at it now. */
  observe(directory: string, relpath: string): void {
    if (this.#stopped) return;
    const key = `${directory}\0${relpath}`;
    let p = this.#pending.get(key);
    if (!p) {
      p = {};
      this.#pending.set(key, p);
    }
    clearTimeout(p.timer);
    p.timer = undefined;
    this.#check(key, p, directory, relpath);
  }

  /** A Directory removed or changed by a reload: what of it was settling is let go. */
  forget(directory: string): void {
    for (const [key, p] of this.#pending) {
      if (!key.startsWith(`${directory}\0`)) continue;
      clearTimeout(p.timer);
      this.#pending.delete(key);
    }
  }

  #check(key: string, p: Pending, directory: string, relpath: string): void {
    const location = this.locations.get(directory);
    if (location === undefined) {
      this.#pending.delete(key); // its Directory was removed by a reload
      return;
    }
    const path = join(location, relpath);
    const st = lstatOrNone(path);
    if (!st || st.isDirectory()) {
      this.#pending.delete(key);
      this.events.gone(directory, relpath);
      if (st) this.events.folder(directory, relpath);
      return;
    }
    if (st.isSymbolicLink() || !st.isFile()) {
      this.#pending.delete(key);
      if (st.isSymbolicLink()) this.events.symlink(path);
      return;
    }
    const now = this.now();
    const same = p.last !== undefined && p.last.size === st.size && p.last.mtimeMs === st.mtimeMs;
    if (!same) p.last = { size: st.size, mtimeMs: st.mtimeMs, since: now };
    const quietFor = Math.max(now - st.mtimeMs, now - p.last!.since);
    if (quietFor >= this.stableTimeMs) {
      this.#pending.delete(key);
      this.events.stable({ directory, relpath, size: st.size, mtimeMs: st.mtimeMs });
      return;
    }
    p.timer = setTimeout(() => {
      p.timer = undefined;
      this.#check(key, p, directory, relpath);
    }, Math.max(this.stableTimeMs - quietFor, 10));
  }

  stop(): void {
    this.#stopped = true;
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    this.#pending.clear();
  }
}
