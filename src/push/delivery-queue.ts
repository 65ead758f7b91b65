/**
 * The files waiting for one vessel, in the order they should start.
 *
 * Files already started go first, so that a short-lived link finishes what it began before it
 * begins anything new: first those whose bytes are all on the vessel (only the check and the
 * rename, or the join, are left), then those partly sent. New files follow in queue order
 * (state/queue-order.ts: Priority, then Order, then the order they came), small and large each
 * in their own line, so that a stream of small files never keeps a large one waiting (nor the
 * reverse): the worker gives each kind its own slots. When both kinds could start, the one
 * first in queue order goes first.
 */
import { compareKeys, type QueueKey } from '../state/queue-order.js';
import type { DeliveryStage } from './upload/upload.js';

export type FileKind = 'small' | 'large';

export interface QueuedFile extends QueueKey {
  kind: FileKind;
  size: number;
  /** How far an earlier attempt got; absent for a file not started yet. */
  stage?: 'started' | DeliveryStage;
}

export class DeliveryQueue {
  /** Started files, in the order they were put back. */
  readonly #started = new Map<number, QueuedFile>();
  /** New files of each kind, in queue order (a few hundred at most: see PagedQueue). */
  readonly #fresh: Record<FileKind, QueuedFile[]> = { small: [], large: [] };
  readonly #freshById = new Map<number, QueuedFile>();

  get size(): number {
    return this.#started.size + this.#freshById.size;
  }

  /** New files of one kind waiting here. */
  freshCount(kind: FileKind): number {
    return this.#fresh[kind].length;
  }

  has(id: number): boolean {
    return this.#started.has(id) || this.#freshById.has(id);
  }

  /** Queues a file: in its place among the new ones of its kind, or with the started ones when it has a stage. */
  add(file: QueuedFile): void {
    this.delete(file.id);
    if (file.stage) {
      this.#started.set(file.id, file);
      return;
    }
    const line = this.#fresh[file.kind];
    line.splice(insertionPoint(line, file), 0, file);
    this.#freshById.set(file.id, file);
  }

  delete(id: number): void {
    if (this.#started.delete(id)) return;
    const file = this.#freshById.get(id);
    if (!file) return;
    this.#freshById.delete(id);
    const line = this.#fresh[file.kind];
    line.splice(insertionPoint(line, file) - 1, 1);
  }

  /** Removes and returns the new file of `kind` that goes last, if any. */
  dropLast(kind: FileKind): QueuedFile | undefined {
    const last = this.#fresh[kind].pop();
    if (last) this.#freshById.delete(last.id);
    return last;
  }

  /** Removes and returns the next file that `accept` takes, or undefined when it takes none. */
  take(accept: (f: QueuedFile) => boolean): QueuedFile | undefined {
    const next = this.#nextStarted(accept) ?? this.#nextFresh(accept);
    if (next) this.delete(next.id);
    return next;
  }

  #nextStarted(accept: (f: QueuedFile) => boolean): QueuedFile | undefined {
    let partly: QueuedFile | undefined;
    for (const f of this.#started.values()) {
      if (!accept(f)) continue;
      if (f.stage !== 'started') return f;
      partly ??= f;
    }
    return partly;
  }

  /** The head of either kind that `accept` takes, the one first in queue order when both are. */
  #nextFresh(accept: (f: QueuedFile) => boolean): QueuedFile | undefined {
    const heads = [this.#fresh.small[0], this.#fresh.large[0]].filter((f): f is QueuedFile => f !== undefined && accept(f));
    return heads.sort(compareKeys)[0];
  }

  /** Empties the queue, returning what was in it. */
  drain(): QueuedFile[] {
    const all = [...this.#started.values(), ...this.#fresh.small, ...this.#fresh.large];
    this.#started.clear();
    this.#fresh.small = [];
    this.#fresh.large = [];
    this.#freshById.clear();
    return all;
  }
}

/** The index after every file of `line` (in queue order) that goes before `key` or is it. */
function insertionPoint(line: readonly QueuedFile[], key: QueueKey): number {
  let lo = 0;
  let hi = line.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(line[mid], key) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
