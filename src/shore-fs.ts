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
import { lstatSync, type Stats } from 'node:fs';

/** The path's own metadata (symlinks not followed); undefined when it cannot be read. */
export function lstatOrNone(path: string): Stats | undefined {
  try {
    return lstatSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}
