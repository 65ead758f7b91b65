// Running the real CLI as a child process, the way an operator or systemd would.
//
// Timeouts here are safety nets against hangs (a test should fail with the output in hand, not
// sit until the runner's global timeout); they are never assertions about speed.
import { readFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { onTestExit } from './cleanup.js';
import type { PushEvent, PushEventOf, PushEventType } from '../../src/push/events.js';

/** The built CLI of this checkout (wherever it was cloned). */
export const DEFAULT_CLI = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
const OUTPUT_KEEP = 64 * 1024 * 1024; // a chatty daemon at debug level must not eat all memory
const EVENTS_KEEP = 200_000; // events kept for events() and waits (a soak delivers many files)
/** The child's descriptor for its events (src/push/events.ts): startDaemon's fourth pipe. */
const EVENTS_FD = 3;

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface SpawnOptions {
  /** Merged over process.env; a key set to undefined is removed from the child's environment. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Path of the CLI entry (default dist/main.js). A .ts path runs through tsx. */
  cli?: string;
  /**
   * A command to start the CLI under (e.g. `unshare --user ...`), given node and its arguments
   * after its own: it must exec them in the end, so that the PID and the signals are node's.
   */
  prefix?: string[];
}

// ---------------------------------------------------------------------------------------------
// Leftover children are SIGKILLed when the test process exits, whatever the reason, so a failed
// test never leaves a daemon replicating into the next one.

const liveChildren = new Set<ChildProcess>();

function killLeftovers(): void {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}
onTestExit(killLeftovers);

/** Environment for the child: ours plus overrides, minus the test runner's own marker. */
function childEnv(env: NodeJS.ProcessEnv | undefined): NodeJS.ProcessEnv {
  // NODE_TEST_CONTEXT makes a Node child think it is a test file of our runner; the CLI is not.
  // A runner under a systemd unit must not lend its NOTIFY_SOCKET (and watchdog) to the daemons
  // it starts: they would tell that unit they are ready or stopping. A test gives its own.
  return { ...process.env, NODE_TEST_CONTEXT: undefined, NOTIFY_SOCKET: undefined, WATCHDOG_USEC: undefined, WATCHDOG_PID: undefined, ...env };
}

/**
 * The Node flags of a script's first line (`#!/usr/bin/env -S node FLAGS`): the CLI runs with
 * them when started as a program and from the systemd units, so tests and benchmarks pass them too.
 */
export function shebangFlags(script: string): string[] {
  const first = readFileSync(script, 'utf8').split('\n', 1)[0];
  const m = /^#!\/usr\/bin\/env -S node (.+)$/.exec(first);
  return m ? m[1].trim().split(/\s+/) : [];
}

/** Node arguments to run `cli`: plain for built JS, through tsx's loader for a .ts source. */
function nodeArgs(cli: string, args: string[]): string[] {
  if (!/\.[cm]?ts$/.test(cli)) return [...shebangFlags(cli), cli, ...args];
  // Resolve tsx from this project, not from the child's cwd (often a temp dir without it).
  const loader = createRequire(import.meta.url).resolve('tsx'); // its "." export: dist/loader.mjs
  return ['--import', pathToFileURL(loader).href, cli, ...args];
}

/** `events`: a fourth pipe (fd 3) that the daemon writes its events to (CONTENTMONSTER_EVENTS_FD). */
function spawnCli(args: string[], opts: SpawnOptions, events = false): ChildProcess {
  const command = [...(opts.prefix ?? []), process.execPath, ...nodeArgs(opts.cli ?? DEFAULT_CLI, args)];
  return tracked(spawn(command[0], command.slice(1), {
    // The caller's env comes last: a test may take the variable away.
    env: childEnv(events ? { CONTENTMONSTER_EVENTS_FD: String(EVENTS_FD), ...opts.env } : opts.env),
    cwd: opts.cwd,
    stdio: events ? ['ignore', 'pipe', 'pipe', 'pipe'] : ['ignore', 'pipe', 'pipe'],
  }));
}

/** A child that is SIGKILLed when the test process exits, should it still run then. */
export function tracked(child: ChildProcess): ChildProcess {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  child.once('error', () => liveChildren.delete(child));
  return child;
}

/** Appends to a bounded text buffer, dropping the oldest part when it grows too big. */
function append(buf: string, more: string): string {
  const s = buf + more;
  return s.length > OUTPUT_KEEP ? s.slice(s.length - OUTPUT_KEEP) : s;
}

/**
 * Runs the CLI to completion. Resolves with its exit status and output whatever the exit code
 * (tests assert on it); rejects only when it cannot be started or overruns `timeoutMs`
 * (default 120 s), in which case it is SIGKILLed first.
 */
export function runCli(
  args: string[],
  opts: SpawnOptions & { timeoutMs?: number } = {},
): Promise<RunResult> {
  return outcome(spawnCli(args, opts), `runCli ${args.join(' ')}`, opts.timeoutMs);
}

/**
 * Waits for a started child (stdout and stderr piped) to end and collects its output. The
 * timeout (default 120 s) is a safety net against a hang, never an assertion about time.
 */
export function outcome(child: ChildProcess, what: string, timeoutMs = 120_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout = append(stdout, d)));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr = append(stderr, d)));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what}: no exit after ${timeoutMs} ms (killed)\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // 'close', not 'exit': it comes after the pipes are drained, so no output is lost.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

export interface Daemon {
  pid: number;
  /** stdout+stderr so far, interleaved in arrival order */
  output(): string;
  /** Resolves when the accumulated output matches; rejects with the output on timeout (default
   * 60 s) or when the process exits before a match. For log text a test asserts on; to wait for
   * something the daemon did, waitForEvent. */
  waitForOutput(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /**
   * Resolves with the first event of `type` (since the start, like waitForOutput) that
   * `predicate` accepts; rejects with the output and the events seen on timeout (default 60 s)
   * or when the process exits first. By then the output the daemon wrote before the event is in
   * output() too (it logs synchronously before it emits; the wait ends a turn of the event loop
   * after the event arrives, when both pipes have been read).
   */
  waitForEvent<T extends PushEventType>(type: T, predicate?: (event: PushEventOf<T>) => boolean, timeoutMs?: number): Promise<PushEventOf<T>>;
  /** Every event seen so far (the last 200,000), in order; a batch just read shows a turn later. */
  events(): PushEvent[];
  /** Resolves with the exit status (at once if already exited); rejects on timeout (default
   * 60 s) without killing: the test decides what to do next. */
  waitForExit(timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Sends a signal (default SIGTERM); no-op once exited. */
  kill(signal?: NodeJS.Signals): void;
}

/** Starts the CLI in the background (typically `run`), for tests that watch it work. */
export function startDaemon(args: string[], opts: SpawnOptions = {}): Daemon {
  const child = spawnCli(args, opts, true);
  const eventPipe = child.stdio[EVENTS_FD] as NodeJS.ReadableStream | null;
  // A test that forgets to stop its daemon must not hang the test process; the exit hook above
  // kills it. Every wait below has its own timer, which keeps the loop alive while waiting.
  child.unref();
  for (const s of [child.stdout, child.stderr, eventPipe]) (s as unknown as { unref?: () => void } | null)?.unref?.();
  let out = '';
  let events: PushEvent[] = [];
  let eventsDropped = 0; // events no longer kept: events[i] is event number eventsDropped + i
  // Events a wait may see: those that arrived before the last turn of the event loop (see below).
  let eventsVisible = 0;
  let partialLine = '';
  let exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  let spawnError: Error | null = null;
  const listeners = new Set<() => void>(); // woken on every output chunk and on exit

  const notify = (): void => {
    for (const l of [...listeners]) l();
  };
  const onData = (d: string): void => {
    out = append(out, d);
    notify();
  };
  child.stdout!.setEncoding('utf8').on('data', onData);
  child.stderr!.setEncoding('utf8').on('data', onData);
  eventPipe?.setEncoding('utf8');
  eventPipe?.on('data', (d: string) => {
    const lines = (partialLine + d).split('\n');
    partialLine = lines.pop()!;
    for (const line of lines) {
      if (line.trim() === '') continue;
      try {
        events.push(JSON.parse(line) as PushEvent);
      } catch {
        out = append(out, `[test harness: not an event line on fd ${EVENTS_FD}: ${line}]\n`);
      }
    }
    if (events.length > EVENTS_KEEP) {
      const drop = events.length - EVENTS_KEEP;
      events = events.slice(drop);
      eventsDropped += drop;
    }
    // The daemon logs (synchronously, on stdout) before it emits: a turn of the event loop
    // later, what it logged before these events has been read from its pipe too, and a wait
    // that ends on one of them finds those lines in output().
    const arrived = eventsDropped + events.length;
    setImmediate(() => {
      eventsVisible = Math.max(eventsVisible, arrived);
      notify();
    });
  });
  child.once('error', (err) => {
    spawnError = err;
    exit ??= { code: null, signal: null };
    notify();
  });
  // 'close' (pipes drained) rather than 'exit', so waitForOutput sees the last lines.
  child.once('close', (code, signal) => {
    exit = { code, signal };
    eventsVisible = eventsDropped + events.length;
    notify();
  });

  /** The last events, one JSON line each, for an error message. */
  const eventsText = (): string => events.slice(-200).map((e) => JSON.stringify(e)).join('\n');

  /**
   * Waits until `test` returns a value, re-checking on each output chunk, each batch of events
   * and on exit. `more` adds to the timeout's message.
   */
  function until<T>(test: () => T | undefined, timeoutMs: number, what: string, more: () => string = () => ''): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        let v: T | undefined;
        try {
          v = test();
        } catch (err) {
          finish();
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (v !== undefined) {
          finish();
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`daemon ${child.pid}: timed out after ${timeoutMs} ms waiting for ${what}${more()}\noutput:\n${out}`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      listeners.add(check);
      check();
    });
  }

  return {
    pid: child.pid ?? 0,
    output: () => out,
    waitForOutput(re: RegExp, timeoutMs = 60_000) {
      return until(
        () => {
          // A fresh non-global copy: a /g regex's lastIndex would make repeated checks skip.
          const m = out.match(new RegExp(re.source, re.flags.replace('g', '')));
          if (m) return m;
          if (exit) {
            const how = spawnError ? `failed to start (${spawnError.message})` : `exited (code ${exit.code}, signal ${exit.signal})`;
            throw new Error(`daemon ${child.pid} ${how} before output matched ${re}\noutput:\n${out}`);
          }
          return undefined;
        },
        timeoutMs,
        `output matching ${re}`,
      );
    },
    waitForEvent<T extends PushEventType>(type: T, predicate?: (event: PushEventOf<T>) => boolean, timeoutMs = 60_000) {
      let next = 0; // the number of the next event to look at: each is looked at once
      const what = `event ${type}${predicate ? ` matching ${predicate.toString()}` : ''}`;
      return until(
        () => {
          for (let i = Math.max(next, eventsDropped); i < eventsVisible; i++) {
            const e = events[i - eventsDropped];
            if (e.type === type && (!predicate || predicate(e as PushEventOf<T>))) return e as PushEventOf<T>;
          }
          next = eventsVisible;
          if (exit) {
            const how = spawnError ? `failed to start (${spawnError.message})` : `exited (code ${exit.code}, signal ${exit.signal})`;
            throw new Error(`daemon ${child.pid} ${how} before the ${what}\nevents:\n${eventsText()}\noutput:\n${out}`);
          }
          return undefined;
        },
        timeoutMs,
        what,
        () => `\nevents:\n${eventsText()}`,
      );
    },
    events: () => events.slice(0, Math.max(0, eventsVisible - eventsDropped)),
    waitForExit(timeoutMs = 60_000) {
      return until(() => exit ?? undefined, timeoutMs, 'exit');
    },
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (exit || child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
    },
  };
}

/**
 * Polls `check` every `intervalMs` (default 100) until it returns a truthy value, and returns
 * it. A throwing check counts as "not yet" (e.g. a file not there yet); the last error is in
 * the timeout message. Throws after `timeoutMs` (default 60 s) naming `what`.
 */
export async function waitFor<T>(
  check: () => T | Promise<T>,
  what: string,
  timeoutMs = 60_000,
  intervalMs = 100,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const detail = lastError ? `; last error: ${lastError instanceof Error ? lastError.message : JSON.stringify(lastError)}` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
