// `run --once` and its exit code when it does not finish (issue 16, item 3): a SIGINT while a
// file is in flight (the link is throttled so that it is) ends with exit 1 and one ERROR line
// saying how many files still wait; the next run delivers them. And (item 11) files unchanged
// for longer than StableTime go out at once, however long StableTime is.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { startLink, type Link } from '../helpers/link.js';
import { runCli, startDaemon, waitFor } from '../helpers/process.js';
import { exists, writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, chunkBytes, resetFarm, writeSettings } from '../helpers/push.js';

let farm: VesselFarm;
let link: Link;

before(async () => {
  farm = await startVesselFarm({ count: 1 });
  link = await startLink(farm.vessels[0].port);
});
after(async () => {
  await link?.stop();
  await farm?.stop();
});

describe('run --once', () => {
  beforeEach(async () => {
    link.setRateLimit(0);
    await resetFarm(farm);
  });

  it('interrupted by SIGINT while a file is in flight: exit 1, one ERROR line with the files still waiting; the next run finishes', async () => {
    const files = new Map([
      ['big.bin', await writeRandomFile(join(farm.viewPath, 'big.bin'), 8 * 1024 * 1024, 1)],
      ['sub/other.bin', await writeRandomFile(join(farm.viewPath, 'sub', 'other.bin'), 3 * 1024 * 1024, 2)],
    ]);
    const settings = await writeSettings(farm, { chunkSize: 1024 * 1024, portFor: () => link.port });
    link.setRateLimit(256 * 1024); // a few seconds per chunk: both files are in flight when the signal comes
    const once = startDaemon(['run', '-c', settings, '--once'], { cwd: farm.root });
    try {
      await waitFor(() => chunkBytes(farm.vessels[0]) >= 1024 * 1024, 'a chunk on v1');
      once.kill('SIGINT');
      const end = await once.waitForExit();
      assert.deepEqual(end, { code: 1, signal: null }, once.output());
    } finally {
      once.kill('SIGKILL');
    }
    const lines = once.output().split('\n');
    assert.ok(lines.some((l) => /\bERROR\s+interrupted: 2 files still waiting \(the next run resumes\) waiting=2$/.test(l)), once.output());
    assert.doesNotMatch(once.output(), /finished/);
    for (const rel of files.keys()) assert.ok(await exists(join(farm.viewPath, rel)), `${rel} still waits on the shore`);

    link.setRateLimit(0);
    const again = await runCli(['run', '-c', settings, '--once'], { cwd: farm.root });
    assert.equal(again.code, 0, again.stdout + again.stderr);
    assert.match(again.stdout, /INFO\s+finished: everything processed/);
    await assertOnVessel(farm.vessels[0], farm.viewPath, files);
  });

  it('files unchanged for hours go out at once, whatever StableTime is', async () => {
    const files = new Map([
      ['old.txt', await writeRandomFile(join(farm.viewPath, 'old.txt'), 10, 3)],
      ['deep/old.bin', await writeRandomFile(join(farm.viewPath, 'deep', 'old.bin'), 2 * 1024 * 1024, 4)],
    ]);
    const hoursAgo = new Date(Date.now() - 3 * 3600_000);
    for (const rel of files.keys()) await utimes(join(farm.viewPath, rel), hoursAgo, hoursAgo);
    // An hour: were the files held back for StableTime, the run would hit runCli's safety net.
    const settings = await writeSettings(farm, { stableTime: 3_600_000, chunkSize: 1024 * 1024 });
    const r = await runCli(['run', '-c', settings, '--once'], { cwd: farm.root, timeoutMs: 120_000 });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    await assertOnVessel(farm.vessels[0], farm.viewPath, files);
  });
});
