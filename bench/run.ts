// `npm run bench [-- --quick] [--rounds N] [--only mirror|push|latency] [--out FILE] [--log-dir DIR]`:
// benchmarks side by side with OpenSSH on this machine, against real sshd processes on
// 127.0.0.1, each in its own mount namespace with an empty home. Prints a table per case with
// our ratio to each other tool (> 1 = faster) and the push latency in daemon mode, and writes
// every sample as JSON. Not part of `npm test`.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchLatency, type LatencyResult } from './latency.js';
import { benchMirror } from './mirror.js';
import { benchPush } from './push.js';
import { repoRoot, type Summary } from './lib.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string' },
    // Our push runs log at info into this folder (slower; to see where the time goes), and the
    // latency part's daemon log goes there too.
    'log-dir': { type: 'string' },
  },
});
const quick = values.quick!;
const rounds = Number(values.rounds ?? (quick ? 1 : 3));
const parts = ['mirror', 'push', 'latency'];
if (!(Number.isInteger(rounds) && rounds >= 1) || (values.only !== undefined && !parts.includes(values.only))) {
  console.error(`usage: npm run bench -- [--quick] [--rounds N] [--only ${parts.join('|')}] [--out FILE] [--log-dir DIR]`);
  process.exit(2);
}
const wanted = (part: string) => !values.only || values.only === part;

const started = new Date();
const results: Record<string, Summary[]> = {};
let latency: LatencyResult | undefined;
const seconds: Record<string, number> = {};
const timed = async <T>(part: string, run: () => Promise<T>): Promise<T> => {
  const t = performance.now();
  try {
    return await run();
  } finally {
    seconds[part] = +((performance.now() - t) / 1000).toFixed(1);
  }
};
if (wanted('mirror')) Object.assign(results, await timed('mirror', () => benchMirror({ quick, rounds })));
if (wanted('push')) Object.assign(results, await timed('push', () => benchPush({ quick, rounds, logDir: values['log-dir'] })));
if (wanted('latency')) latency = await timed('latency', () => benchLatency({ quick, logDir: values['log-dir'] }));

const out = values.out ?? join(repoRoot, 'bench', 'results', `${started.toISOString().replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`);
await mkdir(dirname(out), { recursive: true });
await writeFile(out, `${JSON.stringify({ started: started.toISOString(), quick, rounds, node: process.version, seconds, results, latency }, null, 2)}\n`);
console.log(`\nparts took ${Object.entries(seconds).map(([p, s]) => `${p} ${s} s`).join(', ')}`);
console.log(`results: ${out}`);
