/**
 * What is already here for one item: the size of every complete file (the seed's `du -sb`,
 * counting regular files only, never following symlinks) and the partial downloads lying
 * around, which are neither counted nor mirrored.
 */
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FileError } from '../errors.js';
import { isPartialName } from './partial.js';
import { isRefused, localPathOf } from './safe-name.js';

export interface LocalItem {
  /** Sum of the complete files' sizes. */
  total: number;
  /** Size of each complete file, by `/`-separated path below LOCAL_PATH. */
  sizes: Map<string, number>;
  /** Partial downloads, by `/`-separated path below LOCAL_PATH. */
  partials: string[];
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

export async function scanLocalItem(localRoot: string, itemName: string): Promise<LocalItem> {
  // The item's name came from the server: never look (or discard partials) outside LOCAL_PATH.
  const top = localPathOf(localRoot, itemName);
  if (isRefused(top)) throw new FileError(`refused: ${top.refused}`);
  const result: LocalItem = { total: 0, sizes: new Map(), partials: [] };
  const visit = async (rel: string): Promise<void> => {
    const path = join(localRoot, rel);
    const st = await lstat(path).catch((err: unknown) => {
      if (isMissing(err)) return undefined;
      throw err;
    });
    if (!st) return;
    if (st.isFile()) {
      const name = rel.slice(rel.lastIndexOf('/') + 1);
      if (isPartialName(name)) {
        result.partials.push(rel);
      } else {
        result.sizes.set(rel, st.size);
        result.total += st.size;
      }
      return;
    }
    if (!st.isDirectory()) return;
    const names = await readdir(path).catch((err: unknown) => {
      if (isMissing(err)) return [];
      throw err;
    });
    for (const name of names) await visit(`${rel}/${name}`);
  };
  await visit(itemName);
  return result;
}
