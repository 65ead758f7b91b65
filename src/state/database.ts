/**
 * Opening the state database named by `[MONSTER] Database`, the same way for `run`, `status`
 * and `check`: a database that cannot be opened (a folder in its place, not a database, a
 * read-only folder) is a configuration error (exit 2) of one line naming the settings file, the
 * key and the database; `run` also takes the database's lock first (one daemon per database).
 */
import { dirname } from 'node:path';
import { AlreadyRunningError, ConfigError, StateDatabaseError } from '../errors.js';
import type { Settings } from '../settings/load.js';
import { folderProblem, fsReason, makeFolders } from '../shore-fs.js';
import { lockStateDatabase, type StateLock } from './lock.js';
import { StateStore, type StateStoreOptions } from './store.js';

/**
 * One line. The error it comes from is kept as the cause (for a stack at debug level) only when
 * the line already says what it says: the CLI adds a cause's message that the line does not hold.
 */
function cannotOpen(settings: Settings, reason: string, err?: unknown): ConfigError {
  const cause = err instanceof StateDatabaseError ? err.cause : err;
  const keep = cause instanceof Error && reason.includes(cause.message);
  return new ConfigError(`${settings.file}: [MONSTER] Database: cannot open ${settings.monster.database}: ${reason}`, keep ? { cause } : {});
}

/** The reason in an error from SQLite or the filesystem, without repeating the path. */
function reasonOf(err: unknown): string {
  if (err instanceof StateDatabaseError && err.cause instanceof Error) return err.cause.message;
  if (typeof (err as NodeJS.ErrnoException | undefined)?.code === 'string' && !String((err as NodeJS.ErrnoException).code).startsWith('SQLITE')) return fsReason(err);
  return err instanceof Error ? err.message : String(err);
}

/**
 * `run`: the database's folder (created with its parents when missing), then the lock. Throws
 * ConfigError when the folder cannot be made or written, AlreadyRunningError when another run
 * holds the lock.
 */
export function lockStateFolder(settings: Settings): StateLock {
  const folder = dirname(settings.monster.database);
  try {
    makeFolders(folder);
  } catch (err) {
    throw cannotOpen(settings, `its folder ${folder} cannot be created: ${fsReason(err)}`);
  }
  const problem = folderProblem(folder, { read: true, write: true });
  if (problem) {
    const what = { missing: problem.reason, notdir: 'is not a folder', unreadable: `cannot be read: ${problem.reason}`, readonly: `is not writable: ${problem.reason}` }[problem.kind];
    throw cannotOpen(settings, `its folder ${folder} ${what}`);
  }
  try {
    return lockStateDatabase(settings.monster.database);
  } catch (err) {
    if (err instanceof AlreadyRunningError) throw err;
    throw cannotOpen(settings, `its lock ${settings.monster.database}.lock: ${reasonOf(err)}`, err);
  }
}

/** Opens the store (read-only for `status` and `check`); any failure is one ConfigError line. */
export function openStateStore(settings: Settings, options: StateStoreOptions = {}): StateStore {
  try {
    return new StateStore(settings.monster.database, options);
  } catch (err) {
    throw cannotOpen(settings, reasonOf(err), err);
  }
}
