/**
 * An SSH thread: the SftpConnections of the vessels the main thread gave it, run here so that
 * ssh2's encryption and framing of one vessel do not take the core that another vessel (or the
 * upload logic) needs. The protocol is threaded-connection.ts's; nothing here decides anything
 * the main thread would: the host key is judged there (the state database lives there), and
 * every request is one the main thread's upload code made.
 */
import { parentPort } from 'node:worker_threads';
import { TransientError } from '../errors.js';
import type { Endpoint } from './connect.js';
import { SftpConnection } from './connection.js';
import type { HostKeyVerdict } from './host-key.js';
import type { RemoteLineService, RemoteProcess } from './remote-fs.js';
import type { FromThread, ToThread } from './thread-protocol.js';
import { toWire } from './wire-errors.js';

const port = parentPort!;
const post = (m: FromThread, transfer?: ArrayBuffer[]) => port.postMessage(m, transfer);

interface Held {
  connection?: SftpConnection;
  opening?: AbortController;
  /** Its remote commands and line services, by the number the main thread knows them by. */
  procs: Map<number, RemoteProcess>;
  services: Map<number, RemoteLineService>;
}

const held = new Map<number, Held>();
/** Host-key verdicts asked of the main thread, by question. */
const verdicts = new Map<number, (verdict: HostKeyVerdict) => void>();
let nextQuestion = 1;
let nextChild = 1;

/** A Buffer over what arrived as a Uint8Array; no copy. */
function buf(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** A copy with an ArrayBuffer of its own: cloning a view of a larger buffer would copy all of it. */
function own(b: Buffer): Uint8Array {
  return new Uint8Array(b);
}

/**
 * Test only (see push/failpoint.ts): with CONTENTMONSTER_FAILPOINT=ssh-thread-write the thread
 * ends itself (process.exit ends only this thread) once it has written 4 MiB, and with
 * `ssh-thread-write:throw` it throws an error nothing catches, as a bug would; every thread
 * does, so a transfer survives several deaths.
 */
const FAILPOINT_BYTES = 4 * 1024 * 1024;
const failpointWanted = process.env.CONTENTMONSTER_FAILPOINT?.startsWith('ssh-thread-write') ? process.env.CONTENTMONSTER_FAILPOINT : undefined;
let written = 0;
function failpointAfterWrite(bytes: number): void {
  if (!failpointWanted) return;
  written += bytes;
  if (written < FAILPOINT_BYTES) return;
  if (failpointWanted === 'ssh-thread-write:throw') setImmediate(() => { throw new TypeError('failpoint ssh-thread-write: a bug stands in here'); });
  else process.exit(70);
}

async function open(id: number, endpoint: Endpoint): Promise<void> {
  const entry: Held = { opening: new AbortController(), procs: new Map(), services: new Map() };
  held.set(id, entry);
  try {
    const connection = await SftpConnection.open({
      endpoint,
      hostKeys: { hostKey: () => undefined, recordHostKey: () => {} }, // unused: verifyHostKey decides
      signal: entry.opening!.signal,
      verifyHostKey: (fingerprint, host) => new Promise((resolve) => {
        const question = nextQuestion++;
        verdicts.set(question, resolve);
        post({ t: 'hostKey', id, question, fingerprint, host });
      }),
    });
    entry.opening = undefined;
    if (!held.has(id)) {
      // Given up while the login finished: the main thread still waits for an answer.
      connection.disconnect('closed: stopping');
      post({ t: 'openFailed', id, error: toWire(new TransientError(`connection to ${endpoint.label} given up while connecting`, { vessel: endpoint.name })) });
      return;
    }
    entry.connection = connection;
    post({ t: 'opened', id, maxWriteLength: connection.maxWriteLength });
    connection.onClose((err) => post({ t: 'closed', id, error: toWire(err) }));
  } catch (err) {
    held.delete(id);
    post({ t: 'openFailed', id, error: toWire(err) });
  }
}

function call(entry: Held, op: string, args: unknown[]): Promise<unknown> {
  const c = entry.connection;
  if (!c) return Promise.reject(new TransientError('connection not open'));
  switch (op) {
    case 'write': return c.write(buf(args[0] as Uint8Array), buf(args[1] as Uint8Array), args[2] as number);
    case 'open': return c.open(args[0] as string, args[1] as 'w').then(own);
    case 'close': return c.close(buf(args[0] as Uint8Array));
    case 'stat': return c.stat(args[0] as string);
    case 'setstat': return c.setstat(args[0] as string, args[1] as { mode: number; mtime?: number });
    case 'mkdir': return c.mkdir(args[0] as string);
    case 'mkdirp': return c.mkdirp(args[0] as string);
    case 'rename': return c.rename(args[0] as string, args[1] as string);
    case 'remove': return c.remove(args[0] as string);
    case 'exec': return c.exec(args[0] as string, args[1] as number | undefined);
    case 'spawn': return c.spawn(args[0] as string).then((p) => {
      const child = nextChild++;
      entry.procs.set(child, p);
      return child;
    });
    case 'result': {
      const p = entry.procs.get(args[0] as number);
      if (!p) return Promise.reject(new TransientError('remote command unknown'));
      return p.result(args[1] as number).finally(() => entry.procs.delete(args[0] as number));
    }
    case 'startLineService': return c.startLineService(args[0] as string).then((s) => {
      const child = nextChild++;
      entry.services.set(child, s);
      return child;
    });
    case 'ask': {
      const s = entry.services.get(args[0] as number);
      if (!s) return Promise.reject(new TransientError('stopped'));
      return s.ask(args[1] as string, args[2] as number);
    }
    default: return Promise.reject(new Error(`unknown request ${op}`));
  }
}

port.on('message', (m: ToThread) => {
  switch (m.t) {
    case 'open':
      void open(m.id, m.endpoint);
      return;
    case 'verdict':
      verdicts.get(m.question)?.(m.verdict);
      verdicts.delete(m.question);
      return;
    case 'call': {
      const entry = held.get(m.id);
      // A write's buffer goes back with the answer, for the main thread to reuse: ssh2 copied
      // its bytes into the packet before write() returned.
      const returned = m.op === 'write' ? (m.args[1] as Uint8Array).buffer as ArrayBuffer : undefined;
      if (returned) failpointAfterWrite(returned.byteLength);
      const settle = (reply: FromThread) => (returned ? post({ ...reply, returned } as FromThread, [returned]) : post(reply));
      const service = m.op === 'ask' ? () => entry?.services.get(m.args[0] as number) : undefined;
      const state = () => {
        const s = service?.();
        return s ? { answered: s.answered, ended: s.ended } : { answered: false, ended: true };
      };
      (entry ? call(entry, m.op, m.args) : Promise.reject(new TransientError('connection closed'))).then(
        (value) => settle({ t: 'reply', req: m.req, ok: true, value, ...(service ? { service: state() } : {}) }),
        (err: unknown) => settle({ t: 'reply', req: m.req, ok: false, error: toWire(err), ...(service ? { service: state() } : {}) }),
      );
      return;
    }
    case 'proc': {
      const p = held.get(m.id)?.procs.get(m.child);
      if (m.op === 'write') p?.write(m.text!);
      else p?.end();
      return;
    }
    case 'serviceClose': {
      const entry = held.get(m.id);
      entry?.services.get(m.child)?.close();
      entry?.services.delete(m.child);
      return;
    }
    case 'disconnect': {
      const entry = held.get(m.id);
      held.delete(m.id);
      entry?.opening?.abort();
      entry?.connection?.disconnect(m.reason);
      return;
    }
  }
});
