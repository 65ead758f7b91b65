// Loaded with `node --import` into the process under measurement: at exit, writes its peak RSS
// and CPU seconds to $CM_BENCH_RUSAGE. Benchmarks only; nothing in src/ knows about it.
import { writeFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';

const out = process.env.CM_BENCH_RUSAGE;
if (out && isMainThread) { // worker threads inherit --import; the main thread's figure is the process's
  process.on('exit', () => {
    const r = process.resourceUsage();
    writeFileSync(out, JSON.stringify({ maxRssKiB: r.maxRSS, cpuS: (r.userCPUTime + r.systemCPUTime) / 1e6 }));
  });
}
