// Shared by the benchmark parts: timing a child process (wall, peak RSS, CPU), statistics, and
// the table and ratio printing. Figures, never assertions: the machine is shared and noisy.
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
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
}

export interface Timed {
  command: string[];
  env?: NodeJS.ProcessEnv;
  /** Our CLI: run under node with the rusage hook. */
  ours?: boolean;
  /** Keep the command's whole output (stdout and stderr, interleaved) in this file. */
  logFile?: string;
}

let seq = 0;

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
  await run(file, args, env, t.logFile);
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
  const results = await Promise.allSettled(ts.map((t) => run(t.command[0], t.command.slice(1), { ...process.env, ...t.env })));
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return { wallS };
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
}

export function summarize(tool: string, samples: Sample[], amount: number, unit: 'MB/s' | 'files/s'): Summary {
  const walls = samples.map((s) => s.wallS);
  const m = median(walls);
  const rss = samples.map((s) => s.maxRssMiB).filter((x): x is number => x !== undefined);
  const cpu = samples.map((s) => s.cpuS).filter((x): x is number => x !== undefined);
  return {
    tool, samples, medianS: m, minS: Math.min(...walls), maxS: Math.max(...walls),
    rate: (unit === 'MB/s' ? amount / 1e6 : amount) / m, rateUnit: unit,
    peakRssMiB: rss.length ? Math.max(...rss) : undefined,
    medianCpuS: cpu.length ? median(cpu) : undefined,
  };
}

const pad = (s: string, n: number) => s.padEnd(n);

/** One case: a row per tool, and our throughput as a ratio to each other tool's (> 1 = faster). */
export function printCase(title: string, rows: Summary[], ours: string): void {
  console.log(`\n${title}`);
  console.log(`  ${pad('tool', 30)}${pad('median', 10)}${pad('min-max', 16)}${pad('rate', 16)}${pad('peak RSS', 11)}CPU`);
  for (const r of rows) {
    console.log(`  ${pad(r.tool, 30)}${pad(`${r.medianS.toFixed(2)} s`, 10)}${pad(`${r.minS.toFixed(2)}-${r.maxS.toFixed(2)} s`, 16)}`
      + `${pad(`${r.rate.toFixed(1)} ${r.rateUnit}`, 16)}${pad(r.peakRssMiB === undefined ? '' : `${r.peakRssMiB.toFixed(0)} MiB`, 11)}`
      + `${r.medianCpuS === undefined ? '' : `${r.medianCpuS.toFixed(2)} s`}`);
  }
  const mine = rows.find((r) => r.tool === ours)!;
  for (const r of rows) {
    if (r === mine) continue;
    console.log(`  ratio ${ours} / ${r.tool}: ${(mine.rate / r.rate).toFixed(2)}x`);
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
