import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatPoint } from '../../src/metrics/line-protocol.js';
import { PushReport, queuePoint, STATUS_MAX_CHARS, statusLine, transferPoint, type QueueDepth } from '../../src/push/report.js';
import type { Logger } from '../../src/log.js';
import type { Point } from '../../src/metrics/line-protocol.js';

const t = new Date(Date.UTC(2026, 10, 23, 12, 0, 0));

describe('push metrics points', () => {
  it('contentmonster_transfer: bytes, duration_seconds, bytes_per_second; tags vessel and directory', () => {
    assert.equal(
      formatPoint(transferPoint({ vessel: 'ship 1', directory: 'out,box', bytes: 1_000_000, durationS: 2 }, t)),
      'contentmonster_transfer,directory=out\\,box,vessel=ship\\ 1 bytes=1000000,duration_seconds=2,bytes_per_second=500000 1795435200000000000\n',
    );
  });

  it('a zero-length transfer has a rate of 0, not Infinity', () => {
    assert.equal(transferPoint({ vessel: 'v', directory: 'd', bytes: 0, durationS: 0 }, t).fields.bytes_per_second, 0);
  });

  it('contentmonster_queue: files and bytes per vessel', () => {
    assert.equal(formatPoint(queuePoint({ vessel: 'v1', files: 3, bytes: 4096 }, t)), 'contentmonster_queue,vessel=v1 files=3,bytes=4096 1795435200000000000\n');
  });
});

function fakeLog(): { log: Logger; lines: { obj: unknown; msg: string }[] } {
  const lines: { obj: unknown; msg: string }[] = [];
  const log = { info: (obj: unknown, msg: string) => lines.push({ obj, msg }) } as unknown as Logger;
  return { log, lines };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(check(), 'condition reached');
}

describe('PushReport', () => {
  it('sends a transfer point per delivery and queue points on its timer and at stop', async () => {
    const sent: Point[] = [];
    const waiting: QueueDepth[] = [{ vessel: 'v1', files: 2, bytes: 10 }, { vessel: 'v2', files: 0, bytes: 0 }];
    const report = new PushReport({ send: (p) => sent.push(p) }, fakeLog().log, () => waiting, { queueIntervalMs: 20, summaryIntervalMs: 60_000 });
    report.delivered({ vessel: 'v1', directory: 'd', bytes: 5, durationS: 1 });
    assert.deepEqual(sent.map((p) => p.measurement), ['contentmonster_transfer']);
    await until(() => sent.some((p) => p.measurement === 'contentmonster_queue'));
    report.stop();
    const queue = sent.filter((p) => p.measurement === 'contentmonster_queue');
    assert.deepEqual(queue.slice(-2).map((p) => [p.tags?.vessel, p.fields.files, p.fields.bytes]), [['v1', 2, 10], ['v2', 0, 0]]);
  });

  it('logs a summary while busy and stays quiet when idle', async () => {
    const { log, lines } = fakeLog();
    let waiting: QueueDepth[] = [{ vessel: 'v1', files: 4, bytes: 400 }];
    const report = new PushReport({ send: () => {} }, log, () => waiting, { queueIntervalMs: 60_000, summaryIntervalMs: 20 });
    report.delivered({ vessel: 'v1', directory: 'd', bytes: 100, durationS: 1 });
    await until(() => lines.length > 0);
    assert.equal(lines[0].msg, 'progress in the last 0.02 s');
    assert.deepEqual(lines[0].obj, { vessel: 'v1', waiting: '4 files (400 B)', sent: '1 file (100 B)' });
    waiting = [{ vessel: 'v1', files: 0, bytes: 0 }];
    const seen = lines.length;
    // Once idle (nothing waiting, nothing sent since the last line) no line appears; a few
    // timer rounds are enough to see that, and none of them is a timing assertion.
    await new Promise((r) => setTimeout(r, 100));
    report.stop();
    assert.ok(lines.length <= seen + 1, 'at most the line for the round that was still busy');
  });
});

describe('statusLine: the STATUS= systemctl status shows', () => {
  const q = (vessel: string, files: number, bytes: number): QueueDepth => ({ vessel, files, bytes });

  it('every vessel in the order of the settings, with what waits for it', () => {
    assert.equal(statusLine([q('backup1', 12, 3.4 * 1024 * 1024), q('backup2', 0, 0), q('far', 1, 10)]),
      '3 vessels: backup1 12 waiting (3.4 MiB), backup2 up to date, far 1 waiting (10 B)');
    assert.equal(statusLine([q('v1', 0, 0)]), '1 vessel: v1 up to date');
    assert.equal(statusLine([]), 'no vessels');
  });

  it('too long for one line: the vessels with the most bytes waiting first, then how many more and how much', () => {
    const many = Array.from({ length: 20 }, (_, i) => q(`vessel-number-${i}`, i % 3 ? i : 0, i * 1_000_000));
    const line = statusLine(many);
    assert.ok(line.length <= STATUS_MAX_CHARS, line);
    assert.equal(line, '20 vessels: vessel-number-19 19 waiting (18.1 MiB), vessel-number-17 17 waiting (16.2 MiB), 11 more with 91 waiting (86.8 MiB); 7 up to date');
    assert.equal(statusLine(many.map((v) => q(v.vessel, 0, 0))), '20 vessels, all up to date');
    // Not even one name fits: totals only.
    assert.equal(statusLine([q('x'.repeat(200), 2, 5), q('y', 0, 0)]), '2 vessels, 1 with 2 waiting (5 B); 1 up to date');
  });
});

describe('PushReport and the service manager', () => {
  it('looks at the STATUS= line on its timer and hands it over (the notifier sends it only when it changed)', async () => {
    const lines: string[] = [];
    let waiting: QueueDepth[] = [{ vessel: 'v1', files: 2, bytes: 2048 }];
    const report = new PushReport({ send: () => {} }, fakeLog().log, () => waiting, {
      queueIntervalMs: 60_000, summaryIntervalMs: 60_000, statusIntervalMs: 10, service: { status: (l) => lines.push(l) },
    });
    await until(() => lines.includes('1 vessel: v1 2 waiting (2.0 KiB)'));
    waiting = [{ vessel: 'v1', files: 0, bytes: 0 }];
    await until(() => lines.includes('1 vessel: v1 up to date'));
    report.stop();
  });
});
