/**
 * The join: the remote half of a large file's delivery (joinScript), the exit code of each of
 * its steps, the lines it prints for the shore (parsePlaced, parseFree), and the removal of
 * what it leaves behind when it does not finish. POSIX sh, every path quoted (ssh/quote.ts),
 * like every vessel script.
 */
import { quote } from '../../ssh/quote.js';
import { ATTRS_FAILED, setAttrsFunction } from './file-attrs.js';
import { FAST_HASHER_MIN_BYTES, pickHasher, type HasherName } from './hasher.js';

/** Exit codes of the join script, one per step, so the shore can say which step failed. */
export const AssembleExit = {
  mkdir: 10,
  join: 11,
  hash: 12,
  mismatch: 13,
  destinationIsDirectory: 14,
  rename: 15,
  /** The shore went away (stdin ended) before it said the file was complete. */
  incomplete: 16,
  /** A chunk the shore said was complete is not in TempDir (a reboot emptied a tmpfs TempDir). */
  vanished: 17,
} as const;

export interface JoinPlan {
  /** Chunk paths are `${chunkPrefix}.${index}`. */
  chunkPrefix: string;
  /**
   * Hidden name beside the destination (same directory, so the final rename is atomic). The
   * file is `${assemblyPrefix}.<pid>.tmp`: unique per attempt, so a join still running on the
   * vessel after the daemon was killed never shares its file with the next attempt's.
   */
  assemblyPrefix: string;
  destination: string;
  /** The file's size: large files are hashed with the faster tool (default: small). */
  size?: number;
  /** For a large file: the tool this connection's probe chose (else the script probes). */
  hasher?: HasherName;
}

/**
 * The remote half of a delivery, started before the first chunk is sent and fed on stdin: a
 * line with a chunk's index once that chunk is complete on the vessel, then
 * `end <sha256> <mode> <stamp>` (the shore's attributes as attrsWords gives them; a plain
 * `end <sha256>` sets none). Each chunk is read once by `tee`, which appends it to a hidden
 * file beside the destination and passes it on to `$hasher`, so joining and verifying go on
 * during the upload, in one pass, and only the last chunk is left at the end. Then the size
 * and SHA-256 are checked, the shore's modification time and mode are set on the hidden file,
 * and it is renamed into place (rename(2) within one directory is atomic and replaces an older
 * file), so it never appears with other ones; a vessel that refuses them gets the file anyway,
 * and the line ATTRS_FAILED after the result line says so. The hidden file is written under
 * `umask 077`: until its mode is set, only the vessel user can read it. The chunks are
 * removed only after that, so a crash at any point leaves either the chunks or the finished
 * file. If stdin ends without `end` (the shore went away), the half-joined file is removed and
 * nothing is placed.
 *
 * (`tee -a < chunk` rather than `cat chunk | tee`: one pipe fewer saves a third of the
 * vessel's CPU for the join, and 512 MiB went from 4.8 s to 3.8 s end to end here.)
 *
 * A plain `sh` has no pipefail, so each stage of the pipeline reports its own failure into
 * `$tmp.st`; the end line goes to `$tmp.end` and the digest to `$tmp.h`.
 */
export function joinScript(p: JoinPlan): string {
  const dir = p.destination.slice(0, p.destination.lastIndexOf('/')) || '/';
  const prefix = quote(p.chunkPrefix);
  const dest = quote(p.destination);
  const e = AssembleExit;
  const cleanup = 'rm -f -- "$tmp" "$tmp.st" "$tmp.h" "$tmp.end"';
  // Every process costs the vessel milliseconds per file: tests and reads are shell builtins
  // where they can be, and one rm does all the removing.
  return [
    `tmp=${quote(p.assemblyPrefix)}.$$.tmp`,
    `[ -d ${quote(dir)} ] || mkdir -p -- ${quote(dir)} || exit ${e.mkdir}`,
    // Folders get the vessel's usual umask (above); the file's content is the vessel user's
    // alone until the shore's mode is set on it.
    'umask 077',
    pickHasher(e.hash, (p.size ?? 0) >= FAST_HASHER_MIN_BYTES, p.hasher),
    `: > "$tmp.st" && : > "$tmp" || exit ${e.join}`,
    `{`,
    `  while IFS= read -r line; do`,
    `    case $line in`,
    `      'end '*) printf '%s\n' "$line" > "$tmp.end"; break ;;`,
    `      ''|*[!0-9]*) echo "protocol: $line" >> "$tmp.st"; break ;;`,
    `      *) [ -f ${prefix}."$line" ] || { echo vanished >> "$tmp.st"; break; }`,
    `         tee -a -- "$tmp" < ${prefix}."$line" || { echo join >> "$tmp.st"; break; } ;;`,
    `    esac`,
    `  done`,
    `} | { $hasher > "$tmp.h" || echo hash >> "$tmp.st"; }`,
    `read -r failed < "$tmp.st"`,
    // A failed step says how much room is left where it wrote (the last line of `df -P`:
    // size, used, available in KiB), so that the shore can tell a full disk from anything else
    // without reading an error message.
    `case $failed in`,
    `  vanished) ${cleanup}; exit ${e.vanished} ;;`,
    `  hash) ${cleanup}; printf 'free %s\\n' "$(df -P -k -- ${quote(dir)} | tail -n 1)"; exit ${e.hash} ;;`,
    `  ?*) ${cleanup}; printf 'free %s\\n' "$(df -P -k -- ${quote(dir)} | tail -n 1)"; exit ${e.join} ;;`,
    `esac`,
    `if [ ! -e "$tmp.end" ]; then ${cleanup}; exit ${e.incomplete}; fi`,
    // The digest is of the stream tee copied; tee reported any short write into $tmp.st above,
    // so a matching digest means the file holds exactly the shore's bytes.
    `read -r _ sha mode stamp _ < "$tmp.end"`,
    `read -r h _ < "$tmp.h"`,
    `if [ "$h" != "$sha" ]; then ${cleanup}; printf 'mismatch %s\\n' "$h"; exit ${e.mismatch}; fi`,
    `if [ -d ${dest} ]; then ${cleanup}; exit ${e.destinationIsDirectory}; fi`,
    // Its size is taken while it is still the vessel user's to read: the shore's mode may not
    // let its owner read it (0200), and the same file is renamed into place.
    'size=$(wc -c < "$tmp")',
    setAttrsFunction,
    'attrs=ok; setattrs "$tmp" "$stamp" "$mode"',
    `mv -f -- "$tmp" ${dest} || { ${cleanup}; exit ${e.rename}; }`,
    // With the chunks go the half-joined files of earlier attempts whose connection was cut
    // without the vessel noticing: their joiners may wait for input for hours.
    `rm -f -- "$tmp.st" "$tmp.h" "$tmp.end" ${prefix}.[0-9]* ${quote(p.assemblyPrefix)}.[0-9]*.tmp`,
    // The proof the shore requires: the digest of what was placed and its size. An exit code
    // alone proves nothing (fish exits 0 on a syntax error; a wrapper may run nothing at all).
    `printf 'placed %s %s\\n' "$h" $size`,
    `[ "$attrs" = ok ] || echo ${ATTRS_FAILED}`,
  ].join('\n');
}

/** The result line of joinScript for a placed file: its SHA-256 and size, as the vessel saw them. */
export function parsePlaced(stdout: string): { sha256: string; size: number } | undefined {
  const m = /^placed ([0-9a-f]{64}) (\d+)$/m.exec(stdout);
  return m ? { sha256: m[1], size: Number(m[2]) } : undefined;
}

/** `free <df -P line>` that a failed join prints: the KiB available where it wrote, if it said. */
export function parseFree(stdout: string): number | undefined {
  const m = /^free \S+\s+\d+\s+\d+\s+(\d+)/m.exec(stdout);
  return m ? Number(m[1]) : undefined;
}

/** Removes every chunk of one file version. Only the fixed hex suffix is globbed. */
export function removeChunksCommand(chunkPrefix: string): string {
  return `rm -f -- ${quote(chunkPrefix)}.[0-9]*`;
}

/** Removes a file version's leftovers: its chunks and a half-assembled file. */
export function removeLeftoversScript(chunkPrefix: string, assemblyPrefix: string): string {
  return `${removeChunksCommand(chunkPrefix)}; rm -f -- ${quote(assemblyPrefix)}.*.tmp`;
}
