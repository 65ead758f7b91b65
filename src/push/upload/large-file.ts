/**
 * Delivers a large file (more than one chunk, or more than SMALL_FILE_MAX) to a vessel:
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
 * 4. A remote command started before the first chunk joins the chunks beside the destination
 *    a batch at a time as they are complete, so that when the last chunk is in only the last
 *    batch is left to join; then it hashes the joined file, checks its SHA-256 and size against
 *    the shore's and renames it into place (see joinScript in join.ts).
 *
 * Small files take another way: see small-file.ts.
 */
import { closeSync } from 'node:fs';
import { FileError, StoppedError, TransientError } from '../../errors.js';
import type { RemoteFs, RemoteProcess } from '../../ssh/remote-fs.js';
import { isSftpFailure } from '../../ssh/sftp-errors.js';
import { planChunks, type ChunkPart } from './chunk-plan.js';
import { checkExistingScript } from './digest-scripts.js';
import { attrsWords, fileAttrs, parseAttrsFailed, type FileAttrs } from './file-attrs.js';
import type { HasherName } from './hasher.js';
import { AssembleExit, joinScript } from './join.js';
import { forgetHasher, largeFileHasher } from './large-hasher.js';
import { ProbeExit, tempDirProbeScript } from './probes.js';
import { execTimeout, firstLine, placed } from './remote-outcome.js';
import { DEFAULT_WINDOW, openCreatingFolder, readBuffers, throttled, writePiece } from './sftp-writes.js';
import { versionHash, type VersionHash } from './shore-hash.js';
import { checkLocalVersion, hashLocalFile, openLocalSync, readBlock } from './shore-file.js';
import type { DeliveryHooks, DeliveryJob, DeliveryOutcome, UploadOptions } from './upload.js';
import { WriteWindow } from './write-window.js';

const STAT_BATCH = 64;
/**
 * The most one read of the shore file takes. One synchronous read of 1 MiB from the page cache
 * serves four write requests; one asynchronous read per request went through the thread pool
 * for each (0.16 CPU-s per GiB read against 0.36, measured).
 */
const BLOCK_BYTES = 1024 * 1024;
/** Bytes read only for the hash between two turns of the event loop (about 8 ms). */
const YIELD_BYTES = 8 * BLOCK_BYTES;

/** A file larger than a chunk (or than SMALL_FILE_MAX): steps 1 to 4 above. */
export async function deliverLargeFile(remote: RemoteFs, job: DeliveryJob, hooks: DeliveryHooks, options: UploadOptions): Promise<DeliveryOutcome> {
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
    const spawned = remote.spawn(joinScript({
      chunkPrefix: job.chunkPrefix, assemblyPrefix: job.assemblyPrefix, destination: job.destination, size: job.size, hasher, chunkSize: job.chunkSize,
    }));
    spawned.catch(() => {}); // awaited below; a failure meanwhile is not unhandled
    return spawned;
  };
  // Joining while the chunks go up leaves only the last batch to join at the end. But the
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
}

/** Ends a joiner that will get no end line; its exit is of no interest any more. */
function abandon(joiner: RemoteProcess): void {
  joiner.end();
  joiner.result(60_000).catch(() => {});
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
  if (result.stdout.split('\n', 1)[0].trim() !== sha256) return undefined;
  if (parseAttrsFailed(result.stdout)) hooks.attrsRefused?.(firstLine(result.stderr) || 'chmod or touch failed');
  return { kind: 'done', bytesSent: 0, alreadyThere: true, sha256 };
}

/** Step 2: how many bytes of each chunk the vessel already has (0 when too long to trust). */
async function presentLengths(remote: RemoteFs, job: DeliveryJob, parts: ChunkPart[]): Promise<Present> {
  const present: Present = { have: [], oversized: new Set() };
  for (let i = 0; i < parts.length; i += STAT_BATCH) {
    const batch = parts.slice(i, i + STAT_BATCH);
    const stats = await Promise.all(batch.map((p) => remote.stat(`${job.chunkPrefix}.${p.index}`)));
    stats.forEach((st, k) => {
      const part = batch[k];
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
  // With the hash already known, bytes the vessel has need not even be read. Otherwise the
  // blocks read to send feed the version's hash, shared by every vessel that sends it (see
  // shore-hash.ts); bytes the vessel has are read only if no other sender hashed them yet.
  const hash = job.sha256 ? undefined : versionHash(job.versionKey, job.size);
  try {
    const window = new WriteWindow(options.windowBytes ?? DEFAULT_WINDOW);
    const open = (part: ChunkPart) => {
      // Never truncated otherwise: every byte at an offset of a version's chunk is the same
      // whoever writes it, and a late open from a connection that was cut (the vessel may still
      // be working through what it received) must not empty what this one wrote since.
      const opening = openCreatingFolder(remote, `${job.chunkPrefix}.${part.index}`, present.oversized.has(part.index) ? 'w' : 'keep');
      opening.catch(() => {}); // awaited when its chunk's turn comes
      return opening;
    };
    const unsent = parts.filter((p) => present.have[p.index] < p.length);
    const handles = new Set<Buffer>();
    let bytesSent = 0;
    let inOrder: Promise<void> = Promise.resolve();
    let opening = unsent[0] ? open(unsent[0]) : undefined;
    const fd = openLocalSync(job);
    // One block for the whole file, from the process's pool: each SFTP write request holds a
    // copy of its bytes once write() returns (see RemoteFs.write), and the hash takes them at once.
    const block = readBuffers.take(BLOCK_BYTES);
    try {
      for (const part of parts) {
        const have = present.have[part.index];
        if (hash) await hashOnly(job, fd, block, hash, part.offset, part.offset + have, hooks.signal);
        let written: Promise<unknown> = Promise.resolve();
        if (have < part.length) {
          const handle = await opening!;
          handles.add(handle);
          const next = unsent[unsent.indexOf(part) + 1];
          opening = undefined;
          const writes: Promise<void>[] = [];
          for (let pos = have; pos < part.length;) {
            if (hooks.signal.aborted) throw new StoppedError('stopping');
            // One read of a block serves the hash and several write requests.
            const piece = writePiece(remote, options);
            const n = Math.min(part.length - pos, piece * Math.max(1, Math.floor(BLOCK_BYTES / piece)));
            const data = block.subarray(0, n);
            readBlock(job, fd, data, n, part.offset + pos);
            hash?.feed(part.offset + pos, data);
            for (let at = 0; at < n;) {
              const m = Math.min(piece, n - at);
              await window.room(m);
              const limited = throttled(options, m, hooks.signal);
              if (limited) await limited;
              const write = window.track(remote.write(handle, data.subarray(at, at + m), pos + at), m).then(() => {
                hooks.progress(m);
              });
              write.catch(() => {}); // the window keeps the failure; the loop may end before `written` awaits this
              writes.push(write);
              at += m;
            }
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
          complete(index);
        });
        inOrder.catch(() => {}); // awaited after the loop; a failure meanwhile is not unhandled
      }
      await inOrder;
    } finally {
      await window.settle();
      for (const handle of handles) await remote.close(handle).catch(() => {});
      void opening?.then((h) => remote.close(h)).catch(() => {});
      closeSync(fd);
      readBuffers.give(block);
    }
    // Every byte of the file went through this loop, or was in the hash before it got there.
    return { sha256: hash ? hash.digest() : job.sha256!, bytesSent };
  } finally {
    hash?.release();
  }
}

/**
 * Feeds the hash the file's bytes in [from, to) that it lacks, without sending them (the
 * vessel has them): read only as far as no other sender of the version has been yet. Lets the
 * other transfers have the thread every few MiB (read and hashed at about 1 GB/s).
 */
async function hashOnly(job: DeliveryJob, fd: number, block: Buffer, hash: VersionHash, from: number, to: number, signal: AbortSignal): Promise<void> {
  let sinceYield = 0;
  for (let pos = Math.max(from, hash.hashed); pos < to; pos = Math.max(pos, hash.hashed)) {
    if (sinceYield >= YIELD_BYTES) {
      await new Promise(setImmediate);
      sinceYield = 0;
    }
    if (signal.aborted) throw new StoppedError('stopping');
    const data = block.subarray(0, Math.min(block.length, to - pos));
    readBlock(job, fd, data, data.length, pos);
    hash.feed(pos, data);
    pos += data.length;
    sinceYield += data.length;
  }
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
