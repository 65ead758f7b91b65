/**
 * Walks a Directory's Location and reports every regular file that should be replicated:
 * not under the top-level `processed/`, no path component matching an Ignore glob. Symlinks
 * are never followed (a link could lead out of the tree or loop); each is warned about once.
 */
import { opendir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { failpoint } from './failpoint.js';

export const PROCESSED_DIR = 'processed';

export interface ScanFilter {
  isIgnored(baseName: string): boolean;
}

/** True when a relative path (with `/` separators) is left out of replication. */
export function isExcluded(relpath: string, filter: ScanFilter): boolean {
  const parts = relpath.split('/');
  if (parts[0] === PROCESSED_DIR) return true;
  return parts.some((p) => filter.isIgnored(p));
}

export class Scanner {
  readonly #warnedLinks = new Set<string>();

  constructor(private readonly filter: ScanFilter, private readonly log: Logger) {}

  /**
   * Calls `onFile` with each replicable file's relative path, below `from` (a relative folder;
   * '' for all of it); unreadable folders are logged and skipped.
   */
  async scan(location: string, onFile: (relpath: string) => void, signal?: AbortSignal, from = ''): Promise<void> {
    await this.#walk(location, from, onFile, signal);
  }

  async #walk(location: string, rel: string, onFile: (relpath: string) => void, signal?: AbortSignal): Promise<void> {
    let dir;
    try {
      dir = await opendir(rel ? join(location, rel) : location);
    } catch (err) {
      this.log.warn({ path: join(location, rel), err: (err as Error).message }, 'cannot read folder; skipped until the next scan');
      return;
    }
    for await (const entry of dir) {
      if (signal?.aborted) return;
      const child = rel ? `${rel}/${entry.name}` : entry.name;
      if (isExcluded(child, this.filter)) continue;
      if (entry.isSymbolicLink()) this.warnLink(join(location, child));
      else if (entry.isDirectory()) {
        await failpoint('scan-folder'); // a scan that never comes back (a hung mount, say)
        await this.#walk(location, child, onFile, signal);
      }
      else if (entry.isFile()) onFile(child);
    }
  }

  warnLink(path: string): void {
    if (this.#warnedLinks.has(path)) return;
    this.#warnedLinks.add(path);
    this.log.warn({ path }, 'symbolic link skipped (links are not followed)');
  }
}
