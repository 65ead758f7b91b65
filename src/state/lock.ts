/**
 * One daemon per state database. `run` (daemon or `--once`) holds an exclusive lock for its
 * whole life; a second `run` on the same database finds it taken and stops at once, naming the
 * PID that holds it. `status` and `check` never take it: they read the database as before.
 *
 * The lock is SQLite's own (POSIX fcntl byte locks) on a small database of its own beside the
 * state database, `<database>.lock`, opened with locking_mode=EXCLUSIVE: after its first write
 * the connection keeps the exclusive lock until it is closed. The kernel drops an fcntl lock
 * with the process that held it, so a daemon killed with `kill -9` leaves no stale lock behind:
 * the file stays, unlocked, and the next start takes it.
 *
 * The holder writes its PID into the lock database's header (`PRAGMA user_version`, the 4
 * bytes at offset 60 of the file, big-endian) in the very write that takes the lock. A second
 * instance cannot read it through SQLite while the lock is held, but fcntl locks are advisory:
 * it reads those 4 bytes with a plain read.
 */
import Database from 'better-sqlite3';
import { closeSync, openSync, readSync } from 'node:fs';
import { AlreadyRunningError } from '../errors.js';

/**
 * How long a start waits for the lock. Two starts at the same moment both reach for it; SQLite
 * makes one of them give way at once and the other waits until it has, which takes this long
 * at most. A lock held by a running daemon is never released, so this is also how long a second
 * instance takes to say so.
 */
const LOCK_WAIT_MS = 300;

export interface StateLock {
  readonly path: string;
  release(): void;
}

/**
 * Every lock this process holds. A better-sqlite3 connection that nobody references is closed
 * when it is garbage-collected, and its lock goes with it: a caller that drops the StateLock
 * must not lose the lock (measured: half the time within a second in a process that only
 * waits).
 */
const held = new Set<Database.Database>();

export function lockPathOf(database: string): string {
  return `${database}.lock`;
}

/**
 * Takes the lock of `database` for this process, or throws AlreadyRunningError naming the PID
 * that holds it. Other errors (the folder is not writable) are thrown as they are.
 */
export function lockStateDatabase(database: string): StateLock {
  const path = lockPathOf(database);
  const db = new Database(path, { timeout: LOCK_WAIT_MS });
  try {
    // No statement may touch the file before BEGIN EXCLUSIVE: in exclusive locking mode a read
    // would take a shared lock and keep it, and two starts each holding one would both give up.
    db.pragma('locking_mode = EXCLUSIVE');
    db.pragma('journal_mode = MEMORY');
    db.exec('BEGIN EXCLUSIVE');
    db.pragma(`user_version = ${process.pid}`);
    db.exec('COMMIT');
  } catch (err) {
    db.close();
    if (err instanceof Database.SqliteError && err.code.startsWith('SQLITE_BUSY')) {
      const pid = holderPid(path);
      throw new AlreadyRunningError(
        `the state database ${database} is in use by another contentmonster run (${pid === undefined ? 'PID unknown' : `PID ${pid}`}); one daemon per database: stop that one first, or give this one another Database in [MONSTER]`,
        { path: database },
      );
    }
    throw err;
  }
  held.add(db);
  return {
    path,
    release: () => {
      held.delete(db);
      if (db.open) db.close();
    },
  };
}

/** The PID in the lock file's header, when it names a live process. */
function holderPid(path: string): number | undefined {
  const header = Buffer.alloc(4);
  let fd: number | undefined;
  try {
    fd = openSync(path, 'r');
    if (readSync(fd, header, 0, 4, 60) < 4) return undefined;
  } catch {
    return undefined;
  } finally {
    // This process holds no lock on the file, so closing it releases nothing of ours.
    if (fd !== undefined) closeSync(fd);
  }
  const pid = header.readUInt32BE(0);
  return pid > 0 && isAlive(pid) ? pid : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, another user's
  }
}
