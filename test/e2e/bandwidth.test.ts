// BandwidthLimit (issue 20 point 1) through the real daemon and sshd: the link emulator in front
// of each vessel counts the bytes that cross it (it limits nothing here), and the test compares
// them with what the limits allow. Upper bounds only, with a tolerance for the SSH framing and
// one burst: a busy machine makes transfers slower, never faster. Where a limit is lifted, the
// bytes after it must exceed what the limit would have allowed. The timetable's clock is set by
// CONTENTMONSTER_TEST_CLOCK (test-only) so that a boundary falls a few seconds after the start.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { startLink, type Link } from '../helpers/link.js';
import { runCli, startDaemon, type Daemon } from '../helpers/process.js';
import { writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, resetFarm, writeSettings } from '../helpers/push.js';
import { startMetricsServer, type MetricsServer } from '../helpers/metrics-server.js';
import type { StatusReport } from '../../src/status.js';

const K = 1024;
const M = 1024 * 1024;
/** The SSH and SFTP framing on top of the payload, and a busy machine's uneven timers. */
const TOLERANCE = 1.15;
/** What a limit lets through at once beyond its rate: one burst (a quarter second, at least 32 KiB) and one write in flight. */
const slack = (rate: number) => Math.max(32 * K, rate / 4) + 256 * K;

let farm: VesselFarm;
let links: Link[];
let metrics: MetricsServer;

before(async () => {
  farm = await startVesselFarm({ count: 2 });
  links = await Promise.all(farm.vessels.map((v) => startLink(v.port)));
  metrics = await startMetricsServer();
});
after(async () => {
  for (const l of links ?? []) await l.stop();
  await metrics?.stop();
  await farm?.stop();
});
beforeEach(async () => {
  await resetFarm(farm);
  for (const l of links) l.resetCounters();
  metrics.clear();
});

/** Link counters sampled every 100 ms, with the time of each sample. */
function sampler(link: Link): { samples: { t: number; bytes: number }[]; stop(): void; at(t: number): number } {
  const samples = [{ t: performance.now(), bytes: link.counts().bytesUp }];
  const timer = setInterval(() => samples.push({ t: performance.now(), bytes: link.counts().bytesUp }), 100);
  return {
    samples,
    stop: () => clearInterval(timer),
    /** Bytes up to the last sample at or before `t`. */
    at: (t) => samples.filter((s) => s.t <= t).at(-1)?.bytes ?? 0,
  };
}

/** The largest number of bytes in any window of `ms` (between two samples at most `ms` apart). */
function busiest(samples: { t: number; bytes: number }[], ms: number): { bytes: number; ms: number } {
  let best = { bytes: 0, ms };
  for (let i = 0; i < samples.length; i++) {
    for (let j = i + 1; j < samples.length && samples[j].t - samples[i].t <= ms; j++) {
      const bytes = samples[j].bytes - samples[i].bytes;
      if (bytes > best.bytes) best = { bytes, ms: samples[j].t - samples[i].t };
    }
  }
  return best;
}

async function stopDaemon(daemon: Daemon): Promise<void> {
  daemon.kill('SIGTERM');
  const exit = await daemon.waitForExit(30_000);
  assert.equal(exit.code, 0, daemon.output());
}

describe('BandwidthLimit', () => {
  it('a vessel limit and the global one: each link within its limit over every window; status and metrics say so', async () => {
    const files = new Map([['big.bin', await writeRandomFile(join(farm.viewPath, 'big.bin'), 3 * M, 1)]]);
    const settings = await writeSettings(farm, {
      chunkSize: M,
      portFor: (i) => links[i].port,
      monsterExtra: `BandwidthLimit = 384k\nMetricsSocket = ${metrics.path}`,
      vesselExtra: (i) => (i === 0 ? 'BandwidthLimit = 256k' : ''),
    });
    const counts = links.map(sampler);
    const daemon = startDaemon(['run', '-c', settings], { cwd: farm.root });
    try {
      await daemon.waitForEvent('bandwidthLimit', (e) => e.vessel === 'v1' && e.bytesPerSecond === 256 * K);
      await daemon.waitForEvent('bandwidthLimit', (e) => e.vessel === null && e.bytesPerSecond === 384 * K);
      // While it sends: status shows the limits in force and a rate.
      await daemon.waitForEvent('connected', (e) => e.vessel === 'v1');
      let report: StatusReport | undefined;
      for (let i = 0; i < 100 && !(report && (report.vessels[0].bandwidth.bytesPerSecond ?? 0) > 0); i++) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        const r = await runCli(['status', '-c', settings, '--json'], { cwd: farm.root });
        assert.equal(r.code, 0, r.stdout + r.stderr);
        report = JSON.parse(r.stdout) as StatusReport;
      }
      assert.ok(report);
      assert.deepEqual(report.vessels.map((v) => [v.name, v.bandwidth.setting, v.bandwidth.limitBytesPerSecond]), [['v1', '256k', 256 * K], ['v2', 'off', null]]);
      assert.ok((report.vessels[0].bandwidth.bytesPerSecond ?? 0) > 0, JSON.stringify(report.vessels[0]));
      assert.ok((report.vessels[0].bandwidth.bytesPerSecond ?? Infinity) <= 256 * K * TOLERANCE + slack(256 * K) / 5, JSON.stringify(report.vessels[0]));
      assert.deepEqual([report.bandwidth.setting, report.bandwidth.limitBytesPerSecond], ['384k', 384 * K]);
      const table = await runCli(['status', '-c', settings], { cwd: farm.root });
      assert.match(table.stdout, /^v1 +256\.0 KiB\/s +\d+\.\d KiB\/s +256k$/m, table.stdout);
      assert.match(table.stdout, /^\(all vessels\) +384\.0 KiB\/s +.+ +384k$/m, table.stdout);

      for (const v of farm.vessels) await daemon.waitForEvent('delivered', (e) => e.vessel === v.name && e.file.endsWith('big.bin'), 120_000);
      for (const c of counts) c.stop();
      for (const v of farm.vessels) await assertOnVessel(v, farm.viewPath, files);
      // Every window of 2, 5 and 10 s: v1 within 256k, both links together within 384k.
      const both = counts[0].samples.map((s, i) => ({ t: s.t, bytes: s.bytes + (counts[1].samples[i]?.bytes ?? counts[1].samples.at(-1)!.bytes) }));
      for (const ms of [2000, 5000, 10_000]) {
        const one = busiest(counts[0].samples, ms);
        assert.ok(one.bytes <= 256 * K * TOLERANCE * ms / 1000 + slack(256 * K), `v1: ${one.bytes} bytes in ${Math.round(one.ms)} ms`);
        const sum = busiest(both, ms);
        assert.ok(sum.bytes <= 384 * K * TOLERANCE * ms / 1000 + 2 * slack(384 * K), `v1 and v2: ${sum.bytes} bytes in ${Math.round(sum.ms)} ms`);
      }
      console.log(`v1 busiest 5 s: ${busiest(counts[0].samples, 5000).bytes} bytes; both: ${busiest(both, 5000).bytes}`);
    } finally {
      await stopDaemon(daemon);
    }
    const queue = metrics.parsed().filter((l) => l.measurement === 'contentmonster_queue');
    const last = (vessel: string) => queue.filter((q) => q.tags.vessel === vessel).at(-1);
    assert.equal(last('v1')?.fields.bandwidth_limit_bytes_per_second, 256 * K, metrics.lines().join('\n'));
    assert.equal(last('v2')?.fields.bandwidth_limit_bytes_per_second, undefined);
    assert.ok(Number(last('v1')?.fields.bytes_per_second) >= 0);
  });

  /**
   * One file to v1 under a timetable whose boundary is a few seconds after the start: the bytes
   * across the link before the boundary (from the connection) and after it (until delivered).
   */
  async function acrossBoundary(timetable: string, clock: string, size: number, to: number | null): Promise<{ before: { bytes: number; ms: number }; after: { bytes: number; ms: number }; samples: { t: number; bytes: number }[]; boundary: number }> {
    const files = new Map([['big.bin', await writeRandomFile(join(farm.viewPath, 'big.bin'), size, 2)]]);
    const settings = await writeSettings(farm, { chunkSize: 4 * M, portFor: (i) => links[i].port, vessels: [0], vesselExtra: () => `BandwidthLimit = ${timetable}\nConcurrency = 1` });
    const counts = sampler(links[0]);
    const daemon = startDaemon(['run', '-c', settings], { cwd: farm.root, env: { CONTENTMONSTER_TEST_CLOCK: clock } });
    try {
      await daemon.waitForEvent('connected');
      const connectedAt = performance.now();
      await daemon.waitForEvent('bandwidthLimit', (e) => e.bytesPerSecond === to && daemon.events().filter((x) => x.type === 'bandwidthLimit').length > 1, 60_000);
      const boundary = performance.now();
      await daemon.waitForEvent('delivered', undefined, 120_000);
      const doneAt = performance.now();
      counts.stop();
      await assertOnVessel(farm.vessels[0], farm.viewPath, files);
      assert.equal(links[0].counts().connections, 1, 'no reconnection at the boundary');
      assert.equal(daemon.events().filter((e) => e.type === 'interrupted').length, 0, 'nothing interrupted');
      const result = {
        before: { bytes: counts.at(boundary) - counts.at(connectedAt), ms: boundary - connectedAt },
        after: { bytes: counts.at(doneAt) - counts.at(boundary), ms: doneAt - boundary },
        samples: counts.samples,
        boundary,
      };
      console.log(`${timetable}: before the boundary ${result.before.bytes} bytes in ${Math.round(result.before.ms)} ms, after it ${result.after.bytes} bytes in ${Math.round(result.after.ms)} ms`);
      return result;
    } finally {
      counts.stop();
      await stopDaemon(daemon);
    }
  }

  it('a timetable switches live at its boundary, on the same connection: 1M, then 256k', async () => {
    // The daemon's timetable clock starts at 11:59:50 UTC: 1M until 12:00, then 256k.
    const { before, after, samples, boundary } = await acrossBoundary('00:00,1M 12:00,256k', '2026-12-07T11:59:50Z', 12 * M, 256 * K);
    assert.ok(before.bytes <= M * TOLERANCE * before.ms / 1000 + slack(M), `at 1M: ${before.bytes} bytes in ${before.ms} ms`);
    assert.ok(after.bytes <= 256 * K * TOLERANCE * after.ms / 1000 + slack(M), `at 256k: ${after.bytes} bytes in ${after.ms} ms`);
    for (const ms of [2000, 5000]) {
      const w = busiest(samples.filter((x) => x.t >= boundary + 500), ms);
      assert.ok(w.bytes <= 256 * K * TOLERANCE * ms / 1000 + slack(256 * K), `at 256k: ${w.bytes} bytes in ${Math.round(w.ms)} ms`);
    }
    // More got through per second before the boundary than the 256k after it allowed.
    assert.ok(before.bytes > 256 * K * TOLERANCE * before.ms / 1000 + slack(256 * K), `at 1M: ${before.bytes} bytes in ${before.ms} ms, more than 256k allows`);
  });

  it('a timetable switches live at its boundary: 256k, then off', async () => {
    const { before, after } = await acrossBoundary('00:00,256k 12:00,off', '2026-12-07T11:59:54Z', 8 * M, null);
    assert.ok(before.bytes <= 256 * K * TOLERANCE * before.ms / 1000 + slack(256 * K), `at 256k: ${before.bytes} bytes in ${before.ms} ms`);
    // Off: more per second than 256k would have allowed.
    assert.ok(after.bytes > 256 * K * TOLERANCE * after.ms / 1000 + slack(256 * K), `off: ${after.bytes} bytes in ${after.ms} ms`);
  });

  it('a small file is not starved: queued while a large one is throttled, it arrives before the large one ends', async () => {
    await writeRandomFile(join(farm.viewPath, 'big.bin'), 3 * M, 3);
    const settings = await writeSettings(farm, {
      chunkSize: M,
      portFor: (i) => links[i].port,
      vessels: [0],
      vesselExtra: () => 'BandwidthLimit = 128k\nConcurrency = 1',
    });
    const daemon = startDaemon(['run', '-c', settings], { cwd: farm.root });
    try {
      await daemon.waitForEvent('connected');
      // The large file is under way (more than its first burst is across) ...
      for (let i = 0; i < 300 && links[0].counts().bytesUp < 300 * K; i++) await new Promise((resolve) => setTimeout(resolve, 100));
      assert.ok(links[0].counts().bytesUp >= 300 * K, 'the large file is being sent');
      // ... when a small file comes: one connection, one bucket, the large file's window waiting in it.
      const small = await writeRandomFile(join(farm.viewPath, 'small.txt'), 20 * K, 4);
      await daemon.waitForEvent('delivered', (e) => e.file.endsWith('small.txt'), 120_000);
      await daemon.waitForEvent('delivered', (e) => e.file.endsWith('big.bin'), 120_000);
      const order = daemon.events().filter((e) => e.type === 'delivered').map((e) => (e as { file: string }).file.split('/').at(-1));
      assert.deepEqual(order, ['small.txt', 'big.bin']);
      await assertOnVessel(farm.vessels[0], farm.viewPath, new Map([['small.txt', small]]));
    } finally {
      await stopDaemon(daemon);
    }
  });
});
