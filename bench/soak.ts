// Soak run, outside `npm test`: `npm run soak -- --minutes N [--vessels 3] [--seed 1]`.
// A stream of new files of mixed sizes goes to real sshd vessels through emulated links of the
// "flaky LAN" profile (a cut every 1 to 8 MB, now and then a stall longer than Timeout) while
// the daemon runs. Every minute it prints the daemon's RSS and heap (live, after a full
// collection) with the files and faults so far; at the end, every file is checked by SHA-256
// on every vessel, and it prints files, bytes, faults, reconnects, files lost and corrupt, and
// how RSS and heap moved over the last 20 minutes (or the second half of a shorter run).
// Exits 1 if anything was lost or corrupt.
import { readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startVesselFarm } from '../test/helpers/sshd.js';
import { lcg, profiles, startLink, type Link } from '../test/helpers/link.js';
import { startDaemon, waitFor } from '../test/helpers/process.js';
import { exists, sha256File, writeRandomFile } from '../test/helpers/tree.js';
import { writeSettings } from '../test/helpers/push.js';
import { repoRoot } from './lib.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '1' },
    vessels: { type: 'string', default: '3' },
    seed: { type: 'string', default: '1' },
  },
});
const minutes = Number(values.minutes);
const vesselCount = Number(values.vessels);
if (!(minutes > 0) || !Number.isInteger(vesselCount) || vesselCount < 1) {
  console.error('usage: npm run soak -- --minutes N [--vessels 3] [--seed 1]');
  process.exit(2);
}
const seed = Number(values.seed);
const random = lcg(seed);
const MiB = 1024 * 1024;

/**
 * Mixed sizes: mostly small, some medium, a few large; about 2 MB/s of new data at the pace
 * below, which flaky links to three vessels can carry (a faster stream only builds a backlog).
 */
function nextSize(): number {
  const r = random();
  if (r < 0.6) return Math.floor(random() * 64 * 1024);
  if (r < 0.9) return Math.floor(random() * 2 * MiB);
  return Math.floor(4 * MiB + random() * 12 * MiB);
}

interface MemorySample { at: number; rss: number; heapUsed: number }

async function memorySamples(file: string): Promise<MemorySample[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as MemorySample);
}

const mib = (bytes: number) => (bytes / MiB).toFixed(1);

/** How a series moved over its last `window` ms: first and last value, min, max, and a least-squares slope per 10 min. */
function trend(samples: MemorySample[], key: 'rss' | 'heapUsed', window: number): string {
  const end = samples.at(-1)!.at;
  const xs = samples.filter((s) => s.at >= end - window);
  if (xs.length < 2) return 'not enough samples';
  const t0 = xs[0].at;
  const n = xs.length;
  const mx = xs.reduce((a, s) => a + (s.at - t0), 0) / n;
  const my = xs.reduce((a, s) => a + s[key], 0) / n;
  const slope = xs.reduce((a, s) => a + (s.at - t0 - mx) * (s[key] - my), 0) / xs.reduce((a, s) => a + (s.at - t0 - mx) ** 2, 0);
  const values = xs.map((s) => s[key]);
  return `${mib(values[0])} -> ${mib(values.at(-1)!)} MiB (min ${mib(Math.min(...values))}, max ${mib(Math.max(...values))}), slope ${(slope * 600_000 / MiB).toFixed(2)} MiB per 10 min`;
}

const farm = await startVesselFarm({ count: vesselCount });
const links: Link[] = [];
const memoryLog = join(tmpdir(), `cm-soak-memory-${process.pid}.jsonl`);
try {
  for (const [i, v] of farm.vessels.entries()) links.push(await startLink(v.port, { ...profiles.flakyLan, seed: seed * 100 + i }));
  const settings = await writeSettings(farm, { chunkSize: 4 * MiB, stableTime: 500, portFor: (i) => links[i].port, timeout: 2 });
  const daemon = startDaemon(['run', '-c', settings], {
    cwd: farm.root,
    env: { NODE_OPTIONS: `--import ${join(repoRoot, 'bench', 'memory-hook.mjs')}`, CM_MEMORY_LOG: memoryLog },
  });
  await daemon.waitForEvent('ready');

  const files = new Map<string, string>();
  let bytes = 0;
  const started = Date.now();
  const until = started + minutes * 60_000;
  const processed = (rel: string) => exists(join(farm.viewPath, 'processed', rel));
  let nextReport = started + 60_000;
  const report = async () => {
    const m = (await memorySamples(memoryLog)).at(-1);
    let done = 0;
    for (const rel of files.keys()) if (await processed(rel)) done++;
    const cuts = links.reduce((n, l) => n + l.cuts, 0);
    console.log(`soak: minute ${Math.round((Date.now() - started) / 60_000)}: files ${files.size} written, ${done} processed; `
      + `rss ${m ? mib(m.rss) : '?'} MiB, heap ${m ? mib(m.heapUsed) : '?'} MiB; cuts ${cuts}`);
  };
  for (let n = 0; Date.now() < until; n++) {
    const rel = `batch-${Math.floor(n / 50)}/file-${n}.bin`;
    const size = nextSize();
    files.set(rel, await writeRandomFile(join(farm.viewPath, rel), size, n + 1));
    bytes += size;
    await new Promise((r) => setTimeout(r, 300 + random() * 600));
    if (Date.now() >= nextReport) {
      nextReport += 60_000;
      await report();
    }
  }
  console.log(`soak: ${files.size} files, ${bytes} bytes written over ${minutes} min; waiting for the queue to empty`);
  await waitFor(async () => {
    for (const rel of files.keys()) if (!(await processed(rel))) return false;
    return true;
  }, 'every file processed', 15 * 60_000, 1000).catch((e) => console.error(`soak: ${(e as Error).message}`));
  await report();
  const up = links.reduce((n, l) => n + l.bytesUp, 0);
  const cuts = links.reduce((n, l) => n + l.cuts, 0);
  const stalls = links.reduce((n, l) => n + l.stalls, 0);
  for (const l of links) l.setFaults({});
  daemon.kill('SIGTERM');
  const exit = await daemon.waitForExit(15_000);

  let lost = 0;
  let corrupt = 0;
  for (const [rel, sha] of files) {
    if (!(await processed(rel))) lost++;
    for (const v of farm.vessels) {
      const got = await sha256File(join(v.backing, rel)).catch(() => undefined);
      if (got === undefined) lost++;
      else if (got !== sha) corrupt++;
    }
  }
  const samples = await memorySamples(memoryLog);
  const window = (minutes >= 30 ? 20 : minutes / 2) * 60_000;
  const reconnects = (daemon.output().match(/ connected vessel=/g)?.length ?? 0) - farm.vessels.length * 2;
  const report_ = {
    minutes, vessels: vesselCount, files: files.size, bytes,
    bytesThroughLinks: up, linkBytesPerPayloadByte: +(up / (bytes * vesselCount)).toFixed(3),
    cuts, stalls, reconnects, lost, corrupt, daemonExit: exit.code,
    [`rss over the last ${window / 60_000} min`]: trend(samples, 'rss', window),
    [`heap over the last ${window / 60_000} min`]: trend(samples, 'heapUsed', window),
  };
  for (const [k, v] of Object.entries(report_)) console.log(`soak: ${k} = ${v}`);
  process.exitCode = lost === 0 && corrupt === 0 && exit.code === 0 ? 0 : 1;
} finally {
  for (const l of links) await l.stop();
  await farm.stop();
  await rm(memoryLog, { force: true });
}
