/**
 * A vessel's connections ("lanes") and what each carries: one large file at a time and up to
 * SMALL_FILES_PER_LANE small ones, with a cap on the bytes of small files in flight.
 */
import type { VesselConnection } from '../ssh/remote-fs.js';
import type { QueuedFile } from './delivery-queue.js';

/**
 * Small files in flight per lane: each is a few round trips and a line to the vessel's checker,
 * so a few at a time leave the link and both ends mostly waiting (2000 files of 64 KiB to one
 * vessel: 8.1 s with 8 in flight, 6.1 s with 32).
 */
export const SMALL_FILES_PER_LANE = 16;
/**
 * Bytes of small files in flight per vessel: each is held whole until the vessel has it, and
 * ssh2 keeps a copy of what the channel window does not take yet. 32 files of 64 KiB fit; of
 * 1 MiB files, 8 go at once.
 */
const SMALL_FILE_BYTES_IN_FLIGHT = 8 * 1024 * 1024;

/** One connection to the vessel and what it carries. */
export interface Lane {
  number: number;
  connection?: VesselConnection;
  /** Aborts the connection attempt under way. */
  connecting?: AbortController;
  large: number;
  small: number;
  /** Bytes the vessel acknowledged on the current connection. */
  carried: number;
}

export class Lanes {
  readonly all: readonly Lane[];
  #smallBytes = 0;

  constructor(count: number) {
    this.all = Array.from({ length: count }, (_, i) => ({ number: i + 1, large: 0, small: 0, carried: 0 }));
  }

  /** Connection attempts under way. */
  get connecting(): number {
    return this.all.filter((l) => l.connecting).length;
  }

  /** A live connection, if any lane has one. */
  get anyConnection(): VesselConnection | undefined {
    return this.all.find((l) => l.connection && !l.connection.closed)?.connection;
  }

  /** The connected lane with room for `f` and the least in flight. */
  laneFor(f: QueuedFile): Lane | undefined {
    if (f.kind === 'small' && this.#smallBytes > 0 && this.#smallBytes + f.size > SMALL_FILE_BYTES_IN_FLIGHT) return undefined;
    let best: Lane | undefined;
    for (const lane of this.all) {
      if (!lane.connection || lane.connection.closed) continue;
      if (f.kind === 'large' ? lane.large > 0 : lane.small >= SMALL_FILES_PER_LANE) continue;
      if (!best || lane.large + lane.small < best.large + best.small) best = lane;
    }
    return best;
  }

  /** `file` starts (1) or ends (-1) on `lane`. */
  occupy(lane: Lane, file: QueuedFile, n: 1 | -1): void {
    if (file.kind === 'large') lane.large += n;
    else {
      lane.small += n;
      this.#smallBytes += n * file.size;
    }
  }

  /**
   * Aborts every attempt under way and drops every connection; `forget`: the lanes let go of
   * their connections first, so that their ends are not taken for drops of the link.
   */
  cut(reason: string, forget = false): void {
    for (const lane of this.all) {
      lane.connecting?.abort();
      const connection = lane.connection;
      if (forget) lane.connection = undefined;
      connection?.disconnect(reason);
    }
  }
}
