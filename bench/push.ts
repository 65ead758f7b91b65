// The push part of `npm run bench`: `contentmonster run --once` against OpenSSH `sftp -b`,
// `rsync` over ssh and `rclone copy` to an sftp remote, the same data to the same vessels in the
// same run, alternating. Each other tool runs one process per vessel, all at once; its wall time
// runs until the last process ends:
//   - `sftp` with one `put -r` of the data set's folder (OpenSSH's own recursive upload, with
//     its default 64 requests in flight; `put` per file would only add round trips), default
//     cipher and aes128-gcm;
//   - `rsync -a --whole-file` over `ssh` (same key, port and options as `sftp`, default cipher);
//     the vessel side is `rsync --server` through sshd;
//   - `rclone copy` to an on-the-fly `:sftp:` remote (`--sftp-host`/`-port`/`-user`/`-key-file`,
//     an empty config file, no host-key check: rclone checks none without a known_hosts file),
//     everything else rclone's default: 4 transfers, and after each upload an MD5 of the copy
//     by `md5sum` on the vessel compared with its own of the shore file.
// A tool that is not installed is skipped with one line naming its Debian package.
//
// CPU, when a writable cgroup v2 is there (lib.ts CpuAccounting): each vessel's sshd starts in
// a cgroup of its own and the tool under test in another, so "vessel CPU-s/GiB" counts every
// process on the vessels (sshd's per connection, sftp-server, rsync, the shell commands, openssl,
// md5sum, ...) and "shore CPU-s/GiB" every process and thread of the tool (our node with its
// workers; sftp and its ssh; rsync and its ssh; rclone), each per GiB delivered (the payload ×
// the vessels). Without one the columns are left out, with a line saying so.
//
// Data sets: D1 one 1 GiB file, D2 2000 files of 64 KiB, D3 50 files of 20 MiB, each to 1 and
// to 3 vessels (--quick: 256 MiB, 300 files, 10 files); in full mode also D4, one 4 GiB file
// to 3 vessels, one round, for the daemon's peak RSS (the target is ≤ 150 MiB in every case).
//
// Our settings: StableTime = 0, because the files are complete before the run starts and the
// default 2 s would only add a wait for the freshly written ones, which measures no transfer;
// everything else is the product's default (ChunkSize 10 MiB, Concurrency 2 per vessel, chunks
// in TempDir /tmp/.ContentMonster, a tmpfs in each vessel). A fresh state database per run:
// a leftover one would confirm files as already there. Before every run of every tool the
// vessels' destinations and TempDirs are emptied and dirty pages are flushed (`sync`).
// After each of our runs every vessel must hold every file (names and sizes of all, SHA-256 of
// a sample), every shore file must be in processed/ and every TempDir empty; the other tools'
// copies are checked by names and sizes. A benchmark of a wrong copy is worthless: it throws.
import { execFileSync } from 'node:child_process';
import { link, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startVesselFarm, type Vessel, type VesselFarm } from '../test/helpers/sshd.js';
import { listFiles, sha256File, writeRandomFile } from '../test/helpers/tree.js';
import { benchNotes, CpuAccounting, haveCommand, printCase, summarize, time, timeParallel, writePushSettings, type Sample, type Summary } from './lib.js';

export interface PushBenchOptions {
  quick: boolean;
  rounds: number;
  /** Our runs log at info into this folder, one file per run (slower; to see where time goes). */
  logDir?: string;
}

interface DataSet {
  id: string;
  name: string;
  files: number;
  size: number;
  /** files/s instead of MB/s */
  perFile?: boolean;
}

interface Tool {
  name: string;
  prepare(): Promise<void>;
  run(round: number): Promise<Sample>;
  verify(): Promise<void>;
  cleanUp(): Promise<void>;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
export const RSS_TARGET_MIB = 150;
const TEMP_DIR = '/tmp/.ContentMonster'; // the default TempDir
const OURS = 'contentmonster run --once';
/** ssh options of every OpenSSH client run (sftp, rsync's ssh): no host-key prompt or file, no agent or password prompt. */
const SSH_OPTIONS = ['-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes'];

export async function benchPush(options: PushBenchOptions): Promise<Record<string, Summary[]>> {
  const sets: DataSet[] = options.quick
    ? [
      { id: 'D1', name: 'one 256 MiB file', files: 1, size: 256 * MiB },
      { id: 'D2', name: '300 files of 64 KiB', files: 300, size: 64 * 1024, perFile: true },
      { id: 'D3', name: '10 files of 20 MiB', files: 10, size: 20 * MiB },
    ]
    : [
      { id: 'D1', name: 'one 1 GiB file', files: 1, size: GiB },
      { id: 'D2', name: '2000 files of 64 KiB', files: 2000, size: 64 * 1024, perFile: true },
      { id: 'D3', name: '50 files of 20 MiB', files: 50, size: 20 * MiB },
    ];
  const others: OtherTool[] = [];
  for (const [command, name] of [['rsync', 'rsync'], ['rclone', 'rclone']] as const) {
    if (haveCommand(command)) others.push(name);
    else note(`push: ${command} is not installed (apt-get install ${command}): its rows are skipped`);
  }
  const opened = CpuAccounting.open(3);
  const cpu = typeof opened === 'string' ? undefined : opened;
  if (typeof opened === 'string') note(`push: ${opened}; the shore and vessel CPU-s/GiB columns are left out`);
  // TempDir is in each vessel's tmpfs /tmp: room for all of D4's chunks, however many the
  // product keeps there at once (tmpfs takes memory only for what it holds).
  let farm: VesselFarm;
  try {
    farm = await startVesselFarm({ count: 3, tmpfsSize: options.quick ? '2g' : '6g', perVessel: cpu?.vessels.map((g) => ({ cgroup: g.path })) });
  } catch (err) {
    cpu?.remove();
    throw err;
  }
  const results: Record<string, Summary[]> = {};
  try {
    const bench = new PushBench(farm, others, cpu, options.logDir);
    await bench.init();
    for (const set of sets) {
      await bench.generate(set);
      for (const n of [1, 3]) Object.assign(results, await bench.runCase(set, n, options.rounds));
    }
    if (!options.quick) {
      const d4: DataSet = { id: 'D4', name: 'one 4 GiB file', files: 1, size: 4 * GiB };
      await bench.generate(d4);
      Object.assign(results, await bench.runCase(d4, 3, 1));
    }
    await bench.dropStash();
  } finally {
    try {
      await farm.stop();
    } finally {
      cpu?.remove();
    }
  }
  return results;
}

type OtherTool = 'rsync' | 'rclone';

function note(line: string): void {
  console.log(line);
  benchNotes.push(line);
}

class PushBench {
  /** An empty home for every client: no ~/.ssh/config, agent or default key takes part. */
  #home = '';
  /** The shore's Directory; on each vessel the same path is its own folder (vessel.backing + /push). */
  readonly #location: string;
  /** The current data set, generated once; the shore gets hard links to it for each of our runs. */
  readonly #stash: string;
  #expected = new Map<string, { size: number; sha256: string }>();
  #runs = 0;

  constructor(private readonly farm: VesselFarm, private readonly others: OtherTool[], private readonly cpu?: CpuAccounting, private readonly logDir?: string) {
    this.#location = join(farm.viewPath, 'push');
    this.#stash = join(farm.root, 'stash');
  }

  async init(): Promise<void> {
    this.#home = await mkdtemp(join(this.farm.root, 'bench-home-'));
    if (this.logDir) await mkdir(this.logDir, { recursive: true });
  }

  async generate(set: DataSet): Promise<void> {
    await this.dropStash();
    this.#expected = new Map();
    for (let f = 0; f < set.files; f++) {
      const name = set.files === 1 ? 'big.bin' : `f${String(f).padStart(5, '0')}.bin`;
      const sha256 = await writeRandomFile(join(this.#stash, name), set.size, 5000 + f);
      this.#expected.set(name, { size: set.size, sha256 });
    }
  }

  async dropStash(): Promise<void> {
    await rm(this.#stash, { recursive: true, force: true });
  }

  async runCase(set: DataSet, n: number, rounds: number): Promise<Record<string, Summary[]>> {
    const vessels = this.farm.vessels.slice(0, n);
    const tools = [
      this.#ours(set, vessels), this.#sftp(vessels, 'default cipher', []), this.#sftp(vessels, 'aes128-gcm', ['-c', 'aes128-gcm@openssh.com']),
      ...this.others.map((o) => (o === 'rsync' ? this.#rsync(vessels) : this.#rclone(vessels))),
    ];
    const samples = new Map<string, Sample[]>(tools.map((t) => [t.name, []]));
    // Whose cgroups count: these vessels', each with its listener (which stays between runs).
    const counted = vessels.map((v) => ({ index: this.farm.vessels.indexOf(v), listener: v.pid }));
    for (let round = 0; round < rounds; round++) {
      for (const tool of tools) {
        await this.#reset();
        await tool.prepare();
        execFileSync('sync');
        samples.get(tool.name)!.push(await (this.cpu ? this.cpu.measure(counted, () => tool.run(round)) : tool.run(round)));
        await tool.verify();
        await tool.cleanUp();
      }
    }
    await this.#reset();
    const payload = set.files * set.size;
    const amount = n * (set.perFile ? set.files : payload);
    const rows = tools.map((t) => summarize(t.name, samples.get(t.name)!, amount, set.perFile ? 'files/s' : 'MB/s', (n * payload) / GiB));
    const key = `push ${set.id}: ${set.name} → ${n} vessel${n > 1 ? 's' : ''}`;
    const rate = n > 1 ? `, aggregate rate = ${n} × ${set.perFile ? 'files' : 'payload'} / wall` : '';
    printCase(`${key}, ${rounds} round(s)${rate}`, rows, OURS);
    const rss = rows[0].peakRssMiB!;
    console.log(`  our peak RSS ${rss.toFixed(1)} MiB: ${rss <= RSS_TARGET_MIB ? 'within' : 'OVER'} the ${RSS_TARGET_MIB} MiB target`);
    return { [key]: rows };
  }

  /** Empties the shore's Directory, and on every vessel its destination and TempDir. */
  async #reset(): Promise<void> {
    await rm(this.#location, { recursive: true, force: true });
    await mkdir(this.#location);
    for (const v of this.farm.vessels) {
      await rm(join(v.backing, 'push'), { recursive: true, force: true });
      await rm(v.hostPath(TEMP_DIR), { recursive: true, force: true });
    }
  }

  #ours(set: DataSet, vessels: Vessel[]): Tool {
    let settings = '';
    let state = '';
    return {
      name: OURS,
      prepare: async () => {
        for (const name of this.#expected.keys()) await link(join(this.#stash, name), join(this.#location, name));
        state = await mkdtemp(join(this.farm.root, 'bench-state-'));
        settings = await writePushSettings(join(state, 'settings.ini'), {
          location: this.#location, vessels, clientKey: this.farm.clientKey, database: join(state, 'database.sqlite3'),
          stableTimeMs: 0, logLevel: this.logDir ? 'info' : 'warn',
        });
      },
      run: (round) => time({
        ours: true,
        command: ['run', '--once', '-c', settings],
        env: { HOME: this.#home, SSH_AUTH_SOCK: '' },
        logFile: this.logDir && join(this.logDir, `${set.id}-${vessels.length}v-round${round + 1}-${this.#runs++}.log`),
        cgroup: this.cpu?.shore.path,
      }),
      verify: async () => {
        const left = (await listFiles(this.#location)).filter((f) => !f.startsWith('processed/'));
        if (left.length) throw new Error(`push benchmark: ${left.length} shore files not moved to processed/, e.g. ${left[0]}`);
        for (const v of vessels) {
          await this.#verifyVessel(v, true);
          const chunks = await readdir(v.hostPath(TEMP_DIR)).catch(() => []);
          if (chunks.length) throw new Error(`push benchmark: ${chunks.length} leftovers in TempDir on ${v.name}, e.g. ${chunks[0]}`);
        }
      },
      cleanUp: () => rm(state, { recursive: true, force: true }),
    };
  }

  #sftp(vessels: Vessel[], label: string, cipher: string[]): Tool {
    const batch = join(this.farm.root, 'put.batch');
    return {
      name: `sftp put -r (${label})`,
      // The destination does not exist: `put -r SRC DST` creates DST and puts SRC's files in it.
      prepare: () => writeFile(batch, `put -r ${this.#stash} ${this.#location}\n`),
      run: () => timeParallel(vessels.map((v) => ({
        command: ['sftp', '-i', this.farm.clientKey, '-P', String(v.port), ...SSH_OPTIONS, '-q', ...cipher, '-b', batch, 'root@127.0.0.1'],
        env: { HOME: this.#home, SSH_AUTH_SOCK: '' },
        cgroup: this.cpu?.shore.path,
      }))),
      verify: async () => {
        for (const v of vessels) await this.#verifyVessel(v, false);
      },
      cleanUp: async () => undefined,
    };
  }

  /** `rsync -a --whole-file` over ssh, one process per vessel; the source's trailing slash: its files into the destination, which rsync creates. */
  #rsync(vessels: Vessel[]): Tool {
    return {
      name: 'rsync -a --whole-file',
      prepare: async () => undefined,
      run: () => timeParallel(vessels.map((v) => ({
        command: ['rsync', '-a', '--whole-file', '-e', ['ssh', '-i', this.farm.clientKey, '-p', String(v.port), ...SSH_OPTIONS, '-q'].join(' '),
          `${this.#stash}/`, `root@127.0.0.1:${this.#location}/`],
        env: { HOME: this.#home, SSH_AUTH_SOCK: '' },
        cgroup: this.cpu?.shore.path,
      }))),
      verify: async () => {
        for (const v of vessels) await this.#verifyVessel(v, false);
      },
      cleanUp: async () => undefined,
    };
  }

  /** `rclone copy` to an on-the-fly sftp remote, one process per vessel, with an empty config file (none of the host's). */
  #rclone(vessels: Vessel[]): Tool {
    const config = join(this.#home, 'rclone.conf');
    return {
      name: 'rclone copy (sftp)',
      prepare: () => writeFile(config, ''),
      run: () => timeParallel(vessels.map((v) => ({
        command: ['rclone', 'copy', '--config', config, '-q', '--sftp-host', '127.0.0.1', '--sftp-port', String(v.port), '--sftp-user', 'root',
          '--sftp-key-file', this.farm.clientKey, this.#stash, `:sftp:${this.#location}`],
        env: { HOME: this.#home, SSH_AUTH_SOCK: '' },
        cgroup: this.cpu?.shore.path,
      }))),
      verify: async () => {
        for (const v of vessels) await this.#verifyVessel(v, false);
      },
      cleanUp: async () => undefined,
    };
  }

  /** Every file, with its size; with `hashes`, the SHA-256 of a sample: a single file, every 10th large one, every 250th small one. */
  async #verifyVessel(v: Vessel, hashes: boolean): Promise<void> {
    const dir = join(v.backing, 'push');
    const names = await listFiles(dir);
    const want = [...this.#expected.keys()].sort();
    if (names.length !== want.length || names.some((n, i) => n !== want[i])) {
      throw new Error(`push benchmark: ${v.name} holds ${names.length} files, expected ${want.length} (first difference: ${names.find((n, i) => n !== want[i]) ?? want[names.length]})`);
    }
    for (const [i, name] of names.entries()) {
      const e = this.#expected.get(name)!;
      const size = (await stat(join(dir, name))).size;
      if (size !== e.size) throw new Error(`push benchmark: ${name} on ${v.name} has ${size} bytes, expected ${e.size}`);
      if (hashes && (e.size >= 16 * MiB ? i % 10 === 0 : i % 250 === 0) && (await sha256File(join(dir, name))) !== e.sha256) {
        throw new Error(`push benchmark: ${name} on ${v.name} differs from the shore's`);
      }
    }
  }
}
