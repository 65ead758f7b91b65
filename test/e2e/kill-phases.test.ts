// kill -9 at each phase of a delivery, then a restart (issue 3, item 4). The phase is found
// from the state file, the log or a failpoint, never from timing. After the restart, every
// vessel has exactly the right content, processed/ holds no duplicate, TempDir is clean.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, copyFile, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { startLink, type Link } from '../helpers/link.js';
import { runCli, startDaemon, waitFor, type Daemon } from '../helpers/process.js';
import { exists, listFiles, sha256File, writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, assertVesselClean, chunkBytes, writeSettings, resetFarm, onVessel } from '../helpers/push.js';

let farm: VesselFarm;
let proxy: Link;

before(async () => {
  farm = await startVesselFarm({ count: 2 });
  proxy = await startLink(farm.vessels[0].port);
});
after(async () => {
  await proxy?.stop();
  await farm?.stop();
});


const onV1 = (script: string) => onVessel(farm.vessels[0], script);

/**
 * Makes a vessel command slow on v1 (it waits until released), so that the daemon can be
 * killed while that command runs. Returns a function that releases it and undoes the mount.
 */
async function slowOnV1(command: 'cat' | 'sha256sum'): Promise<{ started: () => Promise<boolean>; heal: () => void }> {
  const real = join(farm.root, `${command}.real`);
  const wrapper = join(farm.root, `${command}.slow`);
  const gate = join(farm.root, `${command}.gate`);
  const started = join(farm.root, `${command}.started`);
  await copyFile(`/usr/bin/${command}`, real);
  await rm(gate, { force: true });
  await rm(started, { force: true });
  // Waits (bounded) for the gate file: the test opens it after the kill. `--version` (the
  // daemon's first question to a vessel, which sha256sum it has) is answered at once.
  await writeFile(wrapper, `#!/bin/sh\n[ "$1" = --version ] && exec '${real}' "$@"\n: > '${started}'\ni=0; while [ ! -e '${gate}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done\nexec '${real}' "$@"\n`);
  await chmod(wrapper, 0o755);
  onV1(`mount --bind '${wrapper}' /usr/bin/${command}`);
  return {
    started: () => exists(started),
    heal: () => {
      execFileSync('touch', [gate]);
      onV1(`umount -l /usr/bin/${command}`); // lazy: the wrapper may still be running
    },
  };
}

async function killAndRestart(daemon: Daemon, settings: string): Promise<string> {
  daemon.kill('SIGKILL');
  await daemon.waitForExit();
  const r = await runCli(['run', '-c', settings, '--once'], { cwd: farm.root });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  return r.stdout;
}

async function assertEndState(files: Map<string, string>): Promise<void> {
  for (const v of farm.vessels) {
    await assertOnVessel(v, farm.viewPath, files);
    assert.deepEqual(await listFiles(v.backing), [...files.keys()].sort(), `exactly the files on ${v.name}`);
    await assertVesselClean(v, farm.viewPath);
  }
  const processed = (await listFiles(farm.viewPath)).filter((f) => f.startsWith('processed/'));
  assert.deepEqual(processed, [...files.keys()].map((f) => `processed/${f}`).sort(), 'each file once in processed/');
  for (const [rel, sha] of files) assert.equal(await sha256File(join(farm.viewPath, 'processed', rel)), sha);
}

describe('kill -9 at each phase, then restart', () => {
  beforeEach(async () => {
    await resetFarm(farm);
    proxy.setRateLimit(0);
  });

  const size = 3 * 1024 * 1024;
  const start = async (opts: { throttle?: boolean; env?: NodeJS.ProcessEnv; size?: number } = {}) => {
    const files = new Map([['phase.bin', await writeRandomFile(join(farm.viewPath, 'phase.bin'), opts.size ?? size, 31)]]);
    const settings = await writeSettings(farm, { chunkSize: 1024 * 1024, portFor: (i) => (i === 0 ? proxy.port : farm.vessels[i].port) });
    if (opts.throttle) proxy.setRateLimit(512 * 1024);
    const daemon = startDaemon(['run', '-c', settings, '--once', '--log-level', 'debug'], { cwd: farm.root, env: opts.env });
    return { files, settings, daemon };
  };

  it('during a chunk upload', async () => {
    const { files, settings, daemon } = await start({ throttle: true });
    await waitFor(() => chunkBytes(farm.vessels[0]) >= 1024 * 1024, 'a chunk on v1');
    proxy.setRateLimit(0);
    await killAndRestart(daemon, settings);
    await assertEndState(files);
  });

  // The vessel joins with cat; a file this small it hashes with sha256sum (openssl for large ones).
  for (const command of ['cat', 'sha256sum'] as const) {
    it(`during the remote ${command}`, async () => {
      const slow = await slowOnV1(command);
      let healed = false;
      try {
        const { files, settings, daemon } = await start();
        await daemon.waitForEvent('joining', (e) => e.vessel === 'v1');
        await waitFor(slow.started, `the remote ${command} running`);
        daemon.kill('SIGKILL');
        await daemon.waitForExit();
        slow.heal();
        healed = true;
        await killAndRestart(daemon, settings);
        await assertEndState(files);
      } finally {
        if (!healed) slow.heal();
      }
    });
  }

  it('a small file written beside its destination but not yet placed: nothing stray is left', async () => {
    // Small files (one chunk, at most 1 MiB) skip TempDir; their hidden file must not pile up.
    const { files, settings, daemon } = await start({ size: 100_000, env: { CONTENTMONSTER_FAILPOINT: 'small-file-written' } });
    await daemon.waitForOutput(/failpoint small-file-written reached/);
    await killAndRestart(daemon, settings);
    await assertEndState(files);
  });

  it('between the remote rename and the state update', async () => {
    const { files, settings, daemon } = await start({ env: { CONTENTMONSTER_FAILPOINT: 'after-remote-rename' } });
    await daemon.waitForOutput(/failpoint after-remote-rename reached/);
    const out = await killAndRestart(daemon, settings);
    assert.match(out, /already on vessel/, 'the placed file is confirmed, not sent again');
    await assertEndState(files);
  });

  it('during the processed/ move (an older file of the same name is there)', async () => {
    await mkdir(join(farm.viewPath, 'processed'), { recursive: true });
    await writeFile(join(farm.viewPath, 'processed', 'phase.bin'), 'older');
    const { files, settings, daemon } = await start({ env: { CONTENTMONSTER_FAILPOINT: 'processed-move' } });
    await daemon.waitForOutput(/failpoint processed-move reached/);
    await killAndRestart(daemon, settings);
    for (const v of farm.vessels) await assertOnVessel(v, farm.viewPath, files);
    const processed = (await listFiles(join(farm.viewPath, 'processed'))).sort();
    assert.deepEqual(processed, ['phase.bin', 'phase.bin.~1~'], 'the new file and the older one, once each');
    assert.equal(await sha256File(join(farm.viewPath, 'processed', 'phase.bin')), files.get('phase.bin'));
    assert.ok(!(await exists(join(farm.viewPath, 'phase.bin'))));
    for (const v of farm.vessels) await assertVesselClean(v, farm.viewPath);
  });
});
