/**
 * What reaches a remote shell, and how: every path quoted, every script carried to /bin/sh.
 *
 * The scripts are POSIX sh, and only sh ever reads them (see carried): a file name such as
 * `$(touch x); rm -rf ~` must arrive as one inert word. POSIX single quotes make every byte
 * literal except the quote itself, which becomes '\''. Paths are always absolute, so none
 * starts with `-`; `--` is passed anyway.
 */
export function quote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/**
 * How a script reaches a POSIX sh whatever the login shell. sshd runs an exec request through
 * the user's login shell, and shells do not agree on quoting: fish and tcsh read `'`, `\\`, `!`,
 * `$(…)` and newlines their own way, and fish even exits 0 on a syntax error. So no script is
 * ever given to the login shell: the command is always the one line below, whose only special
 * characters stand inside single quotes, where bash, dash, zsh, ksh, busybox ash, tcsh, csh and
 * fish all leave them alone. It starts /bin/sh, which reads the script, exactly its length in
 * bytes, from standard input and runs it; whatever the script then reads from standard input (a
 * joiner's chunk lines, a checker's questions) follows the script there. `prologue` is what to
 * write first. Scripts run with LC_ALL=C, so that what the shore reads of their output and
 * errors does not depend on the vessel's language.
 */
export function carried(script: string): { command: string; prologue: Buffer } {
  const prologue = Buffer.from(`LC_ALL=C; export LC_ALL\n${script}\n`);
  return { command: `exec /bin/sh -c 'eval "$(dd bs=1 count=${prologue.length} 2>/dev/null)"'`, prologue };
}
