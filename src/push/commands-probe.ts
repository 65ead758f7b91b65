/**
 * Before anything is written to a vessel: can it run commands, as sh? Everything after the
 * upload (joining chunks, checking digests, placing a file) is a remote command, so a vessel
 * that cannot run them would only collect hidden leftovers. The answer must carry a token that
 * only a shell running the probe can print: an exit code proves nothing (an SFTP-only account
 * may run its SFTP server instead, a wrapper may exit 0 without running anything).
 */
import { randomBytes } from 'node:crypto';
import { CommandsRefusedError } from '../errors.js';
import type { RemoteFs } from '../ssh/remote-fs.js';
import { commandsProbeScript, parseCommandsProbe, type CheckerKind } from './upload/probes.js';
import { oneLine } from '../one-line.js';

export interface CommandsProof {
  /** How small files are checked on this vessel: one `sha256sum -c` per connection, or batched digests. */
  checker: CheckerKind;
}

/** Resolves with what the vessel's commands can do; rejects with CommandsRefusedError when they do not run. */
export async function proveCommands(remote: RemoteFs, vessel: string): Promise<CommandsProof> {
  const token = randomBytes(8).toString('hex');
  const r = await remote.exec(commandsProbeScript(token));
  const proof = parseCommandsProbe(r.stdout, token);
  if (proof) return proof;
  const said = oneLine(r.stderr);
  throw new CommandsRefusedError(
    `vessel ${vessel} cannot run commands: a test command ended (exit ${r.code ?? r.signal}) without its answer${said ? ` (it said: ${said})` : ''}; an SFTP-only account such as ForceCommand internal-sftp, or a wrapper or login shell that runs something else, does this; contentmonster needs sh, cat and sha256sum there to join and verify files`,
    { vessel },
  );
}
