/**
 * chokidar over every Directory's Location, reduced to "look at this path again". Stability,
 * version tracking and deletion handling all happen downstream, so a missed or repeated event
 * costs nothing but a stat; the periodic rescan covers what inotify drops (queue overflow,
 * files created in a new folder before its watch exists, ENOSPC on watches).
 */
import { watch, type FSWatcher } from 'chokidar';
import { relative, sep } from 'node:path';
import type { Logger } from '../log.js';
import { isExcluded, type ScanFilter } from './scanner.js';

export interface WatchTarget {
  directory: string;
  location: string;
}

export interface WatchEvents {
  /** Something happened at this path: look at it again. */
  path(directory: string, relpath: string): void;
  /**
   * A folder appeared. Files written into it before its own watch was in place raise no event,
   * so the folder must be scanned.
   */
  folder(directory: string, relpath: string): void;
}

export class Watcher {
  readonly #watchers: FSWatcher[] = [];
  readonly #ready: Promise<void>[] = [];
  readonly #filter: ScanFilter;
  readonly #events: WatchEvents;
  readonly #log: Logger;

  constructor(targets: readonly WatchTarget[], filter: ScanFilter, events: WatchEvents, log: Logger) {
    this.#filter = filter;
    this.#events = events;
    this.#log = log;
    // add() never rejects; ready() waits for every watch it started.
    for (const t of targets) void this.add(t);
  }

  /** Watches one more Location (one that appeared after the start); resolves once its watch is in place. */
  add(t: WatchTarget): Promise<void> {
    const rel = (p: string) => relative(t.location, p).split(sep).join('/');
    const w = watch(t.location, {
      ignoreInitial: true,
      followSymlinks: false,
      persistent: true,
      ignored: (p: string) => {
        const r = rel(p);
        return r !== '' && isExcluded(r, this.#filter);
      },
    });
    // Taken now: 'ready' is emitted once, and a later once('ready') would wait forever.
    const ready = new Promise<void>((r) => w.once('ready', () => r()));
    const touched = (p: string) => this.#events.path(t.directory, rel(p));
    w.on('add', touched).on('change', touched).on('unlink', touched);
    w.on('addDir', (p: string) => {
      const r = rel(p);
      if (r !== '') this.#events.folder(t.directory, r);
    });
    w.on('error', (err) => this.#log.warn({ directory: t.directory, err: (err as Error).message }, 'file watcher error; the periodic rescan covers missed files'));
    this.#watchers.push(w);
    this.#ready.push(ready);
    return ready;
  }

  /** Resolves once every watch added so far is in place. */
  ready(): Promise<void> {
    return Promise.all(this.#ready).then(() => {});
  }

  async close(): Promise<void> {
    await Promise.all(this.#watchers.map((w) => w.close()));
  }
}
