/**
 * Host-key trust: a pinned fingerprint (`HostKey`) wins; otherwise the first key seen is
 * recorded (in the state database, so the service user needs no ~/.ssh) and any later change
 * refuses the vessel, naming both fingerprints.
 */
import { createHash } from 'node:crypto';

export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

export interface HostKeyRecords {
  hostKey(host: string): string | undefined;
  recordHostKey(host: string, fingerprint: string): void;
}

export type HostKeyVerdict =
  | { ok: true; firstUse: boolean }
  | { ok: false; reason: string };

export function judgeHostKey(
  vessel: string, host: string, seen: string, pinned: string | undefined, records: HostKeyRecords,
): HostKeyVerdict {
  if (pinned) {
    return seen === pinned
      ? { ok: true, firstUse: false }
      : { ok: false, reason: `host key of vessel ${vessel} (${host}) is ${seen}, but HostKey pins ${pinned}; refusing to connect` };
  }
  const known = records.hostKey(host);
  if (known === undefined) {
    records.recordHostKey(host, seen);
    return { ok: true, firstUse: true };
  }
  return known === seen
    ? { ok: true, firstUse: false }
    : { ok: false, reason: `host key of vessel ${vessel} (${host}) changed: recorded ${known}, now offered ${seen}; refusing to connect (if the change is expected, pin the new key with HostKey = ${seen})` };
}
