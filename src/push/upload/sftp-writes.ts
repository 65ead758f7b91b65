/**
 * What both ways of delivery share for writing on the vessel over SFTP: the window of writes in
 * flight, the buffers they carry, the size of one write request, and opening a file in a
 * folder that may not exist yet.
 */
import { StoppedError } from '../../errors.js';
import type { OpenFlags, RemoteFs } from '../../ssh/remote-fs.js';
import { isNoSuchFile } from '../../ssh/sftp-errors.js';
import { BufferPool } from './buffer-pool.js';
import type { UploadOptions } from './upload.js';

/** Bytes of SFTP writes in flight per transfer unless UploadOptions.windowBytes says otherwise (why 2 MiB: see there). */
export const DEFAULT_WINDOW = 2 * 1024 * 1024;
/** Read buffers kept for reuse: room for the windows of 8 transfers (4 vessels at Concurrency 2), or the small files in flight to several vessels; beyond that, buffers are dropped. */
export const readBuffers = new BufferPool(8 * DEFAULT_WINDOW);

/** The size of one SFTP write: the server's limit, or less on a link that drops often. */
export function writePiece(remote: RemoteFs, options: UploadOptions): number {
  return Math.max(1024, Math.min(remote.maxWriteLength, options.pieceBytes?.() ?? Infinity));
}

/**
 * The one hook of the bandwidth limits on the upload path: called before every SFTP write of
 * file bytes, small or large file. Undefined when the write may go at once (no limit in force,
 * or the bucket holds the bytes), so the unlimited path awaits nothing; a wait cut short by
 * the transfer's stop or cancel ends the transfer as a stop.
 */
export function throttled(options: UploadOptions, bytes: number, signal: AbortSignal): Promise<void> | undefined {
  return options.throttle?.(bytes, signal)?.catch(() => {
    throw new StoppedError('stopping');
  });
}

/** Folders each connection has opened a file in: they exist (or were removed by hand: see below). */
const knownFolders = new WeakMap<RemoteFs, Set<string>>();

/**
 * Opens a file for writing in a folder (TempDir, or beside a destination) that is created with
 * its parents where missing. In a folder this connection has not written in yet, the open goes
 * out together with a `mkdir` of every level of the path (those that exist just fail), so a new
 * folder costs no round trip of its own: asking level by level would cost two or three, a
 * couple of seconds on a satellite link. Should the open still fail for a missing folder (a
 * server that does not answer in order, a folder removed meanwhile), the folder is created level
 * by level, which says exactly what went wrong.
 */
export async function openCreatingFolder(remote: RemoteFs, path: string, flags: OpenFlags): Promise<Buffer> {
  const folder = path.slice(0, path.lastIndexOf('/')) || '/';
  let known = knownFolders.get(remote);
  if (!known) knownFolders.set(remote, known = new Set());
  if (!known.has(folder)) {
    for (let at = folder.indexOf('/', 1); ; at = folder.indexOf('/', at + 1)) {
      remote.mkdir(at === -1 ? folder : folder.slice(0, at)).catch(() => {});
      if (at === -1) break;
    }
  }
  try {
    const handle = await remote.open(path, flags);
    known.add(folder);
    return handle;
  } catch (err) {
    if (!isNoSuchFile(err)) throw err;
    await remote.mkdirp(folder);
    const handle = await remote.open(path, flags);
    known.add(folder);
    return handle;
  }
}
