// The daemon under a Type=notify unit (issue 20, item 3), without systemd: the built CLI with
// NOTIFY_SOCKET pointing at a listener (test/helpers/notify-socket.ts, systemd's end of the
// socket) and a 2 s watchdog, replicating to a real sshd vessel (v1) and to one that never
// answers (v2, a closed port), so that files wait for it. What the listener must capture:
// READY=1 once, STATUS= lines with what waits per vessel, WATCHDOG=1 pings, STOPPING=1 after
// SIGTERM; and no READY=1 from a start that fails before the state database is open.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { freePorts, startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { runCli, startDaemon } from '../helpers/process.js';
import { writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, databasePath, resetFarm, settingsPath, writeSettings } from '../helpers/push.js';
import { field, startNotifyListener, type NotifyListener, type NotifyMessage } from '../helpers/notify-socket.js';

let farm: VesselFarm;
let deadPort: number;
let listener: NotifyListener | undefined;

before(async () => {
  farm = await startVesselFarm({ count: 1 });
  [deadPort] = await freePorts(1);
});
after(async () => {
  await farm?.stop();
});

/** v1 the real vessel, v2 a port nobody listens on. */
async function settingsWithDeadVessel(): Promise<string> {
  const file = await writeSettings(farm, { timeout: 2 });
  await writeFile(file, `${await readFile(file, 'utf8')}
[Vessel v2]
Address = 127.0.0.1
Port = ${deadPort}
Username = root
IdentityFile = ${farm.clientKey}
Timeout = 2
`);
  return file;
}

/** The messages without systemd-notify's BARRIER=1 after each one. */
const sent = (all: NotifyMessage[]) => all.filter((m) => field(m, 'BARRIER') === undefined);
const has = (name: string, value = '1') => (m: NotifyMessage) => field(m, name) === value;
const show = (all: NotifyMessage[]) => sent(all).map((m) => m.map(([k, v]) => `${k}=${v}`).join(' ')).join('\n');

describe('systemd notification (Type=notify)', () => {
  beforeEach(async () => {
    await listener?.stop();
    listener = await startNotifyListener();
    await resetFarm(farm);
  });
  after(async () => {
    await listener?.stop();
  });

  it('READY=1 once started, STATUS= with what waits per vessel, WATCHDOG=1 pings, STOPPING=1 after SIGTERM', async (t) => {
    const l = listener!;
    const files = new Map<string, string>();
    const sizes = new Map([['a.bin', 1000], ['b.bin', 2000], ['sub/c.bin', 3000]]);
    for (const [rel, size] of sizes) files.set(rel, await writeRandomFile(join(farm.viewPath, rel), size));
    const settings = await settingsWithDeadVessel();
    const daemon = startDaemon(['run', '-c', settings], {
      cwd: farm.root,
      env: { NOTIFY_SOCKET: l.path, WATCHDOG_USEC: '2000000', WATCHDOG_PID: undefined }, // a ping every second
    });
    try {
      await l.waitFor((m) => sent(m).some(has('READY')), 'READY=1');
      assert.ok(existsSync(databasePath(farm)), 'the state database is there by READY=1');
      // v1 has everything, v2 nothing: all three files (6000 B) wait for it.
      const line = '2 vessels: v1 up to date, v2 3 waiting (5.9 KiB)';
      await l.waitFor((m) => sent(m).some(has('STATUS', line)), `STATUS=${line}`);
      await assertOnVessel(farm.vessels[0], farm.viewPath, files);
      await l.waitFor((m) => sent(m).filter(has('WATCHDOG')).length >= 2, 'two WATCHDOG=1');
      const before = sent(l.messages());
      assert.ok(!before.some(has('STOPPING')), `no STOPPING=1 before the signal:\n${show(before)}`);

      daemon.kill('SIGTERM');
      assert.equal((await daemon.waitForExit()).code, 0, daemon.output());
      // The last sender may still be on its way when the daemon has exited.
      const all = sent(await l.waitFor((m) => sent(m).some(has('STOPPING')), 'STOPPING=1'));
      t.diagnostic(`NOTIFY_SOCKET messages: ${show(all).replaceAll("\n", " | ")}`);
      const stopping = all.findIndex(has('STOPPING'));
      assert.ok(stopping >= before.length, 'STOPPING=1 came after the signal');
      assert.equal(field(all[stopping], 'STATUS'), 'stopping');
      const ready = all.findIndex(has('READY'));
      assert.equal(all.filter(has('READY')).length, 1, `READY=1 once:\n${show(all)}`);
      assert.match(field(all[ready], 'STATUS') ?? '', /^2 vessels: v1 /, 'READY=1 comes with a first STATUS=');
      assert.ok(all.findIndex(has('WATCHDOG')) > ready, 'no WATCHDOG=1 before READY=1 (systemd arms the watchdog at READY=1)');
      // Every STATUS= is one line naming both vessels (until the stop says so).
      for (const m of all.slice(0, stopping).filter((x) => field(x, 'STATUS') !== undefined)) {
        assert.match(field(m, 'STATUS')!, /^2 vessels: v1 (up to date|\d+ waiting \([\d.]+ K?i?B\)), v2 (up to date|\d+ waiting \([\d.]+ K?i?B\))$/);
      }
      assert.doesNotMatch(daemon.output(), /could not notify systemd/);
    } finally {
      daemon.kill('SIGKILL');
    }
  });

  it('no READY=1 from a start that fails: bad settings (exit 2), a state database in use (exit 1)', async () => {
    const l = listener!;
    const env = { NOTIFY_SOCKET: l.path, WATCHDOG_USEC: '2000000' };
    const bad = join(farm.root, 'bad.ini');
    await writeFile(bad, '[MONSTER]\nConcurency = 4\n');
    const r = await runCli(['run', '-c', bad], { cwd: farm.root, env });
    assert.equal(r.code, 2, r.stdout + r.stderr);

    const settings = await writeSettings(farm);
    const first = startDaemon(['run', '-c', settings], { cwd: farm.root }); // no NOTIFY_SOCKET: says nothing
    try {
      await first.waitForEvent('ready');
      const second = await runCli(['run', '-c', settingsPath(farm)], { cwd: farm.root, env, timeoutMs: 30_000 });
      assert.equal(second.code, 1, second.stdout + second.stderr);
      assert.match(second.stderr, /is in use by another contentmonster run/);
    } finally {
      first.kill('SIGTERM');
      await first.waitForExit().catch(() => first.kill('SIGKILL'));
    }
    // Both ended before their state database was open: nothing at all reached the socket.
    assert.deepEqual(l.messages(), []);
  });
});
