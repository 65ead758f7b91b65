/**
 * Error classes and the one place that maps raw errors onto them.
 *
 * Code branches on the class (and on `code` / `level` fields), never on message text:
 * - ConfigError: the operator must fix something (settings, key file, credentials, host key).
 *   At startup it means exit code 2; at runtime the vessel waits and is retried slowly.
 * - TransientError: the link or the vessel hiccupped. Pause that vessel, back off, retry;
 *   never counted against the file.
 * - FileError: this one file cannot be delivered for now (local file unreadable, remote
 *   permission denied on its path, hash mismatch after retries). The delivery is marked failed
 *   with the reason and everything else carries on.
 * - UnexpectedError: what classify() does not know is a bug (ours or a library's), not a hiccup:
 *   logged at ERROR with its stack and counted against the file like a FileError, so that it is
 *   never retried forever at WARN.
 */

export interface ErrorContext {
  vessel?: string;
  path?: string;
  cause?: unknown;
}

abstract class MonsterError extends Error {
  readonly vessel?: string;
  readonly path?: string;

  constructor(message: string, context: ErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = new.target.name;
    this.vessel = context.vessel;
    this.path = context.path;
  }
}

export class ConfigError extends MonsterError {}
export class TransientError extends MonsterError {}
export class FileError extends MonsterError {}
/** A vessel refuses us for a reason retrying soon will not fix: authentication, host key. */
export class VesselRefusedError extends MonsterError {}
/** The vessel cannot run commands (an SFTP-only account or server): a configuration problem of that vessel. */
export class CommandsRefusedError extends VesselRefusedError {}
/** An error nothing here expected: see the header. */
export class UnexpectedError extends FileError {}
/** Another `run` holds the state database (one daemon per database): exit 1, naming it. */
export class AlreadyRunningError extends MonsterError {}
/**
 * The state database cannot be read or written while running (disk full, read-only, I/O
 * error): the daemon cannot record what it does, so it stops (exit 1) and the next start resumes.
 */
export class StateDatabaseError extends MonsterError {}
/** Raised into work that is cut short because the daemon is stopping. */
export class StoppedError extends MonsterError {}

/** Exit codes of the CLI, as the SPEC names them. */
export const ExitCode = { ok: 0, failure: 1, usage: 2 } as const;

// Node / libuv error codes that mean "the network or the peer went away; try again".
const transientCodes = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH',
  'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'EAI_AGAIN', 'ENOTFOUND', 'ERR_STREAM_DESTROYED',
  'ERR_STREAM_WRITE_AFTER_END', 'ERR_SOCKET_CLOSED', 'ERR_STREAM_PREMATURE_CLOSE', 'ABORT_ERR',
]);

// SFTP status codes (ssh2 puts them on `code` as numbers): 1 EOF, 2 NO_SUCH_FILE,
// 3 PERMISSION_DENIED, 4 FAILURE, 5 BAD_MESSAGE, 6 NO_CONNECTION, 7 CONNECTION_LOST,
// 8 OP_UNSUPPORTED. FAILURE is what OpenSSH says for a full or read-only disk, among others: the
// callers that can tell which look closer (isSftpFailure); elsewhere it may pass.
const sftpTransient = new Set([4, 6, 7]);
const sftpFileErrors = new Set([1, 5, 8]);

// Local errors about one file (the shore's side of it).
const fileCodes = new Set(['EACCES', 'EPERM', 'ENOENT', 'EISDIR', 'ENOTDIR', 'ENAMETOOLONG', 'ELOOP', 'EIO', 'ENOSPC', 'EROFS', 'EBUSY', 'ETXTBSY']);

// ssh2 tags its errors with `level`.
// `handshake` and `sftp-protocol` are a garbled or cut exchange as often as a broken server:
// retried with backoff, which is slow enough for the rare server that is broken for good.
const transientLevels = new Set(['client-socket', 'client-timeout', 'protocol', 'handshake', 'sftp-protocol', 'client-dns']);

/** Maps any error to one of the classes above; an error already classified passes through. */
export function classify(err: unknown, context: ErrorContext = {}): MonsterError {
  if (err instanceof MonsterError) return err;
  const e = err as { code?: unknown; level?: unknown; message?: unknown } | undefined;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  const withCause = { ...context, cause: err };
  if (e?.level === 'client-authentication') return new VesselRefusedError(`authentication failed: ${message}`, withCause);
  if (e?.level === 'agent') return new VesselRefusedError(`the SSH agent failed: ${message}`, withCause);
  if (typeof e?.level === 'string' && transientLevels.has(e.level)) return new TransientError(message, withCause);
  if (typeof e?.code === 'string' && transientCodes.has(e.code)) return new TransientError(message, withCause);
  // ssh2: a channel the server would not open (`reason`: too many sessions, resource shortage).
  if (e !== null && typeof e === 'object' && 'reason' in e) return new TransientError(message, withCause);
  if (typeof e?.code === 'number' && sftpTransient.has(e.code)) return new TransientError(message, withCause);
  if (typeof e?.code === 'number' && e.code === 3) return new FileError(`permission denied: ${message}`, withCause);
  if (typeof e?.code === 'number' && e.code === 2) return new FileError(`no such file: ${message}`, withCause);
  if (typeof e?.code === 'number' && sftpFileErrors.has(e.code)) return new FileError(message, withCause);
  if (typeof e?.code === 'string' && fileCodes.has(e.code)) return new FileError(message, withCause);
  return new UnexpectedError(`unexpected error: ${message}`, withCause);
}

/** One line for an operator: the message, plus the cause's message when it adds something. */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? err.cause.message : undefined;
  return cause && !err.message.includes(cause) ? `${err.message}: ${cause}` : err.message;
}
