// One place that runs the harness's cleanups (kill vessels and daemons, remove temp roots) when
// the test process ends, whatever the reason: a normal exit, an uncaught throw, or a signal.
// 'exit' does not run on a fatal signal, so the usual signals are handled too: cleanups run,
// then the process exits with the conventional status unless someone else listens for it.

const cleanups: (() => void)[] = [];
let ran = false;

function runAll(): void {
  if (ran) return;
  ran = true;
  for (const fn of cleanups) {
    try {
      fn();
    } catch {
      // best effort on the way out
    }
  }
}

process.on('exit', runAll);
for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  const onSignal = (): void => {
    runAll();
    if (process.listenerCount(sig) === 1) process.exit(code);
  };
  process.on(sig, onSignal);
}

/** Registers a synchronous cleanup to run when the test process ends. */
export function onTestExit(fn: () => void): void {
  cleanups.push(fn);
}
