/**
 * Moves a fully replicated file to `Location/processed/<relative path>`. An older file of the
 * same name there is never destroyed: it is first renamed aside with a numbered suffix, the
 * way `mv --backup=numbered` does (`name.~1~`, `name.~2~`, ...). Both steps are renames on
 * one filesystem, so a crash between them leaves both files intact. The calls are synchronous
 * (see shore-fs.ts).
 */
import { lstatSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { failpoint } from './failpoint.js';
import { PROCESSED_DIR } from './scanner.js';
import { fsReason, makeFolders } from '../shore-fs.js';

/** Whether anything (a symlink too) is at `path`; errors other than "no such file" are thrown. */
function exists(path: string): boolean {
  return lstatSync(path, { throwIfNoEntry: false }) !== undefined;
}

/** Moves the file; returns where an older file of the same name was put aside, if there was one. */
export async function moveToProcessed(location: string, relpath: string): Promise<{ target: string; keptOlderAs?: string }> {
  const source = join(location, relpath);
  const target = join(location, PROCESSED_DIR, relpath);
  try {
    makeFolders(dirname(target));
  } catch (err) {
    // `read-only file system`, not the ENOENT a recursive mkdir gives there.
    const code = (err as NodeJS.ErrnoException).code;
    throw Object.assign(new Error(`cannot create the folder ${dirname(target)}: ${fsReason(err)}`), { code });
  }
  let keptOlderAs: string | undefined;
  if (exists(target)) {
    for (let n = 1; ; n++) {
      const candidate = `${target}.~${n}~`;
      if (!exists(candidate)) {
        renameSync(target, candidate);
        keptOlderAs = candidate;
        break;
      }
    }
  }
  await failpoint('processed-move');
  renameSync(source, target);
  return { target, keptOlderAs };
}
