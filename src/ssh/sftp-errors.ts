/**
 * What a failed SFTP request says: the status code of the server's answer (ssh2 puts it on the
 * error's `code`, as a number), or no answer at all. The codes are ssh2's own table, not numbers
 * copied here.
 */
import ssh2 from 'ssh2';
import { TransientError, classify } from '../errors.js';

const STATUS = ssh2.utils.sftp.STATUS_CODE;

export class RenameUnsupported extends Error {}

export function isRenameUnsupported(err: unknown): boolean {
  return err instanceof RenameUnsupported || (err as { cause?: unknown }).cause instanceof RenameUnsupported;
}

/** SFTP status FAILURE: what OpenSSH says for a read-only or full filesystem, among others. */
export function isSftpFailure(err: unknown): boolean {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  return cause?.code === STATUS.FAILURE || (err as { code?: unknown }).code === STATUS.FAILURE;
}

/**
 * The server answered the request with an error status (permission denied, failure, not
 * supported...), as opposed to no answer at all (the link or the SFTP session went away).
 */
export function isSftpStatus(err: unknown): boolean {
  return sftpStatus(err) !== undefined;
}

/** SFTP status PERMISSION_DENIED. */
export function isPermissionDenied(err: unknown): boolean {
  return sftpStatus(err) === STATUS.PERMISSION_DENIED;
}

/** The SFTP status code an error carries, itself or through the errors that wrap it. */
function sftpStatus(err: unknown): number | undefined {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

/** SFTP status NO_SUCH_FILE. */
export function isNoSuchFile(err: unknown): boolean {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  return cause?.code === STATUS.NO_SUCH_FILE || (err as { code?: unknown }).code === STATUS.NO_SUCH_FILE;
}

/** Names the request and its path in the message, so that "Failure" says what failed where. */
export function describeRequest<E extends Error>(err: E, what: string, path: string): E {
  err.message = `SFTP ${what}${path ? ` ${path}` : ''}: ${err.message}`;
  return err;
}

/**
 * A failed SFTP request: the server's answer carries a status code (classify knows them all);
 * without one, no answer came at all (ssh2's "No response from server" when the SFTP channel
 * ends with requests in flight), which is the link's doing, not the file's.
 */
export function requestError(err: Error, vessel: string, path: string): Error {
  if (typeof (err as { code?: unknown }).code === 'number' || err instanceof RenameUnsupported) return classify(err, { vessel, path });
  return new TransientError(err.message, { vessel, path, cause: err });
}
