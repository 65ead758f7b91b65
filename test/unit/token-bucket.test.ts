// The token bucket behind BandwidthLimit (issue 20 point 1), on an injected clock: no real time.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GRANT_BYTES, TokenBucket, type BucketClock } from '../../src/push/bandwidth/token-bucket.js';
import { RateMeter, throttleFor, ScheduledLimit } from '../../src/push/bandwidth/limiter.js';
import { parseTimetable } from '../../src/settings/timetable.js';
import { createLogger } from '../../src/log.js';
import { pushEvents, type PushEvent } from '../../src/push/events.js';

const K = 1024;

/** A clock whose time moves only when the test says; timers fire in order as it passes them. */
class FakeClock implements BucketClock {
  time = 0;
  #timers: { at: number; fn: () => void; id: number }[] = [];
  #ids = 0;
  now = () => this.time;
  setTimeout = (fn: () => void, ms: number) => {
    const id = ++this.#ids;
    this.#timers.push({ at: this.time + ms, fn, id });
    return id;
  };
  clearTimeout = (id: unknown) => {
    this.#timers = this.#timers.filter((t) => t.id !== id);
  };

  /** Moves time forward to `to`, firing due timers (and the promise callbacks they start) on the way. */
  async advanceTo(to: number): Promise<void> {
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at);
      const next = this.#timers[0];
      if (!next || next.at > to) break;
      this.#timers.shift();
      this.time = next.at;
      next.fn();
      await flush();
    }
    this.time = to;
    await flush();
  }
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Sends `total` bytes in writes of `piece`, one after another, recording the time each is granted. */
async function writer(bucket: { take(n: number): Promise<void> | undefined }, total: number, piece: number, log: { t: number; n: number; who: string }[], clock: FakeClock, who: string): Promise<void> {
  for (let sent = 0; sent < total; sent += piece) {
    const n = Math.min(piece, total - sent);
    const wait = bucket.take(n);
    if (wait) await wait;
    log.push({ t: clock.time, n, who });
  }
}

describe('TokenBucket', () => {
  it('off: nothing waits, no promise at all', () => {
    const bucket = new TokenBucket(null, new FakeClock());
    for (let i = 0; i < 1000; i++) assert.equal(bucket.take(256 * K), undefined);
  });

  it('bytes per window stay within rate × window + one burst', async () => {
    const clock = new FakeClock();
    const rate = 256 * K;
    const bucket = new TokenBucket(rate, clock);
    const log: { t: number; n: number; who: string }[] = [];
    const done = writer(bucket, 10 * 1024 * K, 64 * K, log, clock, 'big');
    await clock.advanceTo(60_000);
    await done;
    const burst = Math.max(GRANT_BYTES, rate / 4);
    for (let from = 0; from < 35_000; from += 2500) {
      for (const window of [1000, 5000, 10_000]) {
        const bytes = log.filter((e) => e.t >= from && e.t < from + window).reduce((s, e) => s + e.n, 0);
        assert.ok(bytes <= rate * window / 1000 + burst + 64 * K, `${bytes} bytes in ${window} ms from ${from}`);
      }
    }
    // And it is not slower than the rate either: 10 MiB at 256 KiB/s is 40 s, less the first burst.
    const last = log[log.length - 1].t;
    assert.ok(last <= 40_000 && last >= 39_000, `done at ${last} ms`);
  });

  it('a small write is not stuck behind a large file: grants go round in portions of 32 KiB', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(64 * K, clock);
    const log: { t: number; n: number; who: string }[] = [];
    const big = writer(bucket, 4 * 1024 * K, 256 * K, log, clock, 'big');
    await clock.advanceTo(5000);
    const small = writer(bucket, 8 * K, 8 * K, log, clock, 'small');
    await clock.advanceTo(120_000);
    await Promise.all([big, small]);
    const smallAt = log.find((e) => e.who === 'small')!.t;
    // The large write waiting when it came needs at most one more portion before the small one.
    assert.ok(smallAt <= 5000 + 1000, `small file granted at ${smallAt} ms`);
    assert.ok(log.filter((e) => e.who === 'big').some((e) => e.t > smallAt), 'the large file was still going');
  });

  it('a new rate applies at once, to the waiters too; off lets them all go', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(32 * K, clock);
    const log: { t: number; n: number; who: string }[] = [];
    const done = writer(bucket, 1024 * K, 32 * K, log, clock, 'w');
    await clock.advanceTo(10_000);
    const before = log.reduce((s, e) => s + e.n, 0);
    assert.ok(before <= 32 * K * 10 + 32 * K, `${before} bytes in the first 10 s`);
    bucket.setRate(128 * K);
    await clock.advanceTo(12_000);
    const after = log.filter((e) => e.t > 10_000).reduce((s, e) => s + e.n, 0);
    assert.ok(after > 64 * K && after <= 128 * K * 2 + 32 * K, `${after} bytes in the 2 s after the change`);
    bucket.setRate(null);
    await flush();
    await done;
    assert.equal(log.reduce((s, e) => s + e.n, 0), 1024 * K);
    assert.equal(clock.time, 12_000, 'the rest went without waiting');
  });

  it('an aborted wait leaves the line and rejects; the others go on', async () => {
    const clock = new FakeClock();
    const bucket = new TokenBucket(32 * K, clock);
    assert.equal(bucket.take(32 * K), undefined, 'the first burst is there');
    const abort = new AbortController();
    const cut = bucket.take(64 * K, abort.signal)!;
    const other = bucket.take(16 * K)!;
    abort.abort(new Error('cancelled'));
    await assert.rejects(cut, /cancelled/);
    await clock.advanceTo(600);
    await other;
    assert.equal(bucket.waiting, 0);
  });
});

describe('limits together', () => {
  it('a vessel limit and the global one: each write waits for both', async () => {
    const clock = new FakeClock();
    const log = createLogger('fatal');
    const options = { wallNow: () => Date.parse('2026-12-07T12:00:00Z'), bucketClock: clock };
    const a = new ScheduledLimit('a', parseTimetable('128k'), 'UTC', log, options);
    const b = new ScheduledLimit('b', parseTimetable('off'), 'UTC', log, options);
    const all = new ScheduledLimit(null, parseTimetable('192k'), 'UTC', log, options);
    const sent: { t: number; n: number; who: string }[] = [];
    const ta = writer({ take: throttleFor(a, all) }, 2048 * K, 32 * K, sent, clock, 'a');
    const tb = writer({ take: throttleFor(b, all) }, 2048 * K, 32 * K, sent, clock, 'b');
    await clock.advanceTo(10_000);
    const inWindow = (who?: string) => sent.filter((e) => e.t >= 2000 && e.t < 10_000 && (!who || e.who === who)).reduce((s, e) => s + e.n, 0);
    assert.ok(inWindow('a') <= 128 * K * 8 + 64 * K, `a: ${inWindow('a')}`);
    assert.ok(inWindow() <= 192 * K * 8 + 96 * K, `a and b: ${inWindow()}`);
    assert.ok(inWindow('b') > 32 * K * 8, `b gets its share of the global limit: ${inWindow('b')}`);
    for (const l of [a, b, all]) l.stop();
    await Promise.all([ta, tb]);
  });
});

describe('ScheduledLimit', () => {
  it('sets the new rate at the boundary, on the bucket the writes wait on, and says so', async () => {
    // The wall clock reads 11:59:59.8 now: the boundary to 12:00 is 200 ms away.
    const offset = Date.parse('2026-12-07T11:59:59.800Z') - Date.now();
    const limit = new ScheduledLimit('v', parseTimetable('00:00,1M 12:00,256k'), 'UTC', createLogger('fatal'), { wallNow: () => Date.now() + offset });
    const seen: PushEvent[] = [];
    const off = pushEvents.on((e) => seen.push(e));
    const alive = setTimeout(() => {}, 30_000); // the limit's own timer does not keep the process up
    try {
      limit.start();
      assert.equal(limit.limit, K * K);
      const changed = new Promise<void>((resolve) => pushEvents.on((e) => {
        if (e.type === 'bandwidthLimit' && e.bytesPerSecond === 256 * K) resolve();
      }));
      await changed;
      assert.equal(limit.limit, 256 * K);
      assert.deepEqual(seen.filter((e) => e.type === 'bandwidthLimit'), [
        { type: 'bandwidthLimit', vessel: 'v', bytesPerSecond: K * K },
        { type: 'bandwidthLimit', vessel: 'v', bytesPerSecond: 256 * K },
      ]);
    } finally {
      clearTimeout(alive);
      off();
      limit.stop();
    }
  });
});

describe('RateMeter', () => {
  it('bytes a second over the last 5 whole seconds', () => {
    let now = 0;
    const meter = new RateMeter(() => now);
    for (let s = 0; s < 10; s++) {
      now = s * 1000 + 500;
      meter.add(100_000);
    }
    now = 10_000;
    assert.equal(meter.rate(), 100_000);
    now = 13_000;
    assert.equal(meter.rate(), 40_000, 'two of the last five seconds had bytes');
    now = 60_000;
    assert.equal(meter.rate(), 0);
  });
});
