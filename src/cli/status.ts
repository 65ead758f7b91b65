/** `contentmonster status`: what the push daemon is doing, as a table or as JSON. */
import { formatBytes, formatDuration } from './format.js';
import { loadSettings, resolveSettingsPath } from '../settings/load.js';
import { readStatus, type StatusReport } from '../status.js';
import { table } from './table.js';

export interface StatusFlags {
  config?: string;
  json?: boolean;
}

export function status(flags: StatusFlags): number {
  const report = readStatus(loadSettings(resolveSettingsPath(flags.config)));
  if (!report.databaseFound) {
    // Exit 1 in both forms; --json still prints a report (every count 0) for the program reading it.
    if (flags.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    throw new NoDatabaseYet(`no state database at ${report.database} (the daemon has not run yet)`);
  }
  process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report));
  return 0;
}

/** Not a configuration error (exit 1): the daemon simply has not run yet. */
class NoDatabaseYet extends Error {}

/** The report for a person: one table of vessels, then what is in flight and what failed. */
export function renderStatus(r: StatusReport): string {
  const now = Date.parse(r.generatedAt);
  const ago = (iso: string | null) => (iso === null ? '-' : `${formatDuration(Math.max(0, (now - Date.parse(iso)) / 1000))} ago`);
  const count = (files: number, bytes: number) => `${files} ${files === 1 ? 'file' : 'files'}, ${formatBytes(bytes)}`;
  const out: string[] = [];
  out.push(...table(['VESSEL', 'WAITING', 'IN FLIGHT', 'DONE', 'LAST SUCCESS', 'LAST ERROR'], r.vessels.map((v) => [
    v.name,
    count(v.waiting.files, v.waiting.bytes),
    String(v.inFlight.length),
    count(v.done.files, v.done.bytes),
    ago(v.lastSuccessAt),
    v.lastError ? `${ago(v.lastError.at)}: ${v.lastError.message}` : '-',
  ])));
  out.push('');
  const oldest = r.oldestWaiting;
  out.push(oldest
    ? `Oldest waiting: ${oldest.path} (for ${oldest.vessel}), queued ${formatDuration(oldest.ageSeconds)} ago`
    : 'Oldest waiting: none, nothing waits');
  const inFlight = r.vessels.flatMap((v) => v.inFlight.map((f) => [
    v.name, `${f.percent.toFixed(1)}%`, `${formatBytes(f.bytesSent)} of ${formatBytes(f.size)}`, ago(f.startedAt), ago(f.updatedAt), f.path,
  ]));
  out.push('');
  if (inFlight.length === 0) out.push('In flight: none');
  else out.push('In flight:', ...table(['VESSEL', 'DONE', 'SENT', 'STARTED', 'UPDATED', 'FILE'], inFlight));
  out.push('');
  // Only where a limit is set: without one there is nothing to say.
  const limited = [...r.vessels.map((v) => [v.name, v.bandwidth] as const), ['(all vessels)', r.bandwidth] as const];
  if (limited.some(([, b]) => b.setting !== 'off')) {
    const rate = (n: number | null) => (n === null ? 'off' : `${formatBytes(n)}/s`);
    out.push('Bandwidth (limit in force now; rate over the last 5 s):', ...table(['VESSEL', 'LIMIT', 'RATE', 'BANDWIDTHLIMIT'], limited.map(([name, b]) => [
      name, rate(b.limitBytesPerSecond), b.bytesPerSecond === null ? '- (no daemon running)' : `${formatBytes(b.bytesPerSecond)}/s`, b.setting,
    ])));
    out.push('');
  }
  if (r.failed.length === 0) out.push('Failed: none');
  else {
    out.push('Failed (tried again at the next rescan and at every start):', ...table(['VESSEL', 'ATTEMPTS', 'WHEN', 'FILE', 'REASON'], r.failed.map((f) => [
      f.vessel, String(f.attempts), ago(f.at), f.path, f.reason,
    ])));
    if (r.failedTotal > r.failed.length) out.push(`… and ${r.failedTotal - r.failed.length} more (${r.failedTotal} in all; --json lists the first ${r.failed.length} too)`);
  }
  return `${out.join('\n')}\n`;
}
