/** `contentmonster run`: the push daemon, or one pass with `--once`. */
import { ExitCode, describe } from '../errors.js';
import { createLogger, type LogFormat, type LogLevel } from '../log.js';
import { runPush } from '../push/daemon.js';
import { writeEventsToFd } from '../push/events.js';
import { secondsFlag } from './flags.js';
import { hangups, stopOnSignals } from './signals.js';
import { loadSettings, resolveSettingsPath } from '../settings/load.js';
import { systemdNotifier } from '../systemd-notify.js';

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
  const once = Boolean(flags.once);
  // An interrupted --once leaves files waiting: exit 1 also when the stop has to be cut short.
  const stopping = stopOnSignals(
    log,
    { stopping: 'signal received; stopping', tooLong: 'stop took too long; exiting now (the next start resumes)' },
    once ? ExitCode.failure : ExitCode.ok,
  );
  // SIGHUP re-reads the settings in daemon mode; --once has nothing to reload into.
  const onHangup = hangups(log, once ? 'SIGHUP ignored: a --once run does not reload its settings' : 'SIGHUP ignored: the daemon is stopping');
  // Tests only: the daemon's events as JSON lines on CONTENTMONSTER_EVENTS_FD (see push/events.ts).
  const stopEvents = writeEventsToFd();
  // Under a Type=notify unit (NOTIFY_SOCKET set): READY=1, STATUS=, WATCHDOG=1, STOPPING=1.
  const service = systemdNotifier(log);
  const result = await runPush(settings, log, {
    once, giveUpAfterMs: giveUpAfterS * 1000, signal: stopping, service,
    ...(once ? {} : { hangups: onHangup }),
    logLevelFixed: flags.logLevel !== undefined,
  }).finally(() => {
    stopEvents();
    service?.close();
  });
  if (!once) {
    log.info('stopped');
    return ExitCode.ok;
  }
  // Stopped with nothing left (the signal came as the last file was moved): that is a finished run.
  if (result.interrupted && (result.interrupted.waiting > 0 || !result.interrupted.scanned)) {
    const { waiting, scanned } = result.interrupted;
    const files = `${scanned ? '' : 'at least '}${waiting} ${waiting === 1 ? 'file' : 'files'}`;
    log.error({ waiting }, `interrupted: ${files} still waiting (the next run resumes)`);
    return ExitCode.failure;
  }
  // A vessel given up was named with its reason when it happened (one ERROR line): its files are
  // listed here without that reason again, so that one cause is said once, not once per file.
  const givenUp = new Map(result.gaveUp.map((g) => [g.vessel, g.reason]));
  for (const f of result.failures) {
    const own = describe(f.reason);
    // One ERROR per cause: the give-up line was it; the files it left are listed at WARN.
    if (givenUp.get(f.vessel) === own) log.warn({ vessel: f.vessel, file: f.file, reason: 'vessel given up (the reason is logged above)' }, 'not replicated');
    else log.error({ vessel: f.vessel, file: f.file, reason: own }, 'not replicated');
  }
  if (result.failuresNotListed > 0) log.warn({ files: result.failuresNotListed }, `… and ${result.failuresNotListed} more not replicated (contentmonster status lists failed files)`);
  // Shore problems (a Location missing, unreadable or read-only) were said when found.
  const failures = result.failures.length + result.failuresNotListed;
  const failed = failures > 0 || result.gaveUp.length > 0 || result.shoreProblems.length > 0;
  if (failed) log.error({ failures, ...(result.shoreProblems.length ? { locations: result.shoreProblems.length } : {}) }, 'finished with failures');
  else log.info({ failures: 0 }, 'finished: everything processed');
  return failed ? ExitCode.failure : ExitCode.ok;
}
