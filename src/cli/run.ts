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
  for (const f of result.failures) log.error({ vessel: f.vessel, file: f.file, reason: describe(f.reason) }, 'not replicated');
  for (const g of result.gaveUp) log.error(g);
  const failed = result.failures.length > 0 || result.gaveUp.length > 0;
  log.info({ failures: result.failures.length }, failed ? 'finished with failures' : 'finished: everything processed');
  return failed ? ExitCode.failure : ExitCode.ok;
}
