/**
 * Delivers one version of one shore file to one vessel, one of two ways: a large file in
 * chunks through TempDir, joined and checked on the vessel as they arrive (large-file.ts); a
 * small file written straight beside its destination, checked there and renamed into place
 * (small-file.ts). Either way a delivery counts only on the vessel's proof (remote-outcome.ts),
 * and the shore file must still be the version being sent when it does (shore-file.ts).
 */
import { LocalChange } from '../../errors.js';
import type { RemoteFs } from '../../ssh/remote-fs.js';
import { deliverLargeFile } from './large-file.js';
import { SMALL_FILE_MAX, deliverSmallFile } from './small-file.js';

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
   * Asked before each request: on a link whose connections carry little before they drop, less
   * (see FlightControl.window).
   * @default 2 MiB
   */
  windowBytes?: () => number;
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
   * send (default: yes); else the join starts once every chunk is there (see deliverLargeFile).
   */
  joinWhileSending?: (bytesToSend: number) => boolean;
  /**
   * Waits until `bytes` may be written under the bandwidth limits (push/bandwidth/limiter.ts):
   * undefined when they may go at once. Asked before each SFTP write, through `throttled`.
   * @default no limit
   */
  throttle?: (bytes: number, signal: AbortSignal) => Promise<void> | undefined;
}

/** Whether a file takes the small-file way (deliverSmallFile); the worker queues it by the same rule. */
export function isSmallFile(size: number, chunkSize: number): boolean {
  return size <= smallFileMax(chunkSize);
}

/** The largest size that takes the small-file way with this ChunkSize. */
export function smallFileMax(chunkSize: number): number {
  return Math.min(chunkSize, SMALL_FILE_MAX);
}

export async function deliverFile(remote: RemoteFs, job: DeliveryJob, hooks: DeliveryHooks, options: UploadOptions): Promise<DeliveryOutcome> {
  try {
    // A small file is sent without asking whether the vessel has it already: asking costs a
    // request per file on every file, sending it again costs at most 1 MiB now and then.
    if (isSmallFile(job.size, job.chunkSize)) return await deliverSmallFile(remote, job, hooks, options);
    return await deliverLargeFile(remote, job, hooks, options);
  } catch (err) {
    if (err instanceof LocalChange) return { kind: err.kind };
    throw err;
  }
}
