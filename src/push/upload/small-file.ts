/**
 * Small files (one chunk, at most SMALL_FILE_MAX) take a shorter way than large ones
 * (large-file.ts): written straight to a hidden name beside the destination, checked there by
 * the connection's long-lived `sha256sum -c` (remote-check.ts) and renamed into place over
 * SFTP. A vessel process costs milliseconds, and a small file is all overhead.
 */
import { createHash } from 'node:crypto';
import { FileError, StoppedError, TransientError, describe } from '../../errors.js';
import { quote } from '../../ssh/quote.js';
import type { OpenFlags, RemoteFs } from '../../ssh/remote-fs.js';
import { isNoSuchFile, isPermissionDenied, isRenameUnsupported, isSftpFailure, isSftpStatus } from '../../ssh/sftp-errors.js';
import { failpoint } from '../failpoint.js';
import { MAX_HASH_BATCH } from './hash-batch.js';
import { checkOnVessel, prepareChecker } from './remote-check.js';
import { confirmPlaced, execTimeout } from './remote-outcome.js';
import { openCreatingFolder, readBuffers, throttled, writePiece } from './sftp-writes.js';
import { readWhole } from './shore-file.js';
import type { DeliveryHooks, DeliveryJob, DeliveryOutcome, UploadOptions } from './upload.js';

/** Files up to this size (and one chunk) skip TempDir: see deliverSmallFile. */
export const SMALL_FILE_MAX = 1024 * 1024;

/**
 * A small file: read whole (it is at most SMALL_FILE_MAX), written with pipelined requests to
 * a hidden name beside the destination, hashed there, and renamed into place with
 * posix-rename (atomic, replaces an older file; `mv -f` where the server lacks it). Nothing
 * goes through TempDir and nothing is joined.
 *
 * What an interrupted attempt wrote stays: the hidden name is fixed per version and vessel, and
 * the next attempt asks how much of it is there in the same round trip as it opens it, then
 * writes only the rest (the whole-file check covers anything else). A file whose bytes are all
 * there goes straight to the check. Only a failed check removes it.
 */
export async function deliverSmallFile(remote: RemoteFs, job: DeliveryJob, hooks: DeliveryHooks, options: UploadOptions): Promise<DeliveryOutcome> {
  const { data, pooled, attrs } = readWhole(job);
  const sha256 = createHash('sha256').update(data).digest('hex');
  const tmp = `${job.assemblyPrefix}.up.tmp`;
  const ctx = { vessel: job.vessel, path: job.destination };
  const checkTimeout = execTimeout(SMALL_FILE_MAX * MAX_HASH_BATCH, options);
  const check = (path: string) => checkOnVessel(remote, path, sha256, checkTimeout).catch((err: unknown) => {
    throw err instanceof TransientError ? err : new FileError(`hashing (sha256sum or openssl) failed on vessel ${job.vessel}: ${(err as Error).message}`, { ...ctx, cause: err });
  });
  // The checker's session opens while the bytes go out, not after.
  prepareChecker(remote);
  if (job.resumeFrom === 'placing' && await placedEarlier(remote, job, check)) {
    if (pooled) readBuffers.give(pooled);
    return { kind: 'done', bytesSent: 0, alreadyThere: true, sha256 };
  }
  let keep = true;
  try {
    const { bytesSent, closed } = await writeResumable(remote, tmp, data, job, hooks, options);
    if (pooled) readBuffers.give(pooled); // every write is acknowledged: nothing reads the bytes any more
    await failpoint('small-file-written');
    hooks.sha256Known(sha256);
    hooks.stage?.('sent');
    hooks.joining?.();
    // The vessel wrote every byte before it acknowledged it, so the checker sees them all: the
    // close need not be answered first (a round trip saved), only before the rename.
    const [differs] = await Promise.all([check(tmp), closed]);
    if (differs) {
      keep = false;
      throw new FileError(`SHA-256 on vessel ${job.vessel} is ${differs}, expected ${sha256}; sending again`, ctx);
    }
    hooks.stage?.('placing');
    // The shore's mode and time go on the hidden file just before the rename, and the stat
    // that proves the file in place just after it, all in one round trip: the server handles
    // the requests of a session in order, so the file never appears without them. A vessel
    // that refuses them gets the file all the same (see attrsRefused).
    const attrsSet = remote.setstat(tmp, attrs).then(() => undefined, (err: unknown) => err);
    const renamed = remote.rename(tmp, job.destination);
    const after = remote.stat(job.destination);
    after.catch(() => {}); // awaited once the rename is answered
    await renamed.then(() => after.then((st) => confirmPlaced(remote, job, st)), async (err: unknown) => {
      if (!isRenameUnsupported(err)) {
        if (isTransient(err)) throw err;
        // SFTP says only "Failure"; the usual reason is a folder in the way.
        if ((await remote.stat(job.destination).catch(() => null))?.isDirectory) throw new FileError(`${job.destination} on vessel ${job.vessel} is a directory`, ctx);
        throw new FileError(`cannot move the file into place on vessel ${job.vessel}: ${(err as Error).message}`, { ...ctx, cause: err });
      }
      await attrsSet; // the command does not wait for the session's requests before it
      const mv = await remote.exec(`mv -f -- ${quote(tmp)} ${quote(job.destination)} && echo moved`);
      if (mv.code !== 0 || !/^moved$/m.test(mv.stdout)) {
        throw new FileError(`cannot move the file into place on vessel ${job.vessel}: ${mv.stderr.split('\n')[0] || `mv said nothing (exit ${mv.code ?? mv.signal})`}`, ctx);
      }
      await confirmPlaced(remote, job);
    });
    keep = false;
    const refused = await attrsSet;
    if (refused !== undefined && isSftpStatus(refused)) hooks.attrsRefused?.(describe(refused));
    return { kind: 'done', bytesSent, alreadyThere: false, sha256 };
  } catch (err) {
    // A broken link keeps what the vessel has (the next attempt goes on from it); anything
    // else about this file starts it over.
    if (!isTransient(err)) keep = false;
    throw err;
  } finally {
    if (!keep) await remote.remove(tmp).catch(() => {});
  }
}

function isTransient(err: unknown): boolean {
  return err instanceof TransientError || err instanceof StoppedError;
}

/**
 * An earlier attempt asked for the rename and lost the answer with its connection: if the
 * hidden file is gone and the destination holds this version, the delivery is done.
 */
async function placedEarlier(remote: RemoteFs, job: DeliveryJob, check: (path: string) => Promise<string | undefined>): Promise<boolean> {
  const [tmp, destination] = await Promise.all([remote.stat(`${job.assemblyPrefix}.up.tmp`), remote.stat(job.destination)]);
  if (tmp || !destination?.isFile || destination.size !== job.size) return false;
  return (await check(job.destination)) === undefined;
}

/**
 * Writes `data` to `path` from where the vessel's copy ends: the stat and the open travel
 * together (the server answers them in order, and an open that creates without truncating
 * does not change the size the stat sees). Resolves with the bytes sent once every write is
 * acknowledged; `closed` settles when the file is closed.
 */
async function writeResumable(
  remote: RemoteFs, path: string, data: Buffer, job: DeliveryJob, hooks: DeliveryHooks, options: UploadOptions,
): Promise<{ bytesSent: number; closed: Promise<void> }> {
  const stat = remote.stat(path);
  stat.catch(() => {}); // awaited below
  let restarted = false;
  const [st, opened] = await Promise.all([stat, openBeside(remote, path, job, 'keep').catch(async (err: unknown) => {
    // An earlier attempt, cut between giving it the shore's mode and the rename, may have left
    // a copy whose mode does not let its owner write (0400): it starts over.
    if (!isPermissionDenied(err) || !(await stat)?.isFile) throw err;
    restarted = true;
    await remote.remove(path).catch(() => {});
    return openBeside(remote, path, job, 'w');
  })]);
  let handle = opened;
  let have = st?.isFile && !restarted ? st.size : 0;
  if (have > data.length) {
    // Not a prefix of this version (it cannot be): start over.
    await remote.close(handle).catch(() => {});
    handle = await openBeside(remote, path, job, 'w');
    have = 0;
  }
  hooks.sending?.(have);
  const writes: Promise<void>[] = [];
  let stopped: { error: unknown } | undefined;
  for (let pos = have; pos < data.length;) {
    const slice = data.subarray(pos, pos + writePiece(remote, options));
    const limited = throttled(options, slice.length, hooks.signal);
    if (limited) {
      // The writes already issued are awaited below, whatever happens to this wait.
      const error = await limited.then(() => undefined, (err: unknown) => ({ error: err }));
      if (error) {
        stopped = error;
        break;
      }
    }
    writes.push(remote.write(handle, slice, pos).then(() => hooks.progress(slice.length)));
    pos += slice.length;
  }
  const written = await Promise.allSettled(writes);
  const closed = remote.close(handle);
  const failed = written.find((w): w is PromiseRejectedResult => w.status === 'rejected');
  if (failed || stopped) {
    closed.catch(() => {});
    throw failed ? failed.reason : stopped!.error;
  }
  closed.catch(() => {}); // awaited by the caller before the rename
  return { bytesSent: data.length - have, closed };
}

/** Opens the hidden file beside the destination for writing, creating its folder when missing. */
async function openBeside(remote: RemoteFs, path: string, job: DeliveryJob, flags: OpenFlags): Promise<Buffer> {
  return openCreatingFolder(remote, path, flags).catch((err: unknown) => {
    if (isNoSuchFile(err)) {
      throw new FileError(`cannot create the destination folder on vessel ${job.vessel}: ${(err as Error).message}`, { vessel: job.vessel, path: job.destination, cause: err });
    }
    throw describeWriteFailure(err, job);
  });
}

function describeWriteFailure(err: unknown, job: DeliveryJob): unknown {
  if (!isSftpFailure(err) && !(err instanceof FileError)) return err;
  const dir = job.destination.slice(0, job.destination.lastIndexOf('/')) || '/';
  return new FileError(`cannot write in ${dir} on vessel ${job.vessel}: ${(err as Error).message}`, { vessel: job.vessel, path: job.destination, cause: err });
}
