/**
 * The files waiting for one vessel, in the order they should start.
 *
 * Files already started go first, so that a short-lived link finishes what it began before it
 * begins anything new: first those whose bytes are all on the vessel (only the check and the
 * rename, or the join, are left), then those partly sent. New files follow in the order they
 * came, small and large each in their own line, so that the oldest of either goes first when
 * both could start and a stream of small files never keeps a large one waiting (nor the
 * reverse): the worker gives each kind its own slots.
 */
import type { DeliveryStage } from './upload/upload.js';

export type FileKind = 'small' | 'large';

export interface QueuedFile {
  id: number;
  kind: FileKind;
  size: number;
  /** How far an earlier attempt got; absent for a file not started yet. */
  stage?: 'started' | DeliveryStage;
}

export class DeliveryQueue {
  /** Started files, in the order they were put back. */
  readonly #started = new Map<number, QueuedFile>();
  readonly #fresh: Record<FileKind, Map<number, QueuedFile>> = { small: new Map(), large: new Map() };

  get size(): number {
    return this.#started.size + this.#fresh.small.size + this.#fresh.large.size;
  }

  /** New files of one kind waiting here. */
  freshCount(kind: FileKind): number {
    return this.#fresh[kind].size;
  }

  has(id: number): boolean {
    return this.#started.has(id) || this.#fresh.small.has(id) || this.#fresh.large.has(id);
  }

  /** Queues a file: behind the others of its kind when new, with the started ones when it has a stage. */
  add(file: QueuedFile): void {
    this.delete(file.id);
    if (file.stage) this.#started.set(file.id, file);
    else this.#fresh[file.kind].set(file.id, file);
  }

  delete(id: number): void {
    if (this.#started.delete(id)) return;
    if (this.#fresh.small.delete(id)) return;
    this.#fresh.large.delete(id);
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

  /** The older of the two heads that `accept` takes. */
  #nextFresh(accept: (f: QueuedFile) => boolean): QueuedFile | undefined {
    const heads = [first(this.#fresh.small), first(this.#fresh.large)].filter((f): f is QueuedFile => f !== undefined && accept(f));
    return heads.sort((a, b) => a.id - b.id)[0];
  }

  /** Empties the queue, returning what was in it. */
  drain(): QueuedFile[] {
    const all = [...this.#started.values(), ...this.#fresh.small.values(), ...this.#fresh.large.values()];
    this.#started.clear();
    this.#fresh.small.clear();
    this.#fresh.large.clear();
    return all;
  }
}

function first<K, V>(map: Map<K, V>): V | undefined {
  for (const v of map.values()) return v;
  return undefined;
}
