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
  /**
   * The file's size: large files are hashed with the faster tool (default: small), and the
   * joined file must have it before it is placed (unchecked when not given).
   */
  size?: number;
  /** For a large file: the tool this connection's probe chose (else the script probes). */
  hasher?: HasherName;
  /**
   * The size of every chunk but the last (the setting ChunkSize): how many chunks one `cat`
   * joins (see joinBatch). Required: without it the batch could not be held to
   * JOIN_BATCH_BYTES, and what is left to join after the end line would grow with ChunkSize.
   */
  chunkSize: number;
}

/** About this many bytes of chunks are joined by one `cat` (see joinScript). */
export const JOIN_BATCH_BYTES = 40 * 1024 * 1024;
/**
 * At most this many bytes of chunk paths on one `cat`'s command line. Far below any ARG_MAX a
 * vessel may have (Linux allows 128 KiB at the least, environment included): a tiny ChunkSize
 * with a long TempDir must not make every join fail with E2BIG.
 */
export const JOIN_BATCH_ARG_BYTES = 32 * 1024;
/** At most this many chunks per `cat`, however small they are. */
export const JOIN_BATCH_MAX_CHUNKS = 1000;

/**
 * How many chunks one `cat` joins: JOIN_BATCH_BYTES of them, at least one, at most
 * JOIN_BATCH_MAX_CHUNKS and as many as fit in JOIN_BATCH_ARG_BYTES of arguments. The vessel's
 * CPU and the work left after the end line depend on it, never what is placed: the joined file
 * is checked whole (see joinScript).
 */
export function joinBatch(chunkSize: number, chunkPrefix: string): number {
  // Each argument: the prefix, `.`, an index (16 digits cover any safe integer) and its NUL.
  const argBytes = Buffer.byteLength(chunkPrefix) + 18;
  const bySize = chunkSize > 0 ? Math.floor(JOIN_BATCH_BYTES / chunkSize) : JOIN_BATCH_MAX_CHUNKS;
  return Math.max(1, Math.min(JOIN_BATCH_MAX_CHUNKS, bySize, Math.floor(JOIN_BATCH_ARG_BYTES / argBytes)));
}

/**
 * The remote half of a delivery, started before the first chunk is sent and fed on stdin: a
 * line with a chunk's index once that chunk is complete on the vessel, then
 * `end <sha256> <mode> <stamp>` (the shore's attributes as attrsWords gives them; a plain
 * `end <sha256>` sets none). The chunks are appended by `cat` to a hidden file beside the
 * destination as their lines come, a batch at a time (joinBatch), so only the last batch is
 * left to join at the end. Then `$hasher` reads the joined file itself, and its SHA-256 and
 * size must be the shore's; the shore's modification time and mode are set on the hidden file,
 * and it is renamed into place (rename(2) within one directory is atomic and replaces an older
 * file), so it never appears with other ones; a vessel that refuses them gets the file anyway,
 * and the line ATTRS_FAILED after the result line says so. The hidden file is written under
 * `umask 077`: until its mode is set, only the vessel user can read it. The chunks are removed
 * only after that, so a crash at any point leaves either the chunks or the finished file.
 *
 * Every attempt joins from the first chunk into a file of its own (named by its shell's pid,
 * emptied first), and the shore sends every chunk's line again on each attempt: nothing of a
 * join survives its attempt, so a cut never loses or doubles a chunk, whether it comes between
 * batches, with a batch still pending (stdin ends: that batch is never appended), or while a
 * `cat` is halfway through one (the shell waits for it, then finds stdin ended; a shell killed
 * meanwhile leaves its file to the attempt that places the file, which removes it). If stdin
 * ends without `end` (the shore went away), the half-joined file is removed and nothing is
 * placed. The digest is of the file as it is on disk, not of the bytes
 * that were written to it: a short write, a `cat` that lies, or a hidden file that was replaced
 * meanwhile cannot be placed.
 *
 * Why the file is hashed once it is whole rather than the chunks as they are joined (`tee -a
 * dest < chunk | openssl`, until issue 19): a pipe between two processes costs the vessel more
 * than the hash itself, and a process per chunk 4-5 ms of CPU (so one `cat` joins several, see
 * joinBatch). One 1 GiB file to one OpenSSH vessel, every process of the vessel counted
 * (scripts/measure-join.ts, a loaded 2-core machine, median of 6 runs each): the join's
 * processes 3.6 → 1.7 CPU-s/GiB, the whole vessel 7.4 → 5.3 (sshd and sftp-server, 3.4 of it,
 * unchanged). The price is the hash of the whole file after its last chunk is in (~1 s per GiB
 * at openssl's speed, from the page cache: the file was just written), where the pipe left only
 * the last chunk's; the wall time of the run did not grow. One shell and no pipeline: the
 * loop's findings stay in variables, no side files, and `tee` is no longer needed on a vessel.
 */
export function joinScript(p: JoinPlan): string {
  const dir = p.destination.slice(0, p.destination.lastIndexOf('/')) || '/';
  const prefix = quote(p.chunkPrefix);
  const dest = quote(p.destination);
  const e = AssembleExit;
  // A failed step says how much room is left where it wrote (the last line of `df -P`: size,
  // used, available in KiB), so that the shore can tell a full disk from anything else without
  // reading an error message.
  const free = `printf 'free %s\\n' "$(df -P -k -- ${quote(dir)} | tail -n 1)"`;
  // Compared as a string: `[ -ne ]` is not 64-bit in every shell, and files pass 2 GiB.
  const wrongSize = p.size !== undefined && Number.isSafeInteger(p.size) ? ` || [ "$size" != ${p.size} ]` : '';
  // Every process costs the vessel milliseconds per file: tests and reads are shell builtins
  // where they can be.
  return [
    `tmp=${quote(p.assemblyPrefix)}.$$.tmp`,
    `[ -d ${quote(dir)} ] || mkdir -p -- ${quote(dir)} || exit ${e.mkdir}`,
    // Folders get the vessel's usual umask (above); the file's content is the vessel user's
    // alone until the shore's mode is set on it.
    'umask 077',
    pickHasher(e.hash, (p.size ?? 0) >= FAST_HASHER_MIN_BYTES, p.hasher),
    // Emptied: a file of an earlier shell with the same pid (killed, not cleaned up) is not continued.
    `: > "$tmp" || exit ${e.join}`,
    // Chunks are joined a batch at a time, by one `cat` for each JOIN_BATCH_BYTES of them: a
    // process per chunk cost the vessel about as much as the copying itself (4-5 ms each here).
    // A chunk that is not there when its line comes, or is gone when its turn comes, vanished;
    // so did the hidden file if it is gone: another attempt at this version placed the file and
    // removed it with the chunks (a `>>` would start a new one, without the batches before).
    // `< /dev/null`: a `cat` must never read the chunk lines that follow on stdin.
    `append() { [ -f "$tmp" ] || { failed=vanished; return; }; cat -- "$@" < /dev/null >> "$tmp" && return; failed=join; for c; do [ -f "$c" ] || failed=vanished; done; }`,
    'end= failed=',
    'set --',
    `while IFS= read -r line; do`,
    `  case $line in`,
    `    'end '*) end=$line; break ;;`,
    `    ''|*[!0-9]*) failed=protocol; break ;;`,
    `    *) [ -f ${prefix}."$line" ] || { failed=vanished; break; }`,
    `       set -- "$@" ${prefix}."$line"`,
    `       if [ $# -ge ${joinBatch(p.chunkSize, p.chunkPrefix)} ]; then append "$@"; [ -z "$failed" ] || break; set --; fi ;;`,
    `  esac`,
    `done`,
    // The batch still pending is joined only once the shore said the file is complete.
    `if [ -n "$end" ] && [ -z "$failed" ] && [ $# -gt 0 ]; then append "$@"; fi`,
    `case $failed in`,
    `  vanished) rm -f -- "$tmp"; exit ${e.vanished} ;;`,
    `  ?*) rm -f -- "$tmp"; ${free}; exit ${e.join} ;;`,
    `esac`,
    `if [ -z "$end" ]; then rm -f -- "$tmp"; exit ${e.incomplete}; fi`,
    // Gone during the last `cat` (see append): whatever it wrote went nowhere.
    `[ -f "$tmp" ] || exit ${e.vanished}`,
    // The words of the end line, never their expansions: globbing off while they are split.
    'set -f; set -- $end; set +f',
    'sha=$2 mode=$3 stamp=$4',
    // The digest and size of the joined file itself: matching ones mean it holds exactly the
    // shore's bytes. The size is taken while the file is still the vessel user's to read (the
    // shore's mode may not let its owner read it: 0200); some wc pad it with blanks.
    `h=$($hasher < "$tmp") || { rm -f -- "$tmp"; ${free}; exit ${e.hash}; }`,
    'h=${h%%[!0-9a-f]*}',
    'size=$(wc -c < "$tmp"); size=${size##*[!0-9]}',
    `if [ "$h" != "$sha" ]${wrongSize}; then rm -f -- "$tmp"; printf 'mismatch %s %s\\n' "$h" "$size"; exit ${e.mismatch}; fi`,
    `if [ -d ${dest} ]; then rm -f -- "$tmp"; exit ${e.destinationIsDirectory}; fi`,
    setAttrsFunction,
    'attrs=ok; setattrs "$tmp" "$stamp" "$mode"',
    `mv -f -- "$tmp" ${dest} || { rm -f -- "$tmp"; exit ${e.rename}; }`,
    // With the chunks go the half-joined files of earlier attempts whose connection was cut
    // without the vessel noticing: their joiners may wait for input for hours.
    `rm -f -- ${prefix}.[0-9]* ${quote(p.assemblyPrefix)}.[0-9]*.tmp`,
    // The proof the shore requires: the digest of what was placed and its size. An exit code
    // alone proves nothing (fish exits 0 on a syntax error; a wrapper may run nothing at all).
    `printf 'placed %s %s\\n' "$h" "$size"`,
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
