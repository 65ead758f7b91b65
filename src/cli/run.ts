/** `contentmonster run`: the push daemon, or one pass with `--once`. */
import { ConfigError, ExitCode, describe } from '../errors.js';
import { createLogger, type LogFormat, type LogLevel } from '../log.js';
import { runPush } from '../daemon.js';
import { loadSettings, resolveSettingsPath } from '../settings.js';

export interface RunFlags {
  config?: string;
  once?: boolean;
  giveUpAfter: string;
  logFormat: LogFormat;
  logLevel?: LogLevel;
}

/** After the first signal, the process is gone within this bound whatever is still running. */
const HARD_STOP_MS = 9500;

export async function run(flags: RunFlags): Promise<number> {
  const giveUpAfterS = Number(flags.giveUpAfter);
  if (!/^\d+(\.\d+)?$/.test(flags.giveUpAfter.trim()) || giveUpAfterS <= 0) {
    throw new ConfigError(`--give-up-after: expected a number of seconds > 0, got \`${flags.giveUpAfter}\``);
  }
  const settings = loadSettings(resolveSettingsPath(flags.config));
  const log = createLogger(flags.logLevel ?? settings.monster.logLevel, flags.logFormat);
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.signal.aborted) return;
    log.info({ signal }, 'signal received; stopping');
    stop.abort();
    setTimeout(() => {
      log.warn('stop took too long; exiting now (the next start resumes)');
      process.exit(ExitCode.ok);
    }, HARD_STOP_MS).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const result = await runPush(settings, log, { once: Boolean(flags.once), giveUpAfterMs: giveUpAfterS * 1000, signal: stop.signal });
  if (stop.signal.aborted || !flags.once) {
    log.info('stopped');
    return ExitCode.ok;
  }
  for (const f of result.failures) log.error({ vessel: f.vessel, file: f.file, reason: describe(f.reason) }, 'not replicated');
  for (const g of result.gaveUp) log.error(g);
  const failed = result.failures.length > 0 || result.gaveUp.length > 0;
  log.info({ failures: result.failures.length }, failed ? 'finished with failures' : 'finished: everything processed');
  return failed ? ExitCode.failure : ExitCode.ok;
}
