/**
 * Verifies small files on a vessel through one `sha256sum -c` that lives as long as the
 * connection: a line per file in (`<sha256>  <path>`), `<path>: OK` or `<path>: FAILED` out.
 * Every remote command costs the vessel an sshd fork, a shell and a process (about 10 ms of
 * CPU here, far more behind a heavy shell profile); this costs it only the hashing. Where the
 * checker cannot be used (no sha256sum on the vessel, no session to spare for it, or a name
 * with a newline, carriage return or backslash, which sha256sum would escape), the batched
 * digests of hash-batch.ts decide.
 */
import { FileError } from '../../errors.js';
import type { RemoteFs, RemoteLineService } from '../../ssh/remote-fs.js';
import { remoteSha256 } from './hash-batch.js';
import { lineCheckerCommand } from './digest-scripts.js';

interface Checker {
  /** The running checker; undefined until the first question, or after it ended. */
  service?: Promise<RemoteLineService>;
  /** The checker never answered: this vessel cannot run it (no sha256sum); digests it is. */
  unusable: boolean;
}

const checkers = new WeakMap<RemoteFs, Checker>();

function checkerOf(remote: RemoteFs): Checker {
  let checker = checkers.get(remote);
  if (!checker) checkers.set(remote, checker = { unusable: false });
  return checker;
}

/** Where sha256sum answers only at the end of its input (busybox), every check is by digests. */
export function checkByDigests(remote: RemoteFs): void {
  checkerOf(remote).unusable = true;
}

/**
 * Starts the connection's checker if it is not running yet, without waiting for it: its session
 * opens (a round trip or two) while a file is being written, so the check need not wait.
 */
export function prepareChecker(remote: RemoteFs): void {
  const checker = checkerOf(remote);
  if (checker.unusable || checker.service) return;
  const starting = checker.service = remote.startLineService(lineCheckerCommand);
  starting.catch(() => {}); // the first check sees the failure and decides
}

/**
 * Whether the file at `path` on the vessel has the SHA-256 `sha256`: undefined when it has,
 * else the digest the vessel computed (for the message). Rejects when the file cannot be read
 * or the vessel does not answer within `timeoutMs`.
 */
export async function checkOnVessel(remote: RemoteFs, path: string, sha256: string, timeoutMs: number): Promise<string | undefined> {
  const byDigest = async () => {
    const digest = await remoteSha256(remote, path, timeoutMs);
    return digest === sha256 ? undefined : digest;
  };
  if (/[\n\r\\]/.test(path)) return byDigest();
  const checker = checkerOf(remote);
  if (checker.unusable) return byDigest();
  const starting = checker.service ??= remote.startLineService(lineCheckerCommand);
  const forget = () => {
    if (checker.service === starting) checker.service = undefined;
  };
  // A server that allows fewer sessions (MaxSessions) may refuse one more: digests it is.
  const service = await starting.catch(() => undefined);
  if (!service) {
    forget();
    checker.unusable = true;
    return byDigest();
  }
  let answer: string;
  try {
    answer = await service.ask(`${sha256}  ${path}`, timeoutMs);
  } catch (err) {
    forget();
    if (!service.answered && service.ended) {
      checker.unusable = true;
      return byDigest();
    }
    throw err;
  }
  if (answer === `${path}: OK`) return undefined;
  // The checker says only FAILED; the digest is for the message. Should the file have changed
  // into the right one meanwhile, the checker's verdict still stands.
  if (answer === `${path}: FAILED`) return (await byDigest()) ?? sha256;
  if (answer === `${path}: FAILED open or read`) throw new FileError(`sha256sum cannot read ${path}`, { path });
  // Answers no longer line up with questions: start over with a new checker.
  service.close();
  forget();
  return byDigest();
}
