/**
 * The shore's per-file filesystem calls (lstat, the move to processed/, reading a small file)
 * are synchronous, on purpose.
 *
 * Each call of `fs/promises` is a round trip through libuv's thread pool: the main thread
 * wakes a pool thread and is woken back, two context switches that on two cores cost more
 * than the call itself. 2000 files of 64 KiB to one vessel made 47,000 context switches
 * and 80,000 futex calls that way; synchronous calls brought them to 6,500 and 4,700, and
 * the daemon's CPU time from 3.2-3.8 s to 2.5-2.8 s (tmpfs, so the vessel's disk was not the
 * limit).
 *
 * The price: a call blocks the event loop while it runs. On a local filesystem that is
 * microseconds (a file's metadata, or a read of at most 1 MiB, mostly from the page cache).
 * A Location on a network filesystem whose server stops answering pauses the whole daemon
 * until it answers again (the README says so). Large files are still read asynchronously.
 */
import { accessSync, constants, lstatSync, mkdirSync, statSync, type Stats } from 'node:fs';
import { lstat, mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';

/** The path's own metadata (symlinks not followed); undefined when it cannot be read. */
export function lstatOrNone(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/** The path's metadata, symlinks followed; undefined when it cannot be read. */
export function statOrNone(path: string): Stats | undefined {
  try {
    return statSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/**
 * What a failed filesystem call means, in words, by its code: `read-only file system` for
 * EROFS, `permission denied` for EACCES/EPERM, and so on; the error's own message otherwise.
 */
export function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const reasons: Record<string, string> = {
    EROFS: 'read-only file system',
    EACCES: 'permission denied',
    EPERM: 'permission denied',
    ENOENT: 'does not exist',
    ENOTDIR: 'a parent is not a folder',
    EEXIST: 'something else is in the way',
    ENOSPC: 'no space left on the device',
    EDQUOT: 'disk quota exceeded',
    EIO: 'input/output error',
  };
  return (typeof code === 'string' && reasons[code]) || (err instanceof Error ? err.message : String(err));
}

/**
 * Creates a folder and its missing parents, one level at a time. Node's own recursive mkdir
 * says ENOENT ("no such file or directory") where one level cannot be created because the
 * filesystem is read-only or access is denied; a plain mkdir of that level says EROFS or
 * EACCES, which is what the caller passes on.
 */
export function makeFolders(path: string): void {
  const missing: string[] = [];
  for (let p = resolve(path); lstatOrNone(p) === undefined; p = dirname(p)) {
    missing.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const p of missing) {
    try {
      mkdirSync(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err; // made meanwhile by someone else: fine
    }
  }
}

/** makeFolders for the asynchronous callers (the mirror). */
export async function makeFoldersAsync(path: string): Promise<void> {
  const missing: string[] = [];
  for (let p = resolve(path); (await lstat(p).catch(() => undefined)) === undefined; p = dirname(p)) {
    missing.unshift(p);
    if (dirname(p) === p) break;
  }
  for (const p of missing) {
    await mkdir(p).catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    });
  }
}

/** What is wrong with a folder the shore must read and write (a Location, the database's folder), if anything. */
export type FolderProblem =
  | { kind: 'missing'; reason: string }
  | { kind: 'notdir'; reason: string }
  | { kind: 'unreadable'; reason: string }
  | { kind: 'readonly'; reason: string };

/**
 * Looks at a folder without changing anything: it exists, is a folder (a symlink to one counts),
 * can be listed, and files can be created in it. `access()` answers EROFS for a read-only
 * filesystem also to root, and EACCES by the permissions (and ACLs) for anyone else.
 */
export function folderProblem(path: string, needs: { read: boolean; write: boolean }): FolderProblem | undefined {
  let st: Stats | undefined;
  try {
    st = statSync(path, { throwIfNoEntry: false });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR') return { kind: 'missing', reason: 'does not exist (a parent is not a folder)' };
    return { kind: 'unreadable', reason: fsReason(err) };
  }
  if (!st) return { kind: 'missing', reason: 'does not exist' };
  if (!st.isDirectory()) return { kind: 'notdir', reason: 'is not a folder' };
  if (needs.read) {
    try {
      accessSync(path, constants.R_OK | constants.X_OK);
    } catch (err) {
      return { kind: 'unreadable', reason: fsReason(err) };
    }
  }
  if (needs.write) {
    try {
      accessSync(path, constants.W_OK | constants.X_OK);
    } catch (err) {
      return { kind: 'readonly', reason: fsReason(err) };
    }
  }
  return undefined;
}

/** The nearest folder at or above `path` that exists (`/` at worst). */
export function nearestExisting(path: string): string {
  let p = resolve(path);
  while (lstatOrNone(p) === undefined && dirname(p) !== p) p = dirname(p);
  return p;
}
