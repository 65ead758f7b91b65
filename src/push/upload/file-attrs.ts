/**
 * The shore's file attributes as the vessel gets them: from a stat, as words a script takes,
 * and the shell function that sets them and says when the vessel refused.
 */

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
export const setAttrsFunction = [
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
