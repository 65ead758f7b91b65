// Links that die every few megabytes (issue 14): a grid of cut budgets × file mixes × ChunkSize,
// two vessels, each behind its own emulated link that also stalls (some stalls longer than the
// vessels' Timeout) and refuses connections for a while now and then. Every cell must deliver
// every file intact to both vessels with at most 1.5 × the payload through the links: bytes a
// vessel acknowledged are never sent again, small files included, and every connection moves
// the queue forward. Progress is asserted by bytes and files, never by seconds.
import { after, before, beforeEach, describe, it } from 'node:test';
import { startLink, type Link, type LinkProfile } from '../helpers/link.js';
import { resetFarm } from '../helpers/push.js';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { MiB, deliverThrough, mixes, payloadOf, writeFiles } from '../helpers/unstable.js';

const MB = 1_000_000;
const budgets: [string, [number, number]][] = [['1 MB', [1 * MB, 1 * MB]], ['2-8 MB', [2 * MB, 8 * MB]], ['16 MB', [16 * MB, 16 * MB]]];
const chunkSizes = [1 * MiB, 10 * MiB];

let farm: VesselFarm;
let links: Link[] = [];
const results: string[] = [];

before(async () => {
  farm = await startVesselFarm({ count: 2 });
});
after(async () => {
  for (const l of links) await l.stop();
  await farm?.stop();
  console.log(['# unstable-link grid: bytes through the links / payload', ...results].join('\n# '));
});

describe('unstable links: cut budget × file mix × ChunkSize, with stalls and refusals', () => {
  beforeEach(async () => {
    for (const l of links) await l.stop();
    links = [];
    await resetFarm(farm);
  });

  let seed = 1;
  for (const [budgetName, faultEvery] of budgets) {
    for (const [mixName, files] of Object.entries(mixes)) {
      for (const chunkSize of chunkSizes) {
        const cell = `cuts every ${budgetName}, ${mixName} files, ChunkSize ${chunkSize / MiB} MiB`;
        const cellSeed = seed++;
        it(cell, async () => {
          const shas = await writeFiles(farm, files, cellSeed * 100);
          // Every 6th fault a stall of 0.5 to 3 s (the longer ones outlast Timeout = 2 s), then
          // the link goes on or, every other cell, everything on it is cut; every 5th fault
          // also refuses new connections for a second.
          const profile = (i: number): LinkProfile => ({
            faultEvery, stallEvery: 6, stallMs: [500, 3000], stallThen: cellSeed % 2 ? 'resume' : 'cut',
            refuseEvery: 5, refuseMs: 1000, seed: cellSeed * 10 + i,
          });
          links = await Promise.all(farm.vessels.map((v, i) => startLink(v.port, profile(i))));
          const c = await deliverThrough(farm, links, shas, payloadOf(files), { chunkSize, timeout: 2 });
          results.push(`${cell}: ${c.ratio.toFixed(3)} (${c.cuts} cuts, ${c.stalls} stalls, ${c.refused} refused, ${c.connections} connections)`);
        });
      }
    }
  }
});
