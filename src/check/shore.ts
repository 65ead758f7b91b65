/**
 * The shore's side of a working setup, for `check` and for `run`: every Location is a folder
 * that can be listed and written (replicated files are moved to its processed/), and the state
 * database's folder can be written. Looked at with stat and access(), never by creating
 * anything: `check` creates nothing, and `run` refuses a Location before it sends a file from it.
 */
import { accessSync, constants } from 'node:fs';
import { dirname, join } from 'node:path';
import type { DirectorySettings, Settings } from '../settings/load.js';
import { PROCESSED_DIR } from '../push/scanner.js';
import { folderProblem, fsReason, lstatOrNone, nearestExisting, type FolderProblem } from '../shore-fs.js';

export interface LocationProblem {
  kind: FolderProblem['kind'];
  /** One line: what and where, and why it matters. */
  message: string;
}

/** What keeps files of this Directory from being replicated and moved to processed/, if anything. */
export function locationProblem(d: DirectorySettings): LocationProblem | undefined {
  const what = `Location ${d.location} of [Directory ${d.name}]`;
  const p = folderProblem(d.location, { read: true, write: true });
  if (p) {
    switch (p.kind) {
      case 'missing': return { kind: p.kind, message: `${what} ${p.reason}` };
      case 'notdir': return { kind: p.kind, message: `${what} is not a folder` };
      case 'unreadable': return { kind: p.kind, message: `${what} cannot be read: ${p.reason}` };
      case 'readonly': return { kind: p.kind, message: `${what} is not writable (${p.reason}): replicated files could not be moved to ${PROCESSED_DIR}/` };
    }
  }
  const processed = join(d.location, PROCESSED_DIR);
  if (lstatOrNone(processed) === undefined) return undefined; // created by the first move
  const q = folderProblem(processed, { read: false, write: true });
  if (q?.kind === 'notdir') return { kind: 'notdir', message: `${processed} of [Directory ${d.name}] is not a folder: replicated files could not be moved there` };
  if (q) return { kind: q.kind, message: `${processed} of [Directory ${d.name}] is not writable (${q.reason}): replicated files could not be moved there` };
  return undefined;
}

export interface ShoreCheck {
  /** One line each; any of them makes `check` exit 1. */
  problems: string[];
  /** Fine, but worth knowing (a folder that `run` will create). */
  notes: string[];
}

/** Every Location, then the state database's folder (and the database file when it exists). */
export function checkShore(settings: Settings): ShoreCheck {
  const problems = settings.directories.flatMap((d) => locationProblem(d)?.message ?? []);
  const notes: string[] = [];
  const database = settings.monster.database;
  const folder = dirname(database);
  const existing = nearestExisting(folder);
  if (existing !== folder) {
    const p = folderProblem(existing, { read: false, write: true });
    if (p?.kind === 'notdir') problems.push(`state database folder ${folder} cannot be created: ${existing} is not a folder`);
    else if (p) problems.push(`state database folder ${folder} cannot be created: ${existing} is not writable: ${p.reason}`);
    else notes.push(`state database folder ${folder} does not exist yet; it will be created (${existing} is writable)`);
    return { problems, notes };
  }
  const p = folderProblem(folder, { read: true, write: true });
  if (p?.kind === 'notdir') problems.push(`state database folder ${folder} is not a folder`);
  else if (p?.kind === 'unreadable') problems.push(`state database folder ${folder} cannot be read: ${p.reason}`);
  else if (p) problems.push(`state database folder ${folder} is not writable: ${p.reason}`);
  const file = lstatOrNone(database);
  if (file?.isDirectory()) problems.push(`state database ${database} is a folder, not a file`);
  else if (file) {
    try {
      accessSync(database, constants.R_OK | constants.W_OK);
    } catch (err) {
      problems.push(`state database ${database} is not writable: ${fsReason(err)}`);
    }
  }
  return { problems, notes };
}
