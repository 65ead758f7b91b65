/**
 * The SHA-256 of a large shore file, computed once per version however many vessels send it,
 * and off the main thread: the thread that encrypts and sends to every vessel is the
 * bottleneck on the shore, and a second core is often idle. Small files are hashed inline as
 * they are sent (a worker costs more than hashing them).
 */
import { Worker } from 'node:worker_threads';
import { ShoreFileChanged } from '../../errors.js';

/** From this size on, a file is hashed in a worker. */
export const WORKER_HASH_MIN_BYTES = 32 * 1024 * 1024;

// Plain CommonJS, run with `eval`: no separate file to ship or to find from dist/ and tests.
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync } = require('node:fs');
const { path, size } = workerData;
try {
  const fd = openSync(path, 'r');
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(4 * 1024 * 1024);
  let done = 0;
  try {
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, done);
      if (n === 0) break;
      hash.update(n === buf.length ? buf : buf.subarray(0, n));
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  parentPort.postMessage(done === size ? { sha256: hash.digest('hex') } : { changed: true });
} catch (err) {
  parentPort.postMessage({ error: err.message, code: err.code });
}
`;

export interface HashedFile {
  versionKey: string;
  localPath: string;
  size: number;
}

const inFlight = new Map<string, Promise<string>>();

/**
 * The file's SHA-256; callers for the same version share one computation. Rejects with
 * ShoreFileChanged when the file no longer has the expected size, or with the read error.
 */
export function shoreSha256(file: HashedFile): Promise<string> {
  let pending = inFlight.get(file.versionKey);
  if (!pending) {
    pending = hashInWorker(file).finally(() => inFlight.delete(file.versionKey));
    inFlight.set(file.versionKey, pending);
  }
  return pending;
}

function hashInWorker(file: HashedFile): Promise<string> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(workerSource, { eval: true, workerData: { path: file.localPath, size: file.size } });
    worker.once('message', (m: { sha256?: string; changed?: boolean; error?: string; code?: string }) => {
      if (m.sha256) resolve(m.sha256);
      else if (m.changed) reject(new ShoreFileChanged(`${file.localPath} changed while it was hashed`));
      else reject(Object.assign(new Error(m.error ?? 'hashing failed'), { code: m.code }));
      void worker.terminate();
    });
    worker.once('error', reject);
  });
}
