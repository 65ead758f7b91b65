/**
 * Nothing is written to a vessel before its commands are proven to run (see commands-probe)
 * and the RemoteLocation a file goes to is proven not to be the shore's own Location (see
 * same-storage). The commands are proven once per vessel, on the first connection, and again
 * after a refusal; lanes connecting at the same time wait for that one proof. Each connection
 * then checks small files the way the vessel's sha256sum allows.
 *
 * Storage is proven per Directory: every Directory at the first connection, in one round trip;
 * a Directory that could not be looked at then (its Location missing, say) is proven before its
 * first file starts, and a Location the daemon takes up later (made, or mounted, after the
 * start) is proven again before its files go out. A Directory that cannot be proven is never
 * sent: a share mounted late that is also the vessel's RemoteLocation would otherwise see its
 * files "confirmed" and moved to processed/ with no copy anywhere.
 */
import { FileError, VesselRefusedError, describe } from '../errors.js';
import type { Logger } from '../log.js';
import type { VesselConnection } from '../ssh/remote-fs.js';
import { shownPath } from '../one-line.js';
import { proveCommands, type CommandsProof } from './commands-probe.js';
import { proveSeparateStorage, type StoragePair } from './same-storage.js';
import { checkByDigests } from './upload/remote-check.js';

export class VesselProof {
  readonly #vessel: string;
  readonly #log: Logger;
  readonly #storagePairs: () => StoragePair[];
  /** What the vessel's commands can do, proven on the first connection (again after a refusal). */
  #commands: CommandsProof | undefined;
  #proving: Promise<CommandsProof> | undefined;
  /** Directories whose RemoteLocation on this vessel is proven not to be their Location. */
  readonly #separate = new Set<string>();
  /** Directory -> its proof under way, which the lanes starting its files share. */
  readonly #provingDirectory = new Map<string, Promise<void>>();

  constructor(vessel: string, log: Logger, storagePairs: () => StoragePair[]) {
    this.#vessel = vessel;
    this.#log = log;
    this.#storagePairs = storagePairs;
  }

  /** The vessel was refused: it may have been fixed (or broken) when it is tried again. */
  forget(): void {
    this.#commands = undefined;
    this.#separate.clear();
  }

  /** A Location was taken up (again): what it is now is proven before its next file goes out. */
  forgetDirectory(directory: string): void {
    this.#separate.delete(directory);
  }

  /** Whether files of `directory` may start without asking the vessel first. */
  isProven(directory: string): boolean {
    return this.#separate.has(directory);
  }

  /** Proves the vessel (once) and sets `connection` up to check small files; a connection that fails it is dropped. */
  async prove(connection: VesselConnection): Promise<void> {
    try {
      const proof = await this.#proof(connection);
      if (proof.checker === 'batch') checkByDigests(connection);
    } catch (err) {
      connection.disconnect(`cannot use: ${describe(err)}`);
      throw err;
    }
  }

  /**
   * Before a file of `directory` starts: resolves once its RemoteLocation is proven not to be
   * its Location; rejects with SameStorageError (the vessel is refused) when it is, and with a
   * FileError (the file waits, counted) when it cannot be told.
   */
  async proveDirectory(connection: VesselConnection, directory: string): Promise<void> {
    if (this.#separate.has(directory)) return;
    let proving = this.#provingDirectory.get(directory);
    if (!proving) {
      proving = this.#proveOne(connection, directory).finally(() => this.#provingDirectory.delete(directory));
      this.#provingDirectory.set(directory, proving);
    }
    await proving;
  }

  async #proveOne(connection: VesselConnection, directory: string): Promise<void> {
    const pair = this.#storagePairs().find((p) => p.directory === directory);
    if (!pair) throw new FileError(`[Directory ${directory}] is not sent to vessel ${this.#vessel}`);
    const unknown = await this.#proveStorage(connection, [pair]);
    if (unknown.length > 0) {
      throw new FileError(`cannot tell whether RemoteLocation ${shownPath(pair.remoteLocation)} of [Directory ${directory}] is the shore's own Location, so nothing of it is sent: ${unknown[0].reason}`);
    }
  }

  /**
   * Looks at `pairs` in one round trip: refuses the vessel when any is the shore's own storage,
   * records the others as proven, and returns those that could not be looked at.
   */
  async #proveStorage(connection: VesselConnection, pairs: readonly StoragePair[]) {
    const unknown = await proveSeparateStorage(connection, this.#vessel, pairs);
    for (const p of pairs) if (!unknown.some((u) => u.pair === p)) this.#separate.add(p.directory);
    return unknown;
  }

  async #proof(connection: VesselConnection): Promise<CommandsProof> {
    for (;;) {
      if (this.#commands) return this.#commands;
      const mine = this.#proving === undefined;
      const proving = this.#proving ??= proveCommands(connection, this.#vessel).then(async (proof) => {
        const unknown = await this.#proveStorage(connection, this.#storagePairs());
        for (const u of unknown) {
          this.#log.debug({ directory: u.pair.directory, err: u.reason }, 'RemoteLocation not proven yet; it is before the first file of its Directory goes out');
        }
        this.#commands = proof;
        this.#log.debug({ checker: proof.checker }, proof.checker === 'line'
          ? 'commands run; small files are checked by one sha256sum -c per connection'
          : 'commands run; sha256sum answers only at the end of its input (busybox?), so small files are checked by batched digests');
        return proof;
      }).finally(() => {
        if (this.#proving === proving) this.#proving = undefined;
      });
      try {
        return await proving;
      } catch (err) {
        // Another lane's connection failed while it asked: ask again on this one.
        if (mine || err instanceof VesselRefusedError) throw err;
      }
    }
  }
}
