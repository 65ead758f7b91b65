/**
 * SFTP writes in flight, bounded by bytes: a new request goes out as soon as there is room,
 * without waiting for earlier answers, so a link with a long round trip stays busy. The first
 * failure of any write is kept and ends every later wait for room.
 */
export class WriteWindow {
  readonly #limit: () => number;
  readonly #pending = new Set<Promise<void>>();
  #bytes = 0;
  #failure: { error: unknown } | undefined;

  /** `limitBytes`: a number, or asked before each request (it may shrink or grow as the link shows itself). */
  constructor(limitBytes: number | (() => number)) {
    this.#limit = typeof limitBytes === 'number' ? () => limitBytes : limitBytes;
  }

  /** Resolves when `bytes` more fit (at once when nothing is in flight); rejects with the first failure. */
  async room(bytes: number): Promise<void> {
    while (!this.#failure && this.#pending.size > 0 && this.#bytes + bytes > this.#limit()) {
      await Promise.race(this.#pending).catch(() => {});
    }
    if (this.#failure) throw this.#failure.error;
  }

  /** Counts a write of `bytes` until it settles; the promise returned settles with it. */
  track(write: Promise<void>, bytes: number): Promise<void> {
    this.#bytes += bytes;
    const tracked: Promise<void> = write.then(
      () => {
        this.#bytes -= bytes;
        this.#pending.delete(tracked);
      },
      (error: unknown) => {
        this.#bytes -= bytes;
        this.#pending.delete(tracked);
        this.#failure ??= { error };
        throw error;
      },
    );
    tracked.catch(() => {}); // the failure is kept above; whoever awaits this one sees it too
    this.#pending.add(tracked);
    return tracked;
  }

  /** Waits until nothing is in flight any more, whatever the outcomes. */
  async settle(): Promise<void> {
    await Promise.allSettled([...this.#pending]);
  }
}
