import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../src/log.js';
import { formatPoint, type Point } from '../../src/metrics/line-protocol.js';
import { MetricsSink, type SinkLogger } from '../../src/metrics/sink.js';

// A pino logger is what the commands pass in; this fails to compile if it stops fitting.
const pinoFits: (log: Logger) => SinkLogger = (log) => log;
void pinoFits;

interface Entry {
  level: 'warn' | 'info' | 'debug';
  obj: object;
  msg: string;
}

function recorder(): SinkLogger & { entries: Entry[]; at(level: Entry['level']): Entry[] } {
  const entries: Entry[] = [];
  return {
    entries,
    at: (level) => entries.filter((e) => e.level === level),
    warn: (obj, msg) => entries.push({ level: 'warn', obj, msg }),
    info: (obj, msg) => entries.push({ level: 'info', obj, msg }),
    debug: (obj, msg) => entries.push({ level: 'debug', obj, msg }),
  };
}

/** A stand-in for Telegraf's socket_listener: collects complete lines from every connection. */
interface Listener {
  lines: string[];
  /** Connections whose far end has finished sending. */
  ended: number;
  /** Stop listening and drop every connection, as a stopped Telegraf does. */
  kill(): Promise<void>;
}

async function listen(socketPath: string): Promise<Listener> {
  const connections = new Set<net.Socket>();
  const listener: Listener = { lines: [], ended: 0, kill };
  const server = net.createServer((conn) => {
    connections.add(conn);
    let rest = '';
    conn.setEncoding('utf8');
    conn.on('data', (chunk: string) => {
      const parts = (rest + chunk).split('\n');
      rest = parts.pop() ?? '';
      listener.lines.push(...parts);
    });
    conn.on('end', () => listener.ended++);
    conn.on('error', () => {});
    conn.on('close', () => connections.delete(conn));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, resolve);
  });
  async function kill(): Promise<void> {
    for (const conn of connections) conn.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(socketPath, { force: true });
  }
  return listener;
}

/** Wait until `condition` holds; the deadline only turns a hang into a failure. */
async function until(condition: () => boolean, what: string, deadlineMs = 15_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const point = (i: number): Point => ({
  measurement: 'sftp_mirror_download',
  tags: { server: 'example.com', type: 'file', item: `file ${i}` },
  fields: { bytes: 1024 * i, duration_seconds: 2.5, bytes_per_second: 409.6 },
  time: 1_700_000_000_000_000_000n + BigInt(i),
});
const line = (i: number): string => formatPoint(point(i))!.slice(0, -1);
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

describe('MetricsSink', () => {
  let dir: string;
  let n = 0;
  const socketPath = () => path.join(dir, `telegraf-${++n}.sock`);
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cm-metrics-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('delivers lines complete and in order', async () => {
    const p = socketPath();
    const server = await listen(p);
    const log = recorder();
    const sink = new MetricsSink(p, log);
    try {
      for (const i of range(500)) sink.send(point(i));
      await until(() => server.lines.length >= 500, '500 lines');
      assert.deepEqual(server.lines, range(500).map(line));
      assert.deepEqual(log.at('warn'), []);
    } finally {
      await sink.close();
      await server.kill();
    }
  });

  it('an absent socket gives one warning, however many sends fail', async () => {
    const p = socketPath();
    const log = recorder();
    const sink = new MetricsSink(p, log, { reconnectMs: 10 });
    try {
      sink.send(point(0));
      sink.send(point(1));
      await until(() => log.at('warn').length > 0, 'the warning');
      // Keep sending so that several reconnects are tried and fail.
      const retries = () => log.at('debug').filter((e) => e.msg === 'metrics socket still unavailable').length;
      for (let i = 2; retries() < 3; i++) {
        assert.doesNotThrow(() => sink.send(point(i)));
        await sleep(15);
        if (i > 2000) assert.fail('no reconnect attempts seen');
      }
      const warns = log.at('warn');
      assert.equal(warns.length, 1);
      assert.equal(warns[0].msg, `metrics socket ${p} unavailable (ENOENT); metrics are dropped until it comes back`);
      assert.deepEqual(warns[0].obj, { path: p, reason: 'ENOENT' });
      assert.deepEqual(log.at('info'), []);
    } finally {
      await sink.close();
    }
  });

  it('survives the listener going away and reconnects when it is back', async () => {
    const p = socketPath();
    let server = await listen(p);
    const log = recorder();
    const sink = new MetricsSink(p, log, { reconnectMs: 50 });
    try {
      sink.send(point(0));
      await until(() => server.lines.length === 1, 'the first line');

      await server.kill();
      let i = 1;
      while (log.at('warn').length === 0) {
        assert.doesNotThrow(() => sink.send(point(i++)));
        await sleep(10);
        if (i > 2000) assert.fail('no warning after the listener went away');
      }

      server = await listen(p);
      while (server.lines.length === 0) {
        assert.doesNotThrow(() => sink.send(point(i++)));
        await sleep(10);
        if (i > 4000) assert.fail('no line after the listener came back');
      }
      await until(() => log.at('info').length > 0, 'the info line');

      assert.equal(log.at('warn').length, 1);
      assert.match(log.at('warn')[0].msg, new RegExp(`^metrics socket ${p} (unavailable|lost) \\((ENOENT|ECONNREFUSED|EPIPE|ECONNRESET)\\); metrics are dropped until it comes back$`));
      const infos = log.at('info');
      assert.equal(infos.length, 1);
      assert.match(infos[0].msg, new RegExp(`^metrics socket ${p} is back; \\d+ points were dropped meanwhile$`));
      // Whatever got through is whole lines, in the order sent.
      const sent = range(i).map(line);
      let last = -1;
      for (const got of server.lines) {
        const at = sent.indexOf(got);
        assert.ok(at > last, `unexpected or out-of-order line: ${got}`);
        last = at;
      }
    } finally {
      await sink.close();
      await server.kill();
    }
  });

  it('close() resolves once the buffered lines are flushed', async () => {
    const p = socketPath();
    const server = await listen(p);
    const sink = new MetricsSink(p, recorder());
    try {
      // All of these are sent before the connection is even up, so all wait in the buffer.
      for (const i of range(2000)) sink.send(point(i));
      await sink.close();
      await until(() => server.ended === 1, 'the end of the connection');
      assert.deepEqual(server.lines, range(2000).map(line));
      // A closed sink ignores later points.
      sink.send(point(2000));
      await sink.close();
    } finally {
      await server.kill();
    }
  });

  it('drops points beyond maxBufferedBytes instead of queueing them', async () => {
    const p = socketPath();
    const server = await listen(p);
    const log = recorder();
    const sink = new MetricsSink(p, log, { maxBufferedBytes: 1000 });
    try {
      for (const i of range(1000)) sink.send(point(i));
      await sink.close();
      await until(() => server.ended === 1, 'the end of the connection');
      const fit = Math.floor(1000 / Buffer.byteLength(`${line(999)}\n`));
      assert.ok(server.lines.length > 0 && server.lines.length <= fit + 1, `${server.lines.length} lines arrived`);
      assert.deepEqual(server.lines, range(server.lines.length).map(line));
      assert.ok(log.at('debug').some((e) => 'dropped' in e.obj && (e.obj as { dropped: number }).dropped > 0));
    } finally {
      await server.kill();
    }
  });

  it('without a path it does nothing', async () => {
    for (const p of [undefined, '']) {
      const log = recorder();
      const sink = new MetricsSink(p, log);
      sink.send(point(0));
      await sink.close();
      sink.send(point(1));
      assert.deepEqual(log.entries, []);
    }
  });

  it('does not keep the process alive', async () => {
    const p = socketPath();
    const server = await listen(p);
    const repo = new URL('../../', import.meta.url);
    // The child sends one point and then waits for the parent's word over IPC; once it
    // disconnects, the sink's socket is all that is left in its event loop.
    const script = `
      const { MetricsSink } = await import(${JSON.stringify(new URL('src/metrics/sink.ts', repo).href)});
      const sink = new MetricsSink(${JSON.stringify(p)}, { warn: (o, m) => console.error(m), info: () => {} });
      sink.send({ measurement: 'child', fields: { v: 1 } });
      process.once('message', () => process.disconnect());
    `;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: repo,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      await until(() => server.lines.length === 1, 'the child’s line', 30_000);
      assert.equal(server.lines[0], 'child v=1');
      child.send('done');
      const deadline = new AbortController();
      const code = await Promise.race([exited, sleep(30_000, 'still running', { signal: deadline.signal }).catch(() => 'aborted')]);
      deadline.abort();
      assert.equal(code, 0, 'the child exited on its own with the sink still connected');
    } finally {
      child.kill();
      await server.kill();
    }
  });
});
