/**
 * The mirror's two measurements, named exactly as the seed (sftp_mirror.py) names them, so
 * existing dashboards and queries keep working.
 */
import { transferFields, type Point } from '../metrics/line-protocol.js';

export interface ItemDownload {
  server: string;
  type: 'file' | 'directory';
  item: string;
  bytes: number;
  durationS: number;
}

export function downloadPoint(d: ItemDownload, time = new Date()): Point {
  return {
    measurement: 'sftp_mirror_download',
    tags: { server: d.server, type: d.type, item: d.item },
    fields: transferFields(d.bytes, d.durationS),
    time,
  };
}

export interface MirrorTotals {
  server: string;
  remotePath: string;
  /** Items (top-level files and directories) that had something fetched. */
  downloaded: number;
  /** Items that were already complete here. */
  skipped: number;
  bytes: number;
  durationS: number;
  /** Mean duration of the downloaded items. */
  avgItemDurationS: number;
}

export function summaryPoint(t: MirrorTotals, time = new Date()): Point {
  return {
    measurement: 'sftp_mirror_summary',
    tags: { server: t.server, remote_path: t.remotePath },
    fields: {
      files_downloaded: t.downloaded,
      files_skipped: t.skipped,
      bytes_downloaded: t.bytes,
      duration_seconds: t.durationS,
      avg_file_duration_seconds: t.avgItemDurationS,
    },
    time,
  };
}
