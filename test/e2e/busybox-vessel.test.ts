// A vessel whose SHA-256 tools are busybox's: `sha256sum` is the busybox applet (its `-c`
// answers only when its input ends, so a checker that lives as long as the connection would
// wait for each answer until its deadline), and there is no working openssl. The daemon must
// find out once and check small files by batched digests; every file still verified.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { runCli } from '../helpers/process.js';
import { exists, writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, assertVesselClean, onVessel, writeSettings } from '../helpers/push.js';

let farm: VesselFarm;

before(async () => {
  farm = await startVesselFarm({ count: 1 });
  // In the vessel's own mount namespace only: busybox answers as sha256sum and as openssl
  // (an applet it does not have, so openssl fails there).
  onVessel(farm.vessels[0], 'mount --bind /bin/busybox /usr/bin/sha256sum && mount --bind /bin/busybox /usr/bin/openssl');
});
after(async () => {
  await farm?.stop();
});

describe('a vessel with busybox sha256sum', () => {
  it('is told apart once; small files are checked by batched digests; every file verified', async () => {
    const v = farm.vessels[0];
    // The premise: this vessel's sha256sum is busybox's, which refuses --version.
    assert.throws(() => execFileSync('nsenter', ['-t', String(v.pid), '-m', '--', 'sha256sum', '--version'], { stdio: 'pipe' }));
    const expected = new Map<string, string>();
    for (let i = 0; i < 40; i++) expected.set(`small/${i}.bin`, await writeRandomFile(join(farm.viewPath, 'small', `${i}.bin`), 1000 + i * 97, i + 1));
    expected.set('large.bin', await writeRandomFile(join(farm.viewPath, 'large.bin'), 3 * 1024 * 1024 + 5, 99));
    const settings = await writeSettings(farm, { chunkSize: 1024 * 1024 });
    const r = await runCli(['run', '-c', settings, '--once', '--log-level', 'debug', '--log-format', 'json'], { cwd: farm.root });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const lines = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg: string; checker?: string });
    const chosen = lines.filter((l) => l.checker !== undefined);
    assert.deepEqual(chosen.map((l) => l.checker), ['batch'], 'decided once, for batched digests');
    assert.match(chosen[0].msg, /batched digests/);
    await assertOnVessel(v, farm.viewPath, expected);
    await assertVesselClean(v, farm.viewPath);
    for (const rel of expected.keys()) assert.ok(await exists(join(farm.viewPath, 'processed', rel)), `${rel} moved to processed/`);
  });
});
