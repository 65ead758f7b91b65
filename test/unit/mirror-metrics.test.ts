import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatPoint } from '../../src/metrics/line-protocol.js';
import { downloadPoint, summaryPoint } from '../../src/mirror/metrics.js';

const time = new Date(1_700_000_000_000);
const ns = '1700000000000000000';

describe('downloadPoint', () => {
  it('is sftp_mirror_download with the seed tag and field names', () => {
    const line = formatPoint(downloadPoint({ server: 'files.example.com', type: 'directory', item: '20251118', bytes: 1000, durationS: 4 }, time));
    assert.equal(line, `sftp_mirror_download,item=20251118,server=files.example.com,type=directory bytes=1000,duration_seconds=4,bytes_per_second=250 ${ns}\n`);
  });

  it('carries a file item and fractional values', () => {
    const line = formatPoint(downloadPoint({ server: 's', type: 'file', item: 'report.csv', bytes: 3, durationS: 2 }, time));
    assert.equal(line, `sftp_mirror_download,item=report.csv,server=s,type=file bytes=3,duration_seconds=2,bytes_per_second=1.5 ${ns}\n`);
  });

  it('gives bytes_per_second 0 for a zero duration, never Infinity or NaN', () => {
    const point = downloadPoint({ server: 's', type: 'file', item: 'f', bytes: 500, durationS: 0 }, time);
    assert.equal(point.fields.bytes_per_second, 0);
    assert.equal(formatPoint(point), `sftp_mirror_download,item=f,server=s,type=file bytes=500,duration_seconds=0,bytes_per_second=0 ${ns}\n`);
    const empty = downloadPoint({ server: 's', type: 'file', item: 'f', bytes: 0, durationS: 0 }, time);
    assert.equal(empty.fields.bytes_per_second, 0);
  });

  it('escapes item names as tag values', () => {
    const line = formatPoint(downloadPoint({ server: 's', type: 'directory', item: 'a b,c=d', bytes: 1, durationS: 1 }, time));
    assert.equal(line, `sftp_mirror_download,item=a\\ b\\,c\\=d,server=s,type=directory bytes=1,duration_seconds=1,bytes_per_second=1 ${ns}\n`);
  });
});

describe('summaryPoint', () => {
  it('is sftp_mirror_summary with the seed tag and field names', () => {
    const line = formatPoint(summaryPoint({
      server: 'files.example.com', remotePath: '/srv/data', downloaded: 3, skipped: 7, bytes: 123456789, durationS: 60.5, avgItemDurationS: 20.25,
    }, time));
    assert.equal(line, 'sftp_mirror_summary,remote_path=/srv/data,server=files.example.com '
      + `files_downloaded=3,files_skipped=7,bytes_downloaded=123456789,duration_seconds=60.5,avg_file_duration_seconds=20.25 ${ns}\n`);
  });

  it('writes zeros for a run that fetched nothing', () => {
    const line = formatPoint(summaryPoint({ server: 's', remotePath: '/r', downloaded: 0, skipped: 0, bytes: 0, durationS: 0, avgItemDurationS: 0 }, time));
    assert.equal(line, `sftp_mirror_summary,remote_path=/r,server=s files_downloaded=0,files_skipped=0,bytes_downloaded=0,duration_seconds=0,avg_file_duration_seconds=0 ${ns}\n`);
  });

  it('escapes a remote path with spaces', () => {
    const line = formatPoint(summaryPoint({ server: 's', remotePath: '/my data', downloaded: 1, skipped: 0, bytes: 1, durationS: 1, avgItemDurationS: 1 }, time));
    assert.match(line ?? '', /^sftp_mirror_summary,remote_path=\/my\\ data,server=s /);
  });
});
