/** Byte counts and durations as the commands print them (`status`, `mirror`, the push report). */

const byteUnits = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/**
 * IEC units: "512 B", "1.5 KiB", "20.0 MiB", "1.00 GiB". GiB and above get two decimals because
 * a tenth of a GiB is 100 MiB, too coarse to see a transfer move. The unit is picked after
 * rounding, so the number never reads 1024.
 */
export function formatBytes(n: number): string {
  const bytes = Number.isFinite(n) && n > 0 ? n : 0;
  if (bytes < 1024) return `${Math.floor(bytes)} B`;
  let value = bytes / 1024;
  for (let i = 0; ; i++) {
    const text = value.toFixed(i >= 2 ? 2 : 1);
    if (Number(text) < 1024 || i === byteUnits.length - 1) return `${text} ${byteUnits[i]}`;
    value /= 1024;
  }
}

/** "4s", "1m05s", "2h03m"; "--" when the time cannot be known (no rate yet, stalled). */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--';
  const s = Math.round(seconds);
  const two = (n: number) => String(n).padStart(2, '0');
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${two(s % 60)}s`;
  return `${Math.floor(s / 3600)}h${two(Math.floor(s / 60) % 60)}m`;
}
