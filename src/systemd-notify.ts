/**
 * What a `Type=notify` unit hears from the daemon (sd_notify(3)): READY=1 once it is started,
 * STATUS= (the line `systemctl status` shows), WATCHDOG=1 from a timer on the event loop, and
 * STOPPING=1 when a stop begins. Without `$NOTIFY_SOCKET` (not under systemd, or a unit that
 * does not ask) there is no notifier at all, and nothing is sent or run.
 *
 * How the message gets there: `$NOTIFY_SOCKET` is a unix datagram socket, which Node cannot
 * open, so each message is one run of systemd-notify(1) rather than a native addon (an npm
 * package such as `unix-dgram` compiles C++ at every install, on every shore). The sender is
 * then our child, not the main PID: systemd-notify (252) claims its parent's PID, which only a
 * privileged sender may, and otherwise sends as itself; so the units say `NotifyAccess=all`
 * (`main` and `exec` would drop its messages). The race this once had (a sender gone before
 * systemd read its message cannot be traced to the unit, and the message is dropped) is closed
 * on the systemd-notify side since systemd 246: it sends BARRIER=1 after the message and waits
 * until systemd has processed both (at most 5 s), unless told `--no-block`. No `--pid`: it
 * would add MAINPID=, which is ours already.
 *
 * Cost, measured here: spawn() holds the event loop 11-17 ms, the whole round trip (with the
 * barrier) 35-40 ms. A ping every half of WatchdogSec= (30 s for the units' 60) and a STATUS=
 * at most every 5 s (push/report.ts), only when it changed, make that noise. One systemd-notify
 * runs at a time: what comes meanwhile waits and is merged into one message, so a slow manager
 * never piles up processes. A failure (no systemd-notify, a socket nobody reads) is logged once
 * at WARN, then at debug; the daemon carries on either way.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { describe } from './errors.js';
import type { Logger } from './log.js';

/** What the daemon tells its service manager. Every method returns at once and never throws. */
export interface ServiceNotifier {
  /** READY=1 with the first STATUS=; from then on WATCHDOG=1 every half of `$WATCHDOG_USEC`. */
  ready(status: string): void;
  /** STATUS=, only when it differs from the last one sent (and not once stopping). */
  status(line: string): void;
  /** STOPPING=1 (the first call). */
  stopping(): void;
  /** Ends the watchdog pings and hands what is still queued to systemd-notify at once (the process is about to exit). */
  close(): void;
}

export interface NotifierOptions {
  /** Default process.env: `NOTIFY_SOCKET`, `WATCHDOG_USEC`, `WATCHDOG_PID`; the sender gets it too. */
  env?: NodeJS.ProcessEnv;
  /** Default process.pid: the watchdog is ours only when `WATCHDOG_PID` is unset or this. */
  pid?: number;
  /** The sender, given `VAR=VALUE` arguments. @default 'systemd-notify' */
  command?: string;
}

/** A sender still running after this is killed (its barrier gives up after 5 s by itself). */
const SEND_TIMEOUT_MS = 10_000;

/** The notifier for this process; undefined when `$NOTIFY_SOCKET` is not set (nobody listens). */
export function systemdNotifier(log: Logger, options: NotifierOptions = {}): ServiceNotifier | undefined {
  const env = options.env ?? process.env;
  if (!env.NOTIFY_SOCKET) return undefined;
  return new SystemdNotify(log, env, watchdogIntervalMs(env, options.pid ?? process.pid), options.command ?? 'systemd-notify');
}

/**
 * How often to send WATCHDOG=1: half of `$WATCHDOG_USEC` (as sd_watchdog_enabled(3) advises),
 * in ms; undefined when there is no watchdog, or it watches another process (`$WATCHDOG_PID`).
 */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = env.WATCHDOG_USEC ?? '';
  if (!/^\d+$/.test(usec) || Number(usec) === 0) return undefined;
  const watched = env.WATCHDOG_PID;
  if (watched !== undefined && watched !== '' && Number(watched) !== pid) return undefined;
  return Math.max(1, Math.floor(Number(usec) / 2000));
}

/** Field names of one message, in the order they were first set. */
type Message = Map<string, string>;
/** Two of these never share a message: apart, systemd sees them in the order they happened. */
const lifecycle = ['READY', 'STOPPING'];

class SystemdNotify implements ServiceNotifier {
  readonly #log: Logger;
  readonly #env: NodeJS.ProcessEnv;
  readonly #watchdogMs: number | undefined;
  readonly #command: string;
  /** Messages not yet handed to a sender, oldest first. */
  readonly #queue: Message[] = [];
  /** A sender is running (or could not start, and says so on the next turn). */
  #sending = false;
  #watchdog: NodeJS.Timeout | undefined;
  #lastStatus: string | undefined;
  #isReady = false;
  #isStopping = false;
  #closed = false;
  #warned = false;

  constructor(log: Logger, env: NodeJS.ProcessEnv, watchdogMs: number | undefined, command: string) {
    this.#log = log;
    this.#env = env;
    this.#watchdogMs = watchdogMs;
    this.#command = command;
  }

  ready(status: string): void {
    if (this.#isReady || this.#closed) return;
    this.#isReady = true;
    this.#lastStatus = oneLine(status);
    this.#send({ READY: '1', STATUS: this.#lastStatus });
    // From READY=1 on, as systemd does: it arms the watchdog when the start completes, so a
    // long start is TimeoutStartSec='s business, not the watchdog's.
    if (this.#watchdogMs !== undefined) {
      this.#watchdog = setInterval(() => this.#send({ WATCHDOG: '1' }), this.#watchdogMs).unref();
    }
  }

  status(line: string): void {
    const text = oneLine(line);
    if (this.#isStopping || this.#closed || text === this.#lastStatus) return;
    this.#lastStatus = text;
    this.#send({ STATUS: text });
  }

  stopping(): void {
    if (this.#isStopping || this.#closed) return;
    this.#isStopping = true;
    this.#send({ STOPPING: '1', STATUS: 'stopping' });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#watchdog);
    // No waiting for the sender under way: main.ts exits next, and a STOPPING=1 still queued
    // behind a watchdog ping would be lost. A sender outlives us by the time of its barrier.
    for (const message of this.#queue.splice(0)) this.#spawn(message, () => {});
  }

  /** Queues the fields, merged into the last queued message where they can be. */
  #send(fields: Record<string, string>): void {
    if (this.#closed) return;
    const last = this.#queue.at(-1);
    const clash = last && lifecycle.some((k) => k in fields) && lifecycle.some((k) => last.has(k));
    if (last && !clash) for (const [k, v] of Object.entries(fields)) last.set(k, v);
    else this.#queue.push(new Map(Object.entries(fields)));
    this.#next();
  }

  #next(): void {
    if (this.#sending || this.#closed) return;
    const message = this.#queue.shift();
    if (!message) return;
    this.#sending = true;
    this.#spawn(message, () => {
      this.#sending = false;
      this.#next();
    });
  }

  /** Runs one sender; `done` is called once, on a later turn, when it has ended (or could not start). */
  #spawn(message: Message, done: () => void): void {
    const args = [...message].map(([k, v]) => `${k}=${v}`);
    let child: ChildProcess;
    try {
      child = spawn(this.#command, args, { env: this.#env, stdio: ['ignore', 'ignore', 'pipe'], timeout: SEND_TIMEOUT_MS });
    } catch (err) {
      this.#failed(args, describe(err));
      setImmediate(done);
      return;
    }
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < 2000) stderr += d;
    });
    let ended = false;
    const end = (reason: string | undefined) => {
      if (ended) return;
      ended = true;
      if (reason !== undefined) this.#failed(args, reason);
      done();
    };
    // 'error' when it cannot be started (ENOENT), 'close' after it ran and its stderr is read.
    child.once('error', (err) => end(describe(err)));
    child.once('close', (code, signal) => end(code === 0 ? undefined : stderr.trim().split('\n').at(-1) || `${this.#command} ended with ${signal ?? `exit code ${code}`}`));
  }

  #failed(args: string[], reason: string): void {
    const fields = { message: args.map((a) => a.split('=')[0]).join(' '), reason };
    if (this.#warned) {
      this.#log.debug(fields, 'could not notify systemd');
      return;
    }
    this.#warned = true;
    this.#log.warn(fields, 'could not notify systemd (NOTIFY_SOCKET is set): without READY=1 and WATCHDOG=1 it ends the service; later failures are logged at debug');
  }
}

/** STATUS= is one line of the message: a newline would start another variable. */
function oneLine(text: string): string {
  return text.replace(/\s*[\r\n]+\s*/g, ' ');
}
