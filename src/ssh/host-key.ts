/**
 * Host-key trust: a pinned fingerprint (`HostKey`) wins; otherwise the first key seen is
 * recorded (in the state database, so the service user needs no ~/.ssh) and any later change
 * refuses the vessel, naming both fingerprints.
 */
import { createHash } from 'node:crypto';

export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash('sha256').update(key).digest('base64').replace(/=+$/, '')}`;
}

// 32 bytes in unpadded base64: 43 characters, the last one carrying 4 bits (so only 16 letters).
const fingerprintPattern = /^SHA256:[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=?$/;
export const fingerprintExpected = 'expected `SHA256:` followed by 43 base64 characters, as `ssh-keygen -lf` prints';

/** A pinned fingerprint as an operator writes it, normalized; undefined if it is not one. */
export function parseFingerprint(value: string): string | undefined {
  return fingerprintPattern.test(value) ? value.replace(/=$/, '') : undefined;
}

export interface HostKeyRecords {
  hostKey(host: string): string | undefined;
  recordHostKey(host: string, fingerprint: string): void;
}

export type HostKeyVerdict =
  | { ok: true; firstUse: boolean }
  | { ok: false; reason: string };

/**
 * `label` names the peer in messages ("vessel v1", "server example.com"); `pinSetting` is how
 * the operator pins a key there ("HostKey =" in settings.ini, "--host-key" on the command line).
 */
export function judgeHostKey(
  label: string, host: string, seen: string, pinned: string | undefined, records: HostKeyRecords,
  pinSetting = 'HostKey =',
): HostKeyVerdict {
  if (pinned) {
    return seen === pinned
      ? { ok: true, firstUse: false }
      : { ok: false, reason: `host key of ${label} (${host}) is ${seen}, but ${pinSetting.replace(/ =$/, '')} pins ${pinned}; refusing to connect` };
  }
  const known = records.hostKey(host);
  if (known === undefined) {
    records.recordHostKey(host, seen);
    return { ok: true, firstUse: true };
  }
  return known === seen
    ? { ok: true, firstUse: false }
    : { ok: false, reason: `host key of ${label} (${host}) changed: recorded ${known}, now offered ${seen}; refusing to connect (if the change is expected, pin the new key with ${pinSetting} ${seen})` };
}

/** An `onHostKey` for a connection that records keys: says so when it records a new one. */
export function logFirstUse(log: { info(obj: object, msg: string): void }): (fingerprint: string, verdict: HostKeyVerdict) => void {
  return (fingerprint, verdict) => {
    if (verdict.ok && verdict.firstUse) log.info({ fingerprint }, 'host key seen for the first time; recorded');
  };
}
