import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { PushEvents, writeEventsToFd, type PushEvent, type PushEventOf } from '../../src/push/events.js';

const eventsModule = pathToFileURL(fileURLToPath(new URL('../../src/push/events.ts', import.meta.url))).href;
const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

const delivered: PushEventOf<'delivered'> = { type: 'delivered', vessel: 'v1', file: '/shore/a b.bin', bytes: 5, alreadyThere: false };
const refused: PushEvent = { type: 'refused', vessel: 'v2', reason: 'vessel v2: authentication as root failed', retryInMs: 300_000 };

function errno(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(code), { code });
}

describe('PushEvents', () => {
  it('without a listener: inactive, and emit does nothing', () => {
    const events = new PushEvents();
    assert.equal(events.active, false);
    events.emit({ type: 'ready' });
  });

  it('hands every event to every listener, in order, until it is removed', () => {
    const events = new PushEvents();
    const a: PushEvent[] = [];
    const b: PushEvent[] = [];
    const offA = events.on((e) => a.push(e));
    events.on((e) => b.push(e));
    assert.equal(events.active, true);
    events.emit({ type: 'ready' });
    events.emit(delivered);
    offA();
    events.emit(refused);
    assert.deepEqual(a, [{ type: 'ready' }, delivered]);
    assert.deepEqual(b, [{ type: 'ready' }, delivered, refused]);
  });

  it('a listener that throws neither reaches the emitter nor stops the others', () => {
    const events = new PushEvents();
    const seen: string[] = [];
    events.on(() => {
      throw new Error('a broken listener');
    });
    events.on((e) => seen.push(e.type));
    events.emit({ type: 'stopping' });
    assert.deepEqual(seen, ['stopping']);
  });

  it('a listener may remove itself while events are handed out', () => {
    const events = new PushEvents();
    const seen: string[] = [];
    const off = events.on((e) => {
      seen.push(`first ${e.type}`);
      off();
    });
    events.on((e) => seen.push(`second ${e.type}`));
    events.emit({ type: 'ready' });
    events.emit({ type: 'stopping' });
    assert.deepEqual(seen, ['first ready', 'second ready', 'second stopping']);
    assert.equal(events.active, true);
  });
});

describe('writeEventsToFd', () => {
  it('does nothing without CONTENTMONSTER_EVENTS_FD, or with a value that is not a descriptor of 3 or more', () => {
    for (const value of [undefined, '', 'three', '3.5', '-3', '0', '1', '2', '3 4']) {
      const events = new PushEvents();
      let writes = 0;
      const stop = writeEventsToFd({ CONTENTMONSTER_EVENTS_FD: value }, events, () => ++writes);
      assert.equal(events.active, false, String(value));
      events.emit({ type: 'ready' });
      stop();
      assert.equal(writes, 0, String(value));
    }
  });

  it('writes each event as one JSON line to the descriptor, until stopped', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cm-events-'));
    try {
      const path = join(dir, 'events.jsonl');
      const fd = openSync(path, 'w');
      const events = new PushEvents();
      const stop = writeEventsToFd({ CONTENTMONSTER_EVENTS_FD: String(fd) }, events);
      events.emit({ type: 'ready' });
      events.emit(delivered);
      events.emit({ type: 'joining', vessel: 'v1', file: '/shore/line\nbreak' });
      stop();
      assert.equal(events.active, false);
      events.emit(refused);
      closeSync(fd);
      const lines = readFileSync(path, 'utf8').split('\n');
      assert.equal(lines.pop(), '', 'every line ends');
      assert.deepEqual(lines.map((l) => JSON.parse(l)), [{ type: 'ready' }, delivered, { type: 'joining', vessel: 'v1', file: '/shore/line\nbreak' }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('finishes a partial write, and waits out a full non-blocking descriptor (EAGAIN)', () => {
    const events = new PushEvents();
    const written: Buffer[] = [];
    let calls = 0;
    writeEventsToFd({ CONTENTMONSTER_EVENTS_FD: '7' }, events, (fd, buffer, offset) => {
      assert.equal(fd, 7);
      calls++;
      if (calls === 2 || calls === 3) throw errno('EAGAIN');
      const n = Math.min(10, buffer.length - offset); // at most 10 bytes a call
      written.push(buffer.subarray(offset, offset + n));
      return n;
    });
    events.emit(delivered);
    assert.deepEqual(JSON.parse(Buffer.concat(written).toString()), delivered);
    assert.equal(events.active, true, 'still writing');
  });

  for (const code of ['EPIPE', 'EBADF']) {
    it(`${code} ends the writing, and nothing is thrown`, () => {
      const events = new PushEvents();
      let calls = 0;
      writeEventsToFd({ CONTENTMONSTER_EVENTS_FD: '9' }, events, () => {
        calls++;
        throw errno(code);
      });
      events.emit({ type: 'ready' });
      assert.equal(events.active, false);
      events.emit({ type: 'stopping' });
      assert.equal(calls, 1, 'not tried again');
    });
  }

  it('a real pipe whose reader is gone: EPIPE ends the writing, the process carries on', async () => {
    // The child writes one event, waits until the reader has closed its end, then emits more.
    const code = `
      import { pushEvents, writeEventsToFd } from ${JSON.stringify(eventsModule)};
      writeEventsToFd();
      pushEvents.emit({ type: 'ready' });
      process.stdin.once('data', () => {
        for (let i = 0; i < 1000; i++) pushEvents.emit({ type: 'stopping' });
        console.log('active=' + pushEvents.active);
        process.exit(0);
      });`;
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      cwd: projectRoot,
      env: { ...process.env, NODE_TEST_CONTEXT: undefined, CONTENTMONSTER_EVENTS_FD: '3' },
      stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const pipe = child.stdio[3] as NodeJS.ReadableStream & { destroy(): void };
    const first = await new Promise<string>((resolve) => pipe.once('data', (d: Buffer) => resolve(d.toString())));
    assert.deepEqual(JSON.parse(first), { type: 'ready' });
    pipe.destroy();
    await new Promise((r) => setTimeout(r, 100)); // the close reaches the child's side
    child.stdin.end('go\n');
    const status = await new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    assert.equal(status, 0, stderr);
    assert.equal(stdout, 'active=false\n', stderr);
  });
});
