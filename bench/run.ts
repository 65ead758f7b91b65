// `npm run bench [-- --quick] [--rounds N] [--only mirror] [--out FILE]`: benchmarks side by side
// with OpenSSH on this machine, against real sshd processes on 127.0.0.1, each in its own mount
// namespace with an empty home. Prints a table per case with our ratio to each other tool
// (> 1 = faster) and writes every sample as JSON. Not part of `npm test`.
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchMirror } from './mirror.js';
import { repoRoot, type Summary } from './lib.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rounds: { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string' },
  },
});
const quick = values.quick!;
const rounds = Number(values.rounds ?? (quick ? 1 : 3));
const parts = ['mirror'];
if (!(Number.isInteger(rounds) && rounds >= 1) || (values.only !== undefined && !parts.includes(values.only))) {
  console.error(`usage: npm run bench -- [--quick] [--rounds N] [--only ${parts.join('|')}] [--out FILE]`);
  process.exit(2);
}

const started = new Date();
const results: Record<string, Summary[]> = {};
if (!values.only || values.only === 'mirror') Object.assign(results, await benchMirror({ quick, rounds }));

const out = values.out ?? join(repoRoot, 'bench', 'results', `${started.toISOString().replace(/[:.]/g, '-')}${quick ? '-quick' : ''}.json`);
await mkdir(dirname(out), { recursive: true });
await writeFile(out, `${JSON.stringify({ started: started.toISOString(), quick, rounds, node: process.version, results }, null, 2)}\n`);
console.log(`\nresults: ${out}`);
