/**
 * A vessel connection in an SSH thread (see ssh-threads.ts): SshThread is the main thread's
 * handle on one worker thread (ssh-thread.ts), and ThreadedConnection the push code's stand-in
 * for an SftpConnection there. Each RemoteFs request crosses as a message and comes back as its
 * answer, its error (rebuilt as its class: wire-errors.ts) or the connection's end. The host key
 * is judged here, where the state database is.
 *
 * A thread that dies (an uncaught error, process.exit, out of memory) fails its connections
 * with a TransientError, as a cut link would: the vessel workers reconnect (in a new thread),
 * and whatever was in flight is proven again or sent again.
 *
 * Write data crosses in plain memory, copied once into a buffer that is moved to the thread and
 * moved back with the answer (reused then): RemoteFs.write lets the caller reuse `data` as soon
 * as it returns, and shared memory would be no cheaper (V8 copies out of a SharedArrayBuffer
 * into ssh2's unaligned packet about ten times slower than out of plain memory).
 */
import { Worker } from 'node:worker_threads';
import { TransientError } from '../errors.js';
import type { ConnectOptions, Endpoint } from './connect.js';
import { ConnectionEnd } from './connection-end.js';
import { judgeHostKey } from './host-key.js';
import type { ExecResult, OpenFlags, RemoteLineService, RemoteProcess, RemoteStat, VesselConnection } from './remote-fs.js';
import type { FromThread, ServiceState, ToThread } from './thread-protocol.js';
import { fromWire } from './wire-errors.js';

/** Bytes of write buffers an SshThread keeps for reuse (the windows of several transfers). */
const SPARE_BYTES = 16 * 1024 * 1024;

interface Opening {
  options: ConnectOptions;
  resolve(c: ThreadedConnection): void;
  reject(err: Error): void;
}

interface Request {
  connection: ThreadedConnection;
  resolve(value: unknown): void;
  reject(err: Error): void;
  service?: (state: ServiceState) => void;
}

let nextId = 1;
let nextReq = 1;

export class SshThread {
  readonly #worker: Worker;
  dead = false;
  /** Connections open or opening: while there are any, the thread keeps the process alive. */
  #live = 0;
  readonly #opening = new Map<number, Opening>();
  readonly #connections = new Map<number, ThreadedConnection>();
  readonly #requests = new Map<number, Request>();
  /** Write buffers back from the thread, by size (see the module comment). */
  readonly #spare = new Map<number, ArrayBuffer[]>();
  #spareBytes = 0;

  constructor() {
    const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
    this.#worker = new Worker(new URL(`./ssh-thread${ext}`, import.meta.url));
    this.#worker.unref();
    this.#worker.on('message', (m: FromThread) => this.#heard(m));
    this.#worker.on('error', (err) => this.#died(`failed: ${err.message}`, err));
    this.#worker.on('exit', (code) => this.#died(`ended (exit code ${code})`));
  }

  /** A buffer of `size` bytes to move to the thread. */
  writeBuffer(size: number): ArrayBuffer {
    const ab = this.#spare.get(size)?.pop();
    if (!ab) return new ArrayBuffer(size);
    this.#spareBytes -= size;
    return ab;
  }

  #giveBack(ab: ArrayBuffer): void {
    if (this.#spareBytes + ab.byteLength > SPARE_BYTES) return;
    const list = this.#spare.get(ab.byteLength) ?? [];
    list.push(ab);
    this.#spare.set(ab.byteLength, list);
    this.#spareBytes += ab.byteLength;
  }

  post(m: ToThread, transfer?: ArrayBuffer[]): void {
    if (!this.dead) this.#worker.postMessage(m, transfer);
  }

  #hold(n: 1 | -1): void {
    this.#live += n;
    if (this.#live === 1 && n === 1) this.#worker.ref();
    if (this.#live === 0) this.#worker.unref();
  }

  open(options: ConnectOptions): Promise<ThreadedConnection> {
    if (this.dead) return Promise.reject(new TransientError(`SSH thread of ${options.endpoint.label} gone`, { vessel: options.endpoint.name }));
    const id = nextId++;
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(new TransientError(`connection to ${options.endpoint.label} given up while connecting`, { vessel: options.endpoint.name }));
    const abort = () => this.post({ t: 'disconnect', id });
    signal?.addEventListener('abort', abort, { once: true });
    this.#hold(1);
    return new Promise<ThreadedConnection>((resolve, reject) => {
      this.#opening.set(id, { options, resolve, reject });
      this.post({ t: 'open', id, endpoint: plainEndpoint(options.endpoint) });
    }).finally(() => signal?.removeEventListener('abort', abort));
  }

  /** A request to the thread; `transfer` moves those buffers there. */
  call<T>(connection: ThreadedConnection, op: string, args: unknown[], transfer?: ArrayBuffer[], service?: Request['service']): Promise<T> {
    const req = nextReq++;
    return new Promise<T>((resolve, reject) => {
      this.#requests.set(req, { connection, resolve, reject, service });
      connection.pending.add(req);
      this.post({ t: 'call', id: connection.id, req, op, args }, transfer);
    });
  }

  /** The connection died or was dropped: its requests fail with `err`, the thread lets go of it. */
  ended(connection: ThreadedConnection, err: Error): void {
    if (!this.#connections.delete(connection.id)) return;
    this.post({ t: 'disconnect', id: connection.id });
    for (const req of connection.pending) {
      const r = this.#requests.get(req);
      this.#requests.delete(req);
      r?.reject(err);
    }
    connection.pending.clear();
    this.#hold(-1);
  }

  #heard(m: FromThread): void {
    switch (m.t) {
      case 'hostKey': {
        const o = this.#opening.get(m.id)?.options;
        if (!o) return;
        const e = o.endpoint;
        const verdict = judgeHostKey(e.label, m.host, m.fingerprint, e.hostKey, o.hostKeys, e.hostKeySetting);
        o.onHostKey?.(m.fingerprint, verdict);
        this.post({ t: 'verdict', question: m.question, verdict });
        return;
      }
      case 'opened': {
        const o = this.#opening.get(m.id);
        if (!o) return;
        this.#opening.delete(m.id);
        const connection = new ThreadedConnection(this, m.id, o.options.endpoint, m.maxWriteLength);
        this.#connections.set(m.id, connection);
        o.resolve(connection);
        return;
      }
      case 'openFailed': {
        const o = this.#opening.get(m.id);
        if (!o) return;
        this.#opening.delete(m.id);
        this.#hold(-1);
        o.reject(fromWire(m.error));
        return;
      }
      case 'closed':
        this.#connections.get(m.id)?.fail(fromWire(m.error));
        return;
      case 'reply': {
        const r = this.#requests.get(m.req);
        if (m.returned) this.#giveBack(m.returned);
        if (!r) return; // its connection ended first
        this.#requests.delete(m.req);
        r.connection.pending.delete(m.req);
        if (m.service) r.service?.(m.service);
        if (m.ok) r.resolve(m.value);
        else r.reject(fromWire(m.error));
        return;
      }
    }
  }

  /** The thread is gone: its connections fail as if their links were cut (see the module comment). */
  #died(why: string, cause?: Error): void {
    if (this.dead) return;
    this.dead = true;
    const lost = (vessel: string, label: string) => new TransientError(`SSH thread of ${label} ${why}`, { vessel, cause });
    for (const o of this.#opening.values()) o.reject(lost(o.options.endpoint.name, o.options.endpoint.label));
    this.#opening.clear();
    for (const c of [...this.#connections.values()]) c.fail(lost(c.vessel, c.label));
    this.#live = 0;
    this.#spare.clear();
  }
}

/** What crosses to the thread: the endpoint's data (it holds nothing else, but a caller's object might). */
function plainEndpoint(e: Endpoint): Endpoint {
  return JSON.parse(JSON.stringify(e)) as Endpoint;
}

/** A Buffer over an answer that arrived as a Uint8Array; no copy. */
function asBuffer(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** A buffer that owns all of its memory crosses as it is; a view of a larger one as a copy of itself only. */
function small(b: Buffer): Uint8Array {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength ? b : new Uint8Array(b);
}

/** The main thread's stand-in for an SftpConnection in an SSH thread. */
export class ThreadedConnection implements VesselConnection {
  readonly vessel: string;
  readonly maxWriteLength: number;
  /** Requests in flight (see SshThread.call). */
  readonly pending = new Set<number>();
  readonly #thread: SshThread;
  readonly label: string;
  readonly #end = new ConnectionEnd();

  constructor(thread: SshThread, readonly id: number, endpoint: Endpoint, maxWriteLength: number) {
    this.#thread = thread;
    this.vessel = endpoint.name;
    this.label = endpoint.label;
    this.maxWriteLength = maxWriteLength;
  }

  get closed(): boolean {
    return this.#end.reason !== undefined;
  }

  onClose(listener: (err: Error) => void): () => void {
    return this.#end.listen(listener);
  }

  /** The connection died (said by the thread, or dropped here): listeners first, then the requests, as SftpConnection does. */
  fail(err: Error): void {
    if (this.#end.end(err)) this.#thread.ended(this, err);
  }

  disconnect(reason = 'closed by contentmonster'): void {
    this.fail(new TransientError(`connection to ${this.label} ${reason}`, { vessel: this.vessel }));
  }

  #call<T>(op: string, args: unknown[], transfer?: ArrayBuffer[], service?: Request['service']): Promise<T> {
    if (this.#end.reason) return Promise.reject(this.#end.reason);
    return this.#thread.call<T>(this, op, args, transfer, service);
  }

  write(handle: Buffer, data: Buffer, position: number): Promise<void> {
    // Copied here: the caller may reuse `data` once this returns (see the module comment).
    const copy = new Uint8Array(this.#thread.writeBuffer(data.length));
    copy.set(data);
    return this.#call('write', [small(handle), copy, position], [copy.buffer]);
  }

  open(path: string, flags: OpenFlags): Promise<Buffer> {
    return this.#call<Uint8Array>('open', [path, flags]).then(asBuffer);
  }

  close(handle: Buffer): Promise<void> {
    return this.#call('close', [small(handle)]);
  }

  stat(path: string): Promise<RemoteStat | null> {
    return this.#call('stat', [path]);
  }

  setstat(path: string, attrs: { mode: number; mtime?: number }): Promise<void> {
    return this.#call('setstat', [path, attrs]);
  }

  mkdir(path: string): Promise<void> {
    return this.#call('mkdir', [path]);
  }

  mkdirp(path: string): Promise<void> {
    return this.#call('mkdirp', [path]);
  }

  rename(from: string, to: string): Promise<void> {
    return this.#call('rename', [from, to]);
  }

  remove(path: string): Promise<void> {
    return this.#call('remove', [path]);
  }

  exec(command: string, timeoutMs?: number): Promise<ExecResult> {
    return this.#call('exec', [command, timeoutMs]);
  }

  async spawn(command: string): Promise<RemoteProcess> {
    const child = await this.#call<number>('spawn', [command]);
    return {
      write: (text) => this.#thread.post({ t: 'proc', id: this.id, child, op: 'write', text }),
      end: () => this.#thread.post({ t: 'proc', id: this.id, child, op: 'end' }),
      result: (timeoutMs) => this.#call<ExecResult>('result', [child, timeoutMs]),
    };
  }

  async startLineService(command: string): Promise<RemoteLineService> {
    const child = await this.#call<number>('startLineService', [command]);
    let answered = false;
    let ended = false;
    this.onClose(() => {
      ended = true;
    });
    const heard = (s: ServiceState) => {
      answered ||= s.answered;
      ended ||= s.ended;
    };
    return {
      get answered() { return answered; },
      get ended() { return ended; },
      close: () => {
        ended = true;
        this.#thread.post({ t: 'serviceClose', id: this.id, child });
      },
      ask: (line, timeoutMs) => (ended ? Promise.reject(new TransientError('stopped')) : this.#call<string>('ask', [child, line, timeoutMs], undefined, heard)),
    };
  }
}
