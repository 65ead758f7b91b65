import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Stabilizer, type StabilizerEvents, type StableFile } from '../../src/push/stabilizer.js';

// Timeouts below are only safety nets so a broken test fails instead of hanging; nothing
// asserts how long anything took.
const SAFETY_MS = 20_000;

type Event =
  | { kind: 'stable'; file: StableFile }
  | { kind: 'gone'; directory: string; relpath: string }
  | { kind: 'folder'; directory: string; relpath: string }
  | { kind: 'symlink'; path: string };

/** Records every callback and lets a test await the first one matching a predicate. */
function recorder() {
  const events: Event[] = [];
  const waiters: { match: (e: Event) => boolean; resolve: (e: Event) => void }[] = [];
  const push = (e: Event) => {
    events.push(e);
    for (const w of [...waiters]) {
      if (w.match(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    }
  };
  const handlers: StabilizerEvents = {
    stable: (file) => push({ kind: 'stable', file }),
    gone: (directory, relpath) => push({ kind: 'gone', directory, relpath }),
    folder: (directory, relpath) => push({ kind: 'folder', directory, relpath }),
    symlink: (path) => push({ kind: 'symlink', path }),
  };
  function next(match: (e: Event) => boolean = () => true): Promise<Event> {
    const already = events.find(match);
    if (already) return Promise.resolve(already);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no matching event within the safety timeout; got ${JSON.stringify(events)}`)), SAFETY_MS);
      waiters.push({ match, resolve: (e) => { clearTimeout(timer); resolve(e); } });
    });
  }
  return { events, handlers, next };
}

let root: string;
let n = 0;
const stabilizers: Stabilizer[] = [];

before(() => {
  root = mkdtempSync(join(tmpdir(), 'cm-stabilizer-'));
});
after(() => {
  for (const s of stabilizers) s.stop();
  rmSync(root, { recursive: true, force: true });
});

function setup(stableTimeMs: number, now?: () => number) {
  const dir = join(root, `loc-${++n}`);
  const locations = new Map([['inbox', dir]]);
  const rec = recorder();
  const stabilizer = new Stabilizer(stableTimeMs, locations, rec.handlers, now);
  stabilizers.push(stabilizer);
  return { dir, stabilizer, ...rec };
}

describe('Stabilizer', () => {
  it('a file with an old mtime is reported stable at once, with its size and mtime', async () => {
    const { dir, stabilizer, events, next } = setup(60_000);
    mkdirSync(dir);
    const file = join(dir, 'old.txt');
    writeFileSync(file, 'twelve bytes');
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(file, hourAgo, hourAgo);
    stabilizer.observe('inbox', 'old.txt');
    // With StableTime one minute, only the mtime rule can report it before the safety timeout.
    const e = await next();
    assert.equal(e.kind, 'stable');
    assert.ok(e.kind === 'stable');
    assert.deepEqual(e.file, { directory: 'inbox', relpath: 'old.txt', size: 12, mtimeMs: statSync(file).mtimeMs });
    assert.equal(events.length, 1);
    assert.equal(stabilizer.size, 0);
  });

  it('a fresh file is reported once, with its final size, only after it stops changing', async () => {
    const { dir, stabilizer, events, next } = setup(300);
    mkdirSync(dir);
    const file = join(dir, 'growing.log');
    writeFileSync(file, 'start\n');
    stabilizer.observe('inbox', 'growing.log');
    let size = 6;
    for (let i = 0; i < 5; i++) {
      await sleep(100);
      // Appended synchronously and observed like a watcher would: the append's timer is due
      // before any stability re-check, so no check can see a half-grown file as quiet.
      appendFileSync(file, `line ${i}\n`);
      size += `line ${i}\n`.length;
      stabilizer.observe('inbox', 'growing.log');
      assert.deepEqual(events, [], `reported while still growing (after append ${i})`);
    }
    const e = await next();
    assert.ok(e.kind === 'stable');
    assert.equal(e.file.size, size);
    assert.equal(e.file.size, statSync(file).size);
    assert.equal(e.file.mtimeMs, statSync(file).mtimeMs);
    // Nothing else follows: no second report of the same file.
    await sleep(1_000);
    assert.equal(events.length, 1, JSON.stringify(events));
    assert.equal(stabilizer.size, 0);
  });

  it('same, with a clock held still while the file grows (independent of machine load)', async () => {
    // While held, the clock never advances, so the file cannot look quiet however slow the
    // machine is; once released, the next check sees it has not changed since.
    let held: number | undefined = Date.now();
    const { dir, stabilizer, events, next } = setup(300, () => held ?? Date.now());
    mkdirSync(dir);
    const file = join(dir, 'growing.log');
    writeFileSync(file, 'start\n');
    stabilizer.observe('inbox', 'growing.log');
    for (let i = 0; i < 5; i++) {
      await sleep(100);
      appendFileSync(file, `line ${i}\n`);
      stabilizer.observe('inbox', 'growing.log');
    }
    await sleep(400); // a few re-checks with the clock held: still nothing
    assert.deepEqual(events, []);
    held = undefined;
    const e = await next();
    assert.ok(e.kind === 'stable');
    assert.equal(e.file.size, statSync(file).size);
    await sleep(500);
    assert.equal(events.length, 1, JSON.stringify(events));
  });

  it('repeat observations of a fresh file fold into one report', async () => {
    const { dir, stabilizer, events, next } = setup(200);
    mkdirSync(dir);
    writeFileSync(join(dir, 'f'), 'abc');
    for (let i = 0; i < 10; i++) stabilizer.observe('inbox', 'f');
    assert.equal(stabilizer.size, 1);
    const e = await next();
    assert.ok(e.kind === 'stable');
    assert.equal(e.file.size, 3);
    await sleep(600);
    assert.equal(events.length, 1, JSON.stringify(events));
  });

  it('a missing file triggers gone (and not stable)', async () => {
    const { dir, stabilizer, events, next } = setup(300);
    mkdirSync(dir);
    stabilizer.observe('inbox', 'sub/never-was.txt');
    const e = await next();
    assert.deepEqual(e, { kind: 'gone', directory: 'inbox', relpath: 'sub/never-was.txt' });
    assert.equal(events.length, 1);
    assert.equal(stabilizer.size, 0);
  });

  it('a file deleted while it is settling triggers gone', async () => {
    // A frozen clock: the file can never look quiet, so it stays pending until it is deleted.
    const { dir, stabilizer, events, next } = setup(100, () => 0);
    mkdirSync(dir);
    writeFileSync(join(dir, 'short-lived'), 'x');
    stabilizer.observe('inbox', 'short-lived');
    await sleep(250);
    assert.deepEqual(events, []);
    unlinkSync(join(dir, 'short-lived'));
    const e = await next();
    assert.deepEqual(e, { kind: 'gone', directory: 'inbox', relpath: 'short-lived' });
    assert.equal(events.length, 1);
  });

  it('a symlink triggers symlink with its full path, and never stable', async () => {
    const { dir, stabilizer, events, next } = setup(100);
    mkdirSync(dir);
    const target = join(dir, 'target.txt');
    writeFileSync(target, 'target');
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(target, hourAgo, hourAgo);
    symlinkSync(target, join(dir, 'link'));
    stabilizer.observe('inbox', 'link');
    const e = await next();
    assert.deepEqual(e, { kind: 'symlink', path: join(dir, 'link') });
    await sleep(500);
    assert.deepEqual(events.map((x) => x.kind), ['symlink']);
    assert.equal(stabilizer.size, 0);
  });

  it('a directory (perhaps replacing a file) is reported as gone and as a folder to scan, never stable', async () => {
    const { dir, stabilizer, events, next } = setup(100);
    mkdirSync(join(dir, 'folder'), { recursive: true });
    stabilizer.observe('inbox', 'folder');
    await next((e) => e.kind === 'folder');
    assert.deepEqual(events, [
      { kind: 'gone', directory: 'inbox', relpath: 'folder' },
      { kind: 'folder', directory: 'inbox', relpath: 'folder' },
    ]);
    assert.equal(stabilizer.size, 0);
  });

  it('stop() cancels pending checks: no callback after stop', async () => {
    // Frozen clock: the file stays pending (re-checked every StableTime) until stop().
    const { dir, stabilizer, events } = setup(100, () => 0);
    mkdirSync(dir);
    writeFileSync(join(dir, 'pending.txt'), 'x');
    stabilizer.observe('inbox', 'pending.txt');
    // From then on the file always has a re-check timer armed (the frozen clock never lets it
    // look quiet); let that timer fire at least once.
    await sleep(150);
    assert.equal(stabilizer.size, 1);
    assert.deepEqual(events, []);
    stabilizer.stop();
    assert.equal(stabilizer.size, 0);
    // Had the timer survived, the next check would report this deletion as gone.
    unlinkSync(join(dir, 'pending.txt'));
    stabilizer.observe('inbox', 'pending.txt'); // ignored after stop
    await sleep(600);
    assert.deepEqual(events, []);
    assert.equal(stabilizer.size, 0);
  });

  it('control for the stop() test: without stop(), the same deletion is reported as gone', async () => {
    const { dir, stabilizer, next } = setup(100, () => 0);
    mkdirSync(dir);
    writeFileSync(join(dir, 'pending.txt'), 'x');
    stabilizer.observe('inbox', 'pending.txt');
    await sleep(150);
    assert.equal(stabilizer.size, 1);
    unlinkSync(join(dir, 'pending.txt'));
    const e = await next();
    assert.deepEqual(e, { kind: 'gone', directory: 'inbox', relpath: 'pending.txt' });
  });
});
