/**
 * What is on the server: the top-level items of REMOTE_PATH and, per item, every file in it
 * with its size, in download order.
 *
 * Symlinks: a link to a file is mirrored as a regular file with the target's contents (what a
 * reader of the server sees); a link to a directory is not followed (it could loop, or reach
 * far outside REMOTE_PATH); a dangling link, a socket or a device is skipped. Each skip is
 * reported once through `onSkip`.
 *
 * Names are the server's word and not trusted: one that could not be a local name as it is
 * (`..`, `a/b`, empty, control characters, too long; see safe-name.ts), or that is listed a
 * second time, is refused, reported through `onRefuse` and left out, before anything else is
 * done with it.
 */
import type { RemoteEntry, RemoteReader } from '../ssh/remote-fs.js';
import { mirrorOrder } from './order.js';
import { isPartialName } from './partial.js';
import { isRefused, safeLocalName } from './safe-name.js';

export interface RemoteFile {
  /** Path below REMOTE_PATH, `/`-separated. */
  relPath: string;
  size: number;
  mtime: number;
}

export type SkipReporter = (remotePath: string, reason: string) => void;
/**
 * A name refused in the listing of the folder `relDir` (below REMOTE_PATH, `/`-separated, ''
 * for REMOTE_PATH itself). `name` is as the server sent it: print it escaped.
 */
export type RefusalReporter = (relDir: string, name: string, reason: string) => void;

export function joinRemote(dir: string, name: string): string {
  return dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`;
}

/** A folder's entries with symlinks resolved to what they point at, or left out. */
async function entriesOf(
  reader: RemoteReader, dir: string, onSkip: SkipReporter, onRefuse: (name: string, reason: string) => void,
): Promise<RemoteEntry[]> {
  const names = new Set<string>();
  const raw = (await reader.readdir(dir)).filter((e) => {
    const checked = safeLocalName(e.name);
    if (isRefused(checked)) {
      onRefuse(e.name, checked.refused);
      return false;
    }
    // Twice the same name would be two downloads into one local file: the first one counts.
    if (names.has(e.name)) {
      onRefuse(e.name, 'is listed more than once');
      return false;
    }
    names.add(e.name);
    return true;
  });
  const resolved = await Promise.all(raw.map(async (e): Promise<RemoteEntry | undefined> => {
    const path = joinRemote(dir, e.name);
    // Our own partial names on the server would come back as partials here: leave them.
    if (isPartialName(e.name)) {
      onSkip(path, 'has the name of a partial download');
      return undefined;
    }
    if (e.kind === 'file' || e.kind === 'directory') return e;
    if (e.kind === 'symlink') {
      const target = await reader.statFollow(path);
      if (target === null) onSkip(path, 'is a symlink whose target does not exist');
      else if (target.kind === 'file') return { ...target, name: e.name };
      else if (target.kind === 'directory') onSkip(path, 'is a symlink to a directory (not followed)');
      else onSkip(path, 'is a symlink to something that is not a regular file');
      return undefined;
    }
    onSkip(path, 'is not a regular file or directory');
    return undefined;
  }));
  return mirrorOrder(resolved.filter((e): e is RemoteEntry => e !== undefined));
}

/** The top-level items of REMOTE_PATH, directories first, newest first. */
export function listItems(reader: RemoteReader, root: string, onSkip: SkipReporter, onRefuse: RefusalReporter): Promise<RemoteEntry[]> {
  return entriesOf(reader, root, onSkip, (name, reason) => onRefuse('', name, reason));
}

/** Every file of one item (itself, if it is a file), depth first, in mirror order. */
export async function filesOf(
  reader: RemoteReader, root: string, item: RemoteEntry, onSkip: SkipReporter, onRefuse: RefusalReporter,
): Promise<RemoteFile[]> {
  if (item.kind === 'file') return [{ relPath: item.name, size: item.size, mtime: item.mtime }];
  const files: RemoteFile[] = [];
  const walk = async (rel: string): Promise<void> => {
    for (const e of await entriesOf(reader, joinRemote(root, rel), onSkip, (name, reason) => onRefuse(rel, name, reason))) {
      const child = `${rel}/${e.name}`;
      if (e.kind === 'directory') await walk(child);
      else files.push({ relPath: child, size: e.size, mtime: e.mtime });
    }
  };
  await walk(item.name);
  return files;
}
