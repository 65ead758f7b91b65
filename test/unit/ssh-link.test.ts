// The link policy (ssh/link.ts) that the vessel worker and the mirror share, and the mirror's
// ServerLink on a fake opener: no network, and the clock is node:test's mock timers.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { ConfigError, StoppedError, TransientError, VesselRefusedError } from '../../src/errors.js';
import type { Logger } from '../../src/log.js';
import { jitterShare, maxDelayMs, minDelayMs, quickRetryMs, refusedDelayMs } from '../../src/ssh/backoff.js';
import type { ConnectOptions, Endpoint } from '../../src/ssh/connect.js';
import type { SftpConnection } from '../../src/ssh/connection.js';
import { LinkPolicy, ServerLink, isRefusal } from '../../src/ssh/link.js';

/** The jitter takes nothing off: every delay is its base. */
const noJitter = () => 0;
const down = () => new TransientError('connect ECONNREFUSED');

/** Lets promise chains and pending I/O callbacks run (setImmediate is not mocked). */
const settle = () => new Promise<void>((r) => setImmediate(r));

/** Advances the mocked clock by `ms`, letting what wakes run. */
async function pass(ms: number): Promise<void> {
  await settle();
  mock.timers.tick(ms);
  await settle();
  await settle();
}

beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'setInterval', 'Date'], now: 1_000_000 }));
afterEach(() => mock.timers.reset());

/** The link's next wait ends after exactly `ms` of fake time, not a millisecond sooner. */
async function assertWaits(link: LinkPolicy, ms: number): Promise<void> {
  let waited = false;
  const wait = link.wait().then(() => { waited = true; });
  await pass(ms - 1);
  assert.ok(!waited, `still waiting after ${ms - 1} ms`);
  await pass(1);
  await wait;
  assert.ok(waited);
}

describe('LinkPolicy', () => {
  it('a failed attempt waits a growing delay, and one attempt at a time goes while unreachable', async () => {
    const link = new LinkPolicy({ refusal: 'retry', maxAttempts: 4, random: noJitter });
    assert.ok(link.mayAttempt(3));
    assert.ok(!link.mayAttempt(4));
    assert.deepEqual(link.failed(down()), { kind: 'unreachable', delayMs: minDelayMs });
    assert.ok(link.unreachable);
    assert.ok(link.mayAttempt(0));
    assert.ok(!link.mayAttempt(1), 'one at a time while the peer cannot be reached');
    assert.deepEqual(link.failed(down()), { kind: 'unreachable', delayMs: 2 * minDelayMs });
    let waited = false;
    const wait = link.wait().then(() => { waited = true; });
    await pass(2 * minDelayMs - 1);
    assert.ok(!waited);
    await pass(1);
    await wait;
    link.connected();
    assert.ok(!link.unreachable);
    assert.ok(link.mayAttempt(3), 'a connection got through: several attempts again');
  });

  it('the delay is capped, and jittered downwards only', () => {
    const link = new LinkPolicy({ refusal: 'retry', random: () => 1 });
    let last = 0;
    for (let i = 0; i < 20; i++) {
      const f = link.failed(down());
      assert.equal(f.kind, 'unreachable');
      if (f.kind === 'unreachable') last = f.delayMs;
    }
    assert.ok(last <= maxDelayMs && last >= maxDelayMs * (1 - jitterShare));
  });

  it('a drop after moving data retries soon; a drop without data waits as a failed attempt; connecting alone resets nothing', () => {
    const link = new LinkPolicy({ refusal: 'retry', random: noJitter });
    link.failed(down());
    link.failed(down()); // 2 s
    link.connected();
    assert.equal(link.dropped(false), 4 * minDelayMs, 'a connection that moved nothing does not reset the delay');
    link.connected();
    assert.equal(link.dropped(true), quickRetryMs);
    link.connected();
    assert.equal(link.dropped(false), 2 * quickRetryMs, 'grows from the short delay');
  });

  it('the next attempt waits the delay from the moment of the failure', async () => {
    const link = new LinkPolicy({ refusal: 'retry', random: noJitter });
    link.dropped(true);
    await assertWaits(link, quickRetryMs);
  });

  it('a refusal is retried slowly, said once until it changes or a connection gets through', async () => {
    const link = new LinkPolicy({ refusal: 'retry', random: noJitter });
    const refusal = new VesselRefusedError('authentication failed');
    assert.deepEqual(link.failed(refusal), { kind: 'refused', reason: 'authentication failed', retryInMs: refusedDelayMs, repeated: false });
    assert.equal(link.unreachable, false, 'a refusal is an answer: the peer can be reached');
    assert.deepEqual(link.failed(refusal), { kind: 'refused', reason: 'authentication failed', retryInMs: refusedDelayMs, repeated: true });
    const settings = link.failed(new ConfigError('IdentityFile: cannot read /k'));
    assert.ok(settings.kind === 'refused' && !settings.repeated, 'a settings error is a refusal too');
    const other = link.refused(new VesselRefusedError('host key changed'));
    assert.ok(other.kind === 'refused' && !other.repeated, 'a new reason is said');
    link.connected();
    const again = link.failed(new VesselRefusedError('host key changed'));
    assert.ok(again.kind === 'refused' && !again.repeated, 'said again after a connection got through');
    await assertWaits(link, refusedDelayMs);
    assert.equal(link.gaveUp, undefined);
  });

  it('a connection dropped because it was refused does not shorten the refusal\'s wait', async () => {
    const link = new LinkPolicy({ refusal: 'retry', random: noJitter });
    link.connected();
    link.refused(new VesselRefusedError('RemoteLocation is the shore\'s own Location'));
    assert.equal(link.dropped(true), refusedDelayMs, 'the drop that follows waits as the refusal does');
    await assertWaits(link, refusedDelayMs);
    link.connected();
    assert.equal(link.dropped(true), quickRetryMs, 'once a connection got through, drops retry soon again');
  });

  it('with refusal: give-up, a refusal gives the link up at once, once', async () => {
    const reasons: string[] = [];
    const link = new LinkPolicy({ refusal: 'give-up', onGiveUp: (r) => reasons.push(r) });
    link.failed(down()); // waiting after this one
    let waited = false;
    const wait = link.wait().then(() => { waited = true; });
    assert.deepEqual(link.failed(new ConfigError('IdentityFile: cannot read /k')), { kind: 'give-up', reason: 'IdentityFile: cannot read /k' });
    assert.equal(link.gaveUp, 'IdentityFile: cannot read /k');
    await settle();
    await wait;
    assert.ok(waited, 'waits end at once');
    assert.ok(!link.mayAttempt(0));
    link.refused(new VesselRefusedError('again'));
    link.giveUp('later');
    assert.deepEqual(reasons, ['IdentityFile: cannot read /k'], 'given up once, for the first reason');
  });

  it('isRefusal: refusals and settings errors, not hiccups', () => {
    assert.ok(isRefusal(new VesselRefusedError('x')));
    assert.ok(isRefusal(new ConfigError('x')));
    assert.ok(!isRefusal(new TransientError('x')));
    assert.ok(!isRefusal(new Error('x')));
  });

  it('overdue: nothing moved for giveUpAfterMs; progress starts the clock over', async () => {
    const link = new LinkPolicy({ refusal: 'retry', giveUpAfterMs: 10_000 });
    await pass(9_999);
    assert.equal(link.overdue(), undefined);
    await pass(1);
    assert.equal(link.overdue(), 10_000);
    link.progress();
    assert.equal(link.overdue(), undefined);
    assert.equal(new LinkPolicy({ refusal: 'retry' }).overdue(), undefined, 'never without giveUpAfterMs');
  });

  it('watch: gives up when busy and overdue, not while idle; halt stops it', async () => {
    const reasons: string[] = [];
    const link = new LinkPolicy({ refusal: 'retry', giveUpAfterMs: 5_000, onGiveUp: (r) => reasons.push(r) });
    let idle = true;
    link.watch(() => idle, (quiet) => `no progress for ${quiet / 1000} s`);
    await pass(20_000);
    assert.deepEqual(reasons, [], 'an idle link is never given up');
    idle = false;
    for (let i = 0; i < 4; i++) await pass(1000);
    link.progress();
    for (let i = 0; i < 4; i++) await pass(1000);
    assert.deepEqual(reasons, [], 'progress starts the clock over');
    await pass(1000);
    assert.deepEqual(reasons, ['no progress for 5 s']);
    assert.equal(link.gaveUp, 'no progress for 5 s');
    await pass(10_000);
    assert.equal(reasons.length, 1);

    const late: string[] = [];
    const halted = new LinkPolicy({ refusal: 'retry', giveUpAfterMs: 1_000, onGiveUp: (r) => late.push(r) });
    halted.watch(() => false, () => 'late');
    halted.halt();
    await pass(5_000);
    assert.equal(halted.gaveUp, undefined);
    assert.deepEqual(late, []);
  });

  it('halt ends the wait under way and every later one', async () => {
    const link = new LinkPolicy({ refusal: 'retry', random: noJitter });
    link.failed(down());
    const wait = link.wait();
    link.halt();
    await wait;
    await link.wait();
    assert.ok(!link.mayAttempt(0));
  });
});

/** A connection that only lives and dies. */
class FakeConnection {
  closed = false;
  readonly #listeners = new Set<(err: Error) => void>();

  onClose(listener: (err: Error) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  disconnect(reason = 'closed'): void {
    if (this.closed) return;
    this.closed = true;
    for (const l of this.#listeners) l(new TransientError(`connection ${reason}`));
  }
}

/** What each attempt does, in order: a connection, or an error thrown. */
function opener(outcomes: (FakeConnection | Error)[]) {
  const calls: ConnectOptions[] = [];
  const open = (options: ConnectOptions): Promise<SftpConnection> => {
    calls.push(options);
    const next = outcomes.shift();
    if (next === undefined) return Promise.reject(new Error('no more outcomes'));
    return next instanceof Error ? Promise.reject(next) : Promise.resolve(next as unknown as SftpConnection);
  };
  return { open, calls };
}

function recordingLog() {
  const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => {
    lines.push({ level, msg, fields });
  };
  const log = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') } as unknown as Logger;
  return { log, lines };
}

const endpoint: Endpoint = {
  name: 'example.com', label: 'server example.com', address: 'example.com', port: 22, username: 'u',
  timeoutS: 10, identitySetting: '-i', hostKeySetting: '--host-key',
};
const hostKeys = { hostKey: () => undefined, recordHostKey: () => {} };

describe('ServerLink', () => {
  it('connects once for every caller, and hands out the live connection', async () => {
    const c = new FakeConnection();
    const { open, calls } = opener([c]);
    const { log } = recordingLog();
    const link = new ServerLink(endpoint, hostKeys, log, { giveUpAfterMs: 60_000, signal: new AbortController().signal, open });
    const [a, b] = await Promise.all([link.get(), link.get()]);
    assert.equal(a, c);
    assert.equal(b, c);
    assert.equal(calls.length, 1);
    assert.equal(calls[0]?.endpoint, endpoint);
  });

  it('retries an unreachable server with growing delays, saying so each time', async () => {
    const c = new FakeConnection();
    const { open, calls } = opener([down(), down(), c]);
    const { log, lines } = recordingLog();
    const link = new ServerLink(endpoint, hostKeys, log, { giveUpAfterMs: 60_000, signal: new AbortController().signal, open, random: noJitter });
    let got: unknown;
    void link.get().then((x) => { got = x; });
    await pass(0);
    assert.equal(calls.length, 1);
    await pass(minDelayMs);
    assert.equal(calls.length, 2);
    await pass(2 * minDelayMs - 1);
    assert.equal(calls.length, 2, 'the second delay is longer');
    await pass(1);
    assert.equal(calls.length, 3);
    assert.equal(got, c);
    const warns = lines.filter((l) => l.msg === 'cannot reach the server; will retry');
    assert.deepEqual(warns.map((l) => l.fields), [
      { err: 'connect ECONNREFUSED', retryInSeconds: 1 },
      { err: 'connect ECONNREFUSED', retryInSeconds: 2 },
    ]);
  });

  it('a refusal ends the run at once, with the refusal', async () => {
    const refusal = new VesselRefusedError('server example.com: authentication as u failed (All configured authentication methods failed)');
    const { open, calls } = opener([refusal]);
    const { log } = recordingLog();
    const link = new ServerLink(endpoint, hostKeys, log, { giveUpAfterMs: 60_000, signal: new AbortController().signal, open });
    await assert.rejects(link.get(), (err) => err === refusal);
    await assert.rejects(link.get(), (err) => err === refusal);
    assert.equal(calls.length, 1, 'never tried again');
  });

  it('gives up after a failed attempt when no data moved for giveUpAfterMs', async () => {
    const { open } = opener([down(), down(), down(), down()]);
    const { log } = recordingLog();
    const link = new ServerLink(endpoint, hostKeys, log, { giveUpAfterMs: 2_500, signal: new AbortController().signal, open, random: noJitter });
    let failure: unknown;
    void link.get().catch((err: unknown) => { failure = err; });
    await pass(0); // fails at 0 s, waits 1 s
    await pass(minDelayMs); // fails at 1 s, waits 2 s
    assert.ok(!failure, 'not yet');
    await pass(2 * minDelayMs); // fails at 3 s: overdue
    assert.ok(failure instanceof StoppedError);
    assert.equal(failure.message, 'giving up: no data from server example.com for 3 s; last error: connect ECONNREFUSED');
    await assert.rejects(link.get(), (err) => err === failure);
  });

  it('a drop after data reconnects soon; one that moved nothing waits longer', async () => {
    const first = new FakeConnection();
    const second = new FakeConnection();
    const third = new FakeConnection();
    const { open, calls } = opener([first, second, third]);
    const { log, lines } = recordingLog();
    const link = new ServerLink(endpoint, hostKeys, log, { giveUpAfterMs: 60_000, signal: new AbortController().signal, open, random: noJitter });
    assert.equal(await link.get(), first);
    link.progress();
    first.disconnect('reset');
    assert.deepEqual(lines.filter((l) => l.level === 'warn').map((l) => [l.msg, l.fields]), [
      ['connection lost; transfers resume on a new one', { err: 'connection reset' }],
    ]);
    let got: unknown;
    void link.get().then((x) => { got = x; });
    await pass(quickRetryMs - 1);
    assert.equal(calls.length, 1);
    await pass(1);
    assert.equal(got, second);
    second.disconnect('reset'); // moved nothing
    got = undefined;
    void link.get().then((x) => { got = x; });
    await pass(2 * quickRetryMs - 1);
    assert.equal(got, undefined);
    await pass(1);
    assert.equal(got, third);
  });

  it('the first connection starts the give-up clock; a reconnect alone does not', async () => {
    const a = new FakeConnection();
    const b = new FakeConnection();
    const { open } = opener([down(), a, b, down()]);
    const { log } = recordingLog();
    const link = new ServerLink(endpoint, hostKeys, log, { giveUpAfterMs: 5_000, signal: new AbortController().signal, open, random: noJitter });
    const first = link.get();
    await pass(0); // fails at 0 s, waits 1 s
    await pass(minDelayMs); // connected at 1 s: the clock starts here
    assert.equal(await first, a);
    a.disconnect('reset'); // nothing moved: waits 2 s
    let failure: unknown;
    void link.get().catch((err: unknown) => { failure = err; });
    await pass(2 * minDelayMs); // connected again at 3 s: no progress
    b.disconnect('reset'); // waits 4 s
    void link.get().catch((err: unknown) => { failure = err; });
    await pass(4 * minDelayMs); // fails at 7 s: 6 s since the first connection
    assert.ok(failure instanceof StoppedError);
    assert.match(failure.message, /^giving up: no data from server example\.com for 6 s; last error: connect ECONNREFUSED$/);
  });

  it('the stop ends a wait at once and every later ask, without a warning for the dropped connection', async () => {
    const c = new FakeConnection();
    const stop = new AbortController();
    const { open } = opener([c, down()]);
    const { log, lines } = recordingLog();
    const link = new ServerLink(endpoint, hostKeys, log, { giveUpAfterMs: 60_000, signal: stop.signal, open, random: noJitter });
    await link.get();
    stop.abort();
    assert.ok(c.closed, 'the connection is dropped on stop');
    assert.equal(lines.filter((l) => l.level === 'warn').length, 0);
    await assert.rejects(link.get(), StoppedError);
  });

  it('the stop ends the wait before a retry', async () => {
    const stop = new AbortController();
    const { open, calls } = opener([down(), down()]);
    const { log } = recordingLog();
    const link = new ServerLink(endpoint, hostKeys, log, { giveUpAfterMs: 600_000, signal: stop.signal, open, random: noJitter });
    let failure: unknown;
    void link.get().catch((err: unknown) => { failure = err; });
    await pass(0);
    assert.equal(calls.length, 1);
    stop.abort();
    await pass(0);
    assert.ok(failure instanceof StoppedError);
    assert.equal(calls.length, 1, 'no attempt after the stop');
  });
});
