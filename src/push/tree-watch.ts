/**
 * One Location watched folder by folder: a non-recursive fs.watch (one inotify watch) on each
 * folder, nothing on files, and no record of any file. What a folder's watch reports is passed
 * on as "look at this path again"; the stabilizer downstream lstat()s it and works out whether
 * it is new, changed or gone. The only state is one small node per watched folder (its name,
 * parent, watch and watched subfolders), so memory grows with folders, never with files.
 *
 * What fs.watch gives on Linux (libuv over inotify, checked in deps/uv/src/unix/linux.c):
 * 'change' for IN_MODIFY/IN_ATTRIB, 'rename' for everything else (create, delete, moves, and
 * the watched folder's own deletion or move, which come with the folder's own base name as the
 * file name); ENOSPC is thrown by fs.watch() itself; a queue overflow is dropped by libuv
 * without a word, which is one reason for the periodic rescan.
 */
import { opendirSync, watch, type Dir, type Dirent, type FSWatcher } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Logger } from '../log.js';
import { fsReason, lstatOrNone, statOrNone } from '../shore-fs.js';
import { isExcluded, type ScanFilter } from './scanner.js';
import type { WatchEvents, WatchTarget } from './watcher.js';

/** The counts the trees of one Watcher share, for the one warning when watches run out. */
export interface WatchBudget {
  placed(): void;
  released(): void;
  /** fs.watch() said ENOSPC for this folder. */
  refused(path: string): void;
  /** A folder found and left without a watch, because none were left. */
  unwatched(): void;
  walkStarted(): void;
  walkEnded(): void;
}

interface Folder {
  /** '' for the Location itself. */
  readonly name: string;
  readonly parent: Folder | undefined;
  /** Undefined once the folder is forgotten: its late events and any walk still in it stop. */
  watch: FSWatcher | undefined;
  /** Subfolders that have a watch, by name; only on folders that have any. */
  children: Map<string, Folder> | undefined;
}

/** A folder being read by a walk. */
interface Frame {
  /** Undefined below a folder that got no watch. */
  folder: Folder | undefined;
  rel: string;
  dir: Dir;
}

interface Walk {
  /** False once a watch was refused for lack of watches: the rest of this walk only counts. */
  placing: boolean;
}

/** How often a Location whose folder went away is looked for again. */
const LOST_RETRY_MS = 1000;
/** Directory entries read per call while walking. */
const WALK_BUFFER = 128;
/** The longest a walk holds the event loop before it gives a turn back. */
const YIELD_MS = 10;

export class TreeWatch {
  readonly #directory: string;
  readonly #location: string;
  readonly #root: { folder?: Folder; ino?: number } = {};
  #closed = false;
  #lostTimer: NodeJS.Timeout | undefined;
  // One listener for every folder's errors: Node on Linux does not emit any, and a closure per
  // folder would cost memory for nothing.
  readonly #onError = (err: Error) => this.log.warn({ directory: this.#directory, err: err.message }, 'a folder watch failed; the periodic rescan covers its files');

  constructor(
    target: WatchTarget,
    private readonly filter: ScanFilter,
    private readonly events: WatchEvents,
    private readonly budget: WatchBudget,
    private readonly log: Logger,
  ) {
    this.#directory = target.directory;
    // Resolved: libuv names the folder's own events by the base name of the path it was given,
    // which a trailing slash would make empty.
    this.#location = resolve(target.location);
  }

  /** Watches the Location and every folder below it; resolves once all of it was walked. */
  get directory(): string {
    return this.#directory;
  }

  start(): Promise<void> {
    return this.#walk(undefined, '', '');
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#lostTimer);
    if (this.#root.folder) this.#forget(this.#root.folder);
  }

  #path(rel: string): string {
    return rel ? join(this.#location, rel) : this.#location;
  }

  #relOf(folder: Folder): string {
    let rel = folder.name;
    for (let f = folder.parent; f?.parent; f = f.parent) rel = `${f.name}/${rel}`;
    return rel;
  }

  /**
   * Walks one folder and what is below it, placing watches; never rejects. The folder is
   * watched before it is read, so a subfolder made while it is read raises an event (and is
   * watched from there) if the read misses it. Depth first, with each folder open while its
   * subfolders are walked and read a batch of entries at a time: memory is bounded by the
   * depth, never by the number of files (a folder of a million files is never held). The
   * reads are synchronous (a thread-pool round trip per batch would cost more than the read,
   * see shore-fs.ts), with a turn of the event loop given back every few milliseconds.
   */
  async #walk(parent: Folder | undefined, name: string, rel: string): Promise<void> {
    this.budget.walkStarted();
    const open: Frame[] = [];
    try {
      const walk: Walk = { placing: true };
      const first = this.#enter(parent, name, rel, walk);
      if (first) open.push(first);
      let since = performance.now();
      while (open.length > 0) {
        const top = open[open.length - 1];
        // A folder forgotten meanwhile (removed, moved away, replaced) is walked no further.
        const entry = this.#closed || (top.folder && !top.folder.watch) ? null : readEntry(top.dir);
        if (entry === null) {
          closeDir(open.pop()!.dir);
          continue;
        }
        if (!entry.isDirectory()) continue; // files need nothing; symlinks are not followed
        const child = top.rel ? `${top.rel}/${entry.name}` : entry.name;
        if (isExcluded(child, this.filter)) continue;
        const next = this.#enter(top.folder, entry.name, child, walk);
        if (next) open.push(next);
        if (performance.now() - since >= YIELD_MS) {
          await new Promise((r) => setImmediate(r));
          since = performance.now();
        }
      }
    } finally {
      for (const f of open) closeDir(f.dir);
      this.budget.walkEnded();
    }
  }

  /** Watches a folder (while watches last) and opens it for the walk; undefined when there is nothing to walk. */
  #enter(parent: Folder | undefined, name: string, rel: string, walk: Walk): Frame | undefined {
    const path = this.#path(rel);
    let folder: Folder | undefined;
    if (walk.placing) {
      const placed = this.#place(parent, name, path, walk);
      if (placed === 'skip') return undefined;
      folder = placed;
    }
    if (!folder) this.budget.unwatched(); // still walked, to count the folders the warning names
    try {
      return { folder, rel, dir: opendirSync(path, { bufferSize: WALK_BUFFER }) };
    } catch {
      return undefined; // gone, or unreadable: the scanner says so
    }
  }

  /** A watch on one folder: the folder, undefined when watches ran out, 'skip' when it cannot be watched at all. */
  #place(parent: Folder | undefined, name: string, path: string, walk: Walk): Folder | undefined | 'skip' {
    if (this.#closed || (parent && !parent.watch)) return 'skip';
    const folder: Folder = { name, parent, watch: undefined, children: undefined };
    try {
      folder.watch = watch(path, (type, filename) => this.#changed(folder, type, filename));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOSPC') {
        walk.placing = false;
        this.budget.refused(path);
        return undefined;
      }
      // Gone, or replaced by a file, since it was listed: its parent's watch tells.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') this.log.warn({ path, err: fsReason(err) }, 'cannot watch folder; its files are only seen by the periodic rescan');
      return 'skip';
    }
    folder.watch.on('error', this.#onError);
    this.budget.placed();
    if (parent) {
      const old = parent.children?.get(name);
      if (old) this.#forget(old);
      (parent.children ??= new Map()).set(name, folder);
    } else {
      if (this.#root.folder) this.#forget(this.#root.folder);
      this.#root.folder = folder;
      this.#root.ino = statOrNone(path)?.ino;
    }
    return folder;
  }

  /** Closes the watches of a folder and everything below it. */
  #forget(folder: Folder): void {
    const stack = [folder];
    for (let f = stack.pop(); f; f = stack.pop()) {
      if (f.watch) {
        f.watch.close();
        f.watch = undefined;
        this.budget.released();
      }
      if (f.children) for (const c of f.children.values()) stack.push(c);
      f.children = undefined;
    }
    if (folder.parent?.children?.get(folder.name) === folder) folder.parent.children.delete(folder.name);
    if (this.#root.folder === folder) this.#root.folder = undefined;
  }

  #changed(folder: Folder, type: string, filename: string | null): void {
    if (this.#closed || !folder.watch) return; // queued before the watch was closed
    const rel = this.#relOf(folder);
    if (filename === null) {
      // No name to look at: look at the whole folder.
      this.events.folder(this.#directory, rel);
      return;
    }
    // The folder's own deletion or move comes with its own name.
    if (filename === (folder.parent ? folder.name : basename(this.#location)) && this.#isGone(folder, rel)) return;
    const child = rel ? `${rel}/${filename}` : filename;
    if (isExcluded(child, this.filter)) return;
    const known = folder.children?.get(filename);
    if (type === 'change') {
      // Written to or its attributes changed: news for a file, none for a watched folder.
      if (!known) this.events.path(this.#directory, child);
      return;
    }
    const st = lstatOrNone(this.#path(child));
    if (st?.isDirectory()) {
      // New, or moved in over a watched one (whose watch follows the old folder away): watched
      // afresh either way, then scanned for what was written before its watch was in place.
      if (known) this.#forget(known);
      void this.#walk(folder, filename, child).then(() => {
        if (!this.#closed) this.events.folder(this.#directory, child);
      });
      return;
    }
    if (known) {
      this.#forget(known); // a watched folder removed or moved away
      return;
    }
    this.events.path(this.#directory, child);
  }

  /** Whether a folder that reported its own name is gone (then forgotten); a subfolder's parent sees its replacement. */
  #isGone(folder: Folder, rel: string): boolean {
    // The Location may be a symlink to its folder (fs.watch follows it): the folder is what counts.
    const st = folder.parent ? lstatOrNone(this.#path(rel)) : statOrNone(this.#location);
    const there = st?.isDirectory() && (folder.parent !== undefined || st.ino === this.#root.ino);
    if (there) return false;
    if (folder.parent) this.#forget(folder);
    else this.#lost();
    return true;
  }

  /**
   * The Location's own folder was removed or moved away. Its files are gone with it (the rescan
   * finds nothing there); when a folder is back at the path, it is watched and scanned.
   */
  #lost(): void {
    if (this.#root.folder) this.#forget(this.#root.folder);
    this.log.warn({ directory: this.#directory }, `Location ${this.#location} of [Directory ${this.#directory}] was removed or moved away; it is watched again once it is back`);
    clearInterval(this.#lostTimer);
    this.#lostTimer = setInterval(() => {
      if (this.#closed || !statOrNone(this.#location)?.isDirectory()) return;
      clearInterval(this.#lostTimer);
      this.#lostTimer = undefined;
      this.log.info({ directory: this.#directory }, `Location ${this.#location} of [Directory ${this.#directory}] is back; watching it`);
      void this.#walk(undefined, '', '').then(() => {
        if (!this.#closed) this.events.folder(this.#directory, '');
      });
    }, LOST_RETRY_MS).unref();
  }
}

/** The next entry of a folder being read; null at its end, or when it cannot be read any more. */
function readEntry(dir: Dir): Dirent | null {
  try {
    return dir.readSync();
  } catch {
    return null;
  }
}

function closeDir(dir: Dir): void {
  try {
    dir.closeSync();
  } catch {
    // already closed
  }
}
