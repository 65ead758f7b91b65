/**
 * What the vessel said about placing a file, as the delivery's outcome: the join's exit codes
 * and result lines mapped to errors, and the last proof of every delivery (the file at its
 * destination, seen over SFTP); and the time a remote command of a delivery is allowed.
 */
import { FileError, TransientError } from '../../errors.js';
import type { ExecResult, RemoteFs, RemoteStat } from '../../ssh/remote-fs.js';
import { parseAttrsFailed } from './file-attrs.js';
import { AssembleExit, parseFree, parsePlaced, removeChunksCommand } from './join.js';
import { forgetHasher } from './large-hasher.js';
import type { DeliveryHooks, DeliveryJob, UploadOptions } from './upload.js';
import { oneLine } from '../../one-line.js';

const DEFAULT_EXEC_MS_PER_BYTE = 1 / 5_000;

/** Time allowed for a remote command that reads `bytes` (it runs at disk speed). */
export function execTimeout(bytes: number, options: UploadOptions): number {
  return options.execBaseMs + bytes * (options.execMsPerByte ?? DEFAULT_EXEC_MS_PER_BYTE);
}

/**
 * Step 4: what the joiner said. Done only on its result line with the shore's digest and the
 * file's size, and the file of that size at its destination over SFTP: a shell or wrapper that
 * swallowed the script exits 0 without either. Each failing step of the script has its own
 * exit code, mapped to an error class here; a full disk is told by the free space the script
 * reports, never by the words of an error message.
 */
export async function placed(remote: RemoteFs, job: DeliveryJob, r: ExecResult, sha256: string, hooks: DeliveryHooks): Promise<void> {
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
    case AssembleExit.mismatch: {
      await discardChunks(remote, job);
      // `mismatch <sha256> <size>`: what the joined file held; a size is named only when it differs.
      const [, found, size] = /^mismatch (\S*) ?(\d*)/m.exec(r.stdout) ?? [];
      const sizes = size && Number(size) !== job.size ? ` (${size} bytes, expected ${job.size})` : '';
      throw new FileError(`SHA-256 on vessel ${job.vessel} is ${found || '(not said)'}, expected ${sha256}${sizes}; chunks discarded, sending again`, ctx);
    }
    case AssembleExit.destinationIsDirectory:
      throw new FileError(`${job.destination} on vessel ${job.vessel} is a directory`, ctx);
    case AssembleExit.mkdir:
      throw new FileError(`cannot create the destination folder on vessel ${job.vessel}${detail}`, ctx);
    case AssembleExit.rename:
      throw new FileError(`cannot move the file into place on vessel ${job.vessel}${detail}`, ctx);
    case AssembleExit.vanished:
      // A vessel reboot empties a tmpfs TempDir: start this file over. (Or an earlier attempt
      // whose connection was cut placed the file meanwhile, and removed them: the next attempt
      // finds it in place.)
      await discardChunks(remote, job);
      throw new TransientError(`chunks vanished from TempDir on vessel ${job.vessel}; sending again`, ctx);
    case AssembleExit.join:
    case AssembleExit.hash: {
      if (r.code === AssembleExit.hash) forgetHasher(remote);
      const step = r.code === AssembleExit.join ? 'joining chunks (cat)' : 'hashing (openssl or sha256sum)';
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
export function firstLine(text: string): string {
  return oneLine(text.split('\n', 1)[0] ?? '', 300);
}

/** The last proof before a delivery counts: the file at its destination, of its size, seen over SFTP. */
export async function confirmPlaced(remote: RemoteFs, job: DeliveryJob, st?: RemoteStat | null): Promise<void> {
  const seen = st === undefined ? await remote.stat(job.destination) : st;
  if (!seen?.isFile || seen.size !== job.size) {
    const found = !seen ? 'nothing' : seen.isFile ? `${seen.size} bytes` : 'something other than a file';
    throw new FileError(`${job.destination} on vessel ${job.vessel} is not in place after it was placed: ${found} there`, { vessel: job.vessel, path: job.destination });
  }
}

/** The vessel's chunks of this version are no good: removed, so that the next attempt sends them all. */
async function discardChunks(remote: RemoteFs, job: DeliveryJob): Promise<void> {
  await remote.exec(removeChunksCommand(job.chunkPrefix)).catch(() => {});
}
