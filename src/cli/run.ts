/** `contentmonster run`: the push daemon, or one pass with `--once`. */
import { ExitCode, describe } from '../errors.js';
import { createLogger, type LogFormat, type LogLevel } from '../log.js';
import { runPush } from '../daemon.js';
import { secondsFlag } from './flags.js';
import { stopOnSignals } from './signals.js';
import { loadSettings, resolveSettingsPath } from '../settings.js';

export interface RunFlags {
  config?: string;
  once?: boolean;
  giveUpAfter: string;
  logFormat: LogFormat;
  logLevel?: LogLevel;
}

export async function run(flags: RunFlags): Promise<number> {
  const giveUpAfterS = secondsFlag('--give-up-after', flags.giveUpAfter);
  const settings = loadSettings(resolveSettingsPath(flags.config));
  const log = createLogger(flags.logLevel ?? settings.monster.logLevel, flags.logFormat);
  const stopping = stopOnSignals(log, { stopping: 'signal received; stopping', tooLong: 'stop took too long; exiting now (the next start resumes)' });
  const result = await runPush(settings, log, { once: Boolean(flags.once), giveUpAfterMs: giveUpAfterS * 1000, signal: stopping });
  if (stopping.aborted || !flags.once) {
    log.info('stopped');
    return ExitCode.ok;
  }
  // A vessel given up was named with its reason when it happened (one ERROR line): its files are
  // listed here without that reason again, so that one cause is said once, not once per file.
  const givenUp = new Map(result.gaveUp.map((g) => [g.vessel, g.reason]));
  for (const f of result.failures) {
    const own = describe(f.reason);
    const reason = givenUp.get(f.vessel) === own ? 'vessel given up (the reason is logged above)' : own;
    log.error({ vessel: f.vessel, file: f.file, reason }, 'not replicated');
  }
  const failed = result.failures.length > 0 || result.gaveUp.length > 0;
  log.info({ failures: result.failures.length }, failed ? 'finished with failures' : 'finished: everything processed');
  return failed ? ExitCode.failure : ExitCode.ok;
}
