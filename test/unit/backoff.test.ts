import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { growth, maxDelayMs, minDelayMs, nextDelay, refusedDelayMs } from '../../src/backoff.js';

const zero = () => 0;
const one = () => 1;
const half = () => 0.5;

/** The delay sequence a worker sees when it feeds each delay back in, as vessel-worker.ts does. */
function sequence(n: number, random: () => number): number[] {
  const out: number[] = [];
  let d = 0;
  for (let i = 0; i < n; i++) out.push((d = nextDelay(d, random)));
  return out;
}

describe('nextDelay', () => {
  it('the constants are sane', () => {
    assert.ok(minDelayMs > 0);
    assert.ok(maxDelayMs > minDelayMs);
    assert.ok(refusedDelayMs >= maxDelayMs, 'refusals are retried more slowly than any transient backoff');
    assert.ok(growth > 1);
  });

  it('the first delay (from 0) is around minDelayMs: within [min/2, min]', () => {
    assert.equal(nextDelay(0, zero), minDelayMs / 2);
    assert.equal(nextDelay(0, one), minDelayMs);
    const mid = nextDelay(0, half);
    assert.ok(mid >= minDelayMs / 2 && mid <= minDelayMs);
  });

  it('a negative previous delay is treated as the first failure', () => {
    assert.equal(nextDelay(-5, one), minDelayMs);
    assert.equal(nextDelay(-5, zero), minDelayMs / 2);
  });

  it('stays within [base/2, base] for random 0 and 1, base = previous * growth', () => {
    for (const previous of [500, 1000, 1500, 2000, 7777, 20000, 29999]) {
      const base = Math.min(maxDelayMs, previous * growth);
      assert.equal(nextDelay(previous, zero), Math.round(base / 2), `previous ${previous}, random 0`);
      assert.equal(nextDelay(previous, one), Math.round(base), `previous ${previous}, random 1`);
      for (const r of [0.1, 0.25, 0.5, 0.75, 0.999]) {
        const d = nextDelay(previous, () => r);
        assert.ok(d >= Math.round(base / 2) && d <= base, `previous ${previous}, random ${r}: ${d}`);
      }
    }
  });

  it('is monotonic in the random value', () => {
    let last = -1;
    for (let r = 0; r <= 1; r += 0.125) {
      const d = nextDelay(4000, () => r);
      assert.ok(d >= last);
      last = d;
    }
  });

  it('grows: with random 1 the sequence doubles from minDelayMs', () => {
    const s = sequence(5, one);
    assert.deepEqual(s, [minDelayMs, 2 * minDelayMs, 4 * minDelayMs, 8 * minDelayMs, 16 * minDelayMs]);
  });

  it('grows with random 0.5 too (each step strictly longer until the cap)', () => {
    const s = sequence(8, half);
    for (let i = 1; i < s.length; i++) assert.ok(s[i]! > s[i - 1]!, `step ${i}: ${s[i - 1]} -> ${s[i]}`);
  });

  it('is capped at maxDelayMs however long it has been failing', () => {
    for (const previous of [maxDelayMs / 2, maxDelayMs, maxDelayMs * 10, Number.MAX_SAFE_INTEGER]) {
      assert.equal(nextDelay(previous, one), maxDelayMs);
      assert.equal(nextDelay(previous, zero), maxDelayMs / 2);
    }
    for (const random of [zero, half, one]) {
      for (const d of sequence(50, random)) assert.ok(d <= maxDelayMs, `${d} > ${maxDelayMs}`);
    }
    assert.equal(sequence(50, one).at(-1), maxDelayMs);
  });

  it('uses Math.random by default and stays in range', () => {
    for (let i = 0; i < 200; i++) {
      const d = nextDelay(8000);
      assert.ok(d >= 8000 && d <= 16000, `${d}`);
    }
  });

  // The caller (vessel-worker.ts) feeds the *jittered* delay back in, so the base does not
  // double per failure but grows by (1 + random) per step; with a random that keeps coming up
  // low the delay does not grow at all. The module header promises "capped exponential growth".
  it('grows even when the jitter keeps coming up low (random 0)', { todo: 'feeding the jittered delay back in loses the growth: with random() = 0 every delay is minDelayMs/2 forever' }, () => {
    const s = sequence(6, zero);
    assert.ok(s.at(-1)! > s[0]!, `sequence ${s.join(', ')} never grows`);
  });
});
