// File-tree helpers for end-to-end tests: make test files with known content, and compare trees
// by content hash. Everything streams, so multi-GiB files cost no memory.
import { createCipheriv, createHash, randomInt } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, open, readdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** SHA-256 of a file, hex. Streams the file (no size limit). */
export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    const stream = createReadStream(path, { highWaterMark: 1 << 20 });
    stream.on('error', reject);
    stream.on('data', (chunk) => hash.update(chunk));
    stream.on('end', () => resolve(hash.digest('hex')));
  });
}

const BLOCK = 1 << 20; // write in 1 MiB pieces: few syscalls, bounded memory
const ZEROS = Buffer.alloc(BLOCK);

/**
 * Writes `size` pseudo-random bytes to `path` (parents created, file replaced) and returns their
 * SHA-256 hex. The same `seed` always gives the same bytes, so a test can recreate or predict a
 * file; without a seed a random one is used, so two files written without seeds never collide
 * (identical contents would hide mix-ups between files). AES-128-CTR over zeros is a fast,
 * well-mixed keystream (GB/s), unlike a JS PRNG loop.
 */
export async function writeRandomFile(path: string, size: number, seed?: number): Promise<string> {
  if (!Number.isSafeInteger(size) || size < 0) throw new Error(`writeRandomFile: bad size ${size}`);
  const s = seed ?? randomInt(0, 2 ** 47);
  const key = createHash('sha256').update(`cm-e2e-seed:${s}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  const hash = createHash('sha256');
  await mkdir(dirname(path), { recursive: true });
  const fh = await open(path, 'w');
  try {
    for (let done = 0; done < size; ) {
      const n = Math.min(BLOCK, size - done);
      const buf = cipher.update(n === BLOCK ? ZEROS : ZEROS.subarray(0, n));
      hash.update(buf);
      // write() may write less than asked; loop until the whole piece is on disk.
      for (let off = 0; off < buf.length; ) {
        const { bytesWritten } = await fh.write(buf, off, buf.length - off);
        off += bytesWritten;
      }
      done += n;
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

/**
 * Relative paths ('a/b.txt', always '/'-separated) of the regular files under `dir`, recursive,
 * sorted. Symlinks are neither followed nor listed (they are not regular files); [] when `dir`
 * does not exist, so "nothing arrived yet" needs no special case.
 */
export async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(abs: string, rel: string): Promise<void> {
    let entries;
    try {
      entries = await readdir(abs, { withFileTypes: true });
    } catch (err) {
      // The top dir missing means "empty"; a sub-dir vanishing mid-walk (the daemon moving
      // files to processed/) is a race, not an error.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const e of entries) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await walk(join(abs, e.name), r);
      else if (e.isFile()) out.push(r);
    }
  }
  await walk(dir, '');
  return out.sort();
}

/** True when something (file, dir, even a dangling symlink) is at `path`. */
export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') {
      return false;
    }
    throw err;
  }
}
