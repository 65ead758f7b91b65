// Fault injection on a proxy: keeps cutting its connections after a random 2 to 6 MB each
// (by default) and, every fourth time, stalls it for longer than the vessels' Timeout instead. Deterministic for
// a given seed, so a failure can be replayed.
import type { Proxy } from './proxy.js';

/** A small linear congruential generator: deterministic pseudo-random numbers in [0, 1). */
export function lcg(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

export interface Chaos {
  stop(): Promise<void>;
  counts(): { cuts: number; stalls: number };
}

export function chaos(proxy: Proxy, random: () => number, opts: { stallMs?: number; stallEvery?: number; minBytes?: number; maxBytes?: number } = {}): Chaos {
  const stallMs = opts.stallMs ?? 3000;
  const stallEvery = opts.stallEvery ?? 4;
  const minBytes = opts.minBytes ?? 2 * 1024 * 1024;
  const maxBytes = opts.maxBytes ?? 6 * 1024 * 1024;
  let stopped = false;
  let armed = 0;
  let stalls = 0;
  const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const loop = (async () => {
    while (!stopped) {
      if (armed % stallEvery === stallEvery - 1) {
        proxy.setStalled(true);
        stalls++;
        await pause(stallMs);
        proxy.setStalled(false);
      }
      const before = proxy.cuts;
      proxy.cutAfter(Math.floor(minBytes + (maxBytes - minBytes) * random()));
      armed++;
      while (!stopped && proxy.cuts === before) await pause(50);
    }
    proxy.cutAfter(0);
    proxy.setStalled(false);
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
    counts: () => ({ cuts: proxy.cuts, stalls }),
  };
}
