/**
 * How a connection ends, for both kinds (ssh/connection.ts on this thread, the stand-in of
 * ssh/threaded-connection.ts for one in an SSH thread): once, with one reason, which every
 * listener hears exactly once, also one that comes after the end.
 */
export class ConnectionEnd {
  #reason: Error | undefined;
  readonly #listeners = new Set<(err: Error) => void>();

  /** Why the connection ended; undefined while it lives. */
  get reason(): Error | undefined {
    return this.#reason;
  }

  /** Calls `listener` once with the reason when the connection ends (at once if it has); returns the unsubscribe. */
  listen(listener: (err: Error) => void): () => void {
    if (this.#reason) {
      listener(this.#reason);
      return () => {};
    }
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Ends the connection with `err`: `teardown` first, then every listener. False, and nothing
   * done, when it had ended already.
   */
  end(err: Error, teardown?: () => void): boolean {
    if (this.#reason) return false;
    this.#reason = err;
    teardown?.();
    for (const l of this.#listeners) l(err);
    this.#listeners.clear();
    return true;
  }
}
