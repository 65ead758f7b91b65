/**
 * The push side's remote scripts (POSIX sh), built here with every path quoted (ssh/quote.ts).
 */
import { quote } from '../../ssh/quote.js';

export { quote };

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

/** The vessel's SHA-256 tools; each prints the hex digest first. */
export const HASHERS = { openssl: 'openssl dgst -sha256 -r', sha256sum: 'sha256sum' } as const;
export type HasherName = keyof typeof HASHERS;

/**
 * Picks the SHA-256 tool in `$hasher`. For large files `openssl dgst` where it works: with SHA
 * instructions it hashes about five times faster than coreutils' sha256sum (1.1 GB/s against
 * 235 MB/s measured here). But it takes ~17 ms to start, against ~4 ms, so small files use
 * `sha256sum`. Either falls back to the other. Exits with `exitCode` when neither works.
 * `known`: for a large file, the tool an earlier probe on this connection chose (see
 * hasherProbeScript), which spares it the probe's own openssl run; smaller files ignore it.
 */
function pickHasher(exitCode: number, large: boolean, known?: HasherName): string {
  if (large && known) return `hasher=${quote(HASHERS[known])}`;
  const openssl = `[ "$(printf ${probeInput} | openssl dgst -sha256 -r 2>/dev/null)" = '${probeSha256} *stdin' ]`;
  const sha256sum = 'command -v sha256sum >/dev/null 2>&1';
  const [first, second] = large
    ? [[openssl, quote(HASHERS.openssl)], [sha256sum, quote(HASHERS.sha256sum)]]
    : [[sha256sum, quote(HASHERS.sha256sum)], [openssl, quote(HASHERS.openssl)]];
  return [
    `if ${first[0]}; then hasher=${first[1]}`,
    `elif ${second[0]}; then hasher=${second[1]}`,
    `else echo 'no SHA-256 tool: neither openssl nor sha256sum works' >&2; exit ${exitCode}; fi`,
  ].join('\n');
}

/** Prints the tool pickHasher chooses for large files (`openssl` or `sha256sum`). */
export function hasherProbeScript(): string {
  return [
    pickHasher(AssembleExit.hash, true),
    `case $hasher in openssl*) echo openssl ;; *) echo sha256sum ;; esac`,
  ].join('\n');
}

/** The answer of hasherProbeScript; undefined for anything else. */
export function parseHasherProbe(stdout: string): HasherName | undefined {
  const name = stdout.trim();
  return name === 'openssl' || name === 'sha256sum' ? name : undefined;
}

/** From this size on, the vessel hashes with openssl (see pickHasher). */
export const FAST_HASHER_MIN_BYTES = 8 * 1024 * 1024;

/**
 * What a file keeps of the shore's attributes on the vessel: its permission bits (setuid,
 * setgid and sticky dropped) and its modification time in whole seconds (what SFTP and
 * `touch -t` carry); `mtime` is undefined when SFTP cannot carry it (before 1970, after 2106).
 * Owner, group, ACLs and extended attributes are not kept.
 */
export interface FileAttrs {
  mode: number;
  mtime?: number;
}

/** The attributes of a shore file as the vessel gets them, from its stat. */
export function fileAttrs(st: { mode: number; mtimeMs: number }): FileAttrs {
  const mtime = Math.floor(st.mtimeMs / 1000);
  return { mode: st.mode & 0o777, mtime: mtime >= 0 && mtime <= 0xffff_ffff ? mtime : undefined };
}

/**
 * The two words the remote scripts take for FileAttrs: the mode in octal (`640`) and the time
 * as `touch -t` reads it in UTC (`CCYYMMDDhhmm.SS`); `-` for what is not set. Only digits and a
 * dot: the scripts match them against fixed patterns before they use them.
 */
export function attrsWords(attrs: FileAttrs | undefined): [string, string] {
  if (!attrs) return ['-', '-'];
  const mode = (attrs.mode & 0o777).toString(8).padStart(3, '0');
  if (attrs.mtime === undefined) return [mode, '-'];
  const d = new Date(attrs.mtime * 1000);
  const two = (n: number) => String(n).padStart(2, '0');
  const stamp = `${String(d.getUTCFullYear()).padStart(4, '0')}${two(d.getUTCMonth() + 1)}${two(d.getUTCDate())}${two(d.getUTCHours())}${two(d.getUTCMinutes())}.${two(d.getUTCSeconds())}`;
  return [mode, stamp];
}

/**
 * Sets the time (`$2`, see attrsWords) and then the mode (`$3`) of file `$1`; a word that is not
 * one is skipped. A failure (a filesystem that refuses chmod, no touch) is not the delivery's:
 * `$attrs` becomes `failed`, the tool's message goes to stderr, and the script goes on.
 */
const setAttrsFunction = [
  'setattrs() {',
  '  case $2 in [0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9].[0-9][0-9]) TZ=UTC0 touch -t "$2" "$1" || attrs=failed ;; esac',
  '  case $3 in [0-7][0-7][0-7]) chmod "$3" "$1" || attrs=failed ;; esac',
  '}',
].join('\n');

/** The line the scripts print after placing (or confirming) a file whose attributes could not be set. */
export const ATTRS_FAILED = 'attrs-failed';

/** Whether a script said it could not set the file's mode or time (see setAttrsFunction). */
export function parseAttrsFailed(stdout: string): boolean {
  return new RegExp(`^${ATTRS_FAILED}$`, 'm').test(stdout);
}

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
  return m ? { sha256: m[1]!, size: Number(m[2]) } : undefined;
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
 * The first script on a vessel: proof that commands run, as sh, at all (an SFTP-only account
 * may accept the request and run something else, a wrapper may exit 0 without running it), and
 * which way small files are checked. The answer must carry `token`, which only a shell that ran
 * this script can print. GNU sha256sum answers `-c` line by line; busybox's answers only when
 * its input ends (17 s a file, measured), so it gets batched digests. `--version` tells them
 * apart by its exit code (busybox refuses the option), not by any text.
 */
export function commandsProbeScript(token: string): string {
  return [
    `printf 'commands %s\n' ${quote(token)}`,
    'if sha256sum --version >/dev/null 2>&1; then echo checker line; else echo checker batch; fi',
  ].join('\n');
}

export type CheckerKind = 'line' | 'batch';

/** What commandsProbeScript printed: undefined unless it ran (its token is there). */
export function parseCommandsProbe(stdout: string, token: string): { checker: CheckerKind } | undefined {
  const lines = stdout.split('\n');
  if (!lines.includes(`commands ${token}`)) return undefined;
  return { checker: lines.includes('checker line') ? 'line' : 'batch' };
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

/** Exit codes of the TempDir probe. */
export const ProbeExit = { mkdir: 20, create: 21 } as const;

/**
 * Finds out why SFTP said only "Failure" about TempDir: can a file be created there, and how
 * much room is left (the last line of `df -P`: size, used and available in KiB).
 */
export function tempDirProbeScript(tempDir: string): string {
  const d = quote(tempDir);
  const probe = quote(`${tempDir}/.cm-probe`);
  return [
    `mkdir -p -- ${d} || exit ${ProbeExit.mkdir}`,
    `: > ${probe}"$$" || exit ${ProbeExit.create}`,
    `rm -f -- ${probe}"$$"`,
    `df -P -k -- ${d} | tail -n 1`,
  ].join('\n');
}

/** Input every check feeds `cat`, `tee` and `sha256sum`, and the answers a working one prints. */
export const probeInput = 'abc';
export const probeSha256 = 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad';

/**
 * What `check` learned about one folder on the vessel. `missingLevels` is 0 when the folder
 * exists; otherwise its nearest existing ancestor is that many levels up, and that is where
 * it would be created (mkdir -p) and what was probed.
 */
export type FolderProbe =
  | { state: 'ok'; missingLevels: number }
  | { state: 'notdir'; missingLevels: number }
  | { state: 'unwritable'; missingLevels: number; reason: string };

/** `exit`: the command ran and failed; `wrong`: it succeeded but printed the wrong answer. */
export type CommandProbe =
  | { state: 'ok' }
  | { state: 'missing' }
  | { state: 'exit'; code: number; output: string }
  | { state: 'wrong'; output: string };

export interface CheckProbe {
  tempDir: FolderProbe;
  /** In the order the locations were given. */
  locations: FolderProbe[];
  cat: CommandProbe;
  /** The join appends chunks with it. */
  tee: CommandProbe;
  sha256sum: CommandProbe;
}

/**
 * The one remote command of `check`: is TempDir writable (or creatable), does each
 * RemoteLocation accept a file, and do `cat`, `tee` and `sha256sum` work (run on `abc`, answers
 * compared). It creates nothing but a probe file, removed at once: a missing folder is judged
 * by its nearest existing ancestor.
 *
 * Its stdout is one line per finding and never holds a path (paths may hold newlines): the
 * shore knows which path each line is about. Error texts are cut to the strerror part after the
 * last `: ` (where the shell's message names the path) and flattened to one line.
 *
 *   tempdir ok N | tempdir notdir N | tempdir unwritable N TEXT     (N = missing levels)
 *   loc:I ok N   | ...                                             (I = index into `locations`)
 *   cat ok | cat missing | cat exit CODE TEXT | cat wrong TEXT      (same for tee, sha256sum)
 *   end
 */
export function checkProbeScript(tempDir: string, locations: readonly string[]): string {
  return [
    'unset IFS; set -f',
    // Word splitting with the default IFS, joined by single spaces: any output on one line.
    `flat() { set -- $1; printf '%s' "$*"; }`,
    'folder() {',
    '  d=$2; up=0',
    '  while [ ! -e "$d" ] && [ ! -L "$d" ]; do d=${d%/*}; d=${d:-/}; up=$((up+1)); done',
    '  if [ ! -d "$d" ]; then echo "$1 notdir $up"; return; fi',
    '  f=${d%/}/.cm-check.$$',
    '  if e=$( { : > "$f"; } 2>&1 ); then rm -f -- "$f"; echo "$1 ok $up"; else echo "$1 unwritable $up $(flat "${e##*: }")"; fi',
    '}',
    // $3 = word: compare only the first word of the answer (sha256sum appends "  -").
    'tool() {',
    `  out=$(printf ${probeInput} | "$1" 2>&1); rc=$?`,
    '  [ "$3" = word ] && got=${out%% *} || got=$out',
    '  if [ "$rc" -eq 127 ]; then echo "$1 missing"',
    '  elif [ "$rc" -ne 0 ]; then echo "$1 exit $rc $(flat "$out")"',
    '  elif [ "$got" = "$2" ]; then echo "$1 ok"',
    '  else echo "$1 wrong $(flat "$out")"; fi',
    '}',
    `folder tempdir ${quote(tempDir)}`,
    ...locations.map((loc, i) => `folder loc:${i} ${quote(loc)}`),
    `tool cat ${probeInput} all`,
    `tool tee ${probeInput} all`,
    `tool sha256sum ${probeSha256} word`,
    'echo end',
  ].join('\n');
}

/** Reads the output of checkProbeScript; undefined when it did not run to its end. */
export function parseCheckProbe(stdout: string, locationCount: number): CheckProbe | undefined {
  const folders = new Map<string, FolderProbe>();
  const tools = new Map<string, CommandProbe>();
  let ended = false;
  for (const line of stdout.split('\n')) {
    const m = /^(tempdir|loc:\d+) (ok|notdir|unwritable) (\d+)(?: (.*))?$/.exec(line);
    if (m) {
      const missingLevels = Number(m[3]);
      folders.set(m[1]!, m[2] === 'unwritable' ? { state: 'unwritable', missingLevels, reason: m[4] ?? '' } : { state: m[2] as 'ok' | 'notdir', missingLevels });
      continue;
    }
    const t = /^(cat|tee|sha256sum) (?:(ok|missing)|exit (\d+) ?(.*)|wrong ?(.*))$/.exec(line);
    if (t) {
      tools.set(t[1]!, t[2] ? { state: t[2] as 'ok' | 'missing' } : t[3] ? { state: 'exit', code: Number(t[3]), output: t[4] ?? '' } : { state: 'wrong', output: t[5] ?? '' });
      continue;
    }
    if (line === 'end') ended = true;
  }
  const tempDir = folders.get('tempdir');
  const locations = Array.from({ length: locationCount }, (_, i) => folders.get(`loc:${i}`));
  const cat = tools.get('cat');
  const tee = tools.get('tee');
  const sha256sum = tools.get('sha256sum');
  if (!ended || !tempDir || !cat || !tee || !sha256sum || locations.some((l) => !l)) return undefined;
  return { tempDir, locations: locations as FolderProbe[], cat, tee, sha256sum };
}
