// SSH threads (`[MONSTER] Threads`, issue 19 point 3): the real CLI with the vessels'
// connections in worker threads delivers a mix of small and large files to two vessels, resumes
// after a link cut mid-transfer, and survives SSH threads that die mid-transfer (process.exit in
// the thread, or an error nothing catches: the ssh-thread-write failpoint), every copy intact.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startLink, type Link } from '../helpers/link.js';
import { runCli } from '../helpers/process.js';
import { assertOnVessel, resetFarm, writeSettings } from '../helpers/push.js';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { KiB, MiB, assertNoLeakWarning, assertVesselCleanOnceQuiet, deliverThrough, payloadOf, smallFiles, writeFiles, type FileSet } from '../helpers/unstable.js';

let farm: VesselFarm;
let links: Link[] = [];

before(async () => {
  farm = await startVesselFarm({ count: 2 });
});
after(async () => {
  for (const l of links) await l.stop();
  await farm?.stop();
});

const mix = (folder: string): FileSet => [...smallFiles(10, folder), [`${folder}/large-a.bin`, 6 * MiB + 123], [`${folder}/large-b.bin`, 9 * MiB], [`${folder}/odd.bin`, 2 * MiB + 7 * KiB]];

/** `run --once` with these settings and environment; every file intact on both vessels, nothing left behind. */
async function deliver(shas: Map<string, string>, monsterExtra: string, env: NodeJS.ProcessEnv = {}): Promise<string> {
  const settings = await writeSettings(farm, { chunkSize: 1 * MiB, monsterExtra });
  const r = await runCli(['run', '-c', settings, '--once', '--give-up-after', '120', '--log-format', 'text'], { cwd: farm.root, env, timeoutMs: 600_000 });
  const output = r.stdout + r.stderr;
  assert.equal(r.code, 0, output.slice(-8000));
  assertNoLeakWarning(output);
  for (const v of farm.vessels) {
    await assertOnVessel(v, farm.viewPath, shas);
    await assertVesselCleanOnceQuiet(v, farm.viewPath);
  }
  return output;
}

describe('SSH threads', () => {
  beforeEach(async () => {
    for (const l of links) await l.stop();
    links = [];
    await resetFarm(farm);
  });

  it('two vessels, a thread each: small and large files delivered intact', async () => {
    const shas = await writeFiles(farm, mix('both'), 700);
    const output = await deliver(shas, 'Threads = 2');
    assert.match(output, /vessel connections in SSH threads.*threads=2/);
  });

  it('a link cut mid-transfer: the transfer resumes through a new connection in the thread', async () => {
    const files = mix('cut');
    const shas = await writeFiles(farm, files, 800);
    links = await Promise.all(farm.vessels.map((v) => startLink(v.port)));
    for (const l of links) l.cutAfter(5_000_000);
    const c = await deliverThrough(farm, links, shas, payloadOf(files), { chunkSize: 1 * MiB, monsterExtra: 'Threads = auto' });
    assert.ok(c.cuts >= 2, `both links were cut: ${JSON.stringify(c)}`);
  });

  it('threads that end themselves mid-transfer (process.exit): reconnected, everything delivered', async () => {
    const shas = await writeFiles(farm, mix('exit'), 900);
    const output = await deliver(shas, 'Threads = 2', { CONTENTMONSTER_FAILPOINT: 'ssh-thread-write' });
    // Every thread ends after 4 MiB written: each vessel's transfers outlived several.
    const deaths = output.match(/SSH thread of vessel \S+ ended \(exit code 70\)/g) ?? [];
    assert.ok(deaths.length >= 4, `threads died and were replaced (${deaths.length}):\n${output.slice(-4000)}`);
  });

  it('a thread shared by both vessels that throws an error nothing catches: both reconnect, everything delivered', async () => {
    const shas = await writeFiles(farm, mix('throw'), 1000);
    const output = await deliver(shas, 'Threads = 1', { CONTENTMONSTER_FAILPOINT: 'ssh-thread-write:throw' });
    assert.match(output, /SSH thread of vessel \S+ failed: failpoint ssh-thread-write: a bug stands in here/);
    assert.doesNotMatch(output, /unexpected error/i);
  });
});
