// About 100 MiB of mixed files to two vessels through links that are cut every few MB and
// stall now and then (issue 3, item 1). Every file must arrive intact on both, and the bytes
// that crossed the links must stay below 1.5 times the payload: transfers resume, they do not
// start over.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { startDaemon } from '../helpers/process.js';
import { writeRandomFile } from '../helpers/tree.js';
import { chaos, lcg } from '../helpers/chaos.js';
import { assertOnVessel, assertVesselClean, writeSettings } from '../helpers/push.js';

let farm: VesselFarm;
const proxies: Proxy[] = [];

before(async () => {
  farm = await startVesselFarm({ count: 2 });
  for (const v of farm.vessels) proxies.push(await startProxy(v.port));
});
after(async () => {
  for (const p of proxies) await p.stop();
  await farm?.stop();
});

describe('unstable links', () => {
  it('delivers ~100 MiB intact to two vessels through cuts and stalls, resuming rather than restarting', async () => {
    const specs: [string, number][] = [['big/forty.bin', 40 * 1024 * 1024]];
    for (let i = 0; i < 12; i++) specs.push([`mixed/m${i}.bin`, (2 + (i % 5) * 2) * 1024 * 1024]);
    for (let i = 0; i < 20; i++) specs.push([`small/s${i}.txt`, 1000 * (i + 1)]);
    const files = new Map<string, string>();
    let seed = 100;
    for (const [rel, size] of specs) files.set(rel, await writeRandomFile(join(farm.viewPath, rel), size, seed++));
    const payload = specs.reduce((n, [, size]) => n + size, 0);
    assert.ok(payload > 90 * 1024 * 1024);

    const settings = await writeSettings(farm, { chunkSize: 4 * 1024 * 1024, portFor: (i) => proxies[i]!.port, timeout: 2 });
    const random = lcg(42);
    const faults = proxies.map((p) => chaos(p, random));
    const daemon = startDaemon(['run', '-c', settings, '--once', '--give-up-after', '120'], { cwd: farm.root });
    try {
      const exit = await daemon.waitForExit(600_000);
      assert.equal(exit.code, 0, daemon.output().slice(-5000));
    } finally {
      daemon.kill('SIGKILL');
      for (const f of faults) await f.stop();
    }
    for (const v of farm.vessels) {
      await assertOnVessel(v, farm.viewPath, files);
      await assertVesselClean(v, farm.viewPath);
    }
    const counts = faults.map((f) => f.counts());
    const cuts = counts.reduce((n, c) => n + c.cuts, 0);
    const stalls = counts.reduce((n, c) => n + c.stalls, 0);
    const up = proxies.reduce((n, p) => n + p.bytesUp, 0);
    const ratio = up / (2 * payload);
    console.log(`# unstable links: payload ${2 * payload} B to 2 vessels, ${up} B up, ratio ${ratio.toFixed(3)}, ${cuts} cuts, ${stalls} stalls`);
    assert.ok(cuts >= 10, `faults were injected: ${cuts} cuts`);
    assert.ok(ratio < 1.5, `bytes through the proxies / payload = ${ratio.toFixed(3)}`);
  });
});
