/**
 * SIGTERM / SIGINT for a command that must stop cleanly: the first signal aborts the returned
 * signal (work winds down, partial transfers are kept); whatever still runs after
 * HARD_STOP_MS, the process exits anyway (0, or `hardExitCode`), within the 10 s systemd units allow for.
 */
import { ExitCode } from '../errors.js';
import type { Logger } from '../log.js';

/** After the first signal, the process is gone within this bound whatever is still running. */
export const HARD_STOP_MS = 9500;

export function stopOnSignals(log: Logger, messages: { stopping: string; tooLong: string }, hardExitCode: number = ExitCode.ok): AbortSignal {
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.signal.aborted) return;
    log.info({ signal }, messages.stopping);
    stop.abort();
    setTimeout(() => {
      log.warn(messages.tooLong);
      process.exit(hardExitCode);
    }, HARD_STOP_MS).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return stop.signal;
}

/**
 * SIGHUP (`systemctl reload`): each one calls the handler of the moment (the daemon's reload),
 * or, while there is none (`--once`, the start, the stop), is said and ignored. Either way the
 * process lives on: Node's default for SIGHUP is to end it, which a daemon must never do.
 * Returns the subscribe function the daemon takes (see PushOptions.hangups).
 */
export function hangups(log: Logger, whenNone: string): (onHangup: () => void) => () => void {
  let handler: (() => void) | undefined;
  process.on('SIGHUP', () => {
    if (handler) handler();
    else log.info({ signal: 'SIGHUP' }, whenNone);
  });
  return (onHangup) => {
    handler = onHangup;
    return () => {
      if (handler === onHangup) handler = undefined;
    };
  };
}
