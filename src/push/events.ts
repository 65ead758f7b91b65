/**
 * What the push daemon does, as typed events: the same moments its log lines tell an operator
 * about (a vessel connected, a file delivered, a vessel refused, ...), for code that needs to
 * wait on them. The log lines stay as they are; events are an addition, not a replacement.
 *
 * `pushEvents` is one emitter for the process. Without a listener, `emit` returns at once (the
 * caller builds a small object, nothing more); nothing in the daemon listens.
 *
 * Tests only: when the environment variable CONTENTMONSTER_EVENTS_FD names an open file
 * descriptor (3 or above), `run` writes every event to it as one JSON line
 * (`{"type":"delivered","vessel":"v1","file":"/shore/a.bin",...}`); the end-to-end tests give
 * the daemon a pipe there (test/helpers/process.ts) and wait on events instead of log text.
 * The writes are synchronous (each event follows the log line that tells of it, so a reader of
 * both finds that line once it has the event; a reader that stops reading holds the daemon up)
 * and never throw: when the reader is gone (EPIPE) or the descriptor cannot be written, the
 * writing ends and the daemon carries on. Nothing else reads the variable; operators have no
 * use for it, and the README's operator guide does not mention it.
 */
import { writeSync } from 'node:fs';

export type PushEvent =
  /** Daemon mode: the Locations are watched and the first scan has queued what it found. */
  | { type: 'ready' }
  /** A connection to a vessel is up (after its proof); `connection` numbers it when there are several. */
  | { type: 'connected'; vessel: string; connection?: number }
  /** A connection attempt failed; the next one waits `retryInMs`. */
  | { type: 'unreachable'; vessel: string; reason: string; retryInMs: number }
  /** The vessel refused (authentication, host key, commands, same storage...): said once per reason, as the log does. */
  | { type: 'refused'; vessel: string; reason: string; retryInMs: number }
  /** `--once`: the vessel is given up for this run. */
  | { type: 'gaveUp'; vessel: string; reason: string }
  /** A connection carrying `files` dropped; they resume on the next one. */
  | { type: 'interrupted'; vessel: string; files: number; reason: string }
  /** Every byte of a large file is on the vessel: it is being joined, verified and placed. */
  | { type: 'joining'; vessel: string; file: string }
  /** The vessel has the file (`alreadyThere`: it had it before, same size and SHA-256). */
  | { type: 'delivered'; vessel: string; file: string; bytes: number; alreadyThere: boolean }
  /** A delivery attempt failed (`final`: no more attempts until the next retry round). */
  | { type: 'failed'; vessel: string; file: string; reason: string; attempt: number; final: boolean }
  /** A file changed before it was everywhere (`vessel`: during a transfer to it); the new version follows. */
  | { type: 'changed'; file: string; vessel?: string }
  /** A file left the shore before it was everywhere: forgotten, its transfers stopped. */
  | { type: 'dropped'; directory: string; file: string }
  /** On every vessel: moved to `processed/` (`to`). */
  | { type: 'processed'; directory: string; file: string; to: string }
  /** A Location cannot be used (missing, not a folder, unreadable, read-only). */
  | { type: 'locationUnusable'; directory: string; reason: string }
  /** A Location that could not be used is usable now and watched. */
  | { type: 'locationUsable'; directory: string; location: string }
  /** A reload (SIGHUP) applied new settings: what changed, by name; [MONSTER] keys applied and kept for a restart. */
  | { type: 'reloaded'; vessels: ReloadChanges; directories: ReloadChanges; monster: string[]; needRestart: string[] }
  /** A reload found the settings file broken (`reason`, the loader's one line); the old settings stay. */
  | { type: 'reloadRejected'; reason: string }
  /** A vessel removed by a reload has ended its transfers (or been stopped by the next reload) and disconnected. */
  | { type: 'retired'; vessel: string }
  /** A bandwidth limit took effect (at the start and at each timetable boundary): `vessel` null is the global one; `bytesPerSecond` null is `off`. */
  | { type: 'bandwidthLimit'; vessel: string | null; bytesPerSecond: number | null }
  /** A stop began (a signal, or the state database failed). */
  | { type: 'stopping' };

/** Names of the vessels or Directories a reload added, removed, changed, and kept as they were. */
export interface ReloadChanges {
  added: string[];
  removed: string[];
  changed: string[];
  unchanged: string[];
}

export type PushEventType = PushEvent['type'];
/** The event of one type: `PushEventOf<'delivered'>`. */
export type PushEventOf<T extends PushEventType> = Extract<PushEvent, { type: T }>;
export type PushEventListener = (event: PushEvent) => void;

export class PushEvents {
  readonly #listeners = new Set<PushEventListener>();

  /** Whether anyone listens (to skip building an event that costs something to build). */
  get active(): boolean {
    return this.#listeners.size > 0;
  }

  /** Hands `event` to every listener; a listener that throws is not the emitter's problem. */
  emit(event: PushEvent): void {
    if (this.#listeners.size === 0) return;
    for (const listener of [...this.#listeners]) {
      try {
        listener(event);
      } catch {
        // An event is news, never a reason for the daemon to fail.
      }
    }
  }

  /** Adds a listener; returns what removes it. */
  on(listener: PushEventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }
}

/** The process's one emitter. */
export const pushEvents = new PushEvents();

export const EVENTS_FD_VARIABLE = 'CONTENTMONSTER_EVENTS_FD';

/** How long a full non-blocking descriptor is waited for before the writing ends. */
const FULL_WAIT_MS = 2000;

/**
 * Writes every event of `events` to the descriptor that CONTENTMONSTER_EVENTS_FD names, one
 * JSON line each, until the returned function is called or a write fails (the reader gone:
 * EPIPE; or any other error). Does nothing when the variable is unset; one that is not a
 * whole number of 3 or more is ignored. `write` is for the unit tests.
 */
export function writeEventsToFd(
  env: NodeJS.ProcessEnv = process.env,
  events: PushEvents = pushEvents,
  write: (fd: number, buffer: Buffer, offset: number) => number = (fd, buffer, offset) => writeSync(fd, buffer, offset),
): () => void {
  const value = env[EVENTS_FD_VARIABLE];
  if (value === undefined || !/^\d+$/.test(value.trim())) return () => {};
  const fd = Number(value.trim());
  if (fd < 3) return () => {}; // never stdin, stdout or stderr
  const stop = events.on((event) => {
    if (!writeAll(fd, Buffer.from(`${JSON.stringify(event)}\n`), write)) stop();
  });
  return stop;
}

/** The whole buffer written; false when the descriptor cannot take it (the writing ends). */
function writeAll(fd: number, buffer: Buffer, write: (fd: number, buffer: Buffer, offset: number) => number): boolean {
  let offset = 0;
  let waitedMs = 0;
  while (offset < buffer.length) {
    try {
      offset += write(fd, buffer, offset);
    } catch (err) {
      // A non-blocking pipe that is full for a moment: wait a little, in steps of 1 ms.
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN' || waitedMs >= FULL_WAIT_MS) return false;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
      waitedMs += 1;
    }
  }
  return true;
}
