// `npm run bench -- scale [--quick] [--wide] [--million | --million-start]`: how the push daemon scales with the
// backlog (files waiting at start) and with the number of vessels (issue 18, points 4 and 5).
// Not part of a plain `npm run bench`: it takes about 20 minutes on this machine (20-23 while
// other test runs shared its two cores).
//
// The backlog: files of 1 to 4 KiB (a size and content fixed by the file's number, so any file
// can be checked without keeping hashes) in 300 folders of one Location, written before the
// run (StableTime 0: the files are complete, the default 2 s would only add a wait). Vessels are
// real sshd processes on 127.0.0.1 (startVesselFarm), 20 of them started once; a case uses the
// first N. Everything else is the product's default (Concurrency 2 per vessel, ...).
//
// Each case is one start of our CLI with a fresh state database, its events read from
// descriptor 3 (CONTENTMONSTER_EVENTS_FD) and stamped when they arrive here; its RSS
// (/proc/PID/status) and its database's size (the file and its -wal) are sampled every second.
// Printed per case: time to the first delivery (from the spawn), deliveries per second (all
// deliveries ÷ the time from the first to the last), peak RSS and CPU (rusage, from inside the
// process), the database after the run and at its peak, the wall time, and the machine's load
// average at the end (other work on the two cores slows every figure; CPU per delivery suffers
// least from it). Daemon-mode runs also give the time from SIGTERM to the exit.
//
// The matrix (default):
// - vessels: 1000 files to 1, 3, 10 and 20 vessels (`run --once`): the memory a vessel costs,
//   as the slope of peak RSS over the vessel count;
// - a dead vessel: 1000 files to 20 vessels of which v20 is stopped (its port closed), against
//   the same files to v1..v19 alone, two rounds each, alternated; both in daemon mode (`run`,
//   stopped with SIGTERM once every live vessel has every file, and without the dead one every
//   file is processed): a --once run would give the dead one up after 60 s;
// - backlog: 10k files to 3 and to 20 vessels, 100k files to 3 vessels (`run --once`);
// - start-up, for 10k and 100k files to 3 vessels, in daemon mode (`run`, stopped with SIGTERM):
//   with an empty database until the first delivery; then with every vessel unreachable (ports
//   where nothing listens) until its first scan has recorded the whole backlog ('ready'); then
//   `status` three times with all of it pending; then `run` again on that database with the
//   vessels reachable, until its first delivery: start-up with a full database.
// `--wide` adds 100k files to 20 vessels (2M deliveries, about an hour more); `--million` adds
// 1M files to 3 vessels and its start-up (3M deliveries, an hour or more; several GB under
// /var/tmp); `--million-start` only the start-up of 1M files to 3 vessels, with `status` (no
// `--once` run: about 10 minutes). 1M files to 20 vessels (20M deliveries) is not meant to
// run. `--quick`: 300 files for the vessel and dead-vessel cases (one round), 2000 files to 3
// and 20 vessels and its start-up, to check the benchmark itself (about 3 minutes).
//
// After each run: exit 0 (daemon runs: after SIGTERM), every live vessel holds every file (the
// names, the size of every file, the SHA-256 of every 997th), nothing else in its folder and no
// chunk in its TempDir; the shore's processed/ holds every file and nothing is left outside it
// (with a dead vessel: nothing processed, every file still waiting). A benchmark of a wrong
// copy is worthless: it throws. Between cases the vessels' folders are renamed away and removed
// (`rm -rf`, outside the measurement) and processed/ becomes the backlog again.
import { execFile, execFileSync } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { shebangFlags } from '../test/helpers/process.js';
import { freePorts, startVesselFarm, type Vessel, type VesselFarm } from '../test/helpers/sshd.js';
import { cli, median, spawnOurs, time, writePushSettings, type OursEvent, type OursProcess, type Sample } from './lib.js';

const execFileP = promisify(execFile);

export interface ScaleBenchOptions {
  quick: boolean;
  /** Adds 100k files to 20 vessels. */
  wide: boolean;
  /** Adds 1M files to 3 vessels, and its restart. */
  million: boolean;
  /** Adds only the restart of 1M files to 3 vessels (the start-up and `status`, without delivering them all). */
  millionStart?: boolean;
  /** Our runs log at info into this folder, one file per run. */
  logDir?: string;
}

/** One second of a run: RSS, database (file + -wal) and deliveries so far. */
export interface Tick {
  tS: number;
  rssMiB: number;
  dbMiB: number;
  delivered: number;
}

export interface ScaleRow {
  case: string;
  /** `run --once`, or the daemon stopped by SIGTERM once every live vessel has every file. */
  mode: 'once' | 'daemon';
  files: number;
  vessels: number;
  /** Vessels in the settings whose sshd is stopped (port closed). */
  dead: number;
  deliveries: number;
  firstDeliveryS: number;
  lastDeliveryS: number;
  /** deliveries ÷ (last − first delivery) */
  deliveriesPerS: number;
  peakRssMiB: number;
  cpuS: number;
  /** database + -wal after the run */
  dbMiB: number;
  /** largest database + -wal seen during the run (sampled every second) */
  peakDbMiB: number;
  wallS: number;
  /** Daemon mode: from SIGTERM to the exit. */
  stopS?: number;
  /** The machine's 1-minute load average at the end: other work on it (2 cores) slows every figure. */
  load1: number;
  /** Connection attempts to the dead vessels that failed ('unreachable' events). */
  deadAttempts?: number;
  timeline: Tick[];
}

/** A daemon-mode start (`run`) until some event, then SIGTERM. */
export interface DaemonStart {
  /** 'ready': watching, and the first scan has queued what it found (absent: not before the stop). */
  readyS?: number;
  firstDeliveryS?: number;
  /** The first failed connection attempt ('unreachable'): when a vessel first had work. */
  firstAttemptS?: number;
  /** from SIGTERM to the exit (the product promises at most 10 s) */
  stopS: number;
  /** until the exit after SIGTERM */
  wallS: number;
  peakRssMiB: number;
  cpuS: number;
  dbMiB: number;
  peakDbMiB: number;
  timeline: Tick[];
}

export interface RestartRow {
  files: number;
  vessels: number;
  /** `run` with an empty database, vessels reachable: until its first delivery. */
  fresh: DaemonStart;
  /** `run` with every vessel unreachable, until its first scan has queued everything ('ready'). */
  fill: DaemonStart;
  /** `status -c settings.ini` with everything pending, three times. */
  status: { wallS: number[]; medianS: number; peakRssMiB: number };
  /** `run` again with that database, vessels reachable: until its first delivery. */
  restart: DaemonStart;
  /** For comparison: the first delivery of `run --once` with the same files and vessels and an empty database. */
  freshOnceFirstDeliveryS?: number;
}

export interface ScaleResult {
  rows: ScaleRow[];
  restarts: RestartRow[];
  /** Peak RSS over vessels (least squares over the vessel cases), and between the 3- and 20-vessel runs of a backlog. */
  perVessel: { smallBacklogFiles: number; slopeMiB: number; byBacklog: { files: number; miBPerVessel: number }[] };
  /** The dead-vessel case against the live vessels alone. */
  deadVessel?: {
    files: number; withDead: number; liveAlone: number; ratio: number; rssWithDeadMiB: number; rssLiveAloneMiB: number;
    cpuMsPerDeliveryWithDead: number; cpuMsPerDeliveryLiveAlone: number;
  };
  seconds: Record<string, number>;
}

const FOLDERS = 300;
/** Every file whose number is a multiple of this is checked by SHA-256 (on every vessel and in processed/). */
const HASH_EVERY = 997;
const TEMP_DIR = '/tmp/.ContentMonster'; // the default TempDir
const MiB = 1024 * 1024;
const FARM_SIZE = 20;

interface BacklogCase {
  files: number;
  vessels: number[];
  restart: boolean;
}

export async function benchScale(options: ScaleBenchOptions): Promise<ScaleResult> {
  const small = options.quick ? 300 : 1000;
  const deadRounds = options.quick ? 1 : 2;
  const backlogs: BacklogCase[] = options.quick
    ? [{ files: 2000, vessels: [3, 20], restart: true }]
    : [
      { files: 10_000, vessels: [3, 20], restart: true },
      { files: 100_000, vessels: options.wide ? [3, 20] : [3], restart: true },
      ...(options.million || options.millionStart ? [{ files: 1_000_000, vessels: options.million ? [3] : [], restart: true }] : []),
    ];
  const farm = await startVesselFarm({ count: FARM_SIZE });
  const bench = new ScaleBench(farm, options.logDir);
  const result: ScaleResult = { rows: [], restarts: [], perVessel: { smallBacklogFiles: small, slopeMiB: 0, byBacklog: [] }, seconds: {} };
  const section = async (name: string, run: () => Promise<void>) => {
    const t = performance.now();
    await run();
    result.seconds[name] = +((performance.now() - t) / 1000).toFixed(1);
  };
  try {
    await bench.init();
    await bench.extend(small);
    await section(`vessels (${small} files)`, async () => {
      const rows: ScaleRow[] = [];
      for (const n of [1, 3, 10, 20]) rows.push(await bench.measure(small, n, 0, 'once'));
      result.rows.push(...rows);
      result.perVessel.slopeMiB = slope(rows.map((r) => [r.vessels, r.peakRssMiB]));
      console.log(`  peak RSS per vessel (least squares over 1, 3, 10, 20 vessels): ${result.perVessel.slopeMiB.toFixed(2)} MiB`);
    });
    // Alternated, so that what else runs on the machine weighs on both alike.
    await section(`dead vessel (${small} files, ${deadRounds} round${deadRounds > 1 ? 's' : ''})`, async () => {
      const withDead: ScaleRow[] = [];
      const alone: ScaleRow[] = [];
      for (let round = 0; round < deadRounds; round++) {
        withDead.push(await bench.measure(small, FARM_SIZE, 1, 'daemon'));
        alone.push(await bench.measure(small, FARM_SIZE - 1, 0, 'daemon'));
      }
      result.rows.push(...withDead, ...alone);
      const rate = (rows: ScaleRow[]) => median(rows.map((r) => r.deliveriesPerS));
      const rss = (rows: ScaleRow[]) => Math.max(...rows.map((r) => r.peakRssMiB));
      // Our CPU per delivery: less at the mercy of what else runs on the machine than a rate.
      const cpu = (rows: ScaleRow[]) => median(rows.map((r) => (r.cpuS * 1000) / r.deliveries));
      result.deadVessel = {
        files: small, withDead: rate(withDead), liveAlone: rate(alone), ratio: rate(withDead) / rate(alone),
        rssWithDeadMiB: rss(withDead), rssLiveAloneMiB: rss(alone), cpuMsPerDeliveryWithDead: cpu(withDead), cpuMsPerDeliveryLiveAlone: cpu(alone),
      };
      console.log(`  ${FARM_SIZE - 1} live vessels: ${rate(withDead).toFixed(0)} deliveries/s beside a dead one, ${rate(alone).toFixed(0)} alone`
        + ` (${(result.deadVessel.ratio * 100).toFixed(0)} %, medians of ${deadRounds}); our CPU per delivery ${cpu(withDead).toFixed(2)} vs ${cpu(alone).toFixed(2)} ms;`
        + ` peak RSS ${rss(withDead).toFixed(0)} vs ${rss(alone).toFixed(0)} MiB;`
        + ` failed connection attempts to the dead one: ${withDead.map((r) => r.deadAttempts).join(', ')}`);
    });
    for (const b of backlogs) {
      await bench.extend(b.files);
      await section(`backlog ${label(b.files)}`, async () => {
        const rows: ScaleRow[] = [];
        for (const n of b.vessels) rows.push(await bench.measure(b.files, n, 0, 'once'));
        result.rows.push(...rows);
        const [few, many] = [rows.find((r) => r.vessels === 3), rows.find((r) => r.vessels === 20)];
        if (few && many) {
          const miBPerVessel = (many.peakRssMiB - few.peakRssMiB) / 17;
          result.perVessel.byBacklog.push({ files: b.files, miBPerVessel });
          console.log(`  peak RSS per vessel at ${label(b.files)} files: (RSS with 20 − RSS with 3) / 17 = ${miBPerVessel.toFixed(1)} MiB`);
        }
      });
      if (b.restart) {
        await section(`restart ${label(b.files)}`, async () => {
          const fresh = result.rows.find((r) => r.files === b.files && r.vessels === 3 && r.dead === 0 && r.mode === 'once');
          result.restarts.push({ ...await bench.restart(b.files, 3), ...(fresh ? { freshOnceFirstDeliveryS: fresh.firstDeliveryS } : {}) });
        });
      }
    }
    printSummary(result);
  } finally {
    await farm.stop();
  }
  return result;
}

/** 1000 → '1k', 1000000 → '1M'. */
function label(n: number): string {
  return n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}M` : n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n);
}

/** Least-squares slope of y over x. */
function slope(points: [number, number][]): number {
  const n = points.length;
  const mx = points.reduce((a, [x]) => a + x, 0) / n;
  const my = points.reduce((a, [, y]) => a + y, 0) / n;
  return points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
}

// ---------------------------------------------------------------------------------------------
// The files: number i lives in folder i % 300, its size and bytes follow from i.

const folderName = (d: number) => `d${String(d).padStart(3, '0')}`;
const fileName = (i: number) => `f${String(i).padStart(7, '0')}.bin`;
const fileSize = (i: number) => 1024 + ((Math.imul(i, 2654435761) >>> 0) % 3073);
/** 8 KiB of AES-CTR keystream: each file is its number on a line, then a slice of it. */
const POOL = createCipheriv('aes-128-ctr', createHash('sha256').update('cm-scale').digest().subarray(0, 16), Buffer.alloc(16)).update(Buffer.alloc(8192));

function fileContent(i: number): Buffer {
  const buf = Buffer.allocUnsafe(fileSize(i));
  const header = buf.write(`cm-scale ${i}\n`, 'latin1');
  const from = (i * 7) % 4096;
  POOL.copy(buf, header, from, from + buf.length - header);
  return buf;
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Files of folder d among the first `files`. */
const inFolder = (files: number, d: number) => (d < files ? Math.floor((files - 1 - d) / FOLDERS) + 1 : 0);

/**
 * Checks that `dir` holds exactly the first `files` files in their folders (names and sizes,
 * and the SHA-256 of every 997th with `hashes`), and at its top nothing but the folders (and
 * `processed` when `shore`). A missing folder counts as empty.
 */
function verifyTree(dir: string, files: number, what: string, o: { hashes: boolean; shore?: boolean }): void {
  const listing = (() => {
    try {
      return readdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || files > 0) throw err;
      return [];
    }
  })();
  const top = listing.filter((n) => !(/^d\d{3}$/.test(n) && Number(n.slice(1)) < FOLDERS) && !(o.shore && n === 'processed'));
  if (top.length) throw new Error(`scale benchmark: ${what} holds ${top.length} unexpected entries, e.g. ${top[0]}`);
  for (let d = 0; d < FOLDERS; d++) {
    const folder = join(dir, folderName(d));
    let names: string[];
    try {
      names = readdirSync(folder);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      names = [];
    }
    const want = inFolder(files, d);
    if (names.length !== want) throw new Error(`scale benchmark: ${what}/${folderName(d)} holds ${names.length} entries, expected ${want}`);
    for (const name of names) {
      const m = /^f(\d{7})\.bin$/.exec(name);
      const i = m ? Number(m[1]) : -1;
      if (i < 0 || i >= files || i % FOLDERS !== d) throw new Error(`scale benchmark: ${what}/${folderName(d)} holds ${name}, which is not one of the files`);
      const path = join(folder, name);
      const size = statSync(path).size;
      if (size !== fileSize(i)) throw new Error(`scale benchmark: ${what}/${folderName(d)}/${name} has ${size} bytes, expected ${fileSize(i)}`);
      if (o.hashes && i % HASH_EVERY === 0 && sha256(readFileSync(path)) !== sha256(fileContent(i))) {
        throw new Error(`scale benchmark: ${what}/${folderName(d)}/${name} differs from the shore's`);
      }
    }
  }
}

/** VmRSS of a live process in MiB (0 once it is gone). */
function rssMiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

/** The state database and its -wal, in MiB (what does not exist counts 0). */
function dbMiB(database: string): number {
  let bytes = 0;
  for (const f of [database, `${database}-wal`]) {
    try {
      bytes += statSync(f).size;
    } catch {
      // not there (yet, or any more)
    }
  }
  return bytes / MiB;
}

/** Samples a running process every second until stopped. */
function sampler(p: OursProcess, database: string, delivered: () => number): { stop(): Tick[]; peakDbMiB(): number } {
  const ticks: Tick[] = [];
  let peakDb = 0;
  const tick = () => {
    const db = dbMiB(database);
    peakDb = Math.max(peakDb, db);
    ticks.push({ tS: +((performance.now() - p.startedMs) / 1000).toFixed(1), rssMiB: +rssMiB(p.pid).toFixed(1), dbMiB: +db.toFixed(2), delivered: delivered() });
  };
  const timer = setInterval(tick, 1000);
  return {
    stop: () => {
      clearInterval(timer);
      return ticks;
    },
    peakDbMiB: () => peakDb,
  };
}

class ScaleBench {
  /** An empty home for our CLI: no ~/.ssh/config, agent or default key takes part. */
  #home = '';
  /** The shore's one Location; on each vessel the same path is its own folder (backing/scale). */
  readonly #location: string;
  /** Files 0..#files-1 are in the Location's folders. */
  #files = 0;
  #runs = 0;
  #trash = 0;

  constructor(private readonly farm: VesselFarm, private readonly logDir?: string) {
    this.#location = join(farm.viewPath, 'scale');
  }

  async init(): Promise<void> {
    this.#home = await mkdtemp(join(this.farm.root, 'bench-home-'));
    if (this.logDir) await mkdir(this.logDir, { recursive: true });
    for (let d = 0; d < FOLDERS; d++) mkdirSync(join(this.#location, folderName(d)), { recursive: true });
  }

  /** Writes files #files..files-1 (the Location then holds the first `files`). */
  async extend(files: number): Promise<void> {
    if (files <= this.#files) return;
    const t = performance.now();
    for (let i = this.#files; i < files; i++) writeFileSync(join(this.#location, folderName(i % FOLDERS), fileName(i)), fileContent(i));
    console.log(`\nscale: wrote files ${this.#files}..${files - 1} (${label(files)} in all) in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    this.#files = files;
    execFileSync('sync');
  }

  #vessels(n: number): Vessel[] {
    return this.farm.vessels.slice(0, n);
  }

  async #settings(state: string, name: string, vessels: Pick<Vessel, 'name' | 'port'>[]): Promise<string> {
    return writePushSettings(join(state, name), {
      location: this.#location, vessels, clientKey: this.farm.clientKey, database: join(state, 'database.sqlite3'),
      stableTimeMs: 0, logLevel: this.logDir ? 'info' : 'warn',
    });
  }

  #logFile(what: string): string | undefined {
    return this.logDir && join(this.logDir, `scale-${this.#runs++}-${what}.log`);
  }

  #env(): NodeJS.ProcessEnv {
    return { HOME: this.#home, SSH_AUTH_SOCK: '' };
  }

  /**
   * One run of the first `files` files to the first `n` vessels, of which the last `dead` are
   * stopped for it. `once`: `run --once`; `daemon`: `run`, stopped with SIGTERM once every live
   * vessel has every file (and, without a dead vessel, every file is processed).
   */
  async measure(files: number, n: number, dead: number, mode: 'once' | 'daemon'): Promise<ScaleRow> {
    if (files !== this.#files) throw new Error(`scale benchmark: the Location holds ${this.#files} files, not ${files}`);
    const all = this.#vessels(n);
    const live = all.slice(0, n - dead);
    const deadOnes = all.slice(n - dead);
    const name = `${label(files)} files → ${n} vessels${dead ? ` (${dead} dead)` : ''}${mode === 'daemon' ? ', daemon' : ''}`;
    for (const v of deadOnes) await v.stop();
    const state = await mkdtemp(join(this.farm.root, 'scale-state-'));
    try {
      const database = join(state, 'database.sqlite3');
      const settings = await this.#settings(state, 'settings.ini', all);
      execFileSync('sync');
      const expected = live.length * files;
      const deadNames = new Set(deadOnes.map((v) => v.name));
      let delivered = 0;
      let processed = 0;
      let deadAttempts = 0;
      let first: number | undefined;
      let last = 0;
      let finished = () => {};
      const everywhere = new Promise<void>((resolve) => (finished = resolve));
      const onEvent = (e: OursEvent, atS: number) => {
        if (e.type === 'delivered') {
          delivered++;
          first ??= atS;
          last = atS;
        } else if (e.type === 'processed') processed++;
        else if (e.type === 'unreachable' && deadNames.has(e.vessel!)) deadAttempts++;
        if (delivered >= expected && (dead > 0 || processed >= files)) finished();
      };
      const p = spawnOurs({ command: ['run', ...(mode === 'once' ? ['--once'] : []), '-c', settings], env: this.#env(), logFile: this.#logFile(`${files}-${n}v${dead ? `-${dead}dead` : ''}-${mode}`), onEvent });
      const s = sampler(p, database, () => delivered);
      let stopAt: number | undefined;
      if (mode === 'daemon') {
        await Promise.race([everywhere, p.done]);
        stopAt = (performance.now() - p.startedMs) / 1000;
        p.kill('SIGTERM');
      }
      const r = await p.done;
      const timeline = s.stop();
      if (r.code !== 0) throw new Error(`scale benchmark: ${name}: our CLI exited ${r.code} (signal ${r.signal})\n${p.tail()}`);
      if (delivered !== expected) throw new Error(`scale benchmark: ${name}: ${delivered} deliveries, expected ${expected}\n${p.tail()}`);
      for (const v of live) {
        verifyTree(join(v.backing, 'scale'), files, v.name, { hashes: true });
        const chunks = await readdir(v.hostPath(TEMP_DIR)).catch(() => []);
        if (chunks.length) throw new Error(`scale benchmark: ${chunks.length} leftovers in TempDir on ${v.name}, e.g. ${chunks[0]}`);
      }
      for (const v of deadOnes) verifyTree(join(v.backing, 'scale'), 0, v.name, { hashes: false });
      if (dead === 0) {
        verifyTree(join(this.#location, 'processed'), files, 'processed/', { hashes: true });
        verifyTree(this.#location, 0, 'the Location', { hashes: false, shore: true });
      } else {
        verifyTree(join(this.#location, 'processed'), 0, 'processed/', { hashes: false });
        verifyTree(this.#location, files, 'the Location', { hashes: false, shore: true });
      }
      const row: ScaleRow = {
        case: name, mode, files, vessels: n, dead, deliveries: delivered,
        firstDeliveryS: first!, lastDeliveryS: last, deliveriesPerS: delivered / Math.max(last - first!, 1e-3),
        peakRssMiB: r.maxRssMiB!, cpuS: r.cpuS!, dbMiB: dbMiB(database), peakDbMiB: Math.max(s.peakDbMiB(), dbMiB(database)),
        wallS: r.wallS, ...(stopAt === undefined ? {} : { stopS: r.wallS - stopAt }), load1: +loadavg()[0].toFixed(2), ...(dead ? { deadAttempts } : {}), timeline,
      };
      printRow(row);
      return row;
    } finally {
      for (const v of deadOnes) await v.start();
      await rm(state, { recursive: true, force: true });
      await this.#reset();
    }
  }

  /**
   * `run` (daemon mode) with `settings` until `until` accepts an event, then SIGTERM; it must
   * exit 0. Returns when it was ready ('ready': watching, first scan queued), its first
   * delivery and first failed connection attempt, and its figures.
   */
  async #daemonUntil(what: string, settings: string, database: string, until: (e: OursEvent) => boolean): Promise<DaemonStart> {
    const seen: { readyS?: number; firstDeliveryS?: number; firstAttemptS?: number } = {};
    // Once stopped, nothing counts: a stop cuts the first scan short, and 'ready' follows anyway.
    let stopped = false;
    let reached = () => {};
    const condition = new Promise<void>((resolve) => (reached = resolve));
    const p = spawnOurs({
      command: ['run', '-c', settings], env: this.#env(), logFile: this.#logFile(what.replace(/\W+/g, '-')),
      onEvent: (e, atS) => {
        if (stopped) return;
        if (e.type === 'ready') seen.readyS ??= atS;
        if (e.type === 'delivered') seen.firstDeliveryS ??= atS;
        if (e.type === 'unreachable') seen.firstAttemptS ??= atS;
        if (until(e)) {
          stopped = true;
          reached();
        }
      },
    });
    const s = sampler(p, database, () => 0);
    await Promise.race([condition, p.done]);
    stopped = true;
    const stopAt = (performance.now() - p.startedMs) / 1000;
    p.kill('SIGTERM');
    const r = await p.done;
    const timeline = s.stop();
    if (r.code !== 0) throw new Error(`scale benchmark: ${what}: our CLI exited ${r.code} (signal ${r.signal})\n${p.tail()}`);
    return { ...seen, stopS: r.wallS - stopAt, wallS: r.wallS, peakRssMiB: r.maxRssMiB!, cpuS: r.cpuS!, dbMiB: dbMiB(database), peakDbMiB: Math.max(s.peakDbMiB(), dbMiB(database)), timeline };
  }

  /**
   * Start-up, with an empty database and with a full one, in daemon mode. First `run` with an
   * empty database and the first `n` vessels reachable until its first delivery (SIGTERM;
   * what it did is undone). Then with another empty database: `run` with every vessel
   * unreachable (ports where nothing listens) until its first scan has queued all the files
   * ('ready'), SIGTERM; `status` three times (and once --json: every vessel must have every
   * file waiting); `run` again with the vessels reachable until its first delivery, SIGTERM.
   */
  async restart(files: number, n: number): Promise<RestartRow> {
    const vessels = this.#vessels(n);
    const closed = await freePorts(n);
    const what = `${label(files)} files → ${n} vessels`;
    const first = (e: OursEvent) => e.type === 'delivered';

    let state = await mkdtemp(join(this.farm.root, 'scale-state-'));
    let fresh: DaemonStart;
    try {
      execFileSync('sync');
      fresh = await this.#daemonUntil(`fresh start: ${what}`, await this.#settings(state, 'settings.ini', vessels), join(state, 'database.sqlite3'), first);
    } finally {
      await rm(state, { recursive: true, force: true });
      await this.#reset();
    }

    state = await mkdtemp(join(this.farm.root, 'scale-state-'));
    const database = join(state, 'database.sqlite3');
    try {
      const unreachable = await this.#settings(state, 'unreachable.ini', vessels.map((v, i) => ({ name: v.name, port: closed[i] })));
      const reachable = await this.#settings(state, 'settings.ini', vessels);
      execFileSync('sync');
      const fill = await this.#daemonUntil(`fill: ${what}, unreachable`, unreachable, database, (e) => e.type === 'ready');
      if (fill.readyS === undefined) throw new Error(`scale benchmark: fill: ${what}: stopped before it was ready`);

      const status: Sample[] = [];
      for (let k = 0; k < 3; k++) status.push(await time({ ours: true, command: ['status', '-c', unreachable], env: this.#env() }));
      const { stdout } = await execFileP(process.execPath, [...shebangFlags(cli), cli, 'status', '--json', '-c', unreachable], { env: { ...process.env, ...this.#env() }, maxBuffer: 256 * MiB });
      const report = JSON.parse(stdout) as { vessels: { name: string; waiting: { files: number } }[] };
      for (const v of vessels) {
        const waiting = report.vessels.find((r) => r.name === v.name)?.waiting.files;
        if (waiting !== files) throw new Error(`scale benchmark: restart: ${what}: status says ${waiting} files wait for ${v.name}, expected ${files}`);
      }

      execFileSync('sync');
      const again = await this.#daemonUntil(`restart: ${what}`, reachable, database, first);
      const row: RestartRow = {
        files, vessels: n, fresh, fill,
        status: { wallS: status.map((x) => x.wallS), medianS: median(status.map((x) => x.wallS)), peakRssMiB: Math.max(...status.map((x) => x.maxRssMiB!)) },
        restart: again,
      };
      printRestart(row);
      return row;
    } finally {
      await rm(state, { recursive: true, force: true });
      await this.#reset();
    }
  }

  /**
   * Empties every vessel's folder (renamed away, then `rm -rf`, all at once) and makes what
   * reached processed/ the backlog again: a folder there whose twin in the Location is empty
   * is renamed into its place, otherwise its files are moved back one by one.
   */
  async #reset(): Promise<void> {
    const trash: string[] = [];
    for (const v of this.farm.vessels) {
      const dir = join(v.backing, 'scale');
      const to = join(v.backing, `.trash-${this.#trash++}`);
      try {
        renameSync(dir, to);
        trash.push(to);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    const processed = join(this.#location, 'processed');
    for (let d = 0; d < FOLDERS; d++) {
      const from = join(processed, folderName(d));
      const to = join(this.#location, folderName(d));
      let names: string[];
      try {
        names = readdirSync(from);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
        continue;
      }
      let there: string[] | undefined;
      try {
        there = readdirSync(to);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      if (!there?.length) {
        if (there) rmdirSync(to);
        renameSync(from, to);
      } else {
        for (const name of names) renameSync(join(from, name), join(to, name));
      }
    }
    trash.push(processed);
    await Promise.all(trash.map((t) => execFileP('rm', ['-rf', '--', t])));
  }
}

// ---------------------------------------------------------------------------------------------

const pad = (s: string, n: number) => s.padEnd(n);
const s1 = (x: number) => `${x.toFixed(1)} s`;
const HEAD = `  ${pad('case', 42)}${pad('1st delivery', 14)}${pad('deliveries/s', 14)}${pad('peak RSS', 11)}${pad('DB after (peak)', 20)}${pad('CPU', 10)}${pad('wall', 10)}load`;

function rowText(r: ScaleRow): string {
  return `  ${pad(r.case, 42)}${pad(s1(r.firstDeliveryS), 14)}${pad(r.deliveriesPerS.toFixed(0), 14)}${pad(`${r.peakRssMiB.toFixed(0)} MiB`, 11)}`
    + `${pad(`${r.dbMiB.toFixed(1)} (${r.peakDbMiB.toFixed(1)}) MiB`, 20)}${pad(s1(r.cpuS), 10)}${pad(s1(r.wallS), 10)}${r.load1.toFixed(1)}`;
}

function printRow(r: ScaleRow): void {
  console.log(`${HEAD}\n${rowText(r)}`);
}

function restartText(r: RestartRow): string[] {
  const opt = (x: number | undefined) => (x === undefined ? '-' : s1(x));
  const start = (d: DaemonStart) => `first delivery ${opt(d.firstDeliveryS)}, ready ${d.readyS === undefined ? 'not before it' : s1(d.readyS)}, `
    + `peak RSS ${d.peakRssMiB.toFixed(0)} MiB, CPU ${s1(d.cpuS)}, stop after SIGTERM ${s1(d.stopS)}`;
  return [
    `  start-up, ${label(r.files)} files → ${r.vessels} vessels, daemon mode (run; times from the spawn)`,
    `    empty database:              ${start(r.fresh)}${r.freshOnceFirstDeliveryS === undefined ? '' : ` (run --once: first delivery ${s1(r.freshOnceFirstDeliveryS)})`}`,
    `    vessels unreachable:         ready (whole backlog queued) ${opt(r.fill.readyS)}, first connection attempt ${opt(r.fill.firstAttemptS)}, `
      + `peak RSS ${r.fill.peakRssMiB.toFixed(0)} MiB, CPU ${s1(r.fill.cpuS)}, database ${r.fill.dbMiB.toFixed(1)} MiB (peak ${r.fill.peakDbMiB.toFixed(1)}), `
      + `stop after SIGTERM ${s1(r.fill.stopS)}`,
    `    status, all of it pending:   ${r.status.wallS.map((x) => x.toFixed(2)).join(', ')} s (peak RSS ${r.status.peakRssMiB.toFixed(0)} MiB)`,
    `    restart with that database:  ${start(r.restart)}`,
  ];
}

function printRestart(r: RestartRow): void {
  console.log(restartText(r).join('\n'));
}

function printSummary(r: ScaleResult): void {
  console.log('\nscale: every case (deliveries/s: all deliveries ÷ the time from the first to the last)');
  console.log(HEAD);
  for (const row of r.rows) console.log(rowText(row));
  for (const x of r.restarts) console.log(restartText(x).join('\n'));
  console.log(`  peak RSS per vessel: ${r.perVessel.slopeMiB.toFixed(2)} MiB at ${r.perVessel.smallBacklogFiles} files (slope over 1, 3, 10, 20 vessels)`
    + r.perVessel.byBacklog.map((b) => `; ${b.miBPerVessel.toFixed(1)} MiB at ${label(b.files)} files ((20 − 3 vessels) / 17)`).join(''));
  if (r.deadVessel) {
    const d = r.deadVessel;
    console.log(`  a dead vessel among 20: ${d.withDead.toFixed(0)} deliveries/s to the 19 live ones, ${d.liveAlone.toFixed(0)} with them alone (${(d.ratio * 100).toFixed(0)} %);`
      + ` our CPU per delivery ${d.cpuMsPerDeliveryWithDead.toFixed(2)} vs ${d.cpuMsPerDeliveryLiveAlone.toFixed(2)} ms; peak RSS ${d.rssWithDeadMiB.toFixed(0)} vs ${d.rssLiveAloneMiB.toFixed(0)} MiB`);
  }
  console.log(`  sections took ${Object.entries(r.seconds).map(([k, v]) => `${k} ${v} s`).join(', ')}`);
}
