/**
 * Nothing is written to a vessel before its commands are proven to run (see commands-probe)
 * and its RemoteLocations are proven not to be the shore's own Locations (see same-storage):
 * once per vessel, on the first connection, and again after a refusal; lanes connecting at the
 * same time wait for that one proof. Each connection then checks small files the way the
 * vessel's sha256sum allows.
 */
import { VesselRefusedError, describe } from '../errors.js';
import type { Logger } from '../log.js';
import type { SftpConnection } from '../ssh/connection.js';
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

  constructor(vessel: string, log: Logger, storagePairs: () => StoragePair[]) {
    this.#vessel = vessel;
    this.#log = log;
    this.#storagePairs = storagePairs;
  }

  /** The vessel was refused: it may have been fixed (or broken) when it is tried again. */
  forget(): void {
    this.#commands = undefined;
  }

  /** Proves the vessel (once) and sets `connection` up to check small files; a connection that fails it is dropped. */
  async prove(connection: SftpConnection): Promise<void> {
    try {
      const proof = await this.#proof(connection);
      if (proof.checker === 'batch') checkByDigests(connection);
    } catch (err) {
      connection.disconnect(`cannot use: ${describe(err)}`);
      throw err;
    }
  }

  async #proof(connection: SftpConnection): Promise<CommandsProof> {
    for (;;) {
      if (this.#commands) return this.#commands;
      const mine = this.#proving === undefined;
      const proving = this.#proving ??= proveCommands(connection, this.#vessel).then(async (proof) => {
        const unknown = await proveSeparateStorage(connection, this.#vessel, this.#storagePairs());
        for (const u of unknown) {
          this.#log.warn({ directory: u.pair.directory, err: u.reason }, 'cannot tell whether RemoteLocation is the shore\'s own Location; sending anyway');
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
