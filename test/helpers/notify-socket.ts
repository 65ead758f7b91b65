// systemd's end of $NOTIFY_SOCKET, for tests: a unix datagram socket that records every message
// it receives. Node cannot open a unix datagram socket, so a small python3 program (the one from
// /usr/bin: python3-minimal has the socket module built in; a pyenv shim on the PATH would be
// slow and may lack it) binds it and appends each datagram to a file, one line each.
//
// Like systemd, it answers BARRIER=1 (what systemd-notify sends after its message and then waits
// on): the file descriptor that comes with it is not taken (recv without room for it), so the
// kernel closes it and the sender's wait ends. Those messages are recorded too.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onTestExit } from './cleanup.js';
import { tracked, waitFor } from './process.js';

export const PYTHON = '/usr/bin/python3';

const LISTENER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
out = open(sys.argv[2], 'ab', buffering=0)
print('listening', flush=True)
while True:
    data = s.recv(65536)
    out.write(data.replace(b'\\\\', b'\\\\\\\\').replace(b'\\n', b'\\\\n') + b'\\n')
`;

/** One datagram: its VAR=VALUE lines, in order. */
export type NotifyMessage = [string, string][];

export interface NotifyListener {
  /** The socket's path: the child's NOTIFY_SOCKET. */
  path: string;
  /** Every message received so far, in order. */
  messages(): NotifyMessage[];
  /** Waits (polling; default 60 s, a safety net) until `check` accepts the messages so far. */
  waitFor(check: (messages: NotifyMessage[]) => boolean, what: string, timeoutMs?: number): Promise<NotifyMessage[]>;
  stop(): Promise<void>;
}

/** `VAR` of a message, or undefined. */
export function field(m: NotifyMessage, name: string): string | undefined {
  return m.find(([k]) => k === name)?.[1];
}

export async function startNotifyListener(): Promise<NotifyListener> {
  if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: the NOTIFY_SOCKET listener needs it (.ci/run installs python3-minimal)`);
  const dir = mkdtempSync(join(tmpdir(), 'cm-notify-'));
  const path = join(dir, 'notify.sock');
  const log = join(dir, 'messages');
  const child = tracked(spawn(PYTHON, ['-c', LISTENER, path, log], { stdio: ['ignore', 'pipe', 'pipe'] }));
  const removeDir = () => rmSync(dir, { recursive: true, force: true });
  onTestExit(removeDir);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
  await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`the listener exited ${child.exitCode}: ${output}`);
    return output.includes('listening');
  }, 'the NOTIFY_SOCKET listener', 30_000, 20).catch((err: Error) => {
    child.kill('SIGKILL');
    throw new Error(`${err.message}\n${output}`);
  });

  const messages = (): NotifyMessage[] => {
    let text = '';
    try {
      text = readFileSync(log, 'utf8');
    } catch {
      return []; // nothing received yet
    }
    // Only whole lines: the last one may be half written.
    return text.split('\n').slice(0, -1).map((line) =>
      line.replace(/\\(\\|n)/g, (_, c: string) => (c === 'n' ? '\n' : '\\')).split('\n').filter((l) => l !== '').map((l): [string, string] => {
        const eq = l.indexOf('=');
        return eq < 0 ? [l, ''] : [l.slice(0, eq), l.slice(eq + 1)];
      }));
  };

  return {
    path,
    messages,
    async waitFor(check, what, timeoutMs = 60_000) {
      return waitFor(() => {
        const m = messages();
        return check(m) ? m : undefined;
      }, what, timeoutMs, 50).catch((err: Error) => {
        const seen = messages().map((m) => m.map(([k, v]) => `${k}=${v}`).join(' '));
        throw new Error(`${err.message}\nNOTIFY_SOCKET messages so far:\n${seen.join('\n')}`);
      });
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await gone;
      }
      removeDir();
    },
  };
}
