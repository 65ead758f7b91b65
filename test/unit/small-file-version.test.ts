import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RemoteFs } from '../../src/ssh/remote-fs.js';
import { deliverFile, type DeliveryHooks, type DeliveryJob } from '../../src/push/upload/upload.js';

// The small-file way reads the shore file before it asks the vessel anything: a vessel that
// throws on every call shows that a file which is no longer this version sends nothing.
const untouchable = new Proxy({}, { get: (_t, name) => () => { throw new Error(`vessel asked for ${String(name)}`); } }) as unknown as RemoteFs;
const hooks: DeliveryHooks = {
  signal: new AbortController().signal,
  sha256Known: () => {}, progress: () => {},
};

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'cm-small-version-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

async function jobFor(name: string, content: string): Promise<DeliveryJob> {
  const localPath = join(dir, name);
  await writeFile(localPath, content);
  const st = await stat(localPath);
  return {
    vessel: 'v', versionKey: name, localPath, destination: `/dest/${name}`, size: st.size, mtimeMs: st.mtimeMs,
    sha256: null, chunkSize: 1024 * 1024, chunkPrefix: `/tmp/cm-${name}`, assemblyPrefix: `/dest/.${name}`,
  };
}

const deliver = (job: DeliveryJob) => deliverFile(untouchable, job, hooks, { execBaseMs: 1000 });

describe('a small file that is no longer the version queued', () => {
  it('gone: deleted', async () => {
    const job = await jobFor('deleted.txt', 'abc');
    await rm(job.localPath);
    assert.deepEqual(await deliver(job), { kind: 'gone' });
  });

  it('gone: a symlink in its place (not followed)', async () => {
    const job = await jobFor('linked.txt', 'abc');
    await rm(job.localPath);
    await writeFile(join(dir, 'target.txt'), 'abc');
    await symlink(join(dir, 'target.txt'), job.localPath);
    assert.deepEqual(await deliver(job), { kind: 'gone' });
  });

  it('gone: a folder in its place', async () => {
    const job = await jobFor('folder.txt', 'abc');
    await rm(job.localPath);
    await mkdir(job.localPath);
    assert.deepEqual(await deliver(job), { kind: 'gone' });
  });

  it('changed: written again (size or mtime differ)', async () => {
    const job = await jobFor('rewritten.txt', 'abc');
    await writeFile(job.localPath, 'abcdef');
    assert.deepEqual(await deliver(job), { kind: 'changed' });
    const same = await jobFor('touched.txt', 'abc');
    await writeFile(same.localPath, 'xyz'); // same size; the mtime set apart for certain
    await utimes(same.localPath, new Date(), new Date(same.mtimeMs + 5000));
    assert.deepEqual(await deliver(same), { kind: 'changed' });
  });
});
