// SSH threads off vs on (`[MONSTER] Threads`, issue 19 point 3): `run --once` delivering one
// random file (1 GiB; CM_THREADS_MIB to change) to 2 and 3 vessels (CM_THREADS_VESSELS), each
// Threads value of CM_THREADS_MODES (off,auto) in turn, the order reversed every other round
// (the machine is shared: neighbours' load drifts), CM_THREADS_ROUNDS rounds (3), StableTime = 0,
// a fresh state database each run, every copy's SHA-256 checked. CPU is the shore process's,
// every thread (getrusage from inside: rusage-hook); the load average is read before each run.
// Then one 2-vessel run per mode sampled from /proc/<pid>/task/*/stat: CPU per thread.
//   node --import tsx bench/threads.ts
import { spawn } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { link, mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startVesselFarm, type Vessel } from '../test/helpers/sshd.js';
import { sha256File, writeRandomFile } from '../test/helpers/tree.js';
import { shebangFlags } from '../test/helpers/process.js';
import { cli, median, time, writePushSettings, type Sample } from './lib.js';

const MiB = 1024 * 1024;
const size = Number(process.env.CM_THREADS_MIB ?? 1024) * MiB;
const rounds = Number(process.env.CM_THREADS_ROUNDS ?? 3);
const counts = (process.env.CM_THREADS_VESSELS ?? '2,3').split(',').map(Number);
const modes = (process.env.CM_THREADS_MODES ?? 'off,auto').split(',');
const TEMP_DIR = '/tmp/.ContentMonster';

const loadAverage = () => readFileSync('/proc/loadavg', 'utf8').split(' ')[0];

const farm = await startVesselFarm({ count: Math.max(...counts), tmpfsSize: '2g' });
try {
  const home = await mkdtemp(join(farm.root, 'home-'));
  const location = join(farm.viewPath, 'push');
  const stash = join(farm.root, 'stash');
  await mkdir(stash);
  const sha = await writeRandomFile(join(stash, 'big.bin'), size, 5000);

  const reset = async () => {
    await rm(location, { recursive: true, force: true });
    await mkdir(location);
    for (const v of farm.vessels) {
      await rm(join(v.backing, 'push'), { recursive: true, force: true });
      await rm(v.hostPath(TEMP_DIR), { recursive: true, force: true });
    }
  };
  const prepare = async (vessels: Vessel[], threads: string) => {
    await reset();
    await link(join(stash, 'big.bin'), join(location, 'big.bin'));
    const state = await mkdtemp(join(farm.root, 'state-'));
    const settings = await writePushSettings(join(state, 'settings.ini'), {
      location, vessels, clientKey: farm.clientKey, database: join(state, 'database.sqlite3'), stableTimeMs: 0, logLevel: 'warn', threads,
    });
    execFileSync('sync');
    return { state, settings };
  };
  const verify = async (vessels: Vessel[]) => {
    for (const v of vessels) {
      const got = await sha256File(join(v.backing, 'push', 'big.bin'));
      if (got !== sha) throw new Error(`${v.name}: copy differs`);
      const left = await readdir(v.hostPath(TEMP_DIR)).catch((): string[] => []);
      if (left.length) throw new Error(`${v.name}: ${left.length} leftovers in TempDir`);
    }
    const processed = await readdir(join(location, 'processed')).catch((): string[] => []);
    if (!processed.includes('big.bin')) throw new Error('not moved to processed/');
  };

  const samples = new Map<string, Sample[]>();
  const loads: string[] = [];
  for (const n of counts) {
    const vessels = farm.vessels.slice(0, n);
    for (let r = 0; r < rounds; r++) {
      for (const mode of r % 2 ? [...modes].reverse() : modes) {
        const { state, settings } = await prepare(vessels, mode);
        const load = loadAverage();
        loads.push(load);
        const s = await time({ ours: true, command: ['run', '--once', '-c', settings], env: { HOME: home, SSH_AUTH_SOCK: '' } });
        await verify(vessels);
        await rm(state, { recursive: true, force: true });
        const key = `${n} ${mode}`;
        samples.set(key, [...(samples.get(key) ?? []), s]);
        console.log(`${n} vessel(s) Threads = ${mode} round ${r + 1}: wall ${s.wallS.toFixed(2)} s, CPU ${s.cpuS!.toFixed(2)} s, RSS ${s.maxRssMiB!.toFixed(0)} MiB, load ${load}`);
      }
    }
  }
  const GiB = 1024 * MiB;
  console.log(`\nload average (1 min) before the runs: ${[...loads].sort((a, b) => Number(a) - Number(b)).join(' ')}`);
  console.log('vessels | Threads | wall s (median, min-max) | CPU s (median) | CPU-s/GiB delivered | peak RSS MiB');
  for (const n of counts) {
    for (const mode of modes) {
      const ss = samples.get(`${n} ${mode}`)!;
      const walls = ss.map((s) => s.wallS);
      const cpu = median(ss.map((s) => s.cpuS!));
      console.log(`${n} | ${mode} | ${median(walls).toFixed(2)} (${Math.min(...walls).toFixed(2)}-${Math.max(...walls).toFixed(2)}) | ${cpu.toFixed(2)} | ${(cpu / ((n * size) / GiB)).toFixed(2)} | ${median(ss.map((s) => s.maxRssMiB!)).toFixed(0)}`);
    }
  }

  // CPU per thread of one 2-vessel run per mode, sampled every 250 ms.
  if (counts.includes(2)) {
    const tick = 100; // USER_HZ
    for (const mode of modes) {
      const vessels = farm.vessels.slice(0, 2);
      const { state, settings } = await prepare(vessels, mode);
      const child = spawn(process.execPath, [...shebangFlags(cli), cli, 'run', '--once', '-c', settings], {
        env: { ...process.env, HOME: home, SSH_AUTH_SOCK: '' }, stdio: 'ignore',
      });
      const last = new Map<string, { name: string; ticks: number }>();
      const busyTimeline: string[] = [];
      let prev = new Map<string, number>();
      const timer = setInterval(() => {
        try {
          const now = new Map<string, number>();
          for (const tid of readdirSync(`/proc/${child.pid}/task`)) {
            const stat = readFileSync(`/proc/${child.pid}/task/${tid}/stat`, 'utf8');
            const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
            const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
            const ticks = Number(f[11]) + Number(f[12]);
            now.set(tid, ticks);
            last.set(tid, { name, ticks });
          }
          const busy = [...now].map(([tid, t]) => ((t - (prev.get(tid) ?? t)) / tick) / 0.25).filter((u) => u >= 0.5).length;
          busyTimeline.push(String(busy));
          prev = now;
        } catch { /* ended */ }
      }, 250);
      await new Promise((r) => child.on('close', r));
      clearInterval(timer);
      await verify(vessels);
      await rm(state, { recursive: true, force: true });
      const top = [...last].filter(([, v]) => v.ticks >= 20).sort((a, b) => b[1].ticks - a[1].ticks);
      console.log(`\n2 vessels, Threads = ${mode}: threads with >= 0.2 CPU-s: ${top.map(([tid, v]) => `${v.name}[${tid}] ${(v.ticks / tick).toFixed(1)} s`).join(', ')}`);
      console.log(`  threads >= 50% busy per 250 ms sample: ${busyTimeline.join(' ')}`);
    }
  }
} finally {
  await farm.stop();
}
