/**
 * How much one vessel has in flight, adapted to how long its connections live.
 *
 * Everything a vessel acknowledged stays there and is resumed from, so a short connection
 * loses little. What it does cost: work spread over many files finishes none of them before the
 * drop (nothing gets placed, and every file in flight pays its questions again on the next
 * connection), and an SFTP write request cut in half is lost whole. So:
 *
 * - files in flight: halved after each connection that drops with transfers in flight (down to
 *   one, then one file goes at a time, chunk by chunk), and one more for each file delivered
 *   (it doubles per round of deliveries as long as connections survive them);
 * - joins: a large file is joined on the vessel while it goes up only where connections last
 *   long enough to send the rest of it (see deliverLargeFile: a cut joiner lingers);
 * - write size: a sixteenth of what connections carry before they drop, and a quarter of what
 *   the connection in use has carried so far (between 32 KiB and the server's limit), so a cut
 *   wastes a small part of a connection's work. The estimate grows again as soon as a
 *   connection carries more;
 * - bytes in flight per transfer: a quarter of what connections carry before they drop
 *   (between 128 KiB and the 2 MiB of a healthy link), so that the answers to the first writes
 *   come back before the link dies: a sender that put a connection's whole lifetime on the wire
 *   at once would have none of it acknowledged, and no connection would move the file forward.
 *   (Reading the shore file a block at a time puts a window on the wire in one go; an
 *   asynchronous read per request used to pace it, by chance.)
 */
import { DEFAULT_WINDOW } from './upload/sftp-writes.js';

export const MIN_PIECE = 32 * 1024;
/** Bytes in flight per transfer, at least (see above); at most DEFAULT_WINDOW. */
export const MIN_WINDOW = 128 * 1024;
/** Write requests per connection lifetime, at least (see above). */
const PIECES_PER_LIFETIME = 16;
/** Weight of the newest lifetime in the running estimate. */
const LIFETIME_WEIGHT = 0.5;

export class FlightControl {
  readonly max: number;
  #files: number;
  /** Bytes a connection carries before it drops, as far as drops have shown (undefined: none seen). */
  #lifetime: number | undefined;

  constructor(maxFiles: number) {
    if (!Number.isSafeInteger(maxFiles) || maxFiles < 1) throw new RangeError(`Expected maxFiles to be a whole number >= 1, got ${maxFiles}`);
    this.max = maxFiles;
    this.#files = maxFiles;
  }

  /** Files that may be in flight now. */
  get files(): number {
    return this.#files;
  }

  /** A connection dropped with transfers in flight, after carrying `bytes`. */
  dropped(bytes: number): void {
    this.#lifetime = this.#lifetime === undefined ? bytes : LIFETIME_WEIGHT * bytes + (1 - LIFETIME_WEIGHT) * this.#lifetime;
    this.#files = Math.max(1, Math.floor(this.#files / 2));
  }

  /** A connection has carried `bytes` so far: a link that got better is believed at once. */
  carried(bytes: number): void {
    if (this.#lifetime !== undefined && bytes > this.#lifetime) this.#lifetime = bytes;
  }

  delivered(): void {
    this.#files = Math.min(this.max, this.#files + 1);
  }

  /**
   * Whether a connection can be expected to carry `bytes` more before it drops: with no drop
   * seen, or drops after twice that on average.
   */
  lasts(bytes: number): boolean {
    return this.#lifetime === undefined || this.#lifetime >= 2 * bytes;
  }

  /** Bytes of writes a transfer may have in flight now (see above). */
  window(): number {
    if (this.#lifetime === undefined) return DEFAULT_WINDOW;
    return Math.min(DEFAULT_WINDOW, Math.max(MIN_WINDOW, Math.floor(this.#lifetime / 4)));
  }

  /**
   * The largest write request worth sending on a connection that has carried `carried` bytes
   * so far, given the server's `limit`. A connection proves itself before its requests grow
   * (a quarter of what it carried): the first one, with nothing known, or the first after a long
   * good spell, loses at most a small request if it dies young.
   */
  piece(limit: number, carried: number): number {
    const proven = carried / 4;
    const fit = this.#lifetime === undefined ? Infinity : this.#lifetime / PIECES_PER_LIFETIME;
    return Math.min(limit, Math.max(MIN_PIECE, Math.floor(Math.min(proven, fit) / 1024) * 1024));
  }
}
