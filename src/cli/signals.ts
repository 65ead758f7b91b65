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
