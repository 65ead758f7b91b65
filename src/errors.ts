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
 * A classified error keeps the raw one as its `cause`, and the raw `code` (an errno name, or an
 * SFTP status: SftpStatus) on its own `code`. No message is rewritten after the fact: a message
 * that names more (the SFTP request) is a new error's.
 */
import ssh2 from 'ssh2';

export interface ErrorContext {
  vessel?: string;
  path?: string;
  cause?: unknown;
  /** What the cause says it is: an errno name (`ECONNRESET`) or an SFTP status (a number, see SftpStatus). */
  code?: string | number;
}

abstract class MonsterError extends Error {
  readonly vessel?: string;
  readonly path?: string;
  readonly code?: string | number;

  constructor(message: string, context: ErrorContext = {}) {
    super(message, context.cause === undefined ? undefined : { cause: context.cause });
    this.name = new.target.name;
    this.vessel = context.vessel;
    this.path = context.path;
    this.code = context.code;
  }
}
export type { MonsterError };

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

// Signals, not failures: each has the one catcher that turns it into something else.

/** The shore file no longer is the version being sent: the delivery ends as `gone` or `changed` (push/upload). */
export class LocalChange extends Error {
  constructor(readonly kind: 'gone' | 'changed') {
    super(kind);
  }
}
/** The server has no posix-rename@openssh.com (ssh/connection.ts): the upload moves the file with `mv` instead. */
export class RenameUnsupported extends Error {}
/** Thrown by a settings value parser (or a default) with what was expected; the loader adds file, line and key. */
export class Expected extends Error {}

/** Exit codes of the CLI, as the SPEC names them. */
export const ExitCode = { ok: 0, failure: 1, usage: 2 } as const;

/**
 * SFTP status codes, ssh2's own table (ssh2 puts the status of a failed request on the error's
 * `code`, as a number): OK, EOF, NO_SUCH_FILE, PERMISSION_DENIED, FAILURE, BAD_MESSAGE,
 * NO_CONNECTION, CONNECTION_LOST, OP_UNSUPPORTED.
 */
export const SftpStatus = ssh2.utils.sftp.STATUS_CODE;

// ---------------------------------------------------------------------------------------------
// classify(): a lookup table. A raw error is looked up by its ssh2 `level`, then by whether it
// carries a `reason`, then by its `code`; what no row takes is unexpected.

/** What classify() makes of a raw error: the class, and the message from the raw one's (as it is when absent). */
export interface Outcome {
  readonly as: new (message: string, context?: ErrorContext) => MonsterError;
  readonly says?: (message: string) => string;
}

const transient: Outcome = { as: TransientError };
const fileProblem: Outcome = { as: FileError };

function rows<K>(outcome: Outcome, ...keys: K[]): [K, Outcome][] {
  return keys.map((key) => [key, outcome]);
}

// ssh2 tags its errors with `level`. `handshake` and `sftp-protocol` are a garbled or cut
// exchange as often as a broken server: retried with backoff, which is slow enough for the rare
// server that is broken for good.
const byLevel: ReadonlyMap<string, Outcome> = new Map<string, Outcome>([
  ['client-authentication', { as: VesselRefusedError, says: (m) => `authentication failed: ${m}` }],
  ['agent', { as: VesselRefusedError, says: (m) => `the SSH agent failed: ${m}` }],
  ...rows(transient, 'client-socket', 'client-timeout', 'protocol', 'handshake', 'sftp-protocol', 'client-dns'),
]);

// ssh2: a channel the server would not open (`reason`: too many sessions, resource shortage).
const withReason: Outcome = transient;

const byCode: ReadonlyMap<string | number, Outcome> = new Map<string | number, Outcome>([
  // Node / libuv codes that mean "the network or the peer went away; try again".
  ...rows(transient, 'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH',
    'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN', 'EAI_AGAIN', 'ENOTFOUND', 'ERR_STREAM_DESTROYED',
    'ERR_STREAM_WRITE_AFTER_END', 'ERR_SOCKET_CLOSED', 'ERR_STREAM_PREMATURE_CLOSE', 'ABORT_ERR'),
  // Local errors about one file (the shore's side of it).
  ...rows(fileProblem, 'EACCES', 'EPERM', 'ENOENT', 'EISDIR', 'ENOTDIR', 'ENAMETOOLONG', 'ELOOP', 'EIO', 'ENOSPC', 'EROFS', 'EBUSY', 'ETXTBSY'),
  // SFTP statuses. FAILURE is what OpenSSH says for a full or read-only disk, among others: the
  // callers that can tell which look closer (isSftpFailure); elsewhere it may pass.
  ...rows(transient, SftpStatus.FAILURE, SftpStatus.NO_CONNECTION, SftpStatus.CONNECTION_LOST),
  [SftpStatus.PERMISSION_DENIED, { as: FileError, says: (m) => `permission denied: ${m}` }],
  [SftpStatus.NO_SUCH_FILE, { as: FileError, says: (m) => `no such file: ${m}` }],
  ...rows(fileProblem, SftpStatus.EOF, SftpStatus.BAD_MESSAGE, SftpStatus.OP_UNSUPPORTED),
]);

const otherwise: Outcome = { as: UnexpectedError, says: (m) => `unexpected error: ${m}` };

/** The table itself, for its tests. */
export const classifyTable = { byLevel, withReason, byCode, otherwise } as const;

type RawError = { code?: unknown; level?: unknown; message?: unknown } | null | undefined;

function lookup(e: RawError): Outcome {
  const byItsLevel = typeof e?.level === 'string' ? byLevel.get(e.level) : undefined;
  if (byItsLevel) return byItsLevel;
  if (e !== null && typeof e === 'object' && 'reason' in e) return withReason;
  return (isCode(e?.code) ? byCode.get(e.code) : undefined) ?? otherwise;
}

function isCode(code: unknown): code is string | number {
  return typeof code === 'string' || typeof code === 'number';
}

/**
 * Maps any error to one of the classes above, keeping it as the `cause` and its `code`; an error
 * already classified passes through. `during` names what failed (`SFTP open /a/b`): the message
 * starts with it.
 */
export function classify(err: unknown, context: ErrorContext = {}, during?: string): MonsterError {
  if (err instanceof MonsterError) return err;
  const e = err as RawError;
  const outcome = lookup(e);
  const own = typeof e?.message === 'string' ? e.message : String(err);
  const message = outcome.says ? outcome.says(own) : own;
  return new outcome.as(during ? `${during}: ${message}` : message, { ...context, cause: err, code: isCode(e?.code) ? e.code : undefined });
}

/** One line for an operator: the message, plus the cause's message when it adds something. */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? err.cause.message : undefined;
  return cause && !err.message.includes(cause) ? `${err.message}: ${cause}` : err.message;
}
