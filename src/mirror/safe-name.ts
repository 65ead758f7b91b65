/**
 * Names from a server's listing are untrusted (the scp CVE-2019-6111 class): a broken or hostile
 * server may list `../x`, `a/b`, `..`, a name with a newline or a NUL, or one longer than the
 * local filesystem allows. Every name is checked here before it becomes part of a local path;
 * a refused name is reported and left out, and the rest of the run goes on.
 *
 * `localPathOf` is the second guard, where a file's local path is built: every component again,
 * the joined path still inside LOCAL_PATH, and short enough for the filesystem.
 */
import { basename, dirname, isAbsolute, join, relative } from 'node:path';

/** Linux allows 255 bytes per name (NAME_MAX)... */
export const NAME_MAX = 255;
/** ...and 4096 bytes per path, its terminating NUL included (PATH_MAX). */
export const PATH_MAX = 4096;

export interface Refused {
  refused: string;
}

// C0 controls (NUL, newline, escape, ...), DEL and the C1 controls: Unicode's category Cc.
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** The name, unchanged, when it can be a local file or folder name; else why not. */
export function safeLocalName(name: string): string | Refused {
  if (name === '') return { refused: 'is empty' };
  if (name === '.' || name === '..') return { refused: 'stands for a folder itself or its parent' };
  if (name.includes('/')) return { refused: 'contains "/"' };
  if (name.includes('\0')) return { refused: 'contains a NUL character' };
  if (CONTROL.test(name)) return { refused: 'contains a control character' };
  const bytes = Buffer.byteLength(name);
  if (bytes > NAME_MAX) return { refused: `is ${bytes} bytes long, more than the ${NAME_MAX} a local name can have` };
  return name;
}

export function isRefused<T>(value: T | Refused): value is Refused {
  return typeof value === 'object' && value !== null && 'refused' in value;
}

// Characters that could fool a reader of a log line: JSON leaves these as they are.
const INVISIBLE = /[\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g;

/**
 * A name as it can be printed on one line, unambiguously: JSON string escapes (`\n`, `\u0001`,
 * `\"`, `\\`), also for the invisible and bidirectional-override characters JSON leaves as
 * they are. Without the surrounding quotes.
 */
export function escapeName(name: string): string {
  return JSON.stringify(name).slice(1, -1).replace(INVISIBLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `escapeName` in double quotes. */
export function quoteName(name: string): string {
  return `"${escapeName(name)}"`;
}

/**
 * Where the file at `relPath` (`/`-separated, below LOCAL_PATH) goes, or why it may not:
 * a component that is not a safe name, a path outside `root`, or a path longer than the local
 * filesystem allows; `partial`, the name the file is downloaded under first, must fit beside it.
 */
export function localPathOf(root: string, relPath: string, partial?: string): string | Refused {
  for (const part of relPath.split('/')) {
    const checked = safeLocalName(part);
    if (isRefused(checked)) return { refused: `the name ${quoteName(part)} ${checked.refused}` };
  }
  const path = join(root, relPath);
  const rel = relative(root, path);
  if (rel === '' || rel === '..' || rel.startsWith('../') || isAbsolute(rel)) return { refused: 'it would be outside LOCAL_PATH' };
  const longest = Math.max(
    Buffer.byteLength(path),
    partial === undefined ? 0 : Buffer.byteLength(join(dirname(path), basename(partial))),
  );
  if (longest >= PATH_MAX) return { refused: `its local path would be ${longest} bytes long, more than the ${PATH_MAX - 1} the local filesystem allows` };
  return path;
}
