// Soak run, outside `npm test`: `npm run soak -- --minutes N [--vessels 3] [--seed 1]`.
// A stream of new files of mixed sizes goes through faulty links (cuts every few MB, stalls
// longer than Timeout) to real sshd vessels while the daemon runs. At the end every file is
// checked by SHA-256 on every vessel. Prints files, bytes, faults injected, reconnects, files
// lost, files corrupt and the daemon's RSS at start and end; exits 1 if anything was lost or
// corrupt.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startVesselFarm } from '../test/helpers/sshd.js';
import { startProxy, type Proxy } from '../test/helpers/proxy.js';
import { startDaemon, waitFor } from '../test/helpers/process.js';
import { exists, sha256File, writeRandomFile } from '../test/helpers/tree.js';
import { writeSettings } from '../test/helpers/push.js';
import { chaos, lcg } from '../test/helpers/chaos.js';

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
const random = lcg(Number(values.seed));

/**
 * Mixed sizes: mostly small, some medium, a few large; about 2 MB/s of new data at the pace
 * below, which faulty links to three vessels can carry (a faster stream only builds a backlog).
 */
function nextSize(): number {
  const r = random();
  if (r < 0.6) return Math.floor(random() * 64 * 1024);
  if (r < 0.9) return Math.floor(random() * 2 * 1024 * 1024);
  return Math.floor(4 * 1024 * 1024 + random() * 12 * 1024 * 1024);
}

async function rssKiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
}

const farm = await startVesselFarm({ count: vesselCount });
const proxies: Proxy[] = [];
try {
  for (const v of farm.vessels) proxies.push(await startProxy(v.port));
  const settings = await writeSettings(farm, { chunkSize: 1024 * 1024, stableTime: 500, portFor: (i) => proxies[i]!.port, timeout: 3 });
  // A cut every 4 to 16 MB per link, and every tenth fault a stall longer than Timeout.
  const faults = proxies.map((p) => chaos(p, random, { stallMs: 4000, stallEvery: 10, minBytes: 4 * 1024 * 1024, maxBytes: 16 * 1024 * 1024 }));
  const daemon = startDaemon(['run', '-c', settings], { cwd: farm.root });
  await daemon.waitForOutput(/watching for new files/);
  const rssStart = await rssKiB(daemon.pid);

  const files = new Map<string, string>();
  let bytes = 0;
  const until = Date.now() + minutes * 60_000;
  for (let n = 0; Date.now() < until; n++) {
    const rel = `batch-${Math.floor(n / 50)}/file-${n}.bin`;
    const size = nextSize();
    files.set(rel, await writeRandomFile(join(farm.viewPath, rel), size, n + 1));
    bytes += size;
    await new Promise((r) => setTimeout(r, 300 + random() * 600));
  }
  console.log(`soak: ${files.size} files, ${bytes} bytes written over ${minutes} min; waiting for the queue to empty`);
  const processed = (rel: string) => exists(join(farm.viewPath, 'processed', rel));
  await waitFor(async () => {
    for (const rel of files.keys()) if (!(await processed(rel))) return false;
    return true;
  }, 'every file processed', 15 * 60_000, 1000).catch((e) => console.error(`soak: ${(e as Error).message}`));
  for (const f of faults) await f.stop();
  const rssEnd = await rssKiB(daemon.pid);
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
  const counts = faults.map((f) => f.counts());
  const reconnects = (daemon.output().match(/ connected vessel=/g)?.length ?? 0) - farm.vessels.length;
  const up = proxies.reduce((n, p) => n + p.bytesUp, 0);
  const report = {
    minutes, vessels: vesselCount, files: files.size, bytes,
    bytesThroughLinks: up, linkBytesPerPayloadByte: +(up / (bytes * vesselCount)).toFixed(3),
    cuts: counts.reduce((n, c) => n + c.cuts, 0), stalls: counts.reduce((n, c) => n + c.stalls, 0),
    reconnects, lost, corrupt, rssStartKiB: rssStart, rssEndKiB: rssEnd, daemonExit: exit.code,
  };
  for (const [k, v] of Object.entries(report)) console.log(`soak: ${k} = ${v}`);
  process.exitCode = lost === 0 && corrupt === 0 && exit.code === 0 ? 0 : 1;
} finally {
  for (const p of proxies) await p.stop();
  await farm.stop();
}
