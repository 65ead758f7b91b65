// End to end: the built CLI against three real OpenSSH vessels. Every file is checked by
// SHA-256 on every vessel; nothing here mocks SFTP.
import { after, before, beforeEach, describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { appendFile, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { startLink } from '../helpers/link.js';
import { runCli, startDaemon, waitFor } from '../helpers/process.js';
import { exists, listFiles, sha256File, writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, assertVesselClean, chunkBytes, databasePath, onVessel, writeSettings, resetFarm } from '../helpers/push.js';

let farm: VesselFarm;

before(async () => {
  farm = await startVesselFarm({ count: 3 });
});
after(async () => {
  await farm?.stop();
});


/** Writes files under the shore directory; returns relative path → SHA-256. */
async function makeFiles(base: string, specs: [string, number][]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let seed = 1;
  for (const [rel, size] of specs) out.set(rel, await writeRandomFile(join(base, rel), size, seed++));
  return out;
}

const hostileNames = [
  'with space.txt',
  `both 'single' and "double" quotes.txt`,
  '$(touch INJECTED).txt',
  '`touch INJECTED2`; echo x.txt',
  'semi;colon&amp|pipe.txt',
  '-leading-dash.txt',
  'ünïcödé ファイル.txt',
  'new\nline.txt',
  'back\\slash.txt',
];

describe('push: contentmonster run', () => {
  beforeEach(() => resetFarm(farm));

  it('replicates a tree to every vessel, verifies it, and moves it to processed/', async () => {
    const files = await makeFiles(farm.viewPath, [
      ['multi-chunk.bin', 1024 * 1024 + 123], // 17 chunks of 64 KiB
      ['exact-chunks.bin', 4 * 65536],
      ['empty.txt', 0],
      ['nested/deeper/still/file.bin', 200_000],
      ...hostileNames.map((n): [string, number] => [`hostile/${n}`, 1000]),
    ]);
    // Left alone: ignored names and the dot-folders under them.
    await writeFile(join(farm.viewPath, '.hidden'), 'x');
    await writeFile(join(farm.viewPath, 'upload.part'), 'x');
    await mkdir(join(farm.viewPath, '.git'), { recursive: true });
    await writeFile(join(farm.viewPath, '.git', 'config'), 'x');
    const settings = await writeSettings(farm);

    const r = await runCli(['run', '-c', settings, '--once'], { cwd: farm.root });
    assert.equal(r.code, 0, r.stdout + r.stderr);

    // The default TempDir is on the vessels' tmpfs /tmp: another filesystem than the destination.
    const v1 = farm.vessels[0];
    assert.notEqual((await stat(v1.hostPath('/tmp'))).dev, (await stat(v1.hostPath(farm.viewPath))).dev);
    for (const v of farm.vessels) {
      await assertOnVessel(v, farm.viewPath, files);
      await assertVesselClean(v, farm.viewPath);
      assert.deepEqual((await listFiles(v.backing)).sort(), [...files.keys()].sort(), `only the replicated files on ${v.name}`);
    }
    // Shore: everything moved to processed/ intact; ignored files stay where they were.
    for (const [rel, sha] of files) assert.equal(await sha256File(join(farm.viewPath, 'processed', rel)), sha);
    assert.deepEqual(await listFiles(farm.viewPath), ['.git/config', '.hidden', ...[...files.keys()].map((f) => `processed/${f}`).sort(), 'upload.part'].sort());
    // No name reached a shell unquoted, on the shore or on any vessel.
    for (const dir of [farm.root, farm.viewPath, ...farm.vessels.map((v) => v.hostPath('/root')), ...farm.vessels.map((v) => v.backing)]) {
      const names = await readdir(dir).catch(() => []);
      assert.ok(!names.some((n) => n === 'INJECTED' || n === 'INJECTED2'), `no injected marker in ${dir}`);
    }
  });

  it('leaves a vessel out of a Directory it lists in IgnoreDirs', async () => {
    const alpha = join(farm.viewPath, 'alpha');
    const beta = join(farm.viewPath, 'beta');
    const a = await makeFiles(alpha, [['a.bin', 100_000]]);
    const b = await makeFiles(beta, [['b/b.bin', 100_000]]);
    const settings = await writeSettings(farm, {
      directories: [{ name: 'alpha', location: alpha }, { name: 'beta', location: beta }],
      vesselExtra: (i) => (i === 1 ? 'IgnoreDirs = beta' : ''),
    });
    const r = await runCli(['run', '-c', settings, '--once'], { cwd: farm.root });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    for (const v of farm.vessels) await assertOnVessel(v, farm.viewPath, a, 'alpha');
    await assertOnVessel(farm.vessels[0], farm.viewPath, b, 'beta');
    await assertOnVessel(farm.vessels[2], farm.viewPath, b, 'beta');
    assert.deepEqual(await listFiles(join(farm.vessels[1].backing, 'beta')), [], 'v2 ignores beta');
    // Both moved: beta needed only v1 and v3.
    assert.ok(await exists(join(beta, 'processed', 'b', 'b.bin')));
    assert.ok(await exists(join(alpha, 'processed', 'a.bin')));
  });

  it('keeps an older file of the same name in processed/', async () => {
    await mkdir(join(farm.viewPath, 'processed'), { recursive: true });
    await writeFile(join(farm.viewPath, 'processed', 'report.csv'), 'old');
    const files = await makeFiles(farm.viewPath, [['report.csv', 5000]]);
    const r = await runCli(['run', '-c', await writeSettings(farm), '--once'], { cwd: farm.root });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(await sha256File(join(farm.viewPath, 'processed', 'report.csv')), files.get('report.csv'));
    assert.equal(await sha256File(join(farm.viewPath, 'processed', 'report.csv.~1~')), await sha256Text('old'));
  });

  it('as a daemon, picks up new files and slow writers, never shows a partial file, stops on SIGTERM', async () => {
    const settings = await writeSettings(farm, { stableTime: 1000 });
    const daemon = startDaemon(['run', '-c', settings], { cwd: farm.root });
    try {
      await daemon.waitForEvent('ready');
      const added = await makeFiles(farm.viewPath, [['later/new.bin', 300_000]]);
      await waitFor(() => exists(join(farm.viewPath, 'processed', 'later', 'new.bin')), 'new file processed');
      for (const v of farm.vessels) await assertOnVessel(v, farm.viewPath, added);

      // A slow writer: pauses shorter than StableTime. Meanwhile every vessel is watched: the
      // destination must never exist with other than the final content.
      const slow = join(farm.viewPath, 'slow.log');
      const seen: string[] = [];
      let writing = true;
      const watch = (async () => {
        while (writing) {
          for (const v of farm.vessels) {
            const p = v.hostPath(join(farm.viewPath, 'slow.log'));
            if (await exists(p)) seen.push(await sha256File(p).catch(() => 'vanished'));
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      let content = Buffer.alloc(0);
      for (let i = 0; i < 15; i++) {
        const piece = Buffer.alloc(20_000, i);
        content = Buffer.concat([content, piece]);
        await appendFile(slow, piece);
        await new Promise((r) => setTimeout(r, 150));
      }
      const finalSha = await sha256File(slow);
      await waitFor(() => exists(join(farm.viewPath, 'processed', 'slow.log')), 'slow file processed');
      writing = false;
      await watch;
      for (const v of farm.vessels) await assertOnVessel(v, farm.viewPath, new Map([['slow.log', finalSha]]));
      assert.ok(seen.every((s) => s === finalSha), `a vessel showed a partial slow.log (${new Set(seen).size} distinct contents)`);
      assert.equal(content.length, 300_000);

      daemon.kill('SIGTERM');
      const exit = await daemon.waitForExit(15_000);
      assert.equal(exit.code, 0, daemon.output());
    } finally {
      daemon.kill('SIGKILL');
    }
  });

  it('resumes a half-sent file after kill -9 and after SIGTERM instead of starting over', async () => {
    const proxy = await startLink(farm.vessels[0].port);
    try {
      const size = 16 * 1024 * 1024;
      const files = await makeFiles(farm.viewPath, [['big.bin', size]]);
      const settings = await writeSettings(farm, { chunkSize: 1024 * 1024, vessels: [0], portFor: () => proxy.port });
      proxy.setRateLimit(4 * 1024 * 1024); // slow enough to catch it mid-file
      const first = startDaemon(['run', '-c', settings, '--once'], { cwd: farm.root });
      try {
        // The phase comes from the vessel, not from timing: at least 4 chunks' worth in TempDir.
        await waitFor(() => chunkBytes(farm.vessels[0]) >= 4 * 1024 * 1024, 'four chunks on v1');
      } finally {
        first.kill('SIGKILL');
      }
      await first.waitForExit();
      assert.ok(!(await exists(farm.vessels[0].hostPath(join(farm.viewPath, 'big.bin')))), 'not yet placed');

      // Then as a daemon, stopped by SIGTERM in the middle of the file: a clean exit 0.
      const second = startDaemon(['run', '-c', settings], { cwd: farm.root });
      try {
        await waitFor(() => chunkBytes(farm.vessels[0]) >= 8 * 1024 * 1024, 'eight chunks on v1');
        second.kill('SIGTERM');
        const exit = await second.waitForExit(15_000);
        assert.equal(exit.code, 0, second.output());
      } finally {
        second.kill('SIGKILL');
      }
      assert.ok(!(await exists(farm.vessels[0].hostPath(join(farm.viewPath, 'big.bin')))), 'still not placed');

      proxy.setRateLimit(0);
      proxy.resetCounters();
      const r = await runCli(['run', '-c', settings, '--once'], { cwd: farm.root });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      await assertOnVessel(farm.vessels[0], farm.viewPath, files);
      await assertVesselClean(farm.vessels[0], farm.viewPath);
      assert.ok(proxy.bytesUp < size - 3 * 1024 * 1024, `resumed: ${proxy.bytesUp} bytes sent again for a ${size}-byte file`);
    } finally {
      await proxy.stop();
    }
  });

  it('with the state file lost, confirms files already on the vessels without sending them again', async () => {
    const size = 4 * 1024 * 1024;
    const files = await makeFiles(farm.viewPath, [['again.bin', size]]);
    const settings = await writeSettings(farm, { vessels: [0] });
    assert.equal((await runCli(['run', '-c', settings, '--once'], { cwd: farm.root })).code, 0);
    // Put the shore file back (a rename keeps size and mtime) and lose the state file.
    await rename(join(farm.viewPath, 'processed', 'again.bin'), join(farm.viewPath, 'again.bin'));
    await rm(join(farm.root, 'state'), { recursive: true, force: true });

    const proxy = await startLink(farm.vessels[0].port);
    try {
      const r = await runCli(['run', '-c', await writeSettings(farm, { vessels: [0], portFor: () => proxy.port }), '--once'], { cwd: farm.root });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /already on vessel/);
      assert.ok(proxy.bytesUp < 256 * 1024, `nothing re-sent: ${proxy.bytesUp} bytes up`);
      await assertOnVessel(farm.vessels[0], farm.viewPath, files);
      assert.ok(await exists(join(farm.viewPath, 'processed', 'again.bin')));
      assert.ok(await exists(databasePath(farm)), 'a new state file');
    } finally {
      await proxy.stop();
    }
  });

  it('a vessel with openssl but without sha256sum verifies small and chunked files with openssl', async () => {
    const files = await makeFiles(farm.viewPath, [['small-1.txt', 5000], ['small-2.txt', 6000], ['chunked.bin', 300_000]]);
    // A /usr/bin without sha256sum in v1's namespace (hard links: nothing is copied): the tool
    // is really absent, as on a vessel that lacks it, not present and failing.
    const bin = join(farm.root, 'usr-bin-without-sha256sum');
    execFileSync('cp', ['-al', '/usr/bin', bin]);
    await rm(join(bin, 'sha256sum'));
    const v1 = farm.vessels[0];
    onVessel(v1, `mount --bind '${bin}' /usr/bin`);
    try {
      const r = await runCli(['run', '-c', await writeSettings(farm), '--once'], { cwd: farm.root });
      assert.equal(r.code, 0, r.stdout + r.stderr);
      for (const v of farm.vessels) {
        await assertOnVessel(v, farm.viewPath, files);
        await assertVesselClean(v, farm.viewPath);
      }
    } finally {
      onVessel(v1, 'umount -l /usr/bin'); // lazy: the run's last sessions on v1 may still be ending
      await rm(bin, { recursive: true, force: true });
    }
  });

  it('--once gives up an unreachable vessel, finishes the others, exits 1 with one line per failure', async () => {
    const files = await makeFiles(farm.viewPath, [['one.bin', 10_000], ['two.bin', 10_000]]);
    const proxy = await startLink(farm.vessels[2].port);
    proxy.setRefusing(true);
    try {
      const settings = await writeSettings(farm, { portFor: (i) => (i === 2 ? proxy.port : farm.vessels[i].port) });
      const r = await runCli(['run', '-c', settings, '--once', '--give-up-after', '3'], { cwd: farm.root });
      assert.equal(r.code, 1, r.stdout + r.stderr);
      await assertOnVessel(farm.vessels[0], farm.viewPath, files).catch((e) => assert.fail(`${e.message}\n${r.stdout}`));
      await assertOnVessel(farm.vessels[1], farm.viewPath, files);
      const failureLines = r.stdout.split('\n').filter((l) => /not replicated/.test(l));
      assert.equal(failureLines.length, 2, r.stdout);
      assert.ok(failureLines.every((l) => l.includes('vessel=v3')));
      // Not on every vessel: stays on the shore for the next run.
      assert.ok(await exists(join(farm.viewPath, 'one.bin')));
    } finally {
      await proxy.stop();
    }
  });
});

async function sha256Text(text: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  return createHash('sha256').update(text).digest('hex');
}
