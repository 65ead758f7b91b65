/**
 * Names of partially downloaded files. A file is written beside its final name under a hidden
 * partial name and renamed when complete, so a reader of LOCAL_PATH never sees half a file.
 * The name carries the remote file's size and mtime: an interrupted download resumes only
 * into a partial of the same remote version, and a partial of an older version is discarded
 * instead of being completed with the new version's bytes.
 */
import { createHash } from 'node:crypto';

const SUFFIX = '.cm-partial';
// Linux allows 255 bytes per name.
const NAME_MAX = 255;

export function partialName(name: string, size: number, mtime: number): string {
  const plain = `.${name}.${size}.${Math.trunc(mtime)}${SUFFIX}`;
  if (Buffer.byteLength(plain) <= NAME_MAX) return plain;
  // A long name would not fit: name the partial by a hash of the name instead.
  const digest = createHash('sha256').update(name).digest('hex').slice(0, 32);
  return `.${digest}.${size}.${Math.trunc(mtime)}${SUFFIX}`;
}

export function isPartialName(name: string): boolean {
  return name.startsWith('.') && name.endsWith(SUFFIX);
}
