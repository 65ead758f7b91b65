/**
 * Is a vessel's RemoteLocation the shore's own Location? With `Address = 127.0.0.1` and the
 * default RemoteLocation (the Location itself), or a share that both sides mount, the "vessel
 * copy" of every file is the shore file itself: a large one is found "already on the vessel"
 * and confirmed, then moved to processed/, and the only copy has left; a small one is rewritten
 * in place and looks changed forever. No path comparison can tell (other host names, mounts,
 * symlinks, bind mounts, NFS): what both sides see can. A marker file with a random name is
 * created in each Location and looked for in the RemoteLocation over SFTP; all markers are
 * asked for in one round trip, and removed whatever happens.
 *
 * The marker, `.cm-same-<32 hex>` at the top of the Location, lives for that round trip. The
 * default Ignore globs leave it out, and the replicator never replicates such a name whatever
 * Ignore says (see isStorageMarker).
 */
import { randomBytes } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { VesselRefusedError } from '../errors.js';
import type { RemoteFs } from '../ssh/remote-fs.js';
import { isSftpStatus } from '../ssh/sftp-errors.js';
import { shownPath } from '../one-line.js';

/** A Directory as one vessel receives it. */
export interface StoragePair {
  directory: string;
  /** On the shore. */
  location: string;
  /** On the vessel. */
  remoteLocation: string;
}

/** The vessel is the shore's own storage for at least one Directory: nothing may be sent or confirmed. */
export class SameStorageError extends VesselRefusedError {}

export interface StorageFindings {
  /** The Directories whose RemoteLocation is their own Location on this vessel. */
  same: StoragePair[];
  /** The Directories that could not be looked at (no marker could be created on the shore), with why. */
  unknown: { pair: StoragePair; reason: string }[];
}

const MARKER = /^\.cm-same-[0-9a-f]{32}$/;

/** Whether a base name is a marker of this probe (never replicated). */
export function isStorageMarker(baseName: string): boolean {
  return MARKER.test(baseName);
}

/** Looks for each pair's marker on the vessel. Rejects only when the connection fails. */
export async function findSameStorage(remote: RemoteFs, pairs: readonly StoragePair[]): Promise<StorageFindings> {
  const findings: StorageFindings = { same: [], unknown: [] };
  const placed: { pair: StoragePair; local: string; remote: string; size: number }[] = [];
  try {
    for (const pair of pairs) {
      const name = `.cm-same-${randomBytes(16).toString('hex')}`;
      const content = `${name}\n`;
      const local = join(pair.location, name);
      try {
        // Synchronous, as every look at the shore (see shore-fs.ts); `wx`: never an existing file.
        writeFileSync(local, content, { flag: 'wx', mode: 0o644 });
      } catch (err) {
        findings.unknown.push({ pair, reason: `cannot create a marker in ${pair.location}: ${(err as Error).message}` });
        continue;
      }
      placed.push({ pair, local, remote: posix.join(pair.remoteLocation, name), size: Buffer.byteLength(content) });
    }
    // All in one round trip. A RemoteLocation that does not exist yet, or that the vessel user
    // may not look into, is not the shore's.
    const seen = await Promise.all(placed.map((m) => remote.stat(m.remote).catch((err: unknown) => {
      if (isSftpStatus(err)) return null;
      throw err;
    })));
    placed.forEach((m, i) => {
      const st = seen[i];
      if (st?.isFile && st.size === m.size) findings.same.push(m.pair);
    });
  } finally {
    for (const m of placed) rmSync(m.local, { force: true });
  }
  return findings;
}

/**
 * The line that says it, for the log (`vessel` given) or for `check` (which names the vessel
 * itself): one clause per Directory.
 */
export function sameStorageMessage(same: readonly StoragePair[], vessel?: string): string {
  const on = vessel === undefined ? '' : ` on vessel ${vessel}`;
  const what = same.map((p) => `RemoteLocation ${shownPath(p.remoteLocation)} of [Directory ${p.directory}]${on} is the shore's own Location ${shownPath(p.location)}`).join('; ');
  return `${what} (the same storage: this host, or a share both see): refused, nothing is sent, confirmed or moved`;
}

/**
 * The same-storage part of `check`'s REMOTELOCATIONS step: a problem line (without the vessel's
 * name, which `check` prints itself) for a RemoteLocation that is the shore's own Location, a
 * note for one that cannot be told. The markers on the shore live for one round trip.
 */
export async function sameStorageStep(
  remote: RemoteFs, received: readonly { name: string; location: string; remoteLocation: string }[],
): Promise<{ state: 'ok' | 'fail'; problems: string[]; notes: string[] }> {
  let findings: StorageFindings;
  try {
    findings = await findSameStorage(remote, received.map((d) => ({ directory: d.name, location: d.location, remoteLocation: d.remoteLocation })));
  } catch (err) {
    return { state: 'fail', problems: [`cannot tell whether a RemoteLocation is the shore's own Location: ${(err as Error).message}`], notes: [] };
  }
  const notes = findings.unknown.map((u) => `cannot tell whether RemoteLocation ${shownPath(u.pair.remoteLocation)} of [Directory ${u.pair.directory}] is the shore's own Location: ${u.reason}`);
  if (findings.same.length === 0) return { state: 'ok', problems: [], notes };
  return { state: 'fail', problems: [sameStorageMessage(findings.same)], notes };
}

/** Refuses the vessel (SameStorageError) when any RemoteLocation is the shore's own Location; resolves with what could not be told. */
export async function proveSeparateStorage(remote: RemoteFs, vessel: string, pairs: readonly StoragePair[]): Promise<StorageFindings['unknown']> {
  const findings = await findSameStorage(remote, pairs);
  if (findings.same.length > 0) throw new SameStorageError(sameStorageMessage(findings.same, vessel), { vessel });
  return findings.unknown;
}
