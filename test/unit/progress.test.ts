import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatBytes, formatDuration } from '../../src/cli/format.js';
import {
  RateMeter,
  renderProgress,
  TerminalProgress,
  type ProgressSnapshot,
  type TransferProgress,
} from '../../src/mirror/progress.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

function file(name: string, done: number, total: number): TransferProgress {
  return { name, done, total, startedAt: 0 };
}

function snapshot(files: TransferProgress[], total: Partial<ProgressSnapshot['total']> = {}): ProgressSnapshot {
  return { files, total: { done: 0, total: 0, filesDone: 0, filesTotal: 0, startedAt: 0, ...total } };
}

const noRates = { file: () => 0, total: 0 };

describe('formatBytes', () => {
  const cases: [number, string][] = [
    [0, '0 B'],
    [512, '512 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1.5 * KiB, '1.5 KiB'],
    [20 * MiB, '20.0 MiB'],
    [123 * MiB, '123.0 MiB'],
    [GiB, '1.00 GiB'],
    [1.5 * GiB, '1.50 GiB'],
    [3 * 1024 * GiB, '3.00 TiB'],
  ];
  for (const [n, text] of cases) it(`${n} → ${text}`, () => assert.equal(formatBytes(n), text));

  it('moves to the next unit rather than show 1024.0', () => {
    assert.equal(formatBytes(MiB - 1), '1.0 MiB');
    assert.equal(formatBytes(GiB - 1), '1.00 GiB');
  });

  it('treats nonsense as nothing', () => {
    assert.equal(formatBytes(-5), '0 B');
    assert.equal(formatBytes(Number.NaN), '0 B');
  });
});

describe('formatDuration', () => {
  const cases: [number, string][] = [
    [0, '0s'],
    [4, '4s'],
    [4.4, '4s'],
    [59.6, '1m00s'],
    [65, '1m05s'],
    [3599.7, '1h00m'],
    [2 * 3600 + 3 * 60 + 40, '2h03m'],
  ];
  for (const [s, text] of cases) it(`${s} → ${text}`, () => assert.equal(formatDuration(s), text));

  it('is "--" when unknown', () => {
    for (const s of [Infinity, Number.NaN, -1]) assert.equal(formatDuration(s), '--');
  });
});

describe('RateMeter', () => {
  it('is 0 until there are two samples', () => {
    const m = new RateMeter(5000);
    assert.equal(m.rate(0), 0);
    m.sample(100, 0);
    assert.equal(m.rate(0), 0);
  });

  it('measures bytes per second between samples', () => {
    const m = new RateMeter(5000);
    m.sample(0, 1000);
    m.sample(500, 1500);
    m.sample(1000, 2000);
    assert.equal(m.rate(2000), 1000);
  });

  it('forgets samples older than the window, keeping one anchor at its start', () => {
    const m = new RateMeter(1000);
    m.sample(0, 0); // fast start, outside the window later on
    m.sample(10_000, 1000);
    m.sample(10_100, 1500);
    m.sample(10_200, 2000);
    // Window at 2000 is [1000, 2000]: the sample at 1000 is the anchor.
    assert.equal(m.rate(2000), 200);
  });

  it('drops to 0 when the count stops moving for a whole window', () => {
    const m = new RateMeter(1000);
    m.sample(0, 0);
    m.sample(1000, 1000);
    m.sample(1000, 2000);
    m.sample(1000, 3000);
    assert.equal(m.rate(3000), 0);
  });

  it('is 0 when no sample arrived within the window', () => {
    const m = new RateMeter(1000);
    m.sample(0, 0);
    m.sample(1000, 500);
    assert.equal(m.rate(500), 2000);
    assert.equal(m.rate(10_000), 0);
  });

  it('starts over when the count goes back (a restarted transfer)', () => {
    const m = new RateMeter(5000);
    m.sample(0, 0);
    m.sample(1_000_000, 1000);
    m.sample(10, 2000);
    assert.equal(m.rate(2000), 0);
    m.sample(110, 3000);
    assert.equal(m.rate(3000), 100);
  });

  it('refuses a window that is not positive', () => {
    assert.throws(() => new RateMeter(0), /windowMs/);
  });
});

describe('renderProgress', () => {
  it('gives one line per file and a total line', () => {
    const lines = renderProgress(snapshot([file('a', 1, 2), file('b', 1, 2), file('c', 1, 2)]), noRates, 80);
    assert.equal(lines.length, 4);
    assert.match(lines[3], /^total/);
    assert.equal(renderProgress(snapshot([]), noRates, 80).length, 1);
  });

  it('shows the total line as bytes, percent, rate, ETA and files', () => {
    const s = snapshot([], { done: 123 * MiB, total: GiB, filesDone: 3, filesTotal: 2000 });
    const [line] = renderProgress(s, { file: () => 0, total: 45.2 * MiB }, 120);
    // (1024 - 123) MiB at 45.2 MiB/s is 19.9 s.
    assert.equal(line, 'total  123.0 MiB / 1.00 GiB  12%  45.2 MiB/s  ETA 20s  files 3/2000');
  });

  it('shows a file with its percent, rate and ETA', () => {
    const [line] = renderProgress(snapshot([file('x.bin', 25 * MiB, 100 * MiB)]), { file: () => MiB, total: 0 }, 100);
    assert.match(line, /^x\.bin {2}/);
    assert.match(line, /25\.0 MiB \/ 100\.0 MiB/);
    assert.match(line, / 25% /);
    assert.match(line, /1\.0 MiB\/s/);
    assert.match(line, /ETA 1m15s$/);
  });

  it('ETA is "--" with no rate, 0s when done; percent is "--" for an unknown size', () => {
    const lines = renderProgress(snapshot([file('slow', 1, 10), file('done', 10, 10)]), noRates, 100);
    assert.match(lines[0], /ETA +--$/);
    assert.match(lines[1], /100%/);
    assert.match(lines[1], /ETA +0s$/);
    assert.match(lines[2], /^total +0 B \/ 0 B {2}-- {2}0 B\/s {2}ETA 0s/);
  });

  it('rounds the percent down, so 100% means finished', () => {
    const [line] = renderProgress(snapshot([file('f', 999, 1000)]), noRates, 100);
    assert.match(line, / 99% /);
  });

  it('truncates a long name from the left and keeps the line within the width', () => {
    const long = 'very/deep/remote/directory/tree/that/goes/on/and/on/final-name.tar.gz';
    const lines = renderProgress(snapshot([file(long, 1, 2), file('short', 1, 2)]), noRates, 80);
    for (const line of lines) assert.ok(Array.from(line).length <= 80, `${Array.from(line).length}: ${line}`);
    assert.match(lines[0], /^…/);
    assert.match(lines[0], /final-name\.tar\.gz {2}/);
    // Names are padded to one width, so the figures line up.
    assert.equal(lines[0].indexOf(' / '), lines[1].indexOf(' / '));
  });

  it('still fits a very narrow terminal', () => {
    const s = snapshot([file('a/b/c/d/e/f/g/h/name', 1, 2)], { filesTotal: 10 });
    for (const line of renderProgress(s, noRates, 20)) assert.ok(Array.from(line).length <= 20, line);
  });

  it('replaces control characters in names, which would move the cursor', () => {
    const [line] = renderProgress(snapshot([file('evil\x1b[2J\nname', 1, 2)]), noRates, 100);
    assert.doesNotMatch(line, /[\x00-\x1f]/);
    assert.match(line, /^evil\?\[2J\?name/);
  });
});

/** Collects what TerminalProgress writes, as a TTY would receive it. */
function fakeTerminal(columns = 100, rows = 40) {
  const writes: string[] = [];
  return {
    writes,
    stream: { columns, rows, destroyed: false, writableEnded: false, write: (text: string) => writes.push(text) },
    text: () => writes.join(''),
  };
}

describe('TerminalProgress', () => {
  const source = () => snapshot([file('one.bin', MiB, 2 * MiB)], { done: MiB, total: 4 * MiB, filesTotal: 2 });

  it('draws the block on start and writes nothing before', () => {
    const t = fakeTerminal();
    const p = new TerminalProgress(t.stream, source, { now: () => 0 });
    assert.equal(t.writes.length, 0);
    p.start();
    p.stop();
    assert.match(t.writes[0], /^one\.bin .*\ntotal .*files 0\/2\n$/);
    assert.doesNotMatch(t.writes[0], /\x1b/, 'nothing to erase the first time');
  });

  it('writeAbove erases the block, writes the log text, then redraws the block', () => {
    const t = fakeTerminal();
    const p = new TerminalProgress(t.stream, source, { now: () => 0 });
    p.start();
    const block = t.writes[0];
    p.writeAbove('2024-05-06T07:08:09.123Z INFO  mirrored path=a\n');
    const last = t.writes.at(-1)!;
    assert.equal(last, '\x1b[2A\r\x1b[J' + '2024-05-06T07:08:09.123Z INFO  mirrored path=a\n' + block);
    p.stop();
  });

  it('writeAbove ends a log text without a newline, so the block starts on its own line', () => {
    const t = fakeTerminal();
    const p = new TerminalProgress(t.stream, source, { now: () => 0 });
    p.start();
    p.writeAbove('no newline');
    assert.match(t.writes.at(-1)!, /no newline\none\.bin/);
    p.stop();
  });

  it('writeAbove before start or after stop writes only the text', () => {
    const t = fakeTerminal();
    const p = new TerminalProgress(t.stream, source, { now: () => 0 });
    p.writeAbove('before\n');
    p.start();
    p.stop();
    p.writeAbove('after\n');
    assert.equal(t.writes[0], 'before\n');
    assert.equal(t.writes.at(-1), 'after\n');
  });

  it('stop draws the final block once and is idempotent', () => {
    const t = fakeTerminal();
    let done = MiB;
    const p = new TerminalProgress(t.stream, () => snapshot([], { done, total: 4 * MiB, filesDone: 1, filesTotal: 1 }), { now: () => 0 });
    p.start();
    done = 4 * MiB;
    p.stop();
    const count = t.writes.length;
    assert.ok(t.writes.at(-1)!.startsWith('\x1b[1A\r\x1b[J'), 'erases the one-line block it drew on start');
    assert.match(t.writes.at(-1)!, /total {2}4\.0 MiB \/ 4\.0 MiB {2}100% .*files 1\/1\n$/);
    p.stop();
    assert.equal(t.writes.length, count);
  });

  it('shows rates from what it sampled on each redraw', () => {
    const t = fakeTerminal();
    let now = 0;
    let done = 0;
    const p = new TerminalProgress(t.stream, () => snapshot([file('f', done, 10 * MiB)], { done, total: 10 * MiB }), { now: () => now });
    p.start();
    now = 1000;
    done = 2 * MiB;
    p.stop();
    const last = t.writes.at(-1)!;
    assert.match(last, /^\x1b\[2A\r\x1b\[J/);
    assert.match(last, /f {2}.*2\.0 MiB\/s {2}ETA +4s\n/);
    assert.match(last, /total .*2\.0 MiB\/s {2}ETA 4s/);
  });

  it('keeps the block within the screen height', () => {
    const t = fakeTerminal(100, 6);
    const many = Array.from({ length: 20 }, (_, i) => file(`f${i}`, 1, 2));
    const p = new TerminalProgress(t.stream, () => snapshot(many), { now: () => 0 });
    p.start();
    p.stop();
    const lines = t.writes[0].split('\n').filter(Boolean);
    assert.equal(lines.length, 5, 'rows - 1, leaving the cursor line on screen');
    assert.equal(lines[3], '… and 17 more');
    assert.match(lines[4], /^total/);
  });

  it('leaves the last column empty', () => {
    const t = fakeTerminal(40);
    const p = new TerminalProgress(t.stream, () => snapshot([file('x'.repeat(100), 1, 2)], { filesTotal: 123456789 }), { now: () => 0 });
    p.start();
    p.stop();
    for (const line of t.writes[0].split('\n')) assert.ok(Array.from(line).length <= 39, line);
  });

  it('never throws when the stream is closed', () => {
    const throwing = { columns: 80, write: () => { throw new Error('EPIPE'); } };
    const p = new TerminalProgress(throwing, source);
    assert.doesNotThrow(() => {
      p.start();
      p.writeAbove('log\n');
      p.stop();
    });
    const t = fakeTerminal();
    t.stream.destroyed = true;
    const q = new TerminalProgress(t.stream, source);
    q.start();
    q.writeAbove('log\n');
    q.stop();
    assert.equal(t.writes.length, 0);
  });

  it('defaults to 80 columns when the stream does not say', () => {
    const writes: string[] = [];
    const p = new TerminalProgress({ write: (s: string) => writes.push(s) }, () => snapshot([file('y'.repeat(200), 1, 2)]), { now: () => 0 });
    p.start();
    p.stop();
    for (const line of writes[0].split('\n')) assert.ok(Array.from(line).length <= 79, line);
  });
});
