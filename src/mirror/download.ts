/**
 * One file from the server to LOCAL_PATH: pipelined SFTP reads into a partial file beside the
 * final name, flushed to disk and renamed when complete.
 *
 * Reads are issued ahead (a window of requests of the server's maximum read size) and written
 * strictly in order, appending, so that the partial is always a clean prefix of the remote
 * file: after a crash or a cut link its length is exactly where the next attempt resumes.
 *
 * The size is the server's word, checked against what it hands out: a file that ends before
 * its size (shrank, or a lying server) fails and its partial is kept; one that still has bytes
 * at its size (it grew, or a lying server) fails and its partial is discarded. Neither is ever
 * renamed to its final name.
 */
import { open, rename, unlink, utimes, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FileError, StoppedError } from '../errors.js';
import { makeFoldersAsync } from '../shore-fs.js';
import type { RemoteReader } from '../ssh/remote-fs.js';
import { partialName } from './partial.js';

/**
 * Bytes asked for ahead of what is written, per file. Measured on loopback with a 512 MiB
 * file: 4 MiB took 2.7-3.0 s, 16 MiB 1.7-1.9 s (sftp-server answers one request at a time;
 * a deep queue keeps it busy).
 */
const WINDOW_BYTES = 16 * 1024 * 1024;
/**
 * The kernel is asked to start writing back every this many bytes, so that the flush before
 * the rename finds little left to do instead of the whole file.
 */
const WRITEBACK_EVERY = 64 * 1024 * 1024;

export interface DownloadJob {
  remotePath: string;
  localPath: string;
}

export interface DownloadResult {
  /** Bytes fetched by this attempt (a resumed file fetches only its rest). */
  fetched: number;
  /** Bytes that were already in the partial from an earlier attempt. */
  resumedFrom: number;
  size: number;
}

export interface DownloadOptions {
  signal: AbortSignal;
  /** Called as bytes reach the local file. */
  onBytes?: (n: number) => void;
  /** Called once the remote size is known, with the bytes already present. */
  onStart?: (size: number, present: number) => void;
}

interface PendingRead {
  position: number;
  length: number;
  /** Where the answer lands; back to the pool once written. */
  buffer: Buffer;
  data: Promise<Buffer>;
  /** The read at the size, which must find the end of the file. */
  probe?: boolean;
}

/** The remote file has bytes past the size it had when the download started. */
class LongerThanSize extends FileError {}

export async function downloadFile(reader: RemoteReader, job: DownloadJob, options: DownloadOptions): Promise<DownloadResult> {
  const handle = await reader.openRead(job.remotePath);
  let local: FileHandle | undefined;
  try {
    // The size and mtime now, not those of the listing: the file may have changed since.
    const { size, mtime } = await reader.fstat(handle);
    const partial = join(dirname(job.localPath), partialName(job.localPath.slice(job.localPath.lastIndexOf('/') + 1), size, mtime));
    // One level at a time: a read-only LOCAL_PATH says EROFS, where a recursive mkdir says ENOENT.
    await makeFoldersAsync(dirname(job.localPath)).catch((err: unknown) => { throw localError(job.localPath, err); });
    local = await open(partial, 'a').catch((err: unknown) => { throw localError(partial, err); });
    let present = (await local.stat()).size;
    if (present > size) {
      // Longer than the file it is a part of: not ours to trust.
      await local.truncate(0);
      present = 0;
    }
    options.onStart?.(size, present);
    try {
      await fetchRange(reader, handle, local, present, size, partial, options);
    } catch (err) {
      if (err instanceof LongerThanSize) {
        // Bytes of a version that is no longer the one on the server: no use to resume from.
        await local.close().catch(() => {});
        local = undefined;
        await discardPartial(partial);
      }
      throw err;
    }
    // On disk before it gets its final name: a power cut must not leave a complete-looking
    // file with missing contents.
    await local.datasync().catch((err: unknown) => { throw localError(partial, err); });
    await local.close();
    local = undefined;
    // The remote mtime, as mirrors do: a later listing can be compared by eye with the server.
    await utimes(partial, mtime, mtime).catch(() => {});
    await rename(partial, job.localPath).catch((err: unknown) => { throw localError(job.localPath, err); });
    return { fetched: size - present, resumedFrom: present, size };
  } finally {
    await local?.close().catch(() => {});
    await reader.close(handle).catch(() => {});
  }
}

async function fetchRange(
  reader: RemoteReader, handle: Buffer, local: FileHandle, from: number, size: number, partial: string, options: DownloadOptions,
): Promise<void> {
  const step = reader.maxReadLength;
  const depth = Math.max(2, Math.floor(WINDOW_BYTES / step));
  const queue: PendingRead[] = [];
  let next = from;
  let probed = false;
  let unflushed = 0;
  let writeback: Promise<void> | undefined;
  // Buffers are reused: a fresh 256 KiB buffer per request would be garbage at ~1 GB/s.
  const pool: Buffer[] = [];
  const ask = (position: number, length: number): PendingRead => {
    const buffer = pool.pop() ?? Buffer.allocUnsafe(step);
    const data = reader.read(handle, position, length, buffer);
    data.catch(() => {}); // awaited in order below; a failure while another is awaited is not unhandled
    return { position, length, buffer, data };
  };
  while (next < size || queue.length > 0 || !probed) {
    if (options.signal.aborted) throw new StoppedError('download stopped');
    while (queue.length < depth && next < size) {
      const length = Math.min(step, size - next);
      queue.push(ask(next, length));
      next += length;
    }
    if (next >= size && !probed) {
      // Asked along with the last reads, so it costs no round trip of its own.
      queue.push({ ...ask(size, 1), probe: true });
      probed = true;
    }
    const head = queue.shift()!;
    const data = await head.data;
    if (head.probe) {
      pool.push(head.buffer);
      if (data.length === 0) continue;
      throw new LongerThanSize(`the remote file has more than the ${size} bytes its size said when the download started (it grew, or the server gives a wrong size); not kept, the next run fetches it again`);
    }
    if (data.length === 0) {
      throw new FileError(`${partial}: the remote file ended at ${head.position} bytes, its size was ${size} when the download started (it shrank, or the server gives a wrong size; the partial is kept, the next run fetches it again)`);
    }
    if (data.length > head.length) {
      throw new FileError(`the server answered a read of ${head.length} bytes at ${head.position} with ${data.length} bytes`);
    }
    // A short answer: ask for the rest before anything after it is written.
    if (data.length < head.length) queue.unshift(ask(head.position + data.length, head.length - data.length));
    await local.write(data).catch((err: unknown) => { throw localError(partial, err); });
    pool.push(head.buffer);
    options.onBytes?.(data.length);
    unflushed += data.length;
    if (unflushed >= WRITEBACK_EVERY && writeback === undefined) {
      // In the background, while the download goes on; errors surface at the final flush.
      unflushed = 0;
      writeback = local.datasync().catch(() => {}).finally(() => {
        writeback = undefined;
      });
    }
  }
  await writeback;
}

function localError(path: string, err: unknown): FileError {
  return new FileError(`${path}: ${(err as Error).message}`, { path, cause: err });
}

/** Removes partials of versions that are no longer on the server. */
export async function discardPartial(path: string): Promise<void> {
  await unlink(path).catch(() => {});
}
