/**
 * `contentmonster check`: settings, the shore (Locations, the state database's folder), then
 * every vessel; a table on stdout; 0 when the shore and every vessel are ready.
 */
import { checkSteps, checkVessels, vesselReady, type CheckStep, type VesselCheck } from '../check/check.js';
import { ExitCode } from '../errors.js';
import { createLogger, type LogLevel } from '../log.js';
import { loadSettings, resolveSettingsPath } from '../settings/load.js';
import { checkShore, type ShoreCheck } from '../check/shore.js';
import { table } from './table.js';

export interface CheckFlags {
  config?: string;
  logLevel?: LogLevel;
}

export async function check(flags: CheckFlags): Promise<number> {
  // A ConfigError here is one line and exit 2, from main.ts, exactly as for `run`.
  const settings = loadSettings(resolveSettingsPath(flags.config));
  // Only on request, and on stderr: stdout is the table.
  const log = flags.logLevel ? createLogger(flags.logLevel, 'auto', { write: (text) => process.stderr.write(text) }) : undefined;
  const shore = checkShore(settings);
  const out = [
    `settings: ${settings.file} ok`,
    ...settings.warnings.map((w) => `settings: warning: ${w}`),
    ...renderShore(shore, settings.directories.length),
    '',
  ];
  const results = await checkVessels(settings, { log });
  const shoreSummary = shore.problems.length === 0 ? '' : `the shore is not ready: ${shore.problems.length} ${shore.problems.length === 1 ? 'problem' : 'problems'} (the shore: lines above)\n`;
  process.stdout.write(`${out.join('\n')}\n${renderCheckTable(results)}${shoreSummary}`);
  return shore.problems.length === 0 && results.every(vesselReady) ? ExitCode.ok : ExitCode.failure;
}

/** `shore: ...` lines: each problem, then each note; one `ok` line when there is no problem. */
export function renderShore(shore: ShoreCheck, locations: number): string[] {
  const ok = shore.problems.length === 0
    ? [`shore: ok (${locations === 1 ? 'the Location' : `${locations} Locations`} and the state database folder)`]
    : [];
  return [...ok, ...shore.problems.map((p) => `shore: ${p}`), ...shore.notes.map((n) => `shore: ${n}`)];
}

const headers: Record<CheckStep, string> = {
  connect: 'CONNECT',
  hostKey: 'HOST KEY',
  auth: 'AUTH',
  commands: 'COMMANDS',
  tempDir: 'TEMPDIR',
  tools: 'CAT/SHA256SUM',
  remoteLocations: 'REMOTELOCATIONS',
};

const cells = { ok: 'ok', new: 'new', fail: 'FAIL', skipped: '-' } as const;

/**
 * The report: one row per vessel, then one line per problem (`vessel: reason`), then notes
 * (new host keys, folders that will be created), then a summary line. Pure, for the tests.
 */
export function renderCheckTable(results: readonly VesselCheck[]): string {
  const rows = table(
    ['VESSEL', 'ADDRESS', ...checkSteps.map((s) => headers[s])],
    results.map((r) => [r.vessel, r.address, ...checkSteps.map((s) => cells[r.steps[s].state])]),
  );
  const linesOf = (what: 'problems' | 'notes') =>
    results.flatMap((r) => checkSteps.flatMap((s) => r.steps[s][what].map((line) => `${r.vessel}: ${line}`)));
  const problems = linesOf('problems');
  const notes = linesOf('notes');
  const notReady = results.filter((r) => !vesselReady(r)).length;
  const summary = notReady === 0
    ? `all ${results.length} ${plural(results.length)} ready`
    : `${notReady} of ${results.length} ${plural(results.length)} not ready`;
  return [rows, problems, notes, [summary]]
    .filter((block) => block.length > 0)
    .map((block) => block.join('\n'))
    .join('\n\n') + '\n';
}

function plural(n: number): string {
  return n === 1 ? 'vessel' : 'vessels';
}
