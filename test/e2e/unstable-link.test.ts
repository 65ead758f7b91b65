// Far and flaky links (issue 14): the satellite and GPRS profiles of the link emulator with
// data sets that fit their rates, and a daemon that sees files arrive while its links keep
// dropping. Each asserts every file intact on every vessel, nothing left behind, and at most
// 1.5 × the payload through the links. Progress is asserted by bytes and files, not seconds.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { profiles, startLink, type Link } from '../helpers/link.js';
import { startDaemon, waitFor } from '../helpers/process.js';
import { assertOnVessel, resetFarm, writeSettings } from '../helpers/push.js';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { exists, writeRandomFile } from '../helpers/tree.js';
import { KiB, MiB, assertNoLeakWarning, assertVesselCleanOnceQuiet, crossing, deliverThrough, payloadOf, writeFiles, type FileSet } from '../helpers/unstable.js';

let farm: VesselFarm;
let links: Link[] = [];

before(async () => {
  farm = await startVesselFarm({ count: 2 });
});
after(async () => {
  for (const l of links) await l.stop();
  await farm?.stop();
});

describe('far and flaky links', () => {
  beforeEach(async () => {
    for (const l of links) await l.stop();
    links = [];
    await resetFarm(farm);
  });

  it('satellite: 300 ms each way, 1 MB/s, cuts every 4-12 MB, stalls of seconds', async () => {
    const files: FileSet = [
      ...Array.from({ length: 8 }, (_, i): [string, number] => [`sat/small-${i}.bin`, 64 * KiB]),
      ['sat/one.bin', 1 * MiB], ['sat/two.bin', 1 * MiB], ['sat/large.bin', 7 * MiB],
    ];
    const shas = await writeFiles(farm, files, 300);
    // The cuts come closer than the profile's, so that a data set that fits 1 MB/s sees some.
    links = await Promise.all(farm.vessels.map((v, i) => startLink(v.port, { ...profiles.satellite, faultEvery: [2_000_000, 5_000_000], seed: 30 + i })));
    const c = await deliverThrough(farm, links, shas, payloadOf(files), { chunkSize: 4 * MiB });
    console.log(`# satellite: bytes through the links / payload ${c.ratio.toFixed(3)} (${JSON.stringify(c)})`);
    assert.ok(c.cuts + c.stalls >= 2, `faults were injected: ${JSON.stringify(c)}`);
  });

  it('GPRS: 600 ms each way, 40 KB/s, cuts every 200 KB to 1 MB', async () => {
    const files: FileSet = [['gprs/a.txt', 2000], ['gprs/b.txt', 20 * KiB], ['gprs/c.bin', 300 * KiB], ['gprs/d.bin', 1200 * KiB]];
    const shas = await writeFiles(farm, files, 400);
    links = await Promise.all(farm.vessels.map((v, i) => startLink(v.port, { ...profiles.gprs, seed: 40 + i })));
    const c = await deliverThrough(farm, links, shas, payloadOf(files), { chunkSize: 1 * MiB, giveUpAfterS: 300 });
    console.log(`# GPRS: bytes through the links / payload ${c.ratio.toFixed(3)} (${JSON.stringify(c)})`);
    assert.ok(c.cuts >= 2, `faults were injected: ${JSON.stringify(c)}`);
  });

  it('a daemon sees files arrive while its links keep dropping (whole-link cuts, stalls, refusals)', async () => {
    links = await Promise.all(farm.vessels.map((v, i) => startLink(v.port, {
      faultEvery: [1_000_000, 6_000_000], cutScope: 'link', stallEvery: 4, stallMs: [500, 3000], refuseEvery: 3, refuseMs: 1500, seed: 50 + i,
    })));
    const settings = await writeSettings(farm, { chunkSize: 2 * MiB, portFor: (i) => links[i].port, timeout: 2 });
    const daemon = startDaemon(['run', '-c', settings], { cwd: farm.root });
    const shas = new Map<string, string>();
    let payload = 0;
    try {
      await daemon.waitForEvent('ready');
      // Written while the daemon runs: small ones in bursts, and a few large ones among them.
      for (let n = 0; n < 36; n++) {
        const rel = `arrivals/batch-${Math.floor(n / 6)}/f${n}.bin`;
        const size = n % 9 === 4 ? 9 * MiB + n * 1000 : (n * 37_000) % (1 * MiB);
        shas.set(rel, await writeRandomFile(join(farm.viewPath, rel), size, 500 + n));
        payload += size;
        if (n % 6 === 5) await waitFor(() => links.every((l) => l.cuts > n / 6), 'the links to keep dropping', 60_000);
      }
      await waitFor(async () => {
        for (const rel of shas.keys()) if (!(await exists(join(farm.viewPath, 'processed', rel)))) return false;
        return true;
      }, 'every file processed', 300_000, 250).catch((e: Error) => assert.fail(`${e.message}\n${daemon.output().slice(-6000)}`));
    } finally {
      daemon.kill('SIGTERM');
      await daemon.waitForExit(20_000).catch(() => daemon.kill('SIGKILL'));
    }
    assertNoLeakWarning(daemon.output());
    for (const v of farm.vessels) {
      await assertOnVessel(v, farm.viewPath, shas);
      await assertVesselCleanOnceQuiet(v, farm.viewPath);
    }
    const c = crossing(links, payload);
    console.log(`# daemon with arrivals: bytes through the links / payload ${c.ratio.toFixed(3)} (${JSON.stringify(c)})`);
    assert.ok(c.cuts >= 6, `the links dropped: ${JSON.stringify(c)}`);
    assert.ok(c.ratio <= 1.5, `bytes through the links / payload = ${c.ratio.toFixed(3)}`);
  });
});
