/**
 * Scripts that hash files already on the vessel: a destination that may hold this version
 * already, small files in batches, and the long-lived checker of small files. POSIX sh, every
 * path quoted (ssh/quote.ts).
 */
import { quote } from '../../ssh/quote.js';
import { ATTRS_FAILED, attrsWords, setAttrsFunction, type FileAttrs } from './file-attrs.js';
import { FAST_HASHER_MIN_BYTES, pickHasher, type HasherName } from './hasher.js';
import { AssembleExit, removeChunksCommand } from './join.js';

/**
 * For a destination that already has the right size: prints its SHA-256 and, if it is the
 * expected one, removes the version's chunks (a crash may have come between the rename and the
 * removal) and gives it the shore's attributes when `attrs` are given (ATTRS_FAILED on a line
 * of its own when the vessel refuses them).
 */
export function checkExistingScript(destination: string, sha256: string, chunkPrefix: string, size = 0, hasher?: HasherName, attrs?: FileAttrs): string {
  const [mode, stamp] = attrsWords(attrs);
  return [
    pickHasher(AssembleExit.hash, size >= FAST_HASHER_MIN_BYTES, hasher),
    `h=$($hasher < ${quote(destination)}) || exit ${AssembleExit.hash}`,
    `h=\${h%% *}`,
    `echo "$h"`,
    `[ "$h" = ${quote(sha256)} ] || exit 0`,
    removeChunksCommand(chunkPrefix),
    ...(attrs ? [setAttrsFunction, `attrs=ok; setattrs ${quote(destination)} ${quote(stamp)} ${quote(mode)}`, `[ "$attrs" = ok ] || echo ${ATTRS_FAILED}`] : []),
  ].join('\n');
}

/**
 * Prints the SHA-256 of each file, one line each in order (`sha256sum` output: a line starts
 * with a backslash when the name needed escaping). One process for all: these are small files.
 */
export function hashFilesScript(paths: string[]): string {
  return [
    `set -- ${paths.map(quote).join(' ')}`,
    `if command -v sha256sum >/dev/null 2>&1; then exec sha256sum -- "$@"; fi`,
    // Without sha256sum: openssl, one file at a time from stdin, so no name is printed.
    `for f; do openssl dgst -sha256 -r < "$f" || exit ${AssembleExit.hash}; done`,
  ].join('\n');
}

/**
 * A `sha256sum -c` that reads its check list (`<sha256>  <path>` lines) from stdin and answers
 * each line as it comes, `<path>: OK` or `<path>: FAILED`. coreutils line-buffers those answers
 * since 8.27; `stdbuf` makes sure of it on older ones. Untranslated, since they are parsed.
 */
export const lineCheckerCommand = [
  'if command -v stdbuf >/dev/null 2>&1; then exec stdbuf -oL sha256sum -c -; fi',
  'exec sha256sum -c -',
].join('\n');

