/**
 * Errors across a thread boundary. Structured cloning keeps an Error's message but not its
 * class or its fields, and the code here branches on both (errors.ts, sftp-errors.ts): an error
 * crosses as its name, message, stack and fields (`code`, `vessel`, `path`, ssh2's `level`,
 * whether it carries a channel-open `reason`), with its cause chain, and is built again on the
 * other side as the same class.
 */
import {
  AlreadyRunningError, CommandsRefusedError, ConfigError, FileError, RenameUnsupported, StateDatabaseError,
  StoppedError, TransientError, UnexpectedError, VesselRefusedError, type ErrorContext, type MonsterError,
} from '../errors.js';

export interface WireError {
  name: string;
  message: string;
  stack?: string;
  code?: string | number;
  vessel?: string;
  path?: string;
  level?: string;
  /** ssh2's reason for a channel it could not open; its presence is what classify() looks at. */
  reason?: unknown;
  hasReason?: boolean;
  cause?: WireError;
}

const monsterClasses: Record<string, new (message: string, context?: ErrorContext) => MonsterError> = {
  ConfigError, TransientError, FileError, VesselRefusedError, CommandsRefusedError, UnexpectedError, AlreadyRunningError,
  StateDatabaseError, StoppedError,
};

const MAX_DEPTH = 5;

export function toWire(err: unknown, depth = 0): WireError {
  if (!(err instanceof Error)) return { name: 'Error', message: String(err) };
  const e = err as Error & { code?: unknown; vessel?: unknown; path?: unknown; level?: unknown; reason?: unknown };
  const wire: WireError = { name: err.name, message: err.message, stack: err.stack };
  // A subclass that does not set `name` still says which one it is.
  if (err instanceof RenameUnsupported) wire.name = 'RenameUnsupported';
  if (typeof e.code === 'string' || typeof e.code === 'number') wire.code = e.code;
  if (typeof e.vessel === 'string') wire.vessel = e.vessel;
  if (typeof e.path === 'string') wire.path = e.path;
  if (typeof e.level === 'string') wire.level = e.level;
  if ('reason' in e) {
    wire.hasReason = true;
    wire.reason = typeof e.reason === 'string' || typeof e.reason === 'number' ? e.reason : undefined;
  }
  if (err.cause !== undefined && depth < MAX_DEPTH) wire.cause = toWire(err.cause, depth + 1);
  return wire;
}

export function fromWire(wire: WireError): Error {
  const cause = wire.cause ? fromWire(wire.cause) : undefined;
  const Monster = monsterClasses[wire.name];
  let err: Error;
  if (Monster) {
    err = new Monster(wire.message, { vessel: wire.vessel, path: wire.path, code: wire.code, cause });
  } else {
    err = wire.name === 'RenameUnsupported' ? new RenameUnsupported(wire.message) : new Error(wire.message, cause === undefined ? undefined : { cause });
    if (!(err instanceof RenameUnsupported)) err.name = wire.name;
    const fields = err as Error & Record<string, unknown>;
    if (wire.code !== undefined) fields.code = wire.code;
    if (wire.level !== undefined) fields.level = wire.level;
    if (wire.hasReason) fields.reason = wire.reason;
    if (cause !== undefined && err.cause === undefined) fields.cause = cause;
  }
  if (wire.stack) err.stack = wire.stack;
  return err;
}
