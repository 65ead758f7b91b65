/**
 * The shore side of a delivery: reading the shore file, and making sure it still is the
 * version being sent (a regular file of the job's size and mtime). A file that changed or went
 * away ends the delivery with LocalChange; any other error reading it is the file's problem.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { FileError, LocalChange, StoppedError } from '../../errors.js';
import { fileAttrs, type FileAttrs } from './file-attrs.js';
import { readBuffers } from './sftp-writes.js';
import type { DeliveryJob } from './upload.js';

/** Whether the shore file still is the version being sent (synchronous, see shore-fs.ts); its stat. */
export function checkLocalVersion(job: DeliveryJob): Stats {
  const st = localCall(job, () => lstatSync(job.localPath));
  expectVersion(job, st);
  return st;
}

/** Throws LocalChange unless `st` describes the job's version: a regular file of its size and mtime. */
function expectVersion(job: DeliveryJob, st: Stats): void {
  if (!st.isFile()) throw new LocalChange('gone');
  if (st.size !== job.size || st.mtimeMs !== job.mtimeMs) throw new LocalChange('changed');
}

/**
 * The whole of a small file, as this version: size and mtime are checked on the open file
 * after the read, so a writer that came back meanwhile is seen. What is sent is then this
 * version's bytes, whatever happens to the file later (a later change is a new version).
 */
export function readWhole(job: DeliveryJob): { data: Buffer; pooled?: Buffer; attrs: FileAttrs } {
  // Synchronous: at most 1 MiB from a local file, cheaper than four thread-pool round trips
  // (see shore-fs.ts). O_NOFOLLOW: a symlink put in the file's place is not this version (nor
  // replicated at all).
  const fd = localCall(job, () => openSync(job.localPath, constants.O_RDONLY | constants.O_NOFOLLOW));
  try {
    // From the shared pool, in power-of-two sizes so that files of different sizes share
    // buffers: a small file's buffer lives for dozens of others' round trips, long enough to
    // reach V8's old generation (see buffer-pool.ts). Node pools tiny buffers itself.
    const pooled = job.size >= 4096 ? readBuffers.take(2 ** Math.ceil(Math.log2(job.size))) : undefined;
    const data = pooled ? pooled.subarray(0, job.size) : Buffer.allocUnsafe(job.size);
    let done = 0;
    while (done < job.size) {
      const bytesRead = localCall(job, () => readSync(fd, data, done, job.size - done, done));
      if (bytesRead === 0) throw new LocalChange('changed');
      done += bytesRead;
    }
    const st = fstatSync(fd);
    expectVersion(job, st);
    return { data, pooled, attrs: fileAttrs(st) };
  } finally {
    closeSync(fd);
  }
}

/** Runs a synchronous call on the shore file, mapping its errors as localError does. */
function localCall<T>(job: DeliveryJob, call: () => T): T {
  try {
    return call();
  } catch (err) {
    throw localError(job, err);
  }
}

/** Opens the shore file for reading with readBlock. */
export function openLocalSync(job: DeliveryJob): number {
  return localCall(job, () => openSync(job.localPath, constants.O_RDONLY));
}

/**
 * Fills `buf[0, length)` with the file's bytes from `position`, synchronously: a block of up to
 * 1 MiB from the page cache costs less than a round trip through the thread pool (see
 * shore-fs.ts). A file that ends early has changed.
 */
export function readBlock(job: DeliveryJob, fd: number, buf: Buffer, length: number, position: number): void {
  for (let done = 0; done < length;) {
    const n = localCall(job, () => readSync(fd, buf, done, length - done, position + done));
    if (n === 0) throw new LocalChange('changed');
    done += n;
  }
}

export async function openLocal(job: DeliveryJob): Promise<FileHandle> {
  return open(job.localPath, 'r').catch((err: unknown) => { throw localError(job, err); });
}

/** A shore file that vanished (or whose folder did) is gone; any other error is this file's problem. */
export function localError(job: DeliveryJob, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  // ELOOP and EISDIR: a symlink or a folder took the file's place (see readWhole).
  if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP' || code === 'EISDIR') return new LocalChange('gone');
  return new FileError(`cannot read ${job.localPath}: ${(err as Error).message}`, { path: job.localPath, cause: err });
}

export async function hashLocalFile(job: DeliveryJob, signal: AbortSignal): Promise<string> {
  const fh = await openLocal(job);
  try {
    const hash = createHash('sha256');
    await readRange(fh, 0, job.size, 1024 * 1024, signal, (buf) => hash.update(buf));
    return hash.digest('hex');
  } finally {
    await fh.close();
  }
}

/** Reads [offset, offset+length) of the shore file in pieces of at most `piece` bytes. */
export async function readRange(fh: FileHandle, offset: number, length: number, piece: number, signal: AbortSignal, onData: (buf: Buffer) => void): Promise<void> {
  for (let pos = 0; pos < length;) {
    if (signal.aborted) throw new StoppedError('stopping');
    const n = Math.min(piece, length - pos);
    const buf = Buffer.allocUnsafe(n);
    const { bytesRead } = await fh.read(buf, 0, n, offset + pos);
    if (bytesRead === 0) throw new LocalChange('changed');
    onData(bytesRead === n ? buf : buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
}
