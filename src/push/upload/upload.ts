/**
 * Delivers one version of one shore file to one vessel:
 *
 * 1. If the destination already holds a file of the same size whose SHA-256 is the shore's,
 *    it is confirmed without sending anything (a lost state file, or a crash after the rename).
 * 2. Each chunk's present length is read from the vessel (stat); a chunk is resumed from the
 *    bytes it has. SFTP servers handle the requests of one handle in order and a TCP stream
 *    delivers a prefix, so whatever a killed upload left is a correct prefix; the whole-file
 *    check in step 4 is the safety net for anything else.
 * 3. The shore file is read once, front to back: every byte feeds the SHA-256, and the bytes the
 *    vessel lacks go out as pipelined SFTP writes (many requests in flight). No file is ever
 *    held in memory; at most `windowBytes` per transfer are.
 * Small files (one chunk, at most SMALL_FILE_MAX) take a shorter way: written straight to a
 * hidden name beside the destination, checked there by the connection's long-lived
 * `sha256sum -c` (remote-check.ts) and renamed into place over SFTP. A vessel process costs
 * milliseconds, and a small file is all overhead.
 *
 * 4. A remote command started before the first chunk joins each chunk beside the destination
 *    as soon as it is complete, hashing in the same pass, so that when the last chunk is in only
 *    its bytes are left to join; then it checks the size and SHA-256 and renames the result
 *    into place (see joinScript in shell.ts).
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync, type Stats } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { FileError, StoppedError, TransientError, describe } from '../../errors.js';
import { failpoint } from '../failpoint.js';
import { BufferPool } from './buffer-pool.js';
import { WriteWindow } from './write-window.js';
import { planChunks, type ChunkPart } from './chunk-plan.js';
import { isNoSuchFile, isPermissionDenied, isRenameUnsupported, isSftpFailure, isSftpStatus, type ExecResult, type OpenFlags, type RemoteFs, type RemoteProcess, type RemoteStat } from '../../ssh/connection.js';
import { ShoreFileChanged, WORKER_HASH_MIN_BYTES, shoreSha256 } from './shore-hash.js';
import { MAX_HASH_BATCH } from './hash-batch.js';
import { checkOnVessel, prepareChecker } from './remote-check.js';
import {
  AssembleExit, FAST_HASHER_MIN_BYTES, ProbeExit, attrsWords, checkExistingScript, fileAttrs, hasherProbeScript, joinScript, parseAttrsFailed, parseFree,
  parseHasherProbe, parsePlaced, quote, removeChunksCommand, tempDirProbeScript, type FileAttrs, type HasherName,
} from './shell.js';

/** What one delivery needs to know; the caller builds it from the state row and settings. */
export interface DeliveryJob {
  vessel: string;
  /** Identifies the version; state updates for another version of the same file are dropped. */
  versionKey: string;
  localPath: string;
  /** Absolute path on the vessel. */
  destination: string;
  size: number;
  mtimeMs: number;
  /** Shore SHA-256 of this version when an earlier read already computed it. */
  sha256: string | null;
  chunkSize: number;
  /** `${TempDir}/cm-<key of version and vessel>`: chunk i is `${chunkPrefix}.${i}`. */
  chunkPrefix: string;
  /** Hidden name beside the destination where the chunks are joined. */
  assemblyPrefix: string;
  /**
   * How far an earlier attempt of this process got (see DeliveryStage): after `placing`, the
   * rename may have happened with its answer lost, so the destination is looked at first.
   */
  resumeFrom?: DeliveryStage;
}

/**
 * Where a delivery stands on the vessel: `sent`, every byte is there and only the check and the
 * rename (or the join) are left; `placing`, the rename was asked for.
 */
export type DeliveryStage = 'sent' | 'placing';

export interface DeliveryHooks {
  signal: AbortSignal;
  /** A chunk is complete on the vessel. */
  chunkDone(index: number): void;
  /** The vessel's chunks were discarded (after a mismatch or when they vanished). */
  chunksReset(): void;
  /** The shore SHA-256 of this version is known. */
  sha256Known(sha256: string): void;
  /** Sending starts; the vessel already has `bytesPresent` bytes of this version (resumed chunks). */
  sending?(bytesPresent: number): void;
  /** Bytes acknowledged by the vessel since the last call. Runs once per write request: keep it cheap. */
  progress(bytes: number): void;
  /** The remote join-verify-rename command is about to run. */
  joining?(): void;
  /** The delivery reached a stage that a later attempt can start from. */
  stage?(stage: DeliveryStage): void;
  /**
   * The file was delivered, but the vessel refused to give it the shore's mode or modification
   * time (a filesystem without Unix permissions, say): `detail` is the vessel's word on it.
   */
  attrsRefused?(detail: string): void;
}

export type DeliveryOutcome =
  | { kind: 'done'; bytesSent: number; alreadyThere: boolean; sha256: string }
  | { kind: 'gone' }
  | { kind: 'changed' };

export interface UploadOptions {
  /**
   * Bytes of SFTP writes in flight per transfer. OpenSSH's sshd gives the SFTP channel a
   * 2 MiB window, so no more than that is ever on the wire: more only waits in ssh2's queue,
   * as copies (4 MiB held 10-15 MiB more at peak with 3 vessels, and was no faster on
   * loopback). OpenSSH's own sftp keeps the same 2 MiB in flight (64 requests of 32 KiB).
   * @default 2 MiB
   */
  windowBytes?: number;
  /**
   * Extra time allowed for remote commands per byte of the file (join and hash run at disk speed).
   * @default 1 second per 5 MB
   */
  execMsPerByte?: number;
  /** Base time allowed for a remote command, in ms (the vessel's Timeout). */
  execBaseMs: number;
  /**
   * The size of the next SFTP write request, asked before each (default: the server's limit,
   * at most 256 KiB). A request that a cut leaves half-sent is lost whole, so on a link whose
   * connections carry little before they drop, smaller requests waste less (see FlightControl).
   */
  pieceBytes?: () => number;
  /**
   * Whether to join a large file on the vessel while its chunks go up, given the bytes still to
   * send (default: yes); else the join starts once every chunk is there (see deliverFile).
   */
  joinWhileSending?: (bytesToSend: number) => boolean;
}

const DEFAULT_WINDOW = 2 * 1024 * 1024;
const DEFAULT_EXEC_MS_PER_BYTE = 1 / 5_000;
/** Read buffers kept for reuse: room for the windows of 8 transfers (4 vessels at Concurrency 2), or the small files in flight to several vessels; beyond that, buffers are dropped. */
const readBuffers = new BufferPool(8 * DEFAULT_WINDOW);
/** Files up to this size (and one chunk) skip TempDir: see deliverSmallFile. */
export const SMALL_FILE_MAX = 1024 * 1024;

/** Whether a file takes the small-file way (deliverSmallFile); the worker queues it by the same rule. */
export function isSmallFile(size: number, chunkSize: number): boolean {
  return size <= Math.min(chunkSize, SMALL_FILE_MAX);
}
const STAT_BATCH = 64;

/** Signals that the shore file no longer is the version being sent. */
class LocalChange extends Error {
  constructor(readonly kind: 'gone' | 'changed') {
    super(kind);
  }
}

export async function deliverFile(remote: RemoteFs, job: DeliveryJob, hooks: DeliveryHooks, options: UploadOptions): Promise<DeliveryOutcome> {
  try {
    // A small file is sent without asking whether the vessel has it already: asking costs a
    // request per file on every file, sending it again costs at most 1 MiB now and then.
    if (isSmallFile(job.size, job.chunkSize)) return await deliverSmallFile(remote, job, hooks, options);
    const local = checkLocalVersion(job);
    const parts = planChunks(job.size, job.chunkSize);
    // Independent questions go out together: on a link with a 600 ms round trip, each one
    // asked after the other would cost that much again on every (re)connection.
    const hasher = largeFileHasher(remote, job.size);
    const [destination, present] = await Promise.all([remote.stat(job.destination), presentLengths(remote, job, parts)]);
    const existing = destination?.isFile && destination.size === job.size ? await confirmExisting(remote, job, hooks, options, hasher, fileAttrs(local)) : undefined;
    if (existing) return existing;
    const bytesPresent = present.have.reduce((sum, n) => sum + n, 0);
    hooks.sending?.(bytesPresent);
    const startJoiner = () => {
      const spawned = remote.spawn(joinScript({ chunkPrefix: job.chunkPrefix, assemblyPrefix: job.assemblyPrefix, destination: job.destination, size: job.size, hasher }));
      spawned.catch(() => {}); // awaited below; a failure meanwhile is not unhandled
      return spawned;
    };
    // Joining while the chunks go up leaves only the last one to join at the end. But the
    // joiner of a connection that is cut may wait for input for hours (sshd need not notice a
    // dead link) while it holds a half-joined copy of every chunk sent so far, and every new
    // connection starts one more: where connections die before the rest of the file is up, the
    // join waits for the last chunk. Started without waiting for its session, so the first
    // chunk goes out meanwhile; each chunk's line reaches it, in order, once that chunk is there.
    const overlap = bytesPresent < job.size && (options.joinWhileSending?.(job.size - bytesPresent) ?? true);
    let starting = overlap ? startJoiner() : undefined;
    let ended = false;
    try {
      const { sha256, bytesSent } = await sendChunks(remote, job, parts, present, hooks, options, (index) => {
        if (starting) void starting.then((j) => j.write(`${index}\n`), () => {});
      }).catch(async (err: unknown) => { throw await explainTempDirFailure(remote, job, err); });
      if (!starting) {
        starting = startJoiner();
        void starting.then((j) => j.write(parts.map((p) => `${p.index}\n`).join('')), () => {});
      }
      const joiner = await starting;
      // The bytes sent must still be the file's: a writer that came back during the upload
      // means a new version, which is replicated on its own. Its mode is taken from this
      // last look (a chmod changes no version), and set before the file is placed.
      const final = checkLocalVersion(job);
      hooks.sha256Known(sha256);
      hooks.stage?.('sent');
      hooks.joining?.();
      joiner.write(`end ${sha256} ${attrsWords(fileAttrs(final)).join(' ')}\n`);
      joiner.end();
      ended = true;
      await placed(remote, job, await joiner.result(execTimeout(job.size, options)), sha256, hooks);
      return { kind: 'done', bytesSent, alreadyThere: false, sha256 };
    } finally {
      // Without its end line the joiner removes its half-joined file and places nothing.
      if (!ended) void starting?.then(abandon, () => {});
    }
  } catch (err) {
    if (err instanceof LocalChange) return { kind: err.kind };
    throw err;
  }
}

/** Whether the shore file still is the version being sent (synchronous, see shore-fs.ts); its stat. */
function checkLocalVersion(job: DeliveryJob): Stats {
  const st = localCall(job, () => lstatSync(job.localPath));
  expectVersion(job, st);
  return st;
}

/** Throws LocalChange unless `st` describes the job's version: a regular file of its size and mtime. */
function expectVersion(job: DeliveryJob, st: Stats): void {
  if (!st.isFile()) throw new LocalChange('gone');
  if (st.size !== job.size || st.mtimeMs !== job.mtimeMs) throw new LocalChange('changed');
}

/** Time allowed for a remote command that reads `bytes` (it runs at disk speed). */
function execTimeout(bytes: number, options: UploadOptions): number {
  return options.execBaseMs + bytes * (options.execMsPerByte ?? DEFAULT_EXEC_MS_PER_BYTE);
}

/**
 * The SHA-256 tool for large files on this connection, probed once (by its own small command)
 * instead of inside every join: the probe runs openssl, and a process start is milliseconds
 * of the vessel's CPU per file. Never waited for: on a link with a 600 ms round trip the probe
 * takes three of them, so a file that comes before its answer lets its own script choose.
 * Undefined for smaller files, before the answer, or when the probe found nothing (then each
 * script probes, and says what is missing).
 */
const largeHashers = new WeakMap<RemoteFs, { probe: Promise<void>; found?: HasherName }>();

function largeFileHasher(remote: RemoteFs, size: number): HasherName | undefined {
  if (size < FAST_HASHER_MIN_BYTES) return undefined;
  let known = largeHashers.get(remote);
  if (!known) {
    const entry: { probe: Promise<void>; found?: HasherName } = { probe: Promise.resolve() };
    entry.probe = remote.exec(hasherProbeScript()).then((r) => {
      entry.found = r.code === 0 ? parseHasherProbe(r.stdout) : undefined;
      if (!entry.found && largeHashers.get(remote) === entry) largeHashers.delete(remote);
    }, () => {
      if (largeHashers.get(remote) === entry) largeHashers.delete(remote);
    });
    largeHashers.set(remote, known = entry);
  }
  return known.found;
}

/** After a hashing failure: the next file probes again (a tool may have gone since). */
function forgetHasher(remote: RemoteFs): void {
  largeHashers.delete(remote);
}

/** Ends a joiner that will get no end line; its exit is of no interest any more. */
function abandon(joiner: RemoteProcess): void {
  joiner.end();
  joiner.result(60_000).catch(() => {});
}

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
async function deliverSmallFile(remote: RemoteFs, job: DeliveryJob, hooks: DeliveryHooks, options: UploadOptions): Promise<DeliveryOutcome> {
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
  for (let pos = have; pos < data.length;) {
    const slice = data.subarray(pos, pos + writePiece(remote, options));
    writes.push(remote.write(handle, slice, pos).then(() => hooks.progress(slice.length)));
    pos += slice.length;
  }
  const written = await Promise.allSettled(writes);
  const closed = remote.close(handle);
  const failed = written.find((w): w is PromiseRejectedResult => w.status === 'rejected');
  if (failed) {
    closed.catch(() => {});
    throw failed.reason;
  }
  closed.catch(() => {}); // awaited by the caller before the rename
  return { bytesSent: data.length - have, closed };
}

/** The size of one SFTP write: the server's limit, or less on a link that drops often. */
function writePiece(remote: RemoteFs, options: UploadOptions): number {
  return Math.max(1024, Math.min(remote.maxWriteLength, options.pieceBytes?.() ?? Infinity));
}

/**
 * The whole of a small file, as this version: size and mtime are checked on the open file
 * after the read, so a writer that came back meanwhile is seen. What is sent is then this
 * version's bytes, whatever happens to the file later (a later change is a new version).
 */
function readWhole(job: DeliveryJob): { data: Buffer; pooled?: Buffer; attrs: FileAttrs } {
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

/** Step 1: a destination of the right size is confirmed as it is if its hash is the shore's. */
async function confirmExisting(
  remote: RemoteFs, job: DeliveryJob, hooks: DeliveryHooks, options: UploadOptions, hasher: HasherName | undefined, attrs: FileAttrs,
): Promise<DeliveryOutcome | undefined> {
  const sha256 = job.sha256 ?? await hashLocalFile(job, hooks.signal);
  hooks.sha256Known(sha256);
  // The file there becomes this delivery: it gets the shore's mode and time in the same command.
  const result = await remote.exec(checkExistingScript(job.destination, sha256, job.chunkPrefix, job.size, hasher, attrs), execTimeout(job.size, options));
  if (result.code === AssembleExit.hash) forgetHasher(remote);
  if (result.code !== 0) return undefined;
  if (result.stdout.split('\n', 1)[0]!.trim() !== sha256) return undefined;
  if (parseAttrsFailed(result.stdout)) hooks.attrsRefused?.(firstLine(result.stderr) || 'chmod or touch failed');
  hooks.chunksReset();
  return { kind: 'done', bytesSent: 0, alreadyThere: true, sha256 };
}

async function openLocal(job: DeliveryJob): Promise<FileHandle> {
  return open(job.localPath, 'r').catch((err: unknown) => { throw localError(job, err); });
}

/** A shore file that vanished (or whose folder did) is gone; any other error is this file's problem. */
function localError(job: DeliveryJob, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  // ELOOP and EISDIR: a symlink or a folder took the file's place (see readWhole).
  if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP' || code === 'EISDIR') return new LocalChange('gone');
  return new FileError(`cannot read ${job.localPath}: ${(err as Error).message}`, { path: job.localPath, cause: err });
}

async function hashLocalFile(job: DeliveryJob, signal: AbortSignal): Promise<string> {
  const fh = await openLocal(job);
  try {
    const hash = createHash('sha256');
    await readRange(fh, 0, job.size, 1024 * 1024, signal, (buf) => hash.update(buf));
    return hash.digest('hex');
  } finally {
    await fh.close();
  }
}

/** Step 2: how many bytes of each chunk the vessel already has (0 when too long to trust). */
async function presentLengths(remote: RemoteFs, job: DeliveryJob, parts: ChunkPart[]): Promise<Present> {
  const present: Present = { have: [], oversized: new Set() };
  for (let i = 0; i < parts.length; i += STAT_BATCH) {
    const batch = parts.slice(i, i + STAT_BATCH);
    const stats = await Promise.all(batch.map((p) => remote.stat(`${job.chunkPrefix}.${p.index}`)));
    stats.forEach((st, k) => {
      const part = batch[k]!;
      if (st?.isFile && st.size > part.length) present.oversized.add(part.index);
      present.have.push(st?.isFile && st.size <= part.length ? st.size : 0);
    });
  }
  return present;
}

/**
 * What the vessel has of each chunk: `have[i]` bytes of chunk i are kept and resumed from;
 * a chunk longer than it should be (it cannot be this version's) starts over from empty.
 */
interface Present {
  have: number[];
  oversized: Set<number>;
}

/** Reads [offset, offset+length) of the shore file in pieces of at most `piece` bytes. */
async function readRange(fh: FileHandle, offset: number, length: number, piece: number, signal: AbortSignal, onData: (buf: Buffer) => void): Promise<void> {
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

/**
 * Step 3: one front-to-back read of the shore file that hashes everything and sends what is
 * missing, through one window of pipelined writes for the whole file: the end of a chunk does
 * not drain it (the next chunk is opened while the last writes of the one before are in flight,
 * and closed without waiting), which on a long round trip would leave the link idle for three
 * of them at every chunk. `complete` hears of each chunk once all its bytes are on the vessel,
 * in chunk order.
 */
async function sendChunks(
  remote: RemoteFs, job: DeliveryJob, parts: ChunkPart[], present: Present, hooks: DeliveryHooks, options: UploadOptions,
  complete: (index: number) => void,
): Promise<{ sha256: string; bytesSent: number }> {
  // With the hash already known, bytes the vessel has need not even be read. A large file is
  // hashed once for every vessel, in a worker, while this loop only reads and sends.
  const shared = !job.sha256 && job.size >= WORKER_HASH_MIN_BYTES ? shoreSha256(job) : undefined;
  shared?.catch(() => {}); // awaited below, after the send; a failure meanwhile is not unhandled
  const hash = job.sha256 || shared ? undefined : createHash('sha256');
  const window = new WriteWindow(options.windowBytes ?? DEFAULT_WINDOW);
  const open = (part: ChunkPart) => {
    // Never truncated otherwise: every byte at an offset of a version's chunk is the same
    // whoever writes it, and a late open from a connection that was cut (the vessel may still
    // be working through what it received) must not empty what this one wrote since.
    const opening = openCreatingFolder(remote, `${job.chunkPrefix}.${part.index}`, present.oversized.has(part.index) ? 'w' : 'keep');
    opening.catch(() => {}); // awaited when its chunk's turn comes
    return opening;
  };
  const unsent = parts.filter((p) => present.have[p.index]! < p.length);
  const handles = new Set<Buffer>();
  let bytesSent = 0;
  let inOrder: Promise<void> = Promise.resolve();
  let opening = unsent[0] ? open(unsent[0]) : undefined;
  const fh = await openLocal(job);
  try {
    for (const part of parts) {
      const have = present.have[part.index]!;
      if (hash && have > 0) await readRange(fh, part.offset, have, 1024 * 1024, hooks.signal, (buf) => hash.update(buf));
      let written: Promise<unknown> = Promise.resolve();
      if (have < part.length) {
        const handle = await opening!;
        handles.add(handle);
        const next = unsent[unsent.indexOf(part) + 1];
        opening = undefined;
        const writes: Promise<void>[] = [];
        for (let pos = have; pos < part.length;) {
          if (hooks.signal.aborted) throw new StoppedError('stopping');
          const n = Math.min(writePiece(remote, options), part.length - pos);
          await window.room(n);
          // Back to the pool once the vessel acknowledged it (see buffer-pool.ts).
          const buf = readBuffers.take(n);
          const { bytesRead } = await fh.read(buf, 0, n, part.offset + pos);
          if (bytesRead !== n) throw new LocalChange('changed');
          hash?.update(buf);
          const write = window.track(remote.write(handle, buf, pos), n).then(() => {
            readBuffers.give(buf);
            hooks.progress(n);
          });
          write.catch(() => {}); // the window keeps the failure; the loop may end before `written` awaits this
          writes.push(write);
          pos += n;
        }
        if (next) opening = open(next);
        bytesSent += part.length - have;
        written = Promise.all(writes).then(() => {
          handles.delete(handle);
          return remote.close(handle);
        });
      }
      const index = part.index;
      inOrder = Promise.all([inOrder, written]).then(() => {
        hooks.chunkDone(index);
        complete(index);
      });
      inOrder.catch(() => {}); // awaited after the loop; a failure meanwhile is not unhandled
    }
    await inOrder;
  } finally {
    await window.settle();
    for (const handle of handles) await remote.close(handle).catch(() => {});
    void opening?.then((h) => remote.close(h)).catch(() => {});
    await fh.close();
  }
  if (shared) {
    const sha256 = await shared.catch((err: unknown) => {
      throw err instanceof ShoreFileChanged ? new LocalChange('changed') : localError(job, err);
    });
    return { sha256, bytesSent };
  }
  return { sha256: hash ? hash.digest('hex') : job.sha256!, bytesSent };
}

/**
 * OpenSSH's sftp-server answers a read-only or full filesystem with a bare "Failure". When a
 * chunk upload fails that way, one remote probe of TempDir says which it is.
 */
async function explainTempDirFailure(remote: RemoteFs, job: DeliveryJob, err: unknown): Promise<unknown> {
  if (!isSftpFailure(err)) return err;
  const tempDir = job.chunkPrefix.slice(0, job.chunkPrefix.lastIndexOf('/'));
  const probe = await remote.exec(tempDirProbeScript(tempDir)).catch(() => undefined);
  if (!probe) return err;
  const ctx = { vessel: job.vessel, path: job.localPath, cause: err };
  const detail = probe.stderr.split('\n')[0] ?? '';
  if (probe.code === ProbeExit.mkdir || probe.code === ProbeExit.create) {
    return new FileError(`TempDir ${tempDir} on vessel ${job.vessel} is not writable: ${detail}`, ctx);
  }
  const available = Number(probe.stdout.trim().split(/\s+/)[3]);
  if (probe.code === 0 && Number.isFinite(available) && available * 1024 < job.chunkSize) {
    return new TransientError(`TempDir ${tempDir} on vessel ${job.vessel} is full (${available} KiB free, a chunk needs up to ${Math.ceil(job.chunkSize / 1024)} KiB)`, ctx);
  }
  return err;
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
async function openCreatingFolder(remote: RemoteFs, path: string, flags: OpenFlags): Promise<Buffer> {
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

/**
 * Step 4: what the joiner said. Done only on its result line with the shore's digest and the
 * file's size, and the file of that size at its destination over SFTP: a shell or wrapper that
 * swallowed the script exits 0 without either. Each failing step of the script has its own
 * exit code, mapped to an error class here; a full disk is told by the free space the script
 * reports, never by the words of an error message.
 */
async function placed(remote: RemoteFs, job: DeliveryJob, r: ExecResult, sha256: string, hooks: DeliveryHooks): Promise<void> {
  const ctx = { vessel: job.vessel, path: job.destination };
  const detail = r.stderr ? `: ${r.stderr.split('\n')[0]}` : '';
  if (r.code === 0) {
    const proof = parsePlaced(r.stdout);
    if (proof?.sha256 !== sha256 || proof.size !== job.size) {
      const said = proof ? `it reported ${proof.sha256}, ${proof.size} bytes` : 'it printed no result line';
      throw new FileError(`the join on vessel ${job.vessel} exited 0 but did not prove the file placed (${said}): its login shell or a wrapper did not run the script as sh`, ctx);
    }
    await confirmPlaced(remote, job);
    if (parseAttrsFailed(r.stdout)) hooks.attrsRefused?.(firstLine(r.stderr) || 'chmod or touch failed');
    return;
  }
  switch (r.code) {
    case AssembleExit.mismatch:
      await discardChunks(remote, job, hooks);
      throw new FileError(`SHA-256 on vessel ${job.vessel} is ${/^mismatch (\S+)/m.exec(r.stdout)?.[1] ?? '(not said)'}, expected ${sha256}; chunks discarded, sending again`, ctx);
    case AssembleExit.destinationIsDirectory:
      throw new FileError(`${job.destination} on vessel ${job.vessel} is a directory`, ctx);
    case AssembleExit.mkdir:
      throw new FileError(`cannot create the destination folder on vessel ${job.vessel}${detail}`, ctx);
    case AssembleExit.rename:
      throw new FileError(`cannot move the file into place on vessel ${job.vessel}${detail}`, ctx);
    case AssembleExit.vanished:
      // A vessel reboot empties a tmpfs TempDir: start this file over.
      await discardChunks(remote, job, hooks);
      throw new TransientError(`chunks vanished from TempDir on vessel ${job.vessel}; sending again`, ctx);
    case AssembleExit.join:
    case AssembleExit.hash: {
      if (r.code === AssembleExit.hash) forgetHasher(remote);
      const step = r.code === AssembleExit.join ? 'joining chunks (tee)' : 'hashing (openssl or sha256sum)';
      const freeKiB = parseFree(r.stdout);
      if (freeKiB !== undefined && freeKiB * 1024 < job.size) {
        throw new TransientError(`vessel ${job.vessel} is full while ${step} (${freeKiB} KiB free beside ${job.destination})${detail}`, ctx);
      }
      throw new FileError(`${step} failed on vessel ${job.vessel}${detail}`, ctx);
    }
    default:
      throw new FileError(`remote command failed on vessel ${job.vessel} (exit ${r.code ?? r.signal})${detail}`, ctx);
  }
}

/** The first line of a command's stderr, control characters flattened. */
function firstLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return (text.split('\n', 1)[0] ?? '').replace(/[\u0000-\u001f\u007f]+/g, ' ').trim().slice(0, 300);
}

/** The last proof before a delivery counts: the file at its destination, of its size, seen over SFTP. */
async function confirmPlaced(remote: RemoteFs, job: DeliveryJob, st?: RemoteStat | null): Promise<void> {
  const seen = st === undefined ? await remote.stat(job.destination) : st;
  if (!seen?.isFile || seen.size !== job.size) {
    const found = !seen ? 'nothing' : seen.isFile ? `${seen.size} bytes` : 'something other than a file';
    throw new FileError(`${job.destination} on vessel ${job.vessel} is not in place after it was placed: ${found} there`, { vessel: job.vessel, path: job.destination });
  }
}

async function discardChunks(remote: RemoteFs, job: DeliveryJob, hooks: DeliveryHooks): Promise<void> {
  hooks.chunksReset();
  await remote.exec(removeChunksCommand(job.chunkPrefix)).catch(() => {});
}
