// Issue 19, point 2: what a large file's join costs the vessel, end to end. One file (1 GiB by
// default) pushed by the real CLI (`run --once`, a fresh state database per run) to one real
// OpenSSH vessel on 127.0.0.1 (test/helpers/sshd.ts: its own mount namespace, TempDir in its
// tmpfs /tmp, the destination on the disk), each build of the CLI given in turn, rounds
// alternating between them so that the machine's noise falls on all alike.
//
// CPU is counted by cgroup, never from reaped children (an sftp-server orphaned when the client
// drops its connection is reaped by nobody we could ask): the vessel's sshd listener is moved
// into a cgroup of its own before the first run, so that every process of every connection
// (sshd's, sftp-server, the join script and what it starts) is counted in it; the CLI runs in
// another (all its threads). cgroup v2 (cpu.stat usage_usec) where mounted, else v1 cpuacct.
// A rough split of the vessel's CPU by process comes from sampling /proc every 50 ms (a
// process's last sample before it ended; a shell's count includes the children it reaped):
// for seeing where the time goes, not for the totals.
//
// After each run: the file at its destination, its size and SHA-256 the shore's, TempDir empty,
// the shore file in processed/. A measurement of a wrong copy is worthless: it throws.
//
// Usage (as root, after `npm run build`):
//   node --import tsx scripts/measure-join.ts [--size-mib 1024] [--rounds 2] [NAME=path/to/dist/main.js ...]
// Without builds named, this clone's dist/main.js is measured as `this`. To compare join
// scripts, build each into a folder of its own (a copy of dist/ with package.json beside it and
// node_modules linked) and name them all.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { link, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { shebangFlags } from '../test/helpers/process.js';
import { startVesselFarm, type Vessel } from '../test/helpers/sshd.js';
import { sha256File, writeRandomFile } from '../test/helpers/tree.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const TEMP_DIR = '/tmp/.ContentMonster'; // the product's default TempDir
const SAMPLE_MS = 50;

/** A cgroup we made, whose CPU time we read. */
class CpuGroup {
  readonly path: string;
  private readonly v2: boolean;

  constructor(name: string) {
    const v2Root = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : existsSync('/sys/fs/cgroup/unified/cgroup.procs') ? '/sys/fs/cgroup/unified' : undefined;
    this.v2 = v2Root !== undefined;
    const root = v2Root ?? '/sys/fs/cgroup/cpuacct';
    if (!existsSync(join(root, 'cgroup.procs'))) throw new Error('no cgroup v2 and no cgroup v1 cpuacct hierarchy: cannot count the vessel\'s CPU');
    this.path = join(root, name);
    mkdirSync(this.path);
  }

  /** Moves a process into it; what it starts from then on is counted here too. */
  add(pid: number): void {
    writeFileSync(join(this.path, 'cgroup.procs'), `${pid}\n`);
  }

  /** CPU seconds used by every process that has been in it. */
  cpuS(): number {
    if (this.v2) {
      const m = /^usage_usec (\d+)$/m.exec(readFileSync(join(this.path, 'cpu.stat'), 'utf8'));
      if (!m) throw new Error(`no usage_usec in ${this.path}/cpu.stat`);
      return Number(m[1]) / 1e6;
    }
    return Number(readFileSync(join(this.path, 'cpuacct.usage'), 'utf8')) / 1e9;
  }

  pids(): number[] {
    return readFileSync(join(this.path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  }

  /** Moves whatever is left to the parent and removes the group. */
  remove(): void {
    const parent = join(this.path, '..', 'cgroup.procs');
    for (const pid of this.pids()) {
      try {
        writeFileSync(parent, `${pid}\n`);
      } catch {
        // gone meanwhile
      }
    }
    try {
      rmdirSync(this.path);
    } catch {
      // a process on its way out: the kernel removes nothing we need
    }
  }
}

interface ProcSample {
  comm: string;
  ppid: number;
  /** utime + stime, and with cutime + cstime (reaped children) */
  own: number;
  withChildren: number;
}

const TICK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

function readProc(pid: number): ProcSample | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = text.lastIndexOf(')');
    const comm = text.slice(text.indexOf('(') + 1, close);
    const f = text.slice(close + 2).split(' ');
    // fields after comm: state(0) ppid(1) ... utime(11) stime(12) cutime(13) cstime(14)
    const [utime, stime, cutime, cstime] = [f[11], f[12], f[13], f[14]].map(Number);
    return { comm, ppid: Number(f[1]), own: (utime + stime) / TICK, withChildren: (utime + stime + cutime + cstime) / TICK };
  } catch {
    return undefined;
  }
}

/**
 * Samples the group's processes while a run goes on: the last figures of each. Split by what
 * they are: the sshd processes (listener excluded), sftp-server, and the remote scripts (each
 * top-level `sh` under an sshd, its reaped children included).
 */
function sampleGroup(group: CpuGroup, listener: number): { stop(): Record<string, number> } {
  const last = new Map<number, ProcSample>();
  const baseline = new Map<number, ProcSample>();
  for (const pid of group.pids()) {
    const s = readProc(pid);
    if (s) baseline.set(pid, s);
  }
  const timer = setInterval(() => {
    for (const pid of group.pids()) {
      const s = readProc(pid);
      if (s) last.set(pid, s);
    }
  }, SAMPLE_MS);
  return {
    stop() {
      clearInterval(timer);
      const split: Record<string, number> = { sshd: 0, 'sftp-server': 0, scripts: 0 };
      for (const [pid, s] of last) {
        if (pid === listener) continue;
        const before = baseline.get(pid);
        if (s.comm === 'sftp-server') split['sftp-server'] += s.own - (before?.own ?? 0);
        else if (s.comm === 'sshd') split.sshd += s.own - (before?.own ?? 0);
        // A command sshd started (the script's sh): itself and every child it has reaped.
        else if (last.get(s.ppid)?.comm === 'sshd') split.scripts += s.withChildren - (before?.withChildren ?? 0);
      }
      return split;
    },
  };
}

interface RunResult {
  build: string;
  round: number;
  wallS: number;
  /** From the last chunk sent (`joining`) to the file proven placed (`delivered`). */
  tailS: number;
  shoreCpuS: number;
  vesselCpuS: number;
  split: Record<string, number>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { 'size-mib': { type: 'string', default: '1024' }, rounds: { type: 'string', default: '2' } },
  });
  const size = Number(values['size-mib']) * MiB;
  const rounds = Number(values.rounds);
  const here = fileURLToPath(new URL('..', import.meta.url));
  const builds = positionals.length
    ? positionals.map((p) => {
      const at = p.indexOf('=');
      if (at < 1) throw new Error(`a build is NAME=path/to/main.js, not ${p}`);
      return { name: p.slice(0, at), cli: resolve(p.slice(at + 1)) };
    })
    : [{ name: 'this', cli: join(here, 'dist', 'main.js') }];
  for (const b of builds) if (!existsSync(b.cli)) throw new Error(`${b.cli}: no such file (npm run build?)`);

  const tmpfsGiB = Math.ceil((size * 1.2) / GiB) + 1;
  const farm = await startVesselFarm({ count: 1, tmpfsSize: `${tmpfsGiB}g` });
  const vessel: Vessel = farm.vessels[0];
  const tag = `cm-measure-join-${process.pid}`;
  const vesselGroup = new CpuGroup(`${tag}-vessel`);
  const shoreGroup = new CpuGroup(`${tag}-shore`);
  const results: RunResult[] = [];
  try {
    vesselGroup.add(vessel.pid);
    const location = join(farm.viewPath, 'push');
    const stash = join(farm.root, 'stash');
    const home = await mkdtemp(join(farm.root, 'home-'));
    console.log(`generating ${size / MiB} MiB ...`);
    const sha256 = await writeRandomFile(join(stash, 'big.bin'), size, 19);
    for (let round = 1; round <= rounds; round++) {
      for (const build of builds) {
        // Reset: an empty Directory but for the file, an empty destination and TempDir.
        await rm(location, { recursive: true, force: true });
        await mkdir(location);
        await rm(join(vessel.backing, 'push'), { recursive: true, force: true });
        await rm(vessel.hostPath(TEMP_DIR), { recursive: true, force: true });
        await link(join(stash, 'big.bin'), join(location, 'big.bin'));
        const state = await mkdtemp(join(farm.root, 'state-'));
        const settings = join(state, 'settings.ini');
        await writeFile(settings, [
          '[MONSTER]', `Database = ${join(state, 'database.sqlite3')}`, 'StableTime = 0', 'LogLevel = warn',
          '[Directory bench]', `Location = ${location}`,
          `[Vessel ${vessel.name}]`, 'Address = 127.0.0.1', `Port = ${vessel.port}`, 'Username = root', `IdentityFile = ${farm.clientKey}`, '',
        ].join('\n'));
        execFileSync('sync');
        await sleep(500);

        const vesselBefore = vesselGroup.cpuS();
        const shoreBefore = shoreGroup.cpuS();
        const sampler = sampleGroup(vesselGroup, vessel.pid);
        const started = process.hrtime.bigint();
        const node = [process.execPath, ...shebangFlags(build.cli), build.cli, 'run', '--once', '-c', settings].map((w) => `'${w.replace(/'/g, `'\\''`)}'`).join(' ');
        // The daemon's events (push/events.ts) on fd 3: when the last chunk is sent (`joining`)
        // and when the file is proven placed (`delivered`); between them, the join's tail.
        const seen = new Map<string, number>();
        await new Promise<void>((done, fail) => {
          const child = spawn('sh', ['-c', `echo $$ > '${shoreGroup.path}/cgroup.procs' && exec ${node}`], {
            env: { ...process.env, HOME: home, SSH_AUTH_SOCK: '', CONTENTMONSTER_EVENTS_FD: '3' }, stdio: ['ignore', 'pipe', 'pipe', 'pipe'],
          });
          let out = '';
          child.stdout?.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-10_000); });
          child.stderr?.on('data', (d: Buffer) => { out = (out + d.toString()).slice(-10_000); });
          let events = '';
          (child.stdio[3] as NodeJS.ReadableStream).on('data', (d: Buffer) => {
            events += d.toString();
            for (let nl = events.indexOf('\n'); nl >= 0; nl = events.indexOf('\n')) {
              const type = /"type":"(\w+)"/.exec(events.slice(0, nl))?.[1];
              if (type && !seen.has(type)) seen.set(type, Date.now());
              events = events.slice(nl + 1);
            }
          });
          child.on('error', fail);
          child.on('close', (code) => (code === 0 ? done() : fail(new Error(`${build.name}: run --once exited ${code}:\n${out}`))));
        });
        const wallS = Number(process.hrtime.bigint() - started) / 1e9;
        const tailS = ((seen.get('delivered') ?? NaN) - (seen.get('joining') ?? NaN)) / 1000;
        // Until only the listener is left: an orphaned sftp-server may still be on its way out.
        for (let i = 0; i < 100 && vesselGroup.pids().some((p) => p !== vessel.pid); i++) await sleep(50);
        const split = sampler.stop();
        const r: RunResult = { build: build.name, round, wallS, tailS, shoreCpuS: shoreGroup.cpuS() - shoreBefore, vesselCpuS: vesselGroup.cpuS() - vesselBefore, split };
        results.push(r);

        // A measurement of a wrong copy is worthless.
        const placed = join(vessel.backing, 'push', 'big.bin');
        if ((await stat(placed)).size !== size) throw new Error(`${build.name}: the placed file has the wrong size`);
        if ((await sha256File(placed)) !== sha256) throw new Error(`${build.name}: the placed file differs from the shore's`);
        const left = await readdir(vessel.hostPath(TEMP_DIR)).catch(() => []);
        if (left.length) throw new Error(`${build.name}: ${left.length} leftovers in TempDir`);
        if (!existsSync(join(location, 'processed', 'big.bin'))) throw new Error(`${build.name}: the shore file is not in processed/`);
        await rm(state, { recursive: true, force: true });
        const per = (s: number) => (s / (size / GiB)).toFixed(2);
        console.log(`${build.name.padEnd(12)} round ${round}: wall ${wallS.toFixed(2)} s (tail ${tailS.toFixed(2)} s), shore ${per(r.shoreCpuS)} CPU-s/GiB, vessel ${per(r.vesselCpuS)} CPU-s/GiB `
          + `(~ sshd ${per(split.sshd)}, sftp-server ${per(split['sftp-server'])}, scripts ${per(split.scripts)})`);
      }
    }
  } finally {
    vesselGroup.remove();
    shoreGroup.remove();
    await farm.stop();
  }
  summary(results, size, builds.map((b) => b.name));
}

function summary(results: RunResult[], size: number, names: string[]): void {
  const gib = size / GiB;
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = Math.floor(s.length / 2);
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  const range = (xs: number[], f: (x: number) => string) => `${f(median(xs))} (${f(Math.min(...xs))}-${f(Math.max(...xs))})`;
  const two = (x: number) => x.toFixed(2);
  console.log(`\n${size / MiB} MiB to 1 vessel, median (min-max) of ${results.length / names.length} runs; CPU-s/GiB, vessel split approximate`);
  console.log('| build | wall s | tail s | shore CPU-s/GiB | vessel CPU-s/GiB | sshd | sftp-server | scripts (joiner) |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const name of names) {
    const rs = results.filter((r) => r.build === name);
    console.log(`| ${name} | ${range(rs.map((r) => r.wallS), two)} | ${range(rs.map((r) => r.tailS), two)} | ${range(rs.map((r) => r.shoreCpuS / gib), two)} | ${range(rs.map((r) => r.vesselCpuS / gib), two)} `
      + `| ${two(median(rs.map((r) => r.split.sshd / gib)))} | ${two(median(rs.map((r) => r.split['sftp-server'] / gib)))} | ${two(median(rs.map((r) => r.split.scripts / gib)))} |`);
  }
}

await main();
