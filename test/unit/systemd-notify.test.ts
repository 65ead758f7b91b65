// src/systemd-notify.ts against a real NOTIFY_SOCKET listener (test/helpers/notify-socket.ts) and
// the real systemd-notify (the systemd package; .ci/run installs it): what arrives, in what order,
// merged how; the watchdog's interval; and a sender that fails is said once and never thrown.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { afterEach, before, beforeEach, describe, it } from 'node:test';
import type { Logger } from '../../src/log.js';
import { systemdNotifier, watchdogIntervalMs, type ServiceNotifier } from '../../src/systemd-notify.js';
import { field, startNotifyListener, type NotifyListener, type NotifyMessage } from '../helpers/notify-socket.js';
import { waitFor } from '../helpers/process.js';

describe('watchdogIntervalMs: half of $WATCHDOG_USEC, only for our PID', () => {
  const cases: [NodeJS.ProcessEnv, number | undefined][] = [
    [{}, undefined],
    [{ WATCHDOG_USEC: '60000000' }, 30_000],
    [{ WATCHDOG_USEC: '2000000', WATCHDOG_PID: '4242' }, 1000],
    [{ WATCHDOG_USEC: '2000000', WATCHDOG_PID: '' }, 1000],
    [{ WATCHDOG_USEC: '2000000', WATCHDOG_PID: '1' }, undefined], // another process is watched
    [{ WATCHDOG_USEC: '0' }, undefined],
    [{ WATCHDOG_USEC: '' }, undefined],
    [{ WATCHDOG_USEC: '30s' }, undefined],
    [{ WATCHDOG_USEC: '-5' }, undefined],
    [{ WATCHDOG_USEC: '1' }, 1], // never a 0 ms interval
  ];
  for (const [env, want] of cases) {
    it(`${JSON.stringify(env)} → ${want}`, () => assert.equal(watchdogIntervalMs(env, 4242), want));
  }
});

interface Logged {
  level: 'warn' | 'debug';
  fields: Record<string, unknown>;
  msg: string;
}

function fakeLog(): { log: Logger; lines: Logged[] } {
  const lines: Logged[] = [];
  const at = (level: Logged['level']) => (fields: Record<string, unknown>, msg: string) => void lines.push({ level, fields, msg });
  return { log: { warn: at('warn'), debug: at('debug') } as unknown as Logger, lines };
}

/** The messages without systemd-notify's BARRIER=1 (the synchronisation after each one). */
const sent = (all: NotifyMessage[]) => all.filter((m) => field(m, 'BARRIER') === undefined);
/** Each message as its fields in name order (systemd-notify keeps the order each was first given in). */
const text = (all: NotifyMessage[], without: string[] = []) => sent(all)
  .map((m) => m.filter(([k]) => !without.includes(k)).map(([k, v]) => `${k}=${v}`).sort().join(' '))
  .filter((t) => t !== '');
/** How many of the messages carry WATCHDOG=1. */
const pings = (all: NotifyMessage[]) => sent(all).filter((m) => field(m, 'WATCHDOG') === '1').length;

describe('systemdNotifier', () => {
  // A listener of its own for each test: a sender of the one before cannot reach the next.
  let listener: NotifyListener;
  before(() => {
    assert.ok(existsSync('/usr/bin/systemd-notify') || existsSync('/bin/systemd-notify'), 'systemd-notify is missing (the systemd package)');
  });
  beforeEach(async () => {
    listener = await startNotifyListener();
  });
  afterEach(async () => {
    await listener?.stop();
  });
  /** The listener's socket and nothing else of ours (a runner under systemd may have a watchdog). */
  const envFor = (more: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, NOTIFY_SOCKET: listener.path, ...more });

  it('does not exist without NOTIFY_SOCKET: nothing is run or sent', () => {
    assert.equal(systemdNotifier(fakeLog().log, { env: {} }), undefined);
    assert.equal(systemdNotifier(fakeLog().log, { env: { NOTIFY_SOCKET: '', WATCHDOG_USEC: '1000000' } }), undefined);
  });

  it('READY=1 with the status, STATUS= only when changed, WATCHDOG=1 from READY on, STOPPING=1 once; nothing after close', async () => {
    const { log, lines } = fakeLog();
    // 100 ms: a ping every 50 ms.
    const n = systemdNotifier(log, { env: envFor({ WATCHDOG_USEC: '100000' }) })!;
    try {
      n.status('starting');
      await listener.waitFor((m) => text(m).length === 1, 'the first STATUS=');
      // No ping before READY=1: systemd arms its watchdog when the start completes.
      assert.deepEqual(text(listener.messages()), ['STATUS=starting']);
      n.ready('1 vessel: v1 up to date');
      await listener.waitFor((m) => pings(m) >= 2, 'two WATCHDOG=1 after READY=1');
      n.status('1 vessel: v1 up to date'); // unchanged: not sent
      n.status('1 vessel: v1 3 waiting (1.0 KiB)');
      await listener.waitFor((m) => text(m).some((t) => t.includes('3 waiting')), 'the changed STATUS=');
      n.stopping();
      n.stopping();
      n.status('after the stop: not sent');
      await listener.waitFor((m) => sent(m).some((x) => field(x, 'STOPPING') === '1'), 'STOPPING=1');
    } finally {
      n.close();
    }
    const all = listener.messages();
    // Pings may share a message with what was queued beside them.
    assert.deepEqual(text(all, ['WATCHDOG']), ['STATUS=starting', 'READY=1 STATUS=1 vessel: v1 up to date', 'STATUS=1 vessel: v1 3 waiting (1.0 KiB)', 'STATUS=stopping STOPPING=1']);
    // Never before READY=1.
    const firstPing = sent(all).findIndex((m) => field(m, 'WATCHDOG') === '1');
    assert.ok(firstPing > sent(all).findIndex((m) => field(m, 'READY') === '1'), 'the first WATCHDOG=1 comes after READY=1');
    // Each message was followed by the barrier systemd-notify waits on (and got it released).
    assert.equal(all.filter((m) => field(m, 'BARRIER') === '1').length, sent(all).length);
    assert.deepEqual(lines, [], 'no failure logged');
    // Closed: the pings (every 50 ms until then) have stopped, nothing more is queued. What was
    // queued or under way at close may still arrive: one message each.
    const count = sent(listener.messages()).length;
    n.status('closed');
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(sent(listener.messages()).length - count <= 2, text(listener.messages()).slice(count).join('\n'));
  });

  it('one sender at a time: what comes meanwhile is merged, in order, READY=1 and STOPPING=1 never in one message', async () => {
    const { log, lines } = fakeLog();
    const n: ServiceNotifier = systemdNotifier(log, { env: envFor() })!;
    try {
      n.status('a'); // runs at once
      n.status('b'); // waits, merged with what follows
      n.ready('c');
      n.stopping(); // not merged with READY=1
      await listener.waitFor((m) => text(m).length === 3, 'three messages');
    } finally {
      n.close();
    }
    assert.deepEqual(text(listener.messages()), ['STATUS=a', 'READY=1 STATUS=c', 'STATUS=stopping STOPPING=1']);
    assert.deepEqual(lines, []);
  });

  it('close hands what is queued to a sender at once (the process exits next)', async () => {
    const n = systemdNotifier(fakeLog().log, { env: envFor() })!;
    n.status('a'); // runs at once
    n.stopping(); // queued behind it
    n.close();
    await listener.waitFor((m) => text(m).length === 2, 'both messages');
    // Sent side by side: either order.
    assert.deepEqual(text(listener.messages()).sort(), ['STATUS=a', 'STATUS=stopping STOPPING=1']);
  });

  it('a newline in a status cannot start another variable', async () => {
    const n = systemdNotifier(fakeLog().log, { env: envFor() })!;
    n.status('two\nlines\r\nREADY=1');
    n.close();
    await listener.waitFor((m) => text(m).length === 1, 'the status');
    assert.deepEqual(text(listener.messages()), ['STATUS=two lines READY=1']);
  });

  it('a message the sender cannot even be started with (a NUL byte) is said once; the next one goes out', async () => {
    const { log, lines } = fakeLog();
    const n = systemdNotifier(log, { env: envFor() })!;
    try {
      n.status('bad\0status');
      n.status('good');
      await listener.waitFor((m) => text(m).length === 1, 'the next status');
    } finally {
      n.close();
    }
    assert.deepEqual(text(listener.messages()), ['STATUS=good']);
    assert.deepEqual(lines.map((l) => [l.level, l.fields.message]), [['warn', 'STATUS']]);
  });

  it('a sender that cannot run or cannot reach the socket: one WARN, then debug; the caller never sees an error', async () => {
    const missing = fakeLog();
    const n = systemdNotifier(missing.log, { env: { NOTIFY_SOCKET: listener.path }, command: '/nonexistent/systemd-notify' })!;
    n.ready('x');
    n.status('y');
    await waitFor(() => missing.lines.length >= 2, 'two failures logged', 10_000, 20);
    n.close();
    assert.deepEqual(missing.lines.map((l) => l.level), ['warn', 'debug']);
    assert.match(missing.lines[0].msg, /^could not notify systemd/);
    assert.equal(missing.lines[0].fields.message, 'READY STATUS');
    assert.match(String(missing.lines[0].fields.reason), /ENOENT/);

    const nobody = fakeLog();
    const m = systemdNotifier(nobody.log, { env: envFor({ NOTIFY_SOCKET: `${listener.path}.gone` }) })!;
    m.ready('x');
    await waitFor(() => nobody.lines.length >= 1, 'the failure logged', 20_000, 20);
    m.close();
    assert.equal(nobody.lines[0].level, 'warn');
    assert.match(String(nobody.lines[0].fields.reason), /No such file|ENOENT|notify/i);
  });
});
