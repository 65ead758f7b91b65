import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { renderStatus } from '../../src/cli/status.js';
import type { StatusReport, VesselStatus } from '../../src/status.js';

const unlimited = { setting: 'off', limitBytesPerSecond: null, bytesPerSecond: 0 };

const idle = (name: string): VesselStatus => ({
  name, waiting: { files: 0, bytes: 0 }, inFlight: [], done: { files: 0, bytes: 0 }, lastSuccessAt: null, lastError: null, bandwidth: unlimited,
});

const busy: StatusReport = {
  database: '/var/lib/contentmonster/database.sqlite3',
  databaseFound: true,
  generatedAt: '2025-01-01T12:00:00.000Z',
  vessels: [
    {
      name: 'backup1',
      waiting: { files: 0, bytes: 0 },
      inFlight: [],
      done: { files: 1, bytes: 3 * 1024 * 1024 },
      lastSuccessAt: '2025-01-01T11:59:48.000Z',
      lastError: null,
      bandwidth: unlimited,
    },
    {
      name: 'far-away',
      waiting: { files: 3, bytes: 25 * 1024 * 1024 + 512 * 1024 },
      inFlight: [{
        path: '/srv/outbox/big.bin', bytesSent: 10 * 1024 * 1024, size: 24 * 1024 * 1024, percent: 41.6,
        startedAt: '2025-01-01T11:59:52.000Z', updatedAt: '2025-01-01T11:59:59.000Z',
      }],
      done: { files: 0, bytes: 0 },
      lastSuccessAt: null,
      lastError: { message: 'connection reset', at: '2025-01-01T11:56:48.000Z' },
      bandwidth: unlimited,
    },
    idle('spare'),
  ],
  oldestWaiting: { path: '/srv/outbox/big.bin', vessel: 'far-away', queuedAt: '2025-01-01T11:56:48.000Z', ageSeconds: 192 },
  failed: [{ vessel: 'far-away', path: '/srv/outbox/line\nbreak.txt', reason: 'permission denied', attempts: 3, at: '2025-01-01T11:58:00.000Z' }],
  failedTotal: 1,
  bandwidth: unlimited,
};

describe('renderStatus', () => {
  it('a table per vessel, the oldest waiting file, what is in flight and what failed', () => {
    assert.equal(renderStatus(busy), [
      'VESSEL    WAITING            IN FLIGHT  DONE             LAST SUCCESS  LAST ERROR',
      'backup1   0 files, 0 B       0          1 file, 3.0 MiB  12s ago       -',
      'far-away  3 files, 25.5 MiB  1          0 files, 0 B     -             3m12s ago: connection reset',
      'spare     0 files, 0 B       0          0 files, 0 B     -             -',
      '',
      'Oldest waiting: /srv/outbox/big.bin (for far-away), queued 3m12s ago',
      '',
      'In flight:',
      'VESSEL    DONE   SENT                  STARTED  UPDATED  FILE',
      'far-away  41.6%  10.0 MiB of 24.0 MiB  8s ago   1s ago   /srv/outbox/big.bin',
      '',
      'Failed (tried again at the next rescan and at every start):',
      'VESSEL    ATTEMPTS  WHEN       FILE                         REASON',
      'far-away  3         2m00s ago  /srv/outbox/line\\nbreak.txt  permission denied',
      '',
    ].join('\n'));
  });

  it('a long list of failures: the first ones listed, the rest counted', () => {
    const many: StatusReport = { ...busy, failedTotal: 250_001 };
    assert.ok(renderStatus(many).endsWith('far-away  3         2m00s ago  /srv/outbox/line\\nbreak.txt  permission denied\n… and 250000 more (250001 in all; --json lists the first 1 too)\n'), renderStatus(many));
  });

  it('with a BandwidthLimit set: each limit in force and the rate, the global one last', () => {
    const limited: StatusReport = {
      ...busy,
      vessels: [
        { ...idle('a'), bandwidth: { setting: '08:00,512k 18:00,off', limitBytesPerSecond: 512 * 1024, bytesPerSecond: 500_000 } },
        { ...idle('b'), bandwidth: { setting: 'off', limitBytesPerSecond: null, bytesPerSecond: null } },
      ],
      oldestWaiting: null, failed: [], failedTotal: 0,
      bandwidth: { setting: '2M', limitBytesPerSecond: 2 * 1024 * 1024, bytesPerSecond: 500_000 },
    };
    assert.match(renderStatus(limited), new RegExp([
      'Bandwidth \\(limit in force now; rate over the last 5 s\\):',
      'VESSEL         LIMIT        RATE                   BANDWIDTHLIMIT',
      'a              512\\.0 KiB/s  488\\.3 KiB/s            08:00,512k 18:00,off',
      'b              off          - \\(no daemon running\\)  off',
      '\\(all vessels\\)  2\\.0 MiB/s    488\\.3 KiB/s            2M',
      '',
      'Failed: none',
    ].join('\n')));
  });

  it('says so when nothing waits, moves or failed', () => {
    const quiet: StatusReport = { ...busy, vessels: [idle('a')], oldestWaiting: null, failed: [], failedTotal: 0 };
    assert.equal(renderStatus(quiet), [
      'VESSEL  WAITING       IN FLIGHT  DONE          LAST SUCCESS  LAST ERROR',
      'a       0 files, 0 B  0          0 files, 0 B  -             -',
      '',
      'Oldest waiting: none, nothing waits',
      '',
      'In flight: none',
      '',
      'Failed: none',
      '',
    ].join('\n'));
  });

  it('ages grow into hours; a clock skew never shows a negative age', () => {
    const r: StatusReport = {
      ...busy,
      vessels: [{ ...idle('a'), lastSuccessAt: '2025-01-01T09:29:00.000Z', lastError: { message: 'x', at: '2025-01-01T12:00:05.000Z' } }],
    };
    const row = renderStatus(r).split('\n')[1];
    assert.match(row, /2h31m ago/);
    assert.match(row, /0s ago: x$/);
  });
});
