import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ByteBudget } from '../../src/byte-budget.js';

/** A job that records when it runs and ends when released. */
function gate() {
  let release!: () => void;
  const done = new Promise<void>((r) => { release = r; });
  return { release, job: () => done };
}

const turn = () => new Promise((r) => setImmediate(r));

describe('ByteBudget', () => {
  it('runs jobs at once while they fit, and the next one when bytes come back', async () => {
    const budget = new ByteBudget(10);
    const running: string[] = [];
    const a = gate(); const b = gate(); const c = gate();
    const all = [
      budget.use(4, () => { running.push('a'); return a.job(); }),
      budget.use(6, () => { running.push('b'); return b.job(); }),
      budget.use(5, () => { running.push('c'); return c.job(); }),
    ];
    await turn();
    assert.deepEqual(running, ['a', 'b'], 'c does not fit beside a and b');
    a.release();
    await turn();
    assert.deepEqual(running, ['a', 'b'], '4 bytes back are not enough for c');
    b.release();
    await turn();
    assert.deepEqual(running, ['a', 'b', 'c']);
    c.release();
    await Promise.all(all);
  });

  it('a job larger than the whole budget runs alone; waiters keep their order', async () => {
    const budget = new ByteBudget(10);
    const running: string[] = [];
    const small = gate(); const huge = gate(); const tiny = gate();
    const all = [
      budget.use(2, () => { running.push('small'); return small.job(); }),
      budget.use(50, () => { running.push('huge'); return huge.job(); }),
      budget.use(1, () => { running.push('tiny'); return tiny.job(); }),
    ];
    await turn();
    assert.deepEqual(running, ['small'], 'tiny would fit, but waits behind huge');
    small.release();
    await turn();
    assert.deepEqual(running, ['small', 'huge']);
    huge.release();
    await turn();
    assert.deepEqual(running, ['small', 'huge', 'tiny']);
    tiny.release();
    await Promise.all(all);
  });

  it('a failing job gives its bytes back', async () => {
    const budget = new ByteBudget(5);
    await assert.rejects(budget.use(5, async () => { throw new Error('boom'); }), /boom/);
    assert.equal(await budget.use(5, async () => 'ran'), 'ran');
  });
});
