// A shore file that changes while it is being sent (issue 3, item 5). Each change happens
// mid-upload (found from the state file: a chunk is confirmed), through a throttled link. The
// vessel must end with exactly the final content (never a mix), or nothing if the file is gone,
// and TempDir must be left clean.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdir, readdir, rename, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { startLink, type Link } from '../helpers/link.js';
import { startDaemon, waitFor, type Daemon } from '../helpers/process.js';
import { exists, listFiles, sha256File, writeRandomFile } from '../helpers/tree.js';
import { assertVesselClean, chunkBytes, writeSettings, resetFarm } from '../helpers/push.js';

let farm: VesselFarm;
let proxy: Link;

before(async () => {
  farm = await startVesselFarm({ count: 1 });
  proxy = await startLink(farm.vessels[0].port);
});
after(async () => {
  await proxy?.stop();
  await farm?.stop();
});


const SIZE = 6 * 1024 * 1024;

/** Starts a daemon on a throttled link and returns once the file is partly on the vessel. */
async function midUpload(rel: string): Promise<Daemon> {
  await writeRandomFile(join(farm.viewPath, rel), SIZE, 11);
  const settings = await writeSettings(farm, { chunkSize: 1024 * 1024, stableTime: 300, portFor: () => proxy.port });
  proxy.setRateLimit(1024 * 1024);
  const daemon = startDaemon(['run', '-c', settings], { cwd: farm.root });
  await waitFor(() => chunkBytes(farm.vessels[0]) >= 1024 * 1024, 'a chunk on v1').catch((e) => assert.fail(`${e.message}\n${daemon.output()}`));
  return daemon;
}

async function finish(daemon: Daemon): Promise<void> {
  daemon.kill('SIGTERM');
  const exit = await daemon.waitForExit(15_000);
  assert.equal(exit.code, 0, daemon.output());
}

const vesselFile = (rel: string) => farm.vessels[0].hostPath(join(farm.viewPath, rel));

async function tempDirEmpty(): Promise<boolean> {
  return (await readdir(farm.vessels[0].hostPath('/tmp/.ContentMonster')).catch(() => [])).length === 0;
}

describe('shore file changed during its upload', () => {
  beforeEach(async () => {
    await resetFarm(farm);
    proxy.setRateLimit(0);
  });

  for (const [name, change] of [
    ['appended to', (p: string) => appendFile(p, Buffer.alloc(300_000, 7))],
    ['truncated', (p: string) => truncate(p, 1000)],
  ] as const) {
    it(`${name}: the vessel ends with the new content only`, async () => {
      const daemon = await midUpload('changing.bin');
      try {
        const path = join(farm.viewPath, 'changing.bin');
        await change(path);
        const finalSha = await sha256File(path);
        proxy.setRateLimit(0);
        await waitFor(() => exists(join(farm.viewPath, 'processed', 'changing.bin')), 'the new version processed');
        assert.equal(await sha256File(vesselFile('changing.bin')), finalSha, 'new content on the vessel');
        assert.equal(await sha256File(join(farm.viewPath, 'processed', 'changing.bin')), finalSha);
        await waitFor(tempDirEmpty, 'chunks of the old version removed');
        await assertVesselClean(farm.vessels[0], farm.viewPath);
        await finish(daemon);
      } finally {
        daemon.kill('SIGKILL');
      }
    });
  }

  it('deleted: it leaves the queue, its chunks are removed, nothing appears on the vessel', async () => {
    const daemon = await midUpload('doomed.bin');
    try {
      await rm(join(farm.viewPath, 'doomed.bin'));
      proxy.setRateLimit(0);
      await daemon.waitForEvent('dropped', (e) => e.file === join(farm.viewPath, 'doomed.bin'));
      await waitFor(tempDirEmpty, 'chunks removed');
      await assertVesselClean(farm.vessels[0], farm.viewPath);
      assert.deepEqual(await listFiles(farm.vessels[0].backing), []);
      await finish(daemon);
    } finally {
      daemon.kill('SIGKILL');
    }
  });

  it('replaced by a directory: the files inside are replicated, the old file is not', async () => {
    const daemon = await midUpload('shape');
    try {
      await rm(join(farm.viewPath, 'shape'));
      await mkdir(join(farm.viewPath, 'shape'));
      const inner = await writeRandomFile(join(farm.viewPath, 'shape', 'inner.bin'), 50_000, 12);
      proxy.setRateLimit(0);
      await waitFor(() => exists(join(farm.viewPath, 'processed', 'shape', 'inner.bin')), 'the inner file processed', 30_000)
        .catch((e) => assert.fail(`${e.message}\n${daemon.output()}`));
      assert.equal(await sha256File(vesselFile('shape/inner.bin')), inner);
      await waitFor(tempDirEmpty, 'chunks of the old file removed');
      assert.deepEqual(await listFiles(farm.vessels[0].backing), ['shape/inner.bin']);
      await finish(daemon);
    } finally {
      daemon.kill('SIGKILL');
    }
  });

  it('renamed: it arrives under its new name only', async () => {
    const daemon = await midUpload('before.bin');
    try {
      const sha = await sha256File(join(farm.viewPath, 'before.bin'));
      await rename(join(farm.viewPath, 'before.bin'), join(farm.viewPath, 'after.bin'));
      proxy.setRateLimit(0);
      await waitFor(() => exists(join(farm.viewPath, 'processed', 'after.bin')), 'the renamed file processed');
      assert.equal(await sha256File(vesselFile('after.bin')), sha);
      await waitFor(tempDirEmpty, 'chunks under the old name removed');
      assert.deepEqual(await listFiles(farm.vessels[0].backing), ['after.bin']);
      await finish(daemon);
    } finally {
      daemon.kill('SIGKILL');
    }
  });
});
