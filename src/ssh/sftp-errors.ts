/**
 * What a failed SFTP request says: the status code of the server's answer (ssh2 puts it on the
 * error's `code`, as a number, and classify() carries it onto the classified error), or no
 * answer at all. The codes are ssh2's own table (SftpStatus in errors.ts), not numbers copied here.
 */
import { RenameUnsupported, SftpStatus, TransientError, classify, type MonsterError } from '../errors.js';

export function isRenameUnsupported(err: unknown): boolean {
  return err instanceof RenameUnsupported || (err as { cause?: unknown }).cause instanceof RenameUnsupported;
}

/** SFTP status FAILURE: what OpenSSH says for a read-only or full filesystem, among others. */
export function isSftpFailure(err: unknown): boolean {
  return sftpStatus(err) === SftpStatus.FAILURE;
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
  return sftpStatus(err) === SftpStatus.PERMISSION_DENIED;
}

/** SFTP status NO_SUCH_FILE. */
export function isNoSuchFile(err: unknown): boolean {
  return sftpStatus(err) === SftpStatus.NO_SUCH_FILE;
}

/** The SFTP status code an error carries, itself or through the errors that wrap it. */
function sftpStatus(err: unknown): number | undefined {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

/**
 * A failed SFTP request, classified, its message naming the request and its path (so that
 * "Failure" says what failed where); the raw error is its cause and its code is kept. The
 * server's answer carries a status code (classify knows them all); without one, no answer came
 * at all (ssh2's "No response from server" when the SFTP channel ends with requests in flight),
 * which is the link's doing, not the file's.
 */
export function requestError(err: Error, what: string, vessel: string, path: string): MonsterError {
  const request = `SFTP ${what}${path ? ` ${path}` : ''}`;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'number' || err instanceof RenameUnsupported) return classify(err, { vessel, path }, request);
  return new TransientError(`${request}: ${err.message}`, { vessel, path, cause: err, code: typeof code === 'string' ? code : undefined });
}
