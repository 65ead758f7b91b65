/**
 * The SHA-256 of a large shore file, computed from the very blocks its senders read to send:
 * the file is never read a second time for the hash, and it is hashed once per version however
 * many vessels send it.
 *
 * Every sender of a version goes through the file front to back, and reads every byte it sends
 * or (while the hash is not complete) the vessel already has. VersionHash takes the bytes at its
 * end from whichever sender gets there first and ignores those it already has, so the hash is
 * always as far as the sender furthest ahead, and complete when any sender is through.
 *
 * Inline, on the main thread. A worker fed with the blocks read (by transfer, or in shared
 * memory) measured dearer in CPU: 1 GiB to one vessel took 4.3 CPU-s with the worker against
 * 4.0 inline, to three 10.3 against 9.7, on a shared two-core machine (the messages and the
 * worker's wake-ups cost more than they save). Shared memory is worse still: V8 copies out of a
 * SharedArrayBuffer into an unaligned place, as ssh2 does into every write request, about ten
 * times slower than out of plain memory.
 */
import { createHash, type Hash } from 'node:crypto';

/**
 * The SHA-256 of one version, fed in order by its senders (see above). Get it with versionHash
 * and give it back with release once done with it, whatever the outcome.
 */
export class VersionHash {
  /** Bytes from the start of the file that the hash has taken. */
  #hashed = 0;
  #users = 0;
  readonly #hash: Hash = createHash('sha256');
  #digest: string | undefined;

  constructor(readonly versionKey: string, readonly size: number) {}

  /** Bytes from the start that the hash already has: a sender need not read those just for the hash. */
  get hashed(): number {
    return this.#hashed;
  }

  /**
   * `data` holds the file's bytes from `offset` on. Takes those at the hash's end; ignores those
   * it has. A gap (bytes after the end) would be a sender that skipped bytes the hash lacks: a
   * bug, never a wrong digest.
   */
  feed(offset: number, data: Buffer): void {
    const to = offset + data.length;
    if (to <= this.#hashed) return;
    if (offset > this.#hashed) throw new Error(`VersionHash: bytes from ${offset} fed while the hash is at ${this.#hashed}`);
    this.#hash.update(offset === this.#hashed ? data : data.subarray(this.#hashed - offset));
    this.#hashed = to;
  }

  /** The digest, once the hash has every byte of the file (`hashed === size`). */
  digest(): string {
    if (this.#hashed !== this.size) throw new Error(`VersionHash: digest asked at ${this.#hashed} of ${this.size} bytes`);
    this.#digest ??= this.#hash.digest('hex');
    return this.#digest;
  }

  acquire(): this {
    this.#users++;
    return this;
  }

  /**
   * The caller is done with it. The last one does not drop it: it stays among the idle ones
   * (see versionHash), so that a transfer cut by the link goes on with the hash where it was
   * instead of reading and hashing again, on the main thread, every byte the vessel already has.
   */
  release(): void {
    if (--this.#users > 0 || versions.get(this.versionKey) !== this) return;
    // Map order is insertion order: re-inserted, it is the newest idle one.
    versions.delete(this.versionKey);
    versions.set(this.versionKey, this);
    let idle = 0;
    for (const vh of versions.values()) if (vh.#users === 0) idle++;
    for (const [key, vh] of versions) {
      if (idle <= IDLE_KEPT) break;
      if (vh.#users === 0) {
        versions.delete(key);
        idle--;
      }
    }
  }
}

/**
 * Idle hashes kept for versions whose transfer ended without a digest (a cut link, a stop) or
 * with one (another vessel may still send the version): a few hundred bytes each. Versions
 * are keyed by path, size and mtime: a changed file is a new version and never meets the old
 * hash (and the vessel's own SHA-256 of what it placed must match in any case).
 */
const IDLE_KEPT = 32;
const versions = new Map<string, VersionHash>();

/** The shared hash of a version, acquired for the caller: the one its senders use, or an idle one kept for it. */
export function versionHash(versionKey: string, size: number): VersionHash {
  let vh = versions.get(versionKey);
  if (!vh || vh.size !== size) versions.set(versionKey, vh = new VersionHash(versionKey, size));
  return vh.acquire();
}
