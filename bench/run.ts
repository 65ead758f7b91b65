// `npm run bench [-- --quick] [--rounds N] [--only mirror|push|latency] [--out FILE] [--log-dir DIR]`:
// benchmarks side by side with OpenSSH (and in push with rsync and rclone too) on this machine,
// against real sshd processes on 127.0.0.1, each in its own mount namespace with an empty home.
// Prints a table per case with our ratio to each other tool (> 1 = faster; in push with shore
// and vessel CPU-s/GiB counted by cgroup v2) and the push latency in daemon mode, and writes
// every sample as JSON, with `notes` on what could not be measured. Not part of `npm test`.
//
// `npm run bench -- wan [--rounds N] [--cap SECONDS]`: the far, flaky link of wan.ts alone
// (rsync, lftp and sftp beside us through the link emulator); not part of a plain run.
//
// `npm run bench -- scale [--quick] [--wide] [--million | --million-start]`: scale.ts alone
// (backlogs of 10k and 100k small files, 1 to 20 vessels, a dead vessel, start-up with an empty
// and a full database; about 25 minutes; --wide adds 100k files to 20 vessels, --million 1M
// files to 3 vessels, --million-start only the start-up and `status` with 1M files); not part
// of a plain run.
//
// CM_BENCH_CLI=/path/to/dist/main.js measures another build of our CLI (default: this
// checkout's dist/main.js) in the parts that run it through lib.ts (push, mirror, wan, scale;
// latency starts the daemon through the test helpers, always this checkout's).
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchLatency, type LatencyResult } from './latency.js';
import { benchMirror } from './mirror.js';
import { benchPush } from './push.js';
import { benchScale, type ScaleResult } from './scale.js';
import { benchWan, type WanRow } from './wan.js';
import { benchNotes, cli, repoRoot, type Summary } from './lib.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string' },
    // Our push runs log at info into this folder (slower; to see where the time goes), and the
    // latency part's daemon log goes there too.
    'log-dir': { type: 'string' },
    // wan: seconds after which a tool is stopped and shown as unfinished.
    cap: { type: 'string', default: '600' },
    // scale: 100k files to 20 vessels too; 1M files to 3 vessels too; only the start-up with 1M.
    wide: { type: 'boolean', default: false },
    million: { type: 'boolean', default: false },
    'million-start': { type: 'boolean', default: false },
  },
});
const quick = values.quick;
const parts = ['mirror', 'push', 'latency', 'wan', 'scale'];
const only = values.only ?? positionals[0];
const rounds = Number(values.rounds ?? (quick || only === 'wan' ? 1 : 3));
const capS = Number(values.cap);
const scaleFlags = values.wide || values.million || values['million-start'];
if (!(Number.isInteger(rounds) && rounds >= 1) || (only !== undefined && !parts.includes(only)) || positionals.length > 1 || !(capS > 0) || (scaleFlags && only !== 'scale')) {
  console.error(`usage: npm run bench -- [wan|scale] [--quick] [--rounds N] [--only ${parts.join('|')}] [--cap SECONDS] [--wide] [--million | --million-start] [--out FILE] [--log-dir DIR]\n`
    + '  wan and scale run only when named; --cap is for wan; --wide (100k files to 20 vessels too), --million (1M files to 3 vessels too)\n'
    + '  and --million-start (only start-up and status with 1M files waiting) for scale');
  process.exit(2);
}
// wan and scale run only when asked for: they measure other things (a far, flaky link; big
// backlogs and many vessels) for many minutes.
const wanted = (part: string) => (only ? only === part : part !== 'wan' && part !== 'scale');

const started = new Date();
const results: Record<string, Summary[] | WanRow[]> = {};
let latency: LatencyResult | undefined;
let scale: ScaleResult | undefined;
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
if (wanted('wan')) Object.assign(results, await timed('wan', () => benchWan({ quick, rounds, capS, logDir: values['log-dir'] })));
if (wanted('scale')) scale = await timed('scale', () => benchScale({ quick, wide: values.wide, million: values.million, millionStart: values['million-start'], logDir: values['log-dir'] }));

const out = values.out ?? join(repoRoot, 'bench', 'results', `${started.toISOString().replace(/[:.]/g, '-')}${only === 'scale' ? '-scale' : ''}${quick ? '-quick' : ''}.json`);
await mkdir(dirname(out), { recursive: true });
await writeFile(out, `${JSON.stringify({ started: started.toISOString(), quick, rounds, node: process.version, cli, seconds, notes: benchNotes, results, latency, scale }, null, 2)}\n`);
console.log(`\nparts took ${Object.entries(seconds).map(([p, s]) => `${p} ${s} s`).join(', ')}`);
console.log(`results: ${out}`);
