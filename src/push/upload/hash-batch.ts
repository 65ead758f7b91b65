/**
 * SHA-256 of files on a vessel, many per command: where the long-lived checker of
 * remote-check.ts cannot run, the small files in flight to a vessel are hashed together by one
 * `sha256sum` (or `openssl` loop): one shell for all of them, instead of one per file. Requests
 * made in the same turn of the event loop form one batch.
 */
import { FileError } from '../../errors.js';
import type { ExecResult, RemoteFs } from '../../ssh/remote-fs.js';
import { hashFilesScript } from './digest-scripts.js';

/** More would make one slow file hold up many. */
export const MAX_HASH_BATCH = 32;

interface Request {
  path: string;
  resolve(sha256: string): void;
  reject(err: unknown): void;
}

type Hasher = (paths: string[]) => Promise<ExecResult>;

class HashBatch {
  readonly #run: Hasher;
  #waiting: Request[] = [];
  #scheduled = false;

  constructor(run: Hasher) {
    this.#run = run;
  }

  hash(path: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#waiting.push({ path, resolve, reject });
      if (this.#waiting.length >= MAX_HASH_BATCH) this.#flush();
      else if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const batch = this.#waiting.splice(0, MAX_HASH_BATCH);
    if (batch.length === 0) return;
    void this.#hashAll(batch);
  }

  async #hashAll(batch: Request[]): Promise<void> {
    try {
      const r = await this.#run(batch.map((q) => q.path));
      const digests = parseDigests(r.stdout);
      // One line per file, in order, only when every file could be read; otherwise the lines
      // no longer line up with the files, and each is asked again on its own.
      if (r.code === 0 && digests.length === batch.length) {
        batch.forEach((q, i) => q.resolve(digests[i]));
        return;
      }
      if (batch.length === 1) {
        batch[0].reject(new FileError(r.stderr.split('\n')[0] || `sha256sum exited ${r.code ?? r.signal}`, { path: batch[0].path }));
        return;
      }
      for (const q of batch) void this.#hashAll([q]);
    } catch (err) {
      for (const q of batch) q.reject(err);
    }
  }
}

/**
 * The digests of `sha256sum` output, in order. A line starts with a backslash when the name
 * needed escaping (a newline or backslash in it); the digest follows. Names are not needed.
 */
export function parseDigests(stdout: string): string[] {
  return stdout.split('\n').filter((l) => l !== '').map((l) => (l.startsWith('\\') ? l.slice(1) : l).slice(0, 64));
}

const batches = new WeakMap<RemoteFs, HashBatch>();

/** The SHA-256 of `path` on the vessel behind `remote`, batched with others asked meanwhile. */
export function remoteSha256(remote: RemoteFs, path: string, timeoutMs: number): Promise<string> {
  let batch = batches.get(remote);
  if (!batch) {
    batch = new HashBatch((paths) => remote.exec(hashFilesScript(paths), timeoutMs));
    batches.set(remote, batch);
  }
  return batch.hash(path);
}
