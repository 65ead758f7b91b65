// Loaded with `node --import` (through NODE_OPTIONS) into the daemon under a soak: every
// $CM_MEMORY_EVERY_MS (default 60 s) appends one JSON line with the process's memory to
// $CM_MEMORY_LOG, after a full collection when the process runs with --expose-gc (as the CLI
// does), so that the heap line shows what is live, not what is waiting to be collected.
// Benchmarks only; nothing in src/ knows about it.
import { appendFileSync } from 'node:fs';

const out = process.env.CM_MEMORY_LOG;
if (out) {
  const every = Number(process.env.CM_MEMORY_EVERY_MS ?? 60_000);
  const sample = () => {
    globalThis.gc?.();
    const m = process.memoryUsage();
    appendFileSync(out, `${JSON.stringify({ at: Date.now(), rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers })}\n`);
  };
  setInterval(sample, every).unref();
  sample();
}
