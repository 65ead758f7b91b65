// Unstable links and hostile input (issue 3, first part): host keys, stalls, a vessel that is
// down while files arrive, and hostile TempDir / RemoteLocation values. Each checks contents
// by SHA-256; phases come from the state file or the log, never from timing.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readdir, rm, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { startLink } from '../helpers/link.js';
import { runCli, startDaemon, waitFor } from '../helpers/process.js';
import { exists, listFiles, writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, assertVesselClean, chunkBytes, databasePath, writeSettings, resetFarm } from '../helpers/push.js';

let farm: VesselFarm;

before(async () => {
  farm = await startVesselFarm({ count: 3 });
});
after(async () => {
  await farm?.stop();
});


async function oneFile(rel: string, size: number, seed = 7): Promise<Map<string, string>> {
  return new Map([[rel, await writeRandomFile(join(farm.viewPath, rel), size, seed)]]);
}

function setRecordedHostKey(host: string, fingerprint: string): void {
  const db = new Database(databasePath(farm));
  try {
    db.prepare('UPDATE host_keys SET fingerprint = ? WHERE host = ?').run(fingerprint, host);
  } finally {
    db.close();
  }
}

function recordedHostKeys(): { host: string; fingerprint: string }[] {
  const db = new Database(databasePath(farm), { readonly: true });
  try {
    return db.prepare('SELECT host, fingerprint FROM host_keys ORDER BY host').all() as { host: string; fingerprint: string }[];
  } finally {
    db.close();
  }
}

const fakeFingerprint = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

describe('faults and hostile input', () => {
  beforeEach(() => resetFarm(farm));

  it('records a host key on first use, and refuses a vessel whose key changed, naming both fingerprints', async () => {
    const v1 = farm.vessels[0];
    const settings = await writeSettings(farm, { vessels: [0] });
    const first = await oneFile('first.bin', 1000);
    assert.equal((await runCli(['run', '-c', settings, '--once'], { cwd: farm.root })).code, 0);
    await assertOnVessel(v1, farm.viewPath, first);
    assert.deepEqual(recordedHostKeys(), [{ host: `127.0.0.1:${v1.port}`, fingerprint: v1.hostKeyFingerprint }]);

    // The vessel now presents a key other than the recorded one.
    setRecordedHostKey(`127.0.0.1:${v1.port}`, fakeFingerprint);
    await oneFile('second.bin', 1000, 8);
    const r = await runCli(['run', '-c', settings, '--once'], { cwd: farm.root });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stdout, /host key of vessel v1 .*changed/);
    assert.ok(r.stdout.includes(fakeFingerprint) && r.stdout.includes(v1.hostKeyFingerprint), 'both fingerprints named');
    assert.ok(!(await exists(join(v1.backing, 'second.bin'))), 'nothing sent');
    assert.deepEqual(await readdir(v1.hostPath('/tmp/.ContentMonster')).catch(() => []), [], 'not even a chunk');
    assert.ok(await exists(join(farm.viewPath, 'second.bin')), 'stays on the shore');
  });

  it('HostKey pins a fingerprint: the right one is accepted, a wrong one refused', async () => {
    const v1 = farm.vessels[0];
    const files = await oneFile('pinned.bin', 5000);
    const good = await writeSettings(farm, { vessels: [0], vesselExtra: () => `HostKey = ${v1.hostKeyFingerprint}` });
    assert.equal((await runCli(['run', '-c', good, '--once'], { cwd: farm.root })).code, 0);
    await assertOnVessel(v1, farm.viewPath, files);

    await oneFile('refused.bin', 5000, 9);
    const bad = await writeSettings(farm, { vessels: [0], vesselExtra: () => `HostKey = ${fakeFingerprint}` });
    const r = await runCli(['run', '-c', bad, '--once'], { cwd: farm.root });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.ok(r.stdout.includes(`pins ${fakeFingerprint}`) && r.stdout.includes(v1.hostKeyFingerprint), r.stdout);
    assert.ok(!(await exists(join(v1.backing, 'refused.bin'))));
  });

  it('tears down a stalled connection after Timeout and resumes the file', async () => {
    const proxy = await startLink(farm.vessels[0].port);
    try {
      const size = 8 * 1024 * 1024;
      const files = await oneFile('stalled.bin', size);
      const settings = await writeSettings(farm, { chunkSize: 1024 * 1024, vessels: [0], portFor: () => proxy.port, timeout: 2 });
      proxy.setRateLimit(2 * 1024 * 1024);
      const daemon = startDaemon(['run', '-c', settings, '--once'], { cwd: farm.root });
      try {
        await waitFor(() => chunkBytes(farm.vessels[0]) >= 2 * 1024 * 1024, 'two chunks on v1').catch((e) => assert.fail(`${e.message}\n${daemon.output()}`));
        proxy.setStalled(true);
        await daemon.waitForEvent('interrupted', (e) => e.vessel === 'v1');
        proxy.setStalled(false);
        proxy.setRateLimit(0);
        const exit = await daemon.waitForExit(120_000);
        assert.equal(exit.code, 0, daemon.output());
      } finally {
        daemon.kill('SIGKILL');
      }
      await assertOnVessel(farm.vessels[0], farm.viewPath, files);
      await assertVesselClean(farm.vessels[0], farm.viewPath);
      assert.ok(proxy.bytesUp < 1.5 * size, `resumed after the stall: ${proxy.bytesUp} bytes up for ${size}`);
    } finally {
      await proxy.stop();
    }
  });

  it('a slow but moving link is not mistaken for a stall (requests queue behind the write window)', async () => {
    const proxy = await startLink(farm.vessels[0].port);
    try {
      const size = 3 * 1024 * 1024;
      const files = await oneFile('slow-link.bin', size);
      // At 512 KiB/s a full 4 MiB write window takes 8 s to drain, four times the Timeout.
      proxy.setRateLimit(512 * 1024);
      const settings = await writeSettings(farm, { chunkSize: size, vessels: [0], portFor: () => proxy.port, timeout: 2 });
      const r = await runCli(['run', '-c', settings, '--once'], { cwd: farm.root });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.doesNotMatch(r.stdout, /stalled|interrupted/, r.stdout);
      await assertOnVessel(farm.vessels[0], farm.viewPath, files);
      assert.ok(proxy.bytesUp < 1.1 * size, `sent once: ${proxy.bytesUp} bytes up`);
    } finally {
      await proxy.stop();
    }
  });

  it('a vessel that is down does not hold up the others, and catches up when it returns, without a restart', async () => {
    const proxy = await startLink(farm.vessels[2].port);
    proxy.setRefusing(true);
    try {
      const settings = await writeSettings(farm, { portFor: (i) => (i === 2 ? proxy.port : farm.vessels[i].port) });
      const daemon = startDaemon(['run', '-c', settings], { cwd: farm.root });
      try {
        await daemon.waitForEvent('ready');
        const files = await oneFile('arrives.bin', 300_000);
        await waitFor(() => exists(join(farm.vessels[0].backing, 'arrives.bin')), 'on v1');
        await waitFor(() => exists(join(farm.vessels[1].backing, 'arrives.bin')), 'on v2');
        await assertOnVessel(farm.vessels[0], farm.viewPath, files);
        await assertOnVessel(farm.vessels[1], farm.viewPath, files);
        await daemon.waitForEvent('unreachable', (e) => e.vessel === 'v3');
        // The log says which vessel, what failed, and when the next try is.
        assert.match(daemon.output(), /cannot reach vessel; will retry vessel=v3 err=.* retryInSeconds=[\d.]+/);
        assert.ok(await exists(join(farm.viewPath, 'arrives.bin')), 'not processed while v3 lacks it');

        proxy.setRefusing(false);
        await waitFor(() => exists(join(farm.viewPath, 'processed', 'arrives.bin')), 'processed once v3 caught up', 120_000);
        await assertOnVessel(farm.vessels[2], farm.viewPath, files);
        daemon.kill('SIGTERM');
        assert.equal((await daemon.waitForExit(15_000)).code, 0);
      } finally {
        daemon.kill('SIGKILL');
      }
    } finally {
      await proxy.stop();
    }
  });

  it('no command injection through Location, TempDir or RemoteLocation; symlinks are not followed', async () => {
    const remote = join(farm.viewPath, `remote 'dir' "x" $(touch INJECTED_R);y`);
    // A hostile Location whose RemoteLocation defaults to the same path on the vessels.
    const hostileLocation = join(farm.viewPath, `loc 'q' $(touch INJECTED_L) \`touch INJECTED_M\``);
    const shaL = await writeRandomFile(join(hostileLocation, 'l.bin'), 70_000, 4);
    const tempDir = `/tmp/temp 'dir' $(touch INJECTED_T);\`touch INJECTED_B\``;
    const local = join(farm.root, 'shore-src');
    await rm(local, { recursive: true, force: true });
    await mkdir(local, { recursive: true });
    const sha = await writeRandomFile(join(local, 'sub', 'x.bin'), 200_000, 3);
    await symlink('/etc/hostname', join(local, 'link-out'));
    const settings = await writeSettings(farm, {
      vessels: [0, 1],
      directories: [{ name: 'hostile', location: local, extra: `RemoteLocation = ${remote}` }, { name: 'located', location: hostileLocation }],
      vesselExtra: () => `TempDir = ${tempDir}`,
    });
    const r = await runCli(['run', '-c', settings, '--once'], { cwd: farm.root });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /symbolic link skipped/);
    for (const v of farm.vessels.slice(0, 2)) {
      await assertOnVessel(v, remote, new Map([['sub/x.bin', sha]]));
      assert.deepEqual(await listFiles(v.hostPath(remote)), ['sub/x.bin'], 'only the file, no link target');
      await assertVesselClean(v, remote, tempDir);
      await assertOnVessel(v, hostileLocation, new Map([['l.bin', shaL]]));
      for (const dir of ['/root', '/tmp', farm.viewPath, remote, hostileLocation]) {
        const names = await readdir(v.hostPath(dir)).catch(() => [] as string[]);
        assert.ok(!names.some((n) => n.startsWith('INJECTED')), `no marker in ${dir} on ${v.name}: ${names.join(', ')}`);
      }
    }
    assert.ok(!(await readdir(farm.root)).some((n) => n.startsWith('INJECTED')));
  });
});
