/** Which SHA-256 tool the large files of each connection are hashed with, from one probe per connection. */
import type { RemoteFs } from '../../ssh/remote-fs.js';
import { FAST_HASHER_MIN_BYTES, type HasherName } from './hasher.js';
import { hasherProbeScript, parseHasherProbe } from './probes.js';

/**
 * The SHA-256 tool for large files on this connection, probed once (by its own small command)
 * instead of inside every join: the probe runs openssl, and a process start is milliseconds
 * of the vessel's CPU per file. Never waited for: on a link with a 600 ms round trip the probe
 * takes three of them, so a file that comes before its answer lets its own script choose.
 * Undefined for smaller files, before the answer, or when the probe found nothing (then each
 * script probes, and says what is missing).
 */
const largeHashers = new WeakMap<RemoteFs, { probe: Promise<void>; found?: HasherName }>();

export function largeFileHasher(remote: RemoteFs, size: number): HasherName | undefined {
  if (size < FAST_HASHER_MIN_BYTES) return undefined;
  let known = largeHashers.get(remote);
  if (!known) {
    const entry: { probe: Promise<void>; found?: HasherName } = { probe: Promise.resolve() };
    entry.probe = remote.exec(hasherProbeScript()).then((r) => {
      entry.found = r.code === 0 ? parseHasherProbe(r.stdout) : undefined;
      if (!entry.found && largeHashers.get(remote) === entry) largeHashers.delete(remote);
    }, () => {
      if (largeHashers.get(remote) === entry) largeHashers.delete(remote);
    });
    largeHashers.set(remote, known = entry);
  }
  return known.found;
}

/** After a hashing failure: the next file probes again (a tool may have gone since). */
export function forgetHasher(remote: RemoteFs): void {
  largeHashers.delete(remote);
}
