/**
 * The vessel probes: small scripts that find out what a vessel can do (run commands as sh,
 * which SHA-256 tool is fast, why TempDir failed, everything `check` looks at), each with the
 * parser of its answer. POSIX sh, every path quoted (ssh/quote.ts).
 */
import { quote } from '../../ssh/quote.js';
import { pickHasher, probeInput, probeSha256, type HasherName } from './hasher.js';
import { AssembleExit } from './join.js';

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
  /** The join appends chunks with it. */
  cat: CommandProbe;
  sha256sum: CommandProbe;
}

/**
 * The one remote command of `check`: is TempDir writable (or creatable), does each
 * RemoteLocation accept a file, and do `cat` and `sha256sum` work (run on `abc`, answers
 * compared; not `tee`, which no vessel script uses since issue 19). It creates nothing but a
 * probe file, removed at once: a missing folder is judged by its nearest existing ancestor.
 *
 * Its stdout is one line per finding and never holds a path (paths may hold newlines): the
 * shore knows which path each line is about. Error texts are cut to the strerror part after the
 * last `: ` (where the shell's message names the path) and flattened to one line.
 *
 *   tempdir ok N | tempdir notdir N | tempdir unwritable N TEXT     (N = missing levels)
 *   loc:I ok N   | ...                                             (I = index into `locations`)
 *   cat ok | cat missing | cat exit CODE TEXT | cat wrong TEXT      (same for sha256sum)
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
      folders.set(m[1], m[2] === 'unwritable' ? { state: 'unwritable', missingLevels, reason: m[4] ?? '' } : { state: m[2] as 'ok' | 'notdir', missingLevels });
      continue;
    }
    const t = /^(cat|sha256sum) (?:(ok|missing)|exit (\d+) ?(.*)|wrong ?(.*))$/.exec(line);
    if (t) {
      tools.set(t[1], t[2] ? { state: t[2] as 'ok' | 'missing' } : t[3] ? { state: 'exit', code: Number(t[3]), output: t[4] ?? '' } : { state: 'wrong', output: t[5] ?? '' });
      continue;
    }
    if (line === 'end') ended = true;
  }
  const tempDir = folders.get('tempdir');
  const locations = Array.from({ length: locationCount }, (_, i) => folders.get(`loc:${i}`));
  const cat = tools.get('cat');
  const sha256sum = tools.get('sha256sum');
  if (!ended || !tempDir || !cat || !sha256sum || locations.some((l) => !l)) return undefined;
  return { tempDir, locations: locations as FolderProbe[], cat, sha256sum };
}
