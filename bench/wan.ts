// `npm run bench -- wan`: a far, flaky link (issue 14). The same data set goes to two vessels,
// each behind its own link emulator with the satellite profile (300 ms each way, 1 MB/s each
// way, a fault every 4 to 12 MB: a cut, every third one a stall of 1 to 4 s instead, and the
// fourth a cut followed by 10 s of refused connections), with contentmonster and with what an
// operator would script instead, side by side in one run, one tool after the other, every tool
// with fresh links whose faults come at the same byte counts:
//
// - `contentmonster run --once`, default settings (ChunkSize 10 MiB, Concurrency 2, Timeout 10);
// - `rsync -a --partial --timeout=15` over ssh, run again until it exits 0 (a partial file is
//   the basis of the next run, so only the rest crosses the link);
// - `lftp` `mirror -R --continue --parallel=2` with its own retries (unlimited, 1 s apart);
// - OpenSSH `sftp -b`, run again until it exits 0: a file not started gets `put`, the one a cut
//   interrupted `reput` (which refuses a file that is not there yet).
//
// ssh-based tools notice a dead link with ServerAliveInterval 5, ServerAliveCountMax 2.
// Printed for each: wall time, efficiency (payload ÷ link rate ÷ wall: 1.0 is a link busy with
// nothing but payload from start to end), bytes over the links ÷ payload, and files intact
// (SHA-256 of every file on both vessels). A tool that has not finished after --cap seconds
// (default 600) is stopped and shown as unfinished.
import { spawn } from 'node:child_process';
import { link, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { profiles, startLink, type Link, type LinkProfile } from '../test/helpers/link.js';
import { startVesselFarm, type Vessel, type VesselFarm } from '../test/helpers/sshd.js';
import { sha256File, writeRandomFile } from '../test/helpers/tree.js';
import { cli, writePushSettings } from './lib.js';
import { shebangFlags } from '../test/helpers/process.js';

export interface WanBenchOptions {
  quick: boolean;
  rounds: number;
  /** Seconds after which a tool is stopped and counted as unfinished. */
  capS: number;
  logDir?: string;
}

export interface WanRow {
  tool: string;
  /** Median over rounds; undefined when a round did not finish. */
  wallS?: number;
  efficiency?: number;
  linkBytesPerPayloadByte: number;
  filesIntact: string;
  rounds: { wallS?: number; linkBytes: number; intact: number; expected: number }[];
}

const KiB = 1024;
const MiB = 1024 * KiB;
const VESSELS = 2;
/** The satellite profile with one 10 s refusal a run: after the fourth fault. */
const wanProfile: LinkProfile = { ...profiles.satellite, refuseEvery: 4, refuseMs: 10_000 };
const sshOptions = (key: string, port: number) => [
  '-i', key, '-p', String(port), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes',
  '-o', 'ConnectTimeout=15', '-o', 'ServerAliveInterval=5', '-o', 'ServerAliveCountMax=2',
];

interface Run {
  /** Starts the tool for all vessels; resolves when every vessel's copy is done. */
  start(vessels: { vessel: Vessel; port: number }[], until: number): Promise<void>;
}

export async function benchWan(options: WanBenchOptions): Promise<Record<string, WanRow[]>> {
  const files: [string, number][] = options.quick
    ? [...many(10, 'small', 64 * KiB), ...many(4, 'medium', 1 * MiB), ['large.bin', 8 * MiB]]
    : [...many(25, 'small', 64 * KiB), ...many(10, 'medium', 1 * MiB), ['large.bin', 20 * MiB]];
  const payload = files.reduce((n, [, size]) => n + size, 0);
  const farm = await startVesselFarm({ count: VESSELS });
  try {
    const bench = new WanBench(farm, files, options);
    await bench.init();
    const tools: [string, Run][] = [
      ['contentmonster run --once', bench.ours()],
      ['rsync --partial, retried', bench.rsync()],
      ['lftp mirror -R --continue', bench.lftp()],
      ['sftp put/reput, retried', bench.sftp()],
    ];
    const rows: WanRow[] = [];
    for (const [name, tool] of tools) {
      const rounds: WanRow['rounds'] = [];
      for (let r = 0; r < options.rounds; r++) rounds.push(await bench.measure(name, tool, r));
      const finished = rounds.filter((x) => x.wallS !== undefined);
      const wallS = finished.length === rounds.length ? median(finished.map((x) => x.wallS!)) : undefined;
      rows.push({
        tool: name, wallS,
        efficiency: wallS === undefined ? undefined : payload / wanProfile.bytesPerSecond! / wallS,
        linkBytesPerPayloadByte: median(rounds.map((x) => x.linkBytes)) / (payload * VESSELS),
        filesIntact: `${Math.min(...rounds.map((x) => x.intact))}/${rounds[0].expected}`,
        rounds,
      });
    }
    const title = `wan: ${files.length} files, ${(payload / 1e6).toFixed(1)} MB → ${VESSELS} vessels, each through its own link: `
      + `${wanProfile.latencyMs} ms each way, ${wanProfile.bytesPerSecond! / 1e6} MB/s, a fault every ${wanProfile.faultEvery![0] / 1e6}-${wanProfile.faultEvery![1] / 1e6} MB `
      + `(every ${wanProfile.stallEvery}rd a stall of ${wanProfile.stallMs![0] / 1000}-${wanProfile.stallMs![1] / 1000} s, the ${wanProfile.refuseEvery}th followed by ${wanProfile.refuseMs! / 1000} s of refusals); `
      + `${options.rounds} round(s), medians`;
    printWan(title, rows, payload / wanProfile.bytesPerSecond!);
    return { [title]: rows };
  } finally {
    await farm.stop();
  }
}

function many(n: number, prefix: string, size: number): [string, number][] {
  return Array.from({ length: n }, (_, i) => [`${prefix}/${prefix}-${String(i).padStart(2, '0')}.bin`, size]);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function printWan(title: string, rows: WanRow[], idealS: number): void {
  console.log(`\n${title}\n  (at 1.0 efficiency: ${idealS.toFixed(1)} s)`);
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log(`  ${pad('tool', 30)}${pad('wall', 12)}${pad('efficiency', 12)}${pad('link bytes / payload', 22)}files intact`);
  for (const r of rows) {
    console.log(`  ${pad(r.tool, 30)}${pad(r.wallS === undefined ? 'unfinished' : `${r.wallS.toFixed(1)} s`, 12)}`
      + `${pad(r.efficiency === undefined ? '-' : r.efficiency.toFixed(2), 12)}${pad(r.linkBytesPerPayloadByte.toFixed(3), 22)}${r.filesIntact}`);
  }
}

class WanBench {
  /** An empty home for every client: no ~/.ssh/config, agent or default key takes part. */
  #home = '';
  /** The data set, generated once; each run gets hard links to it where it moves files. */
  readonly #stash: string;
  /** The shore's Directory, and on each vessel the destination (its own folder at that path). */
  readonly #location: string;
  #expected = new Map<string, string>();

  constructor(private readonly farm: VesselFarm, private readonly files: [string, number][], private readonly options: WanBenchOptions) {
    this.#stash = join(farm.root, 'wan-stash');
    this.#location = join(farm.viewPath, 'wan');
  }

  async init(): Promise<void> {
    this.#home = await mkdtemp(join(this.farm.root, 'wan-home-'));
    if (this.options.logDir) await mkdir(this.options.logDir, { recursive: true });
    let seed = 9000;
    for (const [rel, size] of this.files) this.#expected.set(rel, await writeRandomFile(join(this.#stash, rel), size, seed++));
  }

  async measure(name: string, tool: Run, round: number): Promise<WanRow['rounds'][number]> {
    await rm(this.#location, { recursive: true, force: true });
    for (const v of this.farm.vessels) {
      await rm(join(v.backing, 'wan'), { recursive: true, force: true });
      await rm(v.hostPath('/tmp/.ContentMonster'), { recursive: true, force: true });
    }
    const links: Link[] = await Promise.all(this.farm.vessels.map((v, i) => startLink(v.port, { ...wanProfile, seed: 7 + i })));
    const started = performance.now();
    const until = Date.now() + this.options.capS * 1000;
    let wallS: number | undefined;
    try {
      await tool.start(this.farm.vessels.map((vessel, i) => ({ vessel, port: links[i].port })), until);
      wallS = (performance.now() - started) / 1000;
    } catch (err) {
      console.error(`  ${name}, round ${round + 1}: ${(err as Error).message.split('\n')[0]}`);
    } finally {
      for (const l of links) await l.stop();
    }
    let intact = 0;
    for (const v of this.farm.vessels) {
      for (const [rel, sha] of this.#expected) if ((await sha256File(join(v.backing, 'wan', rel)).catch(() => '')) === sha) intact++;
    }
    const linkBytes = links.reduce((n, l) => n + l.bytesUp, 0);
    const faults = links.map((l) => `${l.cuts} cuts, ${l.stalls} stalls, ${l.refused} refused`).join('; ');
    console.log(`  ${name}, round ${round + 1}: ${wallS === undefined ? 'unfinished' : `${wallS.toFixed(1)} s`}, ${intact} files intact, links: ${faults}`);
    return { wallS, linkBytes, intact, expected: this.#expected.size * VESSELS };
  }

  #env(): NodeJS.ProcessEnv {
    return { ...process.env, HOME: this.#home, SSH_AUTH_SOCK: '' };
  }

  ours(): Run {
    return {
      start: async (vessels, until) => {
        for (const rel of this.#expected.keys()) {
          await mkdir(join(this.#location, rel, '..'), { recursive: true });
          await link(join(this.#stash, rel), join(this.#location, rel));
        }
        const state = await mkdtemp(join(this.farm.root, 'wan-state-'));
        try {
          const settings = await writePushSettings(join(state, 'settings.ini'), {
            location: this.#location, vessels: vessels.map((v) => ({ ...v.vessel, port: v.port })), clientKey: this.farm.clientKey,
            database: join(state, 'database.sqlite3'), stableTimeMs: 0, logLevel: this.options.logDir ? 'info' : 'warn',
          });
          const capS = Math.ceil((until - Date.now()) / 1000);
          await runUntil(process.execPath, [...shebangFlags(cli), cli, 'run', '--once', '-c', settings, '--give-up-after', String(capS)], this.#env(), until, this.#log('contentmonster'));
        } finally {
          await rm(state, { recursive: true, force: true });
        }
      },
    };
  }

  rsync(): Run {
    return {
      start: (vessels, until) => Promise.all(vessels.map(({ port }) => retry(until, () => runUntil('rsync', [
        '-a', '--partial', '--timeout=15', '-e', ['ssh', ...sshOptions(this.farm.clientKey, port)].join(' '),
        `${this.#stash}/`, `root@127.0.0.1:${this.#location}/`,
      ], this.#env(), until, this.#log('rsync'))))).then(() => undefined),
    };
  }

  lftp(): Run {
    return {
      start: (vessels, until) => Promise.all(vessels.map(({ port }) => retry(until, () => runUntil('lftp', ['-c', [
        `set sftp:connect-program 'ssh -a -x ${sshOptions(this.farm.clientKey, port).filter((o) => o !== '-p' && o !== String(port)).join(' ')}'`,
        'set net:max-retries 0', 'set net:reconnect-interval-base 1', 'set net:reconnect-interval-multiplier 1', 'set net:timeout 15',
        `open -u root, -p ${port} sftp://127.0.0.1`,
        `mirror -R --continue --parallel=2 ${this.#stash} ${this.#location}`,
        'quit',
      ].join('; ')], this.#env(), until, this.#log('lftp'))))).then(() => undefined),
    };
  }

  /**
   * sftp has no retries of its own: each run gets a batch of what is left, `put` for a file not
   * started, `reput` for the one the last run was sending when it died (sftp echoes each command
   * as it starts it, so the last one echoed is that file).
   */
  sftp(): Run {
    const batchFile = (port: number) => join(this.farm.root, `wan-sftp-${port}.batch`);
    return {
      start: (vessels, until) => Promise.all(vessels.map(async ({ port }) => {
        const left = [...this.#expected.keys()];
        let interrupted: string | undefined;
        const dirs = [...new Set(left.map((rel) => rel.slice(0, rel.lastIndexOf('/'))))];
        await retry(until, async () => {
          const lines = [`-mkdir ${this.#location}`, ...dirs.map((d) => `-mkdir ${join(this.#location, d)}`),
            ...left.map((rel) => `${rel === interrupted ? '-reput' : 'put'} ${join(this.#stash, rel)} ${join(this.#location, rel)}`)];
          await writeFile(batchFile(port), `${lines.join('\n')}\n`);
          const output = await runUntil('sftp', ['-b', batchFile(port), ...sshOptions(this.farm.clientKey, port).map((o) => (o === '-p' ? '-P' : o)), 'root@127.0.0.1'],
            this.#env(), until, this.#log('sftp')).catch((err: Error & { output?: string }) => {
            const echoed = [...(err.output ?? '').matchAll(/^sftp> -?(?:re)?put \S+ (\S+)$/gm)].map((m) => m[1].slice(this.#location.length + 1));
            const last = echoed.at(-1);
            if (last !== undefined) {
              left.splice(0, left.indexOf(last));
              interrupted = last;
            }
            throw err;
          });
          return output;
        });
      })).then(() => undefined),
    };
  }

  #log(tool: string): string | undefined {
    return this.options.logDir ? join(this.options.logDir, `wan-${tool}.log`) : undefined;
  }
}

/** Runs `attempt` until it succeeds, a second apart; rejects once `until` has passed. */
async function retry<T>(until: number, attempt: () => Promise<T>): Promise<T> {
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() >= until) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/**
 * Runs a command; resolves with its output on exit 0, rejects with the output otherwise, and
 * kills it at `until`. Its output is appended to `logFile` when given.
 */
function runUntil(file: string, args: string[], env: NodeJS.ProcessEnv, until: number, logFile?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let output = '';
    const onData = (d: Buffer) => {
      output += d.toString();
      if (output.length > 4 * MiB) output = output.slice(-MiB);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone already
      }
    }, Math.max(0, until - Date.now()));
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      const done = () => (code === 0 ? resolve(output) : reject(Object.assign(new Error(`${file} exited ${code}: ${output.slice(-500)}`), { output })));
      if (logFile) void writeFile(logFile, `$ ${file} ${args.join(' ')}\n${output}\n`, { flag: 'a' }).then(done, done);
      else done();
    });
  });
}
