/**
 * Read buffers for uploads (chunks and whole small files), shared by every transfer of the
 * process.
 *
 * A buffer in use lives across many young-generation collections (see ssh/young-gc.ts), so V8
 * moves it to the old generation. Dropped there, as a per-chunk pool used to drop its buffers
 * at the end of every chunk, it becomes garbage that only a full mark-compact frees, and V8
 * counts such memory towards starting one. Buffers kept here are reused instead; the pool
 * holds at most `maxHeldBytes` of them.
 */
export class BufferPool {
  readonly #free = new Map<number, Buffer[]>();
  #held = 0;

  /** @param maxHeldBytes free buffers kept beyond this are left to the garbage collector */
  constructor(private readonly maxHeldBytes: number) {}

  /** A buffer of exactly `size` bytes (contents undefined). */
  take(size: number): Buffer {
    const buf = this.#free.get(size)?.pop();
    if (!buf) return Buffer.allocUnsafe(size);
    this.#held -= size;
    return buf;
  }

  /** Gives a buffer back; the caller must not touch it afterwards. */
  give(buf: Buffer): void {
    if (this.#held + buf.length > this.maxHeldBytes) return;
    let list = this.#free.get(buf.length);
    if (!list) this.#free.set(buf.length, (list = []));
    list.push(buf);
    this.#held += buf.length;
  }

  /** Bytes held for reuse. */
  get heldBytes(): number {
    return this.#held;
  }
}
