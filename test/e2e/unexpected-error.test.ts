// An error nothing expects (a bug, ours or a library's) must not be taken for a network hiccup:
// it is logged at ERROR with its stack and counted against the file, which fails after its
// attempts instead of being retried forever at WARN. The failpoint throws a TypeError where a
// small file has just been written.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { runCli } from '../helpers/process.js';
import { exists, writeRandomFile } from '../helpers/tree.js';
import { writeSettings } from '../helpers/push.js';

let farm: VesselFarm;

before(async () => {
  farm = await startVesselFarm({ count: 1 });
});
after(async () => {
  await farm?.stop();
});

describe('an unexpected error', () => {
  it('is logged at ERROR with its stack, counted against the file, and ends --once with exit 1', async () => {
    await writeRandomFile(join(farm.viewPath, 'a.bin'), 5000, 1);
    const settings = await writeSettings(farm);
    const r = await runCli(['run', '-c', settings, '--once', '--give-up-after', '600', '--log-format', 'json'], {
      cwd: farm.root,
      env: { CONTENTMONSTER_FAILPOINT: 'small-file-written:throw' },
    });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const lines = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { level: number; msg: string; err?: { stack?: string } | string; attempts?: number });
    const bugs = lines.filter((l) => /unexpected error/.test(l.msg));
    assert.equal(bugs.length, 3, 'one ERROR per attempt, three attempts');
    for (const b of bugs) {
      assert.equal(b.level, 50, 'ERROR');
      assert.match(typeof b.err === 'object' ? b.err.stack ?? '' : '', /TypeError: failpoint small-file-written: a bug stands in here\n\s+at /);
    }
    const failed = lines.find((l) => l.msg.startsWith('delivery failed; the file stays queued'));
    assert.equal(failed?.attempts, 3);
    assert.ok(!lines.some((l) => /transfer interrupted/.test(l.msg)), 'never taken for a dropped link');
    assert.ok(await exists(join(farm.viewPath, 'a.bin')), 'the file stays on the shore');
  });
});
