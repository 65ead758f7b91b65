/**
 * Every Directory's Location watched (push/tree-watch.ts: one inotify watch per folder, none
 * per file), reduced to "look at this path again". Stability, version tracking and deletion
 * handling all happen downstream, so a missed or repeated event costs nothing but a stat; the
 * periodic rescan covers what inotify drops (queue overflow, files created in a new folder
 * before its watch exists, folders left without a watch when watches run out).
 *
 * When inotify watches run out (ENOSPC), the folders still to be walked are counted without a
 * watch, and once every walk under way has ended, one WARNING names fs.inotify.max_user_watches
 * and the value that would do (push/watch-limit.ts). Never again in the run: a new folder that
 * finds no watch later is left to the rescan quietly.
 */
import type { Logger } from '../log.js';
import type { ScanFilter } from './scanner.js';
import { TreeWatch, type WatchBudget } from './tree-watch.js';
import { ranOutMessage, readWatchLimits } from './watch-limit.js';

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
  #trees: TreeWatch[] = [];
  readonly #ready: Promise<void>[] = [];
  readonly #filter: ScanFilter;
  readonly #events: WatchEvents;
  readonly #log: Logger;
  /** The Locations are walked one after the other: the disk is read in one place at a time. */
  #queue: Promise<void> = Promise.resolve();
  #closed = false;
  #watched = 0;
  #unwatched = 0;
  #walks = 0;
  /** The first refusal (ENOSPC): our watches then, and where. */
  #refused: { watched: number; path: string } | undefined;
  #warned = false;
  readonly #budget: WatchBudget = {
    placed: () => void this.#watched++,
    released: () => void this.#watched--,
    refused: (path) => {
      this.#refused ??= { watched: this.#watched, path };
      if (this.#warned) this.#log.debug({ path }, 'no inotify watch left for this folder; the periodic rescan covers it');
    },
    unwatched: () => void this.#unwatched++,
    walkStarted: () => void this.#walks++,
    walkEnded: () => {
      this.#walks--;
      this.#warnIfRanOut();
    },
  };

  constructor(targets: readonly WatchTarget[], filter: ScanFilter, events: WatchEvents, log: Logger) {
    this.#filter = filter;
    this.#events = events;
    this.#log = log;
    // add() never rejects; ready() waits for every watch it started.
    for (const t of targets) void this.add(t);
  }

  /** Watches one more Location (one that appeared after the start); resolves once its watches are in place. */
  add(t: WatchTarget): Promise<void> {
    if (this.#closed) return Promise.resolve();
    const tree = new TreeWatch(t, this.#filter, this.#events, this.#budget, this.#log);
    this.#trees.push(tree);
    // Counted from now, not from when its turn comes: the warning waits for every Location
    // given so far, so that it names all of their folders.
    this.#budget.walkStarted();
    const walked = this.#queue.then(() => tree.start()).finally(() => this.#budget.walkEnded());
    this.#queue = walked.catch(() => {}); // a walk never rejects; if one did, the next would still run
    this.#ready.push(walked);
    return walked;
  }

  /** Stops watching a Directory's Location (removed or changed by a reload). */
  remove(directory: string): void {
    for (const t of this.#trees.filter((t) => t.directory === directory)) t.close();
    this.#trees = this.#trees.filter((t) => t.directory !== directory);
  }

  /** Resolves once every watch added so far is in place. */
  ready(): Promise<void> {
    return Promise.all(this.#ready).then(() => {});
  }

  close(): Promise<void> {
    this.#closed = true;
    for (const t of this.#trees) t.close();
    return Promise.resolve();
  }

  #warnIfRanOut(): void {
    if (this.#walks > 0 || !this.#refused || this.#warned || this.#closed) return;
    this.#warned = true;
    const message = ranOutMessage({
      watched: this.#watched,
      folders: this.#watched + this.#unwatched,
      watchedWhenRefused: this.#refused.watched,
      limits: readWatchLimits(),
    });
    this.#log.warn({ folder: this.#refused.path }, message);
  }
}
