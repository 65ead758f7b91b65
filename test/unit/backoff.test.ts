import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { growth, jitterShare, maxDelayMs, minDelayMs, nextDelay, quickRetryMs, refusedDelayMs } from '../../src/ssh/backoff.js';

const zero = () => 0;
const one = () => 1;
const half = () => 0.5;

/** The delay sequence a worker sees when it feeds each delay back in, as the link policy (ssh/link.ts) does. */
function sequence(n: number, random: () => number): number[] {
  const out: number[] = [];
  let d = 0;
  for (let i = 0; i < n; i++) out.push((d = nextDelay(d, random)));
  return out;
}

/** The range a delay may fall in for a given base: the jitter takes off at most jitterShare. */
function range(base: number): [number, number] {
  return [Math.round(base * (1 - jitterShare)), base];
}

describe('nextDelay', () => {
  it('the constants are sane', () => {
    assert.ok(minDelayMs > 0);
    assert.ok(maxDelayMs > minDelayMs);
    assert.ok(refusedDelayMs >= maxDelayMs, 'refusals are retried more slowly than any transient backoff');
    assert.ok(growth > 1);
    assert.ok(jitterShare > 0 && jitterShare <= 0.5, 'some jitter, and never below half the base');
    assert.ok(jitterShare < 1 - 1 / growth, 'the jitter can never cancel the growth');
  });

  it('the first delay (from 0) is around minDelayMs', () => {
    const [lo, hi] = range(minDelayMs);
    assert.deepEqual([nextDelay(0, one), nextDelay(0, zero)].sort((a, b) => a - b), [lo, hi]);
    const mid = nextDelay(0, half);
    assert.ok(mid >= lo && mid <= hi, `${mid}`);
    assert.ok(lo >= minDelayMs / 2);
  });

  it('a negative previous delay is treated as the first failure', () => {
    assert.equal(nextDelay(-5, zero), nextDelay(0, zero));
    assert.equal(nextDelay(-5, one), nextDelay(0, one));
  });

  it('stays within [base/2, base] (in fact [base·(1−jitterShare), base]) for random 0 and 1', () => {
    for (const previous of [500, 1000, 1500, 2000, 7777, 20000, 29999]) {
      const base = Math.min(maxDelayMs, previous * growth);
      const [lo, hi] = range(base);
      const extremes = [nextDelay(previous, zero), nextDelay(previous, one)].sort((a, b) => a - b);
      assert.deepEqual(extremes, [lo, hi], `previous ${previous}`);
      for (const r of [0, 0.1, 0.25, 0.5, 0.75, 0.999, 1]) {
        const d = nextDelay(previous, () => r);
        assert.ok(d >= lo && d <= hi, `previous ${previous}, random ${r}: ${d}`);
        assert.ok(d >= base / 2 && d <= base);
      }
    }
  });

  it('is monotonic in the random value', () => {
    const values: number[] = [];
    for (let r = 0; r <= 1; r += 0.125) values.push(nextDelay(4000, () => r));
    const up = values.every((v, i) => i === 0 || v >= values[i - 1]);
    const down = values.every((v, i) => i === 0 || v <= values[i - 1]);
    assert.ok(up || down, values.join(', '));
    assert.notEqual(values[0], values.at(-1), 'the random value matters');
  });

  it('grows: without jitter the sequence doubles from minDelayMs', () => {
    const noJitter = nextDelay(0, zero) === minDelayMs ? zero : one;
    assert.deepEqual(sequence(5, noJitter), [minDelayMs, 2 * minDelayMs, 4 * minDelayMs, 8 * minDelayMs, 16 * minDelayMs]);
  });

  for (const [name, random] of [['0', zero], ['0.5', half], ['1', one]] as const) {
    it(`grows with random() always ${name}: every step strictly longer until the cap`, () => {
      const s = sequence(30, random);
      const capAt = s.findIndex((d) => d >= range(maxDelayMs)[0]);
      assert.ok(capAt > 0, `never got near the cap: ${s.join(', ')}`);
      for (let i = 1; i <= capAt; i++) assert.ok(s[i] > s[i - 1], `step ${i}: ${s[i - 1]} -> ${s[i]}`);
    });
  }

  it('is capped at maxDelayMs however long it has been failing', () => {
    const [lo, hi] = range(maxDelayMs);
    for (const previous of [maxDelayMs / 2, maxDelayMs, maxDelayMs * 10, Number.MAX_SAFE_INTEGER]) {
      assert.deepEqual([nextDelay(previous, zero), nextDelay(previous, one)].sort((a, b) => a - b), [lo, hi]);
    }
    for (const random of [zero, half, one]) {
      const s = sequence(60, random);
      for (const d of s) assert.ok(d <= maxDelayMs, `${d} > ${maxDelayMs}`);
      // Once there, it stays in the capped range: never falls back to short retries.
      for (const d of s.slice(-10)) assert.ok(d >= lo, `${d} fell below ${lo}`);
    }
  });

  it('uses Math.random by default and stays in range', () => {
    const [lo, hi] = range(16000);
    for (let i = 0; i < 200; i++) {
      const d = nextDelay(8000);
      assert.ok(d >= lo && d <= hi, `${d}`);
    }
  });
});

describe('nextDelay after progress', () => {
  it('starts over short when the failed attempt moved data, whatever the previous wait', () => {
    for (const r of [0, 0.5, 1]) {
      const d = nextDelay(maxDelayMs, () => r, true);
      assert.ok(d <= quickRetryMs && d >= quickRetryMs * 0.75, `delay ${d} for random ${r}`);
    }
    assert.ok(nextDelay(quickRetryMs, () => 1, false) > quickRetryMs, 'without progress it grows again');
  });
});
