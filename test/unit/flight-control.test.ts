import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlightControl, MIN_PIECE, MIN_WINDOW } from '../../src/push/flight-control.js';
import { DEFAULT_WINDOW } from '../../src/push/upload/sftp-writes.js';

const KiB = 1024;
/** Carried on the connection in use: enough not to limit the write size. */
const BIG = 2 ** 40;

describe('FlightControl', () => {
  it('starts wide open: every file slot, the server\'s write size once a connection has carried four of them', () => {
    const f = new FlightControl(34);
    assert.equal(f.files, 34);
    assert.equal(f.piece(255 * KiB, 4 * 255 * KiB), 255 * KiB);
  });

  it('a new connection starts with small writes and grows them to a quarter of what it carried', () => {
    const f = new FlightControl(34);
    assert.equal(f.piece(255 * KiB, 0), MIN_PIECE);
    assert.equal(f.piece(255 * KiB, 400 * KiB), 100 * KiB);
    assert.equal(f.piece(255 * KiB, 100 * 1024 * KiB), 255 * KiB);
  });

  it('halves the files in flight at each drop, down to one, and grows one per delivery back to the maximum', () => {
    const f = new FlightControl(34);
    const seen: number[] = [];
    for (let i = 0; i < 7; i++) {
      f.dropped(1_000_000);
      seen.push(f.files);
    }
    assert.deepEqual(seen, [17, 8, 4, 2, 1, 1, 1]);
    f.delivered();
    f.delivered();
    assert.equal(f.files, 3);
    for (let i = 0; i < 100; i++) f.delivered();
    assert.equal(f.files, 34, 'never above the maximum');
  });

  it('sizes writes to a sixteenth of what connections carry before they drop, within [32 KiB, the server limit]', () => {
    const f = new FlightControl(4);
    f.dropped(1024 * KiB);
    assert.equal(f.piece(255 * KiB, BIG), 64 * KiB);
    f.dropped(100 * KiB); // running estimate: (1024 + 100) / 2 = 562 KiB
    assert.equal(f.piece(255 * KiB, BIG), 35 * KiB);
    f.dropped(0);
    f.dropped(0);
    assert.equal(f.piece(255 * KiB, BIG), MIN_PIECE, 'never below 32 KiB');
    assert.equal(f.piece(16 * KiB, BIG), 16 * KiB, 'never above what the server takes');
  });

  it('believes a better link at once: a connection that carries more raises the estimate', () => {
    const f = new FlightControl(4);
    f.dropped(320 * KiB);
    assert.equal(f.piece(255 * KiB, BIG), 32 * KiB);
    f.carried(64 * 1024 * KiB);
    assert.equal(f.piece(255 * KiB, BIG), 255 * KiB);
    f.carried(KiB); // less than the estimate: no change
    assert.equal(f.piece(255 * KiB, BIG), 255 * KiB);
  });

  it('a connection is expected to last for what is left to send while no drop was seen, or drops come after twice that', () => {
    const f = new FlightControl(4);
    assert.equal(f.lasts(10 * 1024 * KiB), true, 'no drop seen');
    f.dropped(8 * 1024 * KiB);
    assert.equal(f.lasts(4 * 1024 * KiB), true);
    assert.equal(f.lasts(5 * 1024 * KiB), false);
    f.carried(100 * 1024 * KiB);
    assert.equal(f.lasts(40 * 1024 * KiB), true, 'a connection that carried more raised the estimate');
  });

  it('refuses a maximum below one', () => {
    assert.throws(() => new FlightControl(0), RangeError);
    assert.throws(() => new FlightControl(1.5), RangeError);
  });
});

describe('FlightControl.window', () => {
  it('2 MiB in flight until a drop is seen, then a quarter of what connections carry, between 128 KiB and 2 MiB', () => {
    const f = new FlightControl(4);
    assert.equal(f.window(), DEFAULT_WINDOW);
    f.dropped(0); // nothing acknowledged before the cut: the least
    assert.equal(f.window(), MIN_WINDOW);
    f.carried(1_000_000); // a connection carried 1 MB: believed at once
    assert.equal(f.window(), 250_000);
    f.carried(64 * 1024 * 1024);
    assert.equal(f.window(), DEFAULT_WINDOW);
  });
});
