/**
 * Everything that reaches a remote shell is built here, and every path is quoted.
 *
 * sshd runs an exec request through the login user's shell, so a file name such as
 * `$(touch x); rm -rf ~` must arrive as one inert word. POSIX single quotes make every byte
 * literal except the quote itself, which becomes '\''. Paths are always absolute, so none
 * starts with `-`; `--` is passed anyway.
 */
export function quote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** Exit codes of the assembly script, one per step, so the shore can say which step failed. */
export const AssembleExit = {
  mkdir: 10,
  cat: 11,
  hash: 12,
  mismatch: 13,
  destinationIsDirectory: 14,
  rename: 15,
} as const;

export interface AssemblePlan {
  /** Chunk paths are `${chunkPrefix}.${index}` for index 0..chunkCount-1. */
  chunkPrefix: string;
  chunkCount: number;
  /**
   * Hidden name beside the destination (same directory, so the final rename is atomic). The
   * file is `${assemblyPrefix}.<pid>.tmp`: unique per attempt, so a join still running on the
   * vessel after the daemon was killed never shares its file with the next attempt's.
   */
  assemblyPrefix: string;
  destination: string;
  sha256: string;
}

/**
 * One remote command that reassembles the chunks beside the destination, checks the SHA-256
 * there, and only then renames the result into place (rename(2) within one directory is
 * atomic and replaces an older file). The chunks are removed only after the rename, so a crash
 * at any point leaves either the chunks or the finished file. The chunk names are built as
 * positional parameters on the vessel, so the command stays short however many chunks there
 * are, and one `cat` joins them all; `: >` covers the empty file (a bare `cat` with no
 * arguments would read stdin).
 */
export function assembleScript(p: AssemblePlan): string {
  const dir = p.destination.slice(0, p.destination.lastIndexOf('/')) || '/';
  const prefix = quote(p.chunkPrefix);
  const tmp = '"$tmp"';
  const dest = quote(p.destination);
  const e = AssembleExit;
  const join = p.chunkCount === 0
    ? `: > ${tmp} || exit ${e.cat}`
    : `set --; i=0; while [ "$i" -lt ${p.chunkCount} ]; do set -- "$@" ${prefix}."$i"; i=$((i+1)); done; cat -- "$@" > ${tmp} || { rm -f -- ${tmp}; exit ${e.cat}; }`;
  return [
    `tmp=${quote(p.assemblyPrefix)}.$$.tmp`,
    `mkdir -p -- ${quote(dir)} || exit ${e.mkdir}`,
    join,
    `h=$(sha256sum < ${tmp}) || { rm -f -- ${tmp}; exit ${e.hash}; }`,
    `h=\${h%% *}`,
    `if [ "$h" != ${quote(p.sha256)} ]; then rm -f -- ${tmp}; echo "$h"; exit ${e.mismatch}; fi`,
    `if [ -d ${dest} ]; then rm -f -- ${tmp}; exit ${e.destinationIsDirectory}; fi`,
    `mv -f -- ${tmp} ${dest} || { rm -f -- ${tmp}; exit ${e.rename}; }`,
    removeChunksCommand(p.chunkPrefix),
  ].join('\n');
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
 * removal).
 */
export function checkExistingScript(destination: string, sha256: string, chunkPrefix: string): string {
  return [
    `h=$(sha256sum < ${quote(destination)}) || exit ${AssembleExit.hash}`,
    `h=\${h%% *}`,
    `echo "$h"`,
    `if [ "$h" = ${quote(sha256)} ]; then ${removeChunksCommand(chunkPrefix)}; fi`,
  ].join('\n');
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
