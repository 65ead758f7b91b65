/**
 * A vessel's waiting files, most of which stay in the state database. A vessel offline for a
 * week, or a shore that collects sensor data, can leave millions of files waiting: held in
 * memory they cost kilobytes each. Here memory holds a window per kind (the next WINDOW.small
 * small files and WINDOW.large large ones, plus the files started and put back), and the rest
 * is read from the database a page at a time as the window empties, in queue order
 * (state/queue-order.ts: started files, Priority, Order, arrival; the database's index has it,
 * nothing is sorted here but the window), small and large each from their own cursor so that a
 * run of one kind never hides the other.
 *
 * The database is the queue; the window is a cache of its head: every pending row of a kind up
 * to its cursor is in the window or in flight. So that nothing waiting is ever skipped and
 * nothing waits behind what goes after it, a file offered before a cursor (new with a higher
 * Priority or a smaller size, put back in line by a retry round, a version replaced in place)
 * takes its place in the window, and when the window is then over full its last file goes back
 * to the database (the cursor moves back before it, to read it again); `rewind()` starts a kind
 * over from the first row (a Location taken up again). Rows read again that are already in the
 * window or in flight are passed over.
 */
import { BEFORE_ALL, compareKeys, justBefore, type QueueKey } from '../state/queue-order.js';
import type { WaitingRow } from '../state/store.js';
import { DeliveryQueue, type FileKind, type QueuedFile } from './delivery-queue.js';

export type { WaitingRow } from '../state/store.js';

/** The next pending rows of one kind after `after`, at most `limit`, in queue order. */
export type PageSource = (kind: FileKind, after: QueueKey, limit: number) => WaitingRow[];

/** New files held in memory per kind: enough to keep every lane busy between two reads. */
export const WINDOW: Readonly<Record<FileKind, number>> = { small: 512, large: 32 };

interface Cursor {
  /** The last key read (or taken in) in this pass. */
  after: QueueKey;
  /** Whether the database may hold pending rows after `after` that the window does not. */
  more: boolean;
}

const KINDS: readonly FileKind[] = ['small', 'large'];

export class PagedQueue {
  readonly #queue = new DeliveryQueue();
  readonly #cursor: Record<FileKind, Cursor> = { small: { after: BEFORE_ALL, more: true }, large: { after: BEFORE_ALL, more: true } };
  readonly #source: PageSource;
  readonly #kindOf: (size: number) => FileKind;
  /** True for a file in flight: it is not queued again when a page reads it. */
  readonly #busy: (id: number) => boolean;

  constructor(source: PageSource, kindOf: (size: number) => FileKind, busy: (id: number) => boolean) {
    this.#source = source;
    this.#kindOf = kindOf;
    this.#busy = busy;
  }

  /** Files in memory (the window and those put back). */
  get size(): number {
    return this.#queue.size;
  }

  /** Nothing in memory and nothing more to read: every pending row has been taken. */
  get empty(): boolean {
    return this.#queue.size === 0 && !this.#cursor.small.more && !this.#cursor.large.more;
  }

  has(id: number): boolean {
    return this.#queue.has(id);
  }

  /** A delivery of this file is pending (new, or pending again): it is taken in now or read later. */
  offer(row: WaitingRow): void {
    if (this.#queue.has(row.id)) return;
    const kind = this.#kindOf(row.size);
    const cursor = this.#cursor[kind];
    const file: QueuedFile = { id: row.id, tier: row.tier, rank: row.rank, kind, size: row.size };
    if (compareKeys(file, cursor.after) > 0) {
      // After everything read so far: straight in when nothing else is waiting to be read.
      if (!cursor.more && this.#queue.freshCount(kind) < WINDOW[kind]) {
        this.#queue.add(file);
        cursor.after = file;
      } else cursor.more = true;
      return;
    }
    // Before the cursor: in its place now; the window's last file is read again later.
    this.#queue.add(file);
    if (this.#queue.freshCount(kind) > WINDOW[kind]) {
      cursor.after = justBefore(this.#queue.dropLast(kind)!);
      cursor.more = true;
    }
  }

  /** A started file goes back to the front (see DeliveryQueue), whatever the window holds. */
  putBack(file: QueuedFile): void {
    this.#queue.add(file);
  }

  /** Everything pending may have changed (a retry round, a Location taken up): read it all again. */
  rewind(): void {
    for (const kind of KINDS) this.#cursor[kind] = { after: BEFORE_ALL, more: true };
  }

  /** Fills each kind's window from the database once it is down to half. */
  refill(): void {
    for (const kind of KINDS) {
      const cursor = this.#cursor[kind];
      if (!cursor.more || this.#queue.freshCount(kind) > WINDOW[kind] / 2) continue;
      while (cursor.more && this.#queue.freshCount(kind) < WINDOW[kind]) {
        const limit = WINDOW[kind] - this.#queue.freshCount(kind);
        const rows = this.#source(kind, cursor.after, limit);
        for (const row of rows) {
          const file: QueuedFile = { id: row.id, tier: row.tier, rank: row.rank, kind, size: row.size };
          cursor.after = file;
          if (!this.#queue.has(row.id) && !this.#busy(row.id)) this.#queue.add(file);
        }
        if (rows.length < limit) cursor.more = false;
      }
    }
  }

  /** Removes and returns the next file that `accept` takes (see DeliveryQueue.take). */
  take(accept: (f: QueuedFile) => boolean): QueuedFile | undefined {
    return this.#queue.take(accept);
  }

  /** Empties memory and stops reading: returns what was in memory. */
  drain(): QueuedFile[] {
    for (const kind of KINDS) this.#cursor[kind].more = false;
    return this.#queue.drain();
  }
}
