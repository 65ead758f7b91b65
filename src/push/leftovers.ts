/**
 * Chunk sets and half-joined files on a vessel of versions that no longer exist (a transfer
 * cancelled, a file gone or changed): recorded in the state store when they are left, removed
 * when a connection is up. Best effort, one pass at a time; leftovers recorded during a pass (a
 * transfer that has just stopped writing) get a pass of their own after it.
 */
import type { StateStore } from '../state/store.js';
import type { RemoteFs } from '../ssh/remote-fs.js';
import { removeLeftoversScript } from './upload/join.js';

export class LeftoverRemover {
  readonly #vessel: string;
  readonly #store: StateStore;
  #removing = false;
  #again = false;

  constructor(vessel: string, store: StateStore) {
    this.#vessel = vessel;
    this.#store = store;
  }

  /** Removes every recorded leftover over `connection`; it never throws. */
  async removeOver(connection: RemoteFs & { readonly closed: boolean }): Promise<void> {
    if (this.#removing) {
      this.#again = true;
      return;
    }
    this.#removing = true;
    try {
      do {
        this.#again = false;
        for (const l of this.#store.leftovers(this.#vessel)) {
          if (connection.closed) return;
          const r = await connection.exec(removeLeftoversScript(l.chunkPrefix, l.assemblyPrefix));
          if (r.code === 0) this.#store.deleteLeftover(l);
        }
      } while (this.#again);
    } catch {
      // the next connection tries again
    } finally {
      this.#removing = false;
    }
  }
}
