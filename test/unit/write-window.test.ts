import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { WriteWindow } from '../../src/push/upload/write-window.js';

/** A write that settles when the test says so. */
function pendingWrite() {
  let settle!: (err?: Error) => void;
  const promise = new Promise<void>((resolve, reject) => {
    settle = (err) => (err ? reject(err) : resolve());
  });
  return { promise, settle };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('WriteWindow', () => {
  it('lets writes out until their bytes reach the limit, then waits for one to be answered', async () => {
    const w = new WriteWindow(100);
    const a = pendingWrite();
    const b = pendingWrite();
    await w.room(60);
    void w.track(a.promise, 60);
    await w.room(40);
    void w.track(b.promise, 40);
    let roomy = false;
    const waiting = w.room(10).then(() => (roomy = true));
    await tick();
    assert.equal(roomy, false, 'full: 100 of 100 bytes in flight');
    a.settle();
    await waiting;
    assert.equal(roomy, true, 'room once the first answer came');
    b.settle();
    await w.settle();
  });

  it('a write larger than the limit still goes, alone', async () => {
    const w = new WriteWindow(10);
    await w.room(50);
    const a = pendingWrite();
    void w.track(a.promise, 50);
    let roomy = false;
    const waiting = w.room(1).then(() => (roomy = true));
    await tick();
    assert.equal(roomy, false);
    a.settle();
    await waiting;
  });

  it('keeps the first failure: every later wait for room rejects with it', async () => {
    const w = new WriteWindow(100);
    const a = pendingWrite();
    const b = pendingWrite();
    const tracked = w.track(a.promise, 100);
    void w.track(b.promise, 10);
    const waiting = w.room(50);
    a.settle(new Error('first'));
    await assert.rejects(waiting, /first/);
    await assert.rejects(tracked, /first/);
    b.settle(new Error('second'));
    await w.settle();
    await assert.rejects(w.room(1), /first/);
  });

  it('settle waits for every write, whatever its outcome', async () => {
    const w = new WriteWindow(100);
    const a = pendingWrite();
    const b = pendingWrite();
    void w.track(a.promise, 1);
    void w.track(b.promise, 1);
    let settled = false;
    const all = w.settle().then(() => (settled = true));
    a.settle(new Error('x'));
    await tick();
    assert.equal(settled, false);
    b.settle();
    await all;
  });
});
