/**
 * Moves a fully replicated file to `Location/processed/<relative path>`. An older file of the
 * same name there is never destroyed: it is first renamed aside with a numbered suffix, the
 * way `mv --backup=numbered` does (`name.~1~`, `name.~2~`, ...). Both steps are renames on
 * one filesystem, so a crash between them leaves both files intact.
 */
import { mkdir, rename, lstat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { failpoint } from './failpoint.js';
import { PROCESSED_DIR } from './scanner.js';

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Moves the file; returns where an older file of the same name was put aside, if there was one. */
export async function moveToProcessed(location: string, relpath: string): Promise<{ target: string; keptOlderAs?: string }> {
  const source = join(location, relpath);
  const target = join(location, PROCESSED_DIR, relpath);
  await mkdir(dirname(target), { recursive: true });
  let keptOlderAs: string | undefined;
  if (await exists(target)) {
    for (let n = 1; ; n++) {
      const candidate = `${target}.~${n}~`;
      if (!(await exists(candidate))) {
        await rename(target, candidate);
        keptOlderAs = candidate;
        break;
      }
    }
  }
  await failpoint('processed-move');
  await rename(source, target);
  return { target, keptOlderAs };
}
