// Shared by the benchmark parts: timing a child process (wall, peak RSS, CPU), CPU counted by
// cgroup, statistics, and the table and ratio printing. Figures, never assertions: the machine
// is shared and noisy.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { onTestExit } from '../test/helpers/cleanup.js';
import { shebangFlags } from '../test/helpers/process.js';
import type { Vessel } from '../test/helpers/sshd.js';

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));
/** The CLI under measurement: this checkout's build, or another one named by CM_BENCH_CLI (a dist/main.js). */
export const cli = process.env.CM_BENCH_CLI ? resolve(process.env.CM_BENCH_CLI) : join(repoRoot, 'dist', 'main.js');
const hook = join(repoRoot, 'bench', 'rusage-hook.mjs');

export interface Sample {
  wallS: number;
  /** Only for our own CLI (measured from inside the process). */
  maxRssMiB?: number;
  cpuS?: number;
  /** CPU seconds of the tool's cgroup: every process and thread it ran on the shore (CpuAccounting). */
  shoreCpuS?: number;
  /** CPU seconds of the vessels' cgroups, all processes of each, summed over the vessels of the case. */
  vesselCpuS?: number;
  /** The same, one figure per vessel. */
  vesselCpuSEach?: number[];
}

export interface Timed {
  command: string[];
  env?: NodeJS.ProcessEnv;
  /** Our CLI: run under node with the rusage hook. */
  ours?: boolean;
  /** Keep the command's whole output (stdout and stderr, interleaved) in this file. */
  logFile?: string;
  /** Start it in this cgroup v2 directory (CpuGroup.path), before it runs any of its own code. */
  cgroup?: string;
}

/**
 * `file args`, or when a cgroup is given the same through `sh -c`, which writes its own pid into
 * the group's cgroup.procs and then execs the command: the command's first instruction, every
 * thread and every child it starts are counted there.
 */
function inGroup(file: string, args: string[], cgroup?: string): [string, string[]] {
  if (!cgroup) return [file, args];
  return ['sh', ['-c', 'echo $$ > "$1/cgroup.procs" || exit 97; shift; exec "$@"', 'sh', cgroup, file, ...args]];
}

let seq = 0;

/** Lines a part printed about what it could not measure (a tool not installed, no cgroup v2): written into the results JSON. */
export const benchNotes: string[] = [];

/** Runs `file args` to completion; rejects on a non-zero exit with the tail of its output. */
async function run(file: string, args: string[], env: NodeJS.ProcessEnv, logFile?: string): Promise<void> {
  const log = logFile ? createWriteStream(logFile) : undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      const onData = (d: Buffer) => {
        text = (text + d.toString()).slice(-20_000);
        log?.write(d);
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${file} ${args.join(' ')} exited ${code}:\n${text}`))));
    });
  } finally {
    if (log) await new Promise((r) => log.end(r));
  }
}

/**
 * Runs one command to completion; rejects on a non-zero exit (a benchmark of a failure is no
 * benchmark). Our CLI runs with the Node flags of its first line, as its units start it.
 */
export async function time(t: Timed): Promise<Sample> {
  const rusageFile = join(tmpdir(), `cm-bench-rusage-${process.pid}-${seq++}.json`);
  const [file, ...args] = t.ours ? [process.execPath, ...shebangFlags(cli), '--import', hook, cli, ...t.command] : t.command;
  const env = { ...process.env, ...t.env, ...(t.ours ? { CM_BENCH_RUSAGE: rusageFile } : {}) };
  const started = process.hrtime.bigint();
  await run(...inGroup(file, args, t.cgroup), env, t.logFile);
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  if (!t.ours) return { wallS };
  const usage = JSON.parse(await readFile(rusageFile, 'utf8')) as { maxRssKiB: number; cpuS: number };
  await rm(rusageFile, { force: true });
  return { wallS, maxRssMiB: usage.maxRssKiB / 1024, cpuS: usage.cpuS };
}

/**
 * Other tools' commands (not ours) started together; the wall time runs until the last one
 * ends. Rejects if any exits non-zero (after all have ended).
 */
export async function timeParallel(ts: Timed[]): Promise<Sample> {
  if (ts.some((t) => t.ours)) throw new Error('timeParallel: only for other tools (no rusage hook)');
  const started = process.hrtime.bigint();
  const results = await Promise.allSettled(ts.map((t) => run(...inGroup(t.command[0], t.command.slice(1), t.cgroup), { ...process.env, ...t.env }, t.logFile)));
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return { wallS };
}

/** Whether `command` can be started here (anything but "not found" counts as there). */
export function haveCommand(command: string, versionFlag = '--version'): boolean {
  const r = spawnSync(command, [versionFlag], { stdio: 'ignore', timeout: 10_000 });
  return !(r.error && 'code' in r.error && r.error.code === 'ENOENT');
}

// ---------------------------------------------------------------------------------------------
// CPU by cgroup v2. A process's reaped children are no measure of a vessel: sshd puts each
// connection into a session of its own, and an sftp-server orphaned when the client drops is
// reaped by init, counted by nobody we could ask. A cgroup counts every process that ever ran
// in it (cpu.stat usage_usec, user + system, exited processes included) and every child forks
// into its parent's group, so a vessel's sshd started in a group of its own (FarmOptions
// perVessel cgroup) and a tool started in another (Timed.cgroup) count everything each side
// did. Approach of scripts/measure-join.ts (branch wip/join-batched).

/** Where cgroup v2 is mounted: /sys/fs/cgroup (unified), /sys/fs/cgroup/unified (hybrid), or wherever /proc/self/mounts says. */
function cgroup2Root(): string | undefined {
  const mounts = readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')).filter((f) => f[2] === 'cgroup2').map((f) => f[1]);
  return ['/sys/fs/cgroup', '/sys/fs/cgroup/unified', ...mounts].find((m) => mounts.includes(m) && existsSync(join(m, 'cgroup.procs')));
}

/** A cgroup v2 we made, whose CPU time we read. */
export class CpuGroup {
  constructor(readonly path: string) {
    mkdirSync(path);
  }

  /** CPU seconds used by every process that has been in it, since it was made. */
  cpuS(): number {
    const m = /^usage_usec (\d+)$/m.exec(readFileSync(join(this.path, 'cpu.stat'), 'utf8'));
    if (!m) throw new Error(`no usage_usec in ${this.path}/cpu.stat`);
    return Number(m[1]) / 1e6;
  }

  pids(): number[] {
    return readFileSync(join(this.path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  }

  /** Moves whatever is left to the root group and removes this one; best effort. */
  remove(root: string): void {
    removeGroup(this.path, root);
  }
}

function removeGroup(path: string, root: string): void {
  try {
    for (const pid of readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
      try {
        writeFileSync(join(root, 'cgroup.procs'), `${pid}\n`);
      } catch {
        // gone meanwhile
      }
    }
    rmdirSync(path);
  } catch {
    // already gone, or a process on its way out holds it: nothing we measure depends on it
  }
}

/** A group and the groups right under it. */
function removeTree(path: string, root: string): void {
  try {
    for (const sub of readdirSync(path, { withFileTypes: true })) if (sub.isDirectory()) removeGroup(join(path, sub.name), root);
  } catch {
    // gone meanwhile
  }
  removeGroup(path, root);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The shore's group (the tool under test: start it with Timed.cgroup = shore.path) and one
 * group per vessel (give vessels[i].path to startVesselFarm as perVessel[i].cgroup), under
 * <cgroup2 root>/cm-bench-<pid>/. Removed when the process ends, whatever the reason.
 */
export class CpuAccounting {
  readonly shore: CpuGroup;
  readonly vessels: CpuGroup[];
  #removed = false;

  private constructor(private readonly root: string, private readonly base: string, vesselCount: number) {
    new CpuGroup(base);
    this.shore = new CpuGroup(join(base, 'shore'));
    this.vessels = Array.from({ length: vesselCount }, (_, i) => new CpuGroup(join(base, `vessel-${i + 1}`)));
    onTestExit(() => this.remove());
  }

  /** Groups for the shore and `vesselCount` vessels, or why there are none (no writable cgroup v2). */
  static open(vesselCount: number): CpuAccounting | string {
    if (process.platform !== 'linux') return 'CPU columns need a writable cgroup v2 (Linux)';
    const root = cgroup2Root();
    if (!root) return 'CPU columns need a writable cgroup v2: none is mounted (see /proc/self/mounts)';
    // Left by a run that was killed too hard to clean up (SIGKILL): groups of dead pids.
    for (const name of readdirSync(root)) {
      const pid = /^cm-bench-(\d+)$/.exec(name)?.[1];
      if (pid && !existsSync(`/proc/${pid}`)) removeTree(join(root, name), root);
    }
    const base = join(root, `cm-bench-${process.pid}`);
    try {
      const acct = new CpuAccounting(root, base, vesselCount);
      // The very mechanism every run uses: a shell joins the group, then execs.
      execFileSync('sh', ['-c', 'echo $$ > "$1/cgroup.procs" && exec true', 'sh', acct.shore.path], { stdio: 'ignore' });
      acct.shore.cpuS();
      return acct;
    } catch (err) {
      if (existsSync(base)) removeTree(base, root);
      return `CPU columns need a writable cgroup v2 (at ${root}: ${(err as Error).message.split('\n')[0]})`;
    }
  }

  /**
   * Runs `fn` (which starts the tool in shore.path and waits for it) and adds to its sample the
   * CPU the shore's group and the groups of these vessels used meanwhile. Before reading, waits
   * (up to 5 s) until the tool's processes are gone and each vessel holds only its listener: an
   * orphaned sftp-server or rsync may still be on its way out, and its CPU belongs to the run.
   */
  async measure(vessels: { index: number; listener: number }[], fn: () => Promise<Sample>): Promise<Sample> {
    const groups = vessels.map((v) => this.vessels[v.index]);
    const shoreBefore = this.shore.cpuS();
    const before = groups.map((g) => g.cpuS());
    const sample = await fn();
    const settled = () => this.shore.pids().length === 0 && groups.every((g, i) => g.pids().every((p) => p === vessels[i].listener));
    for (let i = 0; i < 100 && !settled(); i++) await sleep(50);
    const each = groups.map((g, i) => g.cpuS() - before[i]);
    return { ...sample, shoreCpuS: this.shore.cpuS() - shoreBefore, vesselCpuS: each.reduce((a, b) => a + b, 0), vesselCpuSEach: each };
  }

  /** Moves what is left to the root group and removes the groups (after the vessels have stopped). */
  remove(): void {
    if (this.#removed) return;
    this.#removed = true;
    for (const g of [this.shore, ...this.vessels]) g.remove(this.root);
    removeGroup(this.base, this.root);
  }
}

export interface PushSettings {
  /** The shore's one Directory; RemoteLocation defaults to it (each vessel sees its own there). */
  location: string;
  /** Each vessel's name and the port to reach it by (its own, or a link emulator's). */
  vessels: Pick<Vessel, 'name' | 'port'>[];
  clientKey: string;
  /** A file in a folder of its own, fresh for each run: a leftover database would confirm files as already there. */
  database: string;
  stableTimeMs: number;
  logLevel: 'warn' | 'info' | 'debug';
  /** `[MONSTER] Threads`, when set. */
  threads?: string;
}

/**
 * settings.ini for the push parts. Everything not written here is the product's default:
 * ChunkSize 10485760, Concurrency 2 per vessel, TempDir /tmp/.ContentMonster (a tmpfs in each
 * vessel), Timeout 10 s.
 */
export async function writePushSettings(file: string, o: PushSettings): Promise<string> {
  const text = [
    '[MONSTER]',
    `Database = ${o.database}`,
    `StableTime = ${o.stableTimeMs}`,
    `LogLevel = ${o.logLevel}`,
    ...(o.threads === undefined ? [] : [`Threads = ${o.threads}`]),
    '[Directory bench]',
    `Location = ${o.location}`,
    ...o.vessels.flatMap((v) => [
      `[Vessel ${v.name}]`,
      'Address = 127.0.0.1',
      `Port = ${v.port}`,
      'Username = root',
      `IdentityFile = ${o.clientKey}`,
    ]),
  ].join('\n');
  await writeFile(file, `${text}\n`);
  return file;
}

/** Nearest-rank percentile (p in 0..100) of a non-empty list. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export interface Summary {
  tool: string;
  samples: Sample[];
  medianS: number;
  minS: number;
  maxS: number;
  /** MB/s (10^6 bytes) or files/s, from the median. */
  rate: number;
  rateUnit: 'MB/s' | 'files/s';
  peakRssMiB?: number;
  medianCpuS?: number;
  /** Median over the rounds of the shore's cgroup CPU seconds per GiB delivered (Sample.shoreCpuS). */
  shoreCpuSPerGiB?: number;
  /** The same for the vessels' cgroups, all vessels of the case together (Sample.vesselCpuS). */
  vesselCpuSPerGiB?: number;
}

/**
 * `gibDelivered`: GiB that arrive in one run, all vessels together (the payload × vessels), the
 * divisor of the CPU-per-GiB figures.
 */
export function summarize(tool: string, samples: Sample[], amount: number, unit: 'MB/s' | 'files/s', gibDelivered?: number): Summary {
  const walls = samples.map((s) => s.wallS);
  const m = median(walls);
  const defined = (xs: (number | undefined)[]) => xs.filter((x): x is number => x !== undefined);
  const rss = defined(samples.map((s) => s.maxRssMiB));
  const cpu = defined(samples.map((s) => s.cpuS));
  const shore = defined(samples.map((s) => s.shoreCpuS));
  const vessel = defined(samples.map((s) => s.vesselCpuS));
  return {
    tool, samples, medianS: m, minS: Math.min(...walls), maxS: Math.max(...walls),
    rate: (unit === 'MB/s' ? amount / 1e6 : amount) / m, rateUnit: unit,
    peakRssMiB: rss.length ? Math.max(...rss) : undefined,
    medianCpuS: cpu.length ? median(cpu) : undefined,
    shoreCpuSPerGiB: gibDelivered && shore.length ? median(shore) / gibDelivered : undefined,
    vesselCpuSPerGiB: gibDelivered && vessel.length ? median(vessel) / gibDelivered : undefined,
  };
}

const pad = (s: string, n: number) => s.padEnd(n);

/**
 * One case: a row per tool, and our throughput as a ratio to each other tool's (> 1 = faster).
 * With cgroup figures (summarize's gibDelivered), two more columns, shore and vessel CPU-s per
 * GiB delivered, and beside each ratio ours / theirs of each (> 1 = we use more CPU).
 */
export function printCase(title: string, rows: Summary[], ours: string): void {
  const withGroups = rows.some((r) => r.shoreCpuSPerGiB !== undefined);
  const perGiB = (x: number | undefined) => (x === undefined ? '' : x.toFixed(2));
  console.log(`\n${title}`);
  console.log(`  ${pad('tool', 30)}${pad('median', 10)}${pad('min-max', 16)}${pad('rate', 16)}${pad('peak RSS', 11)}`
    + `${withGroups ? `${pad('CPU', 9)}${pad('shore CPU-s/GiB', 17)}vessel CPU-s/GiB` : 'CPU'}`);
  for (const r of rows) {
    const cpu = r.medianCpuS === undefined ? '' : `${r.medianCpuS.toFixed(2)} s`;
    console.log(`  ${pad(r.tool, 30)}${pad(`${r.medianS.toFixed(2)} s`, 10)}${pad(`${r.minS.toFixed(2)}-${r.maxS.toFixed(2)} s`, 16)}`
      + `${pad(`${r.rate.toFixed(1)} ${r.rateUnit}`, 16)}${pad(r.peakRssMiB === undefined ? '' : `${r.peakRssMiB.toFixed(0)} MiB`, 11)}`
      + `${withGroups ? `${pad(cpu, 9)}${pad(perGiB(r.shoreCpuSPerGiB), 17)}${perGiB(r.vesselCpuSPerGiB)}` : cpu}`.trimEnd());
  }
  const mine = rows.find((r) => r.tool === ours)!;
  const cpuRatio = (a?: number, b?: number) => (a === undefined || b === undefined || b === 0 ? '-' : `${(a / b).toFixed(2)}x`);
  for (const r of rows) {
    if (r === mine) continue;
    console.log(`  ratio ${ours} / ${r.tool}: ${(mine.rate / r.rate).toFixed(2)}x`
      + (withGroups ? `; CPU per GiB, ours / theirs: shore ${cpuRatio(mine.shoreCpuSPerGiB, r.shoreCpuSPerGiB)}, vessel ${cpuRatio(mine.vesselCpuSPerGiB, r.vesselCpuSPerGiB)}` : ''));
  }
}

/** One event of the daemon (src/push/events.ts), as read from its descriptor 3. */
export interface OursEvent {
  type: string;
  vessel?: string;
  file?: string;
  [key: string]: unknown;
}

export interface OursProcess {
  pid: number;
  /** performance.now() when it was spawned: the origin of the times given to onEvent. */
  startedMs: number;
  /**
   * Resolves once it has ended and its pipes are drained, whatever the exit code (the caller
   * decides what a non-zero one means), with its wall time, peak RSS and CPU.
   */
  done: Promise<Sample & { code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal (default SIGTERM); nothing once it has ended. */
  kill(signal?: NodeJS.Signals): void;
  /** The last 20,000 characters of its output (stdout and stderr, interleaved). */
  tail(): string;
}

/**
 * Starts our CLI in the background, like time() (the Node flags of its first line, the rusage
 * hook), with its events on a pipe as descriptor 3 (CONTENTMONSTER_EVENTS_FD): `onEvent` gets
 * each one with the seconds since the spawn, stamped when its line arrived here.
 */
export function spawnOurs(o: Omit<Timed, 'ours'> & { onEvent?: (event: OursEvent, atS: number) => void }): OursProcess {
  const rusageFile = join(tmpdir(), `cm-bench-rusage-${process.pid}-${seq++}.json`);
  const env = { ...process.env, ...o.env, CM_BENCH_RUSAGE: rusageFile, CONTENTMONSTER_EVENTS_FD: '3' };
  const log = o.logFile ? createWriteStream(o.logFile) : undefined;
  const startedMs = performance.now();
  const child = spawn(process.execPath, [...shebangFlags(cli), '--import', hook, cli, ...o.command], { env, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] });
  let text = '';
  const onData = (d: Buffer) => {
    text = (text + d.toString()).slice(-20_000);
    log?.write(d);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  let partial = '';
  (child.stdio[3] as NodeJS.ReadableStream).setEncoding('utf8');
  (child.stdio[3] as NodeJS.ReadableStream).on('data', (d: string) => {
    const atS = (performance.now() - startedMs) / 1000;
    const lines = (partial + d).split('\n');
    partial = lines.pop()!;
    if (!o.onEvent) return;
    for (const line of lines) if (line) o.onEvent(JSON.parse(line) as OursEvent, atS);
  });
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal }));
  }).then(async ({ code, signal }) => {
    const wallS = (performance.now() - startedMs) / 1000;
    if (log) await new Promise((r) => log.end(r));
    const usage = await readFile(rusageFile, 'utf8').then((t) => JSON.parse(t) as { maxRssKiB: number; cpuS: number }, () => undefined);
    await rm(rusageFile, { force: true });
    return { wallS, code, signal, ...(usage ? { maxRssMiB: usage.maxRssKiB / 1024, cpuS: usage.cpuS } : {}) };
  });
  return {
    pid: child.pid ?? 0,
    startedMs,
    done,
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    tail: () => text,
  };
}
