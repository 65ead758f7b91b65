/**
 * One SSH connection to a vessel with its SFTP session, wrapped in promises that never hang.
 *
 * ssh2 has no per-request timeout, and its keepalive counts pings that queue behind data
 * already sent, so on a slow link it would kill a healthy connection. Liveness here is simpler:
 * while any SFTP request or remote command is outstanding, some bytes must arrive from the
 * vessel within `Timeout`; otherwise the link is stalled and the whole connection is torn down,
 * every request in flight fails with a TransientError, and the vessel worker reconnects. On a
 * slow link, answers keep trickling in and nothing is cut; during a long remote command
 * (joining and hashing a large file) a cheap SFTP probe keeps bytes coming.
 *
 * Opening one (socket, handshake, host key, login) is connect.ts; what callers may rely on is
 * remote-fs.ts; what a failed request means is sftp-errors.ts.
 */
import type { Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { Client, ClientChannel, FileEntryWithStats, SFTPWrapper, Stats } from 'ssh2';
import { CommandsRefusedError, RenameUnsupported, TransientError, classify } from '../errors.js';
import { connect, type ConnectOptions, type Endpoint } from './connect.js';
import { ConnectionEnd } from './connection-end.js';
import { carried } from './quote.js';
import type { EntryKind, ExecResult, OpenFlags, RemoteEntry, RemoteFs, RemoteLineService, RemoteProcess, RemoteReader, RemoteStat } from './remote-fs.js';
import { isNoSuchFile, requestError } from './sftp-errors.js';
import { youngGc } from './young-gc.js';

// OpenSSH allows 10 sessions per connection (MaxSessions); the SFTP session is one of them.
const MAX_EXECS = 8;

/** SFTP open flags: ssh2's flag strings have no "create, do not truncate". */
const WRITE_CREATE = ssh2.utils.sftp.OPEN_MODE.WRITE | ssh2.utils.sftp.OPEN_MODE.CREAT;
/**
 * The mode files are created with (the server's umask applies too): chunks and hidden copies
 * hold the content of files that may be confidential, and get their shore mode only before
 * they are placed (see setstat).
 */
const CREATE_MODE = 0o600;

/** Bytes of a remote command's stderr kept for its result. */
const STDERR_KEPT = 64 * 1024;

export class SftpConnection implements RemoteFs, RemoteReader {
  /** The endpoint's name: a vessel's name, or the server when mirroring. */
  readonly vessel: string;
  readonly #label: string;
  readonly maxWriteLength: number;
  readonly maxReadLength: number;
  readonly #client: Client;
  readonly #sftp: SFTPWrapper;
  readonly #timeoutMs: number;
  readonly #end = new ConnectionEnd();
  #execsRunning = 0;
  #execWaiters: (() => void)[] = [];
  #sftpPending = 0;
  /** Questions to line services not answered yet. */
  #questionsPending = 0;
  /** When the last byte came from the vessel, or when work started after a quiet time. */
  #lastHeard = Date.now();
  #lastProbe = 0;
  readonly #stallWatch: NodeJS.Timeout;

  private constructor(endpoint: Endpoint, client: Client, sftp: SFTPWrapper, timeoutMs: number, socket: Socket) {
    const vessel = endpoint.name;
    this.vessel = vessel;
    this.#label = endpoint.label;
    this.#client = client;
    this.#sftp = sftp;
    this.#timeoutMs = timeoutMs;
    // ssh2 has paused the socket and attached its own reader; one more listener only observes.
    socket.on('data', () => {
      this.#lastHeard = Date.now();
    });
    // ssh2 learns the server's limits (limits@openssh.com) but does not export them.
    const limits = sftp as unknown as { _maxWriteLen?: number; _maxReadLen?: number };
    this.maxWriteLength = Math.max(1024, Math.min(limits._maxWriteLen ?? 32_768, 256 * 1024));
    this.maxReadLength = Math.max(1024, Math.min(limits._maxReadLen ?? 32_768, 256 * 1024));
    client.on('close', () => this.#fail(new TransientError(`connection to ${endpoint.label} closed`, { vessel })));
    client.on('error', (err) => this.#fail(classify(err, { vessel })));
    // The SFTP server process can die while SSH stays up: that connection is of no more use.
    sftp.on('close', () => this.disconnect('lost its SFTP session'));
    this.#stallWatch = setInterval(() => this.#checkStall(), Math.min(1000, timeoutMs / 4)).unref();
  }

  get #outstanding(): number {
    return this.#sftpPending + this.#execsRunning + this.#questionsPending;
  }

  /** Work is starting: if the connection was idle, the quiet time counts from now. */
  #busy(): void {
    if (this.#outstanding === 0) this.#lastHeard = Date.now();
  }

  #checkStall(): void {
    if (this.#outstanding === 0) return;
    const now = Date.now();
    if (now - this.#lastHeard >= this.#timeoutMs) {
      this.disconnect(`stalled: nothing received for ${this.#timeoutMs / 1000} s`);
      return;
    }
    // A remote command that prints nothing until it ends must not look like a dead link.
    if (this.#execsRunning + this.#questionsPending > 0 && this.#sftpPending === 0 && now - this.#lastProbe >= this.#timeoutMs / 3) {
      this.#lastProbe = now;
      this.stat('/').catch(() => {});
    }
  }

  /** Connects and logs in (see connect.ts); rejects with what went wrong, as connect says it. */
  static async open(options: ConnectOptions): Promise<SftpConnection> {
    const { client, sftp, socket } = await connect(options);
    return new SftpConnection(options.endpoint, client, sftp, options.endpoint.timeoutS * 1000, socket);
  }

  get closed(): boolean {
    return this.#end.reason !== undefined;
  }

  /** Called once with the reason when the connection dies. */
  onClose(listener: (err: Error) => void): () => void {
    return this.#end.listen(listener);
  }

  #fail(err: Error): void {
    this.#end.end(err, () => {
      clearInterval(this.#stallWatch);
      this.#client.destroy();
    });
  }

  /** Tears the connection down; every pending request fails. */
  disconnect(reason = 'closed by contentmonster'): void {
    this.#fail(new TransientError(`connection to ${this.#label} ${reason}`, { vessel: this.vessel }));
  }

  /**
   * Runs one SFTP request, counted for the stall watch. When the connection dies, the request
   * fails at once (ssh2 does not always call back requests in flight on a cut link).
   */
  #request<T>(what: string, path: string, start: (cb: (err: Error | null | undefined, value?: T) => void) => void): Promise<T> {
    if (this.#end.reason) return Promise.reject(this.#end.reason);
    this.#busy();
    this.#sftpPending++;
    return new Promise<T>((resolve, reject) => {
      const off = this.onClose(reject);
      start((err, value) => {
        off();
        if (err) reject(requestError(err, what, this.vessel, path));
        else resolve(value as T);
      });
    }).finally(() => {
      this.#sftpPending--;
    });
  }

  async stat(path: string): Promise<RemoteStat | null> {
    try {
      const st = await this.#request<Stats>('stat', path, (cb) => this.#sftp.lstat(path, cb));
      return { size: st.size, isFile: st.isFile(), isDirectory: st.isDirectory() };
    } catch (err) {
      if (isNoSuchFile(err)) return null;
      throw err;
    }
  }

  readdir(path: string): Promise<RemoteEntry[]> {
    return this.#request<FileEntryWithStats[]>('readdir', path, (cb) => this.#sftp.readdir(path, cb))
      .then((list) => list.map((e) => entryOf(e.filename, e.attrs)));
  }

  async statFollow(path: string): Promise<RemoteEntry | null> {
    try {
      const st = await this.#request<Stats>('stat', path, (cb) => this.#sftp.stat(path, cb));
      return entryOf(path.slice(path.lastIndexOf('/') + 1), st);
    } catch (err) {
      if (isNoSuchFile(err)) return null;
      throw err;
    }
  }

  openRead(path: string): Promise<Buffer> {
    return this.#request<Buffer>('open', path, (cb) => this.#sftp.open(path, 'r', cb));
  }

  fstat(handle: Buffer): Promise<{ size: number; mtime: number }> {
    return this.#request<Stats>('fstat', '', (cb) => this.#sftp.fstat(handle, cb)).then((st) => ({ size: st.size, mtime: st.mtime }));
  }

  read(handle: Buffer, position: number, length: number, into?: Buffer): Promise<Buffer> {
    const buffer = into ?? Buffer.allocUnsafe(length);
    youngGc.note(length);
    return this.#request<Buffer>('read', '', (cb) => this.#sftp.read(handle, buffer, 0, length, position, (err, bytesRead) => {
      cb(err, buffer.subarray(0, err ? 0 : bytesRead));
    }));
  }

  open(path: string, flags: OpenFlags): Promise<Buffer> {
    return this.#request<Buffer>('open', path, (cb) => this.#sftp.open(path, flags === 'keep' ? WRITE_CREATE : flags, CREATE_MODE, cb));
  }

  setstat(path: string, attrs: { mode: number; mtime?: number }): Promise<void> {
    const times = attrs.mtime === undefined ? {} : { atime: attrs.mtime, mtime: attrs.mtime };
    return this.#request<void>('setstat', path, (cb) => this.#sftp.setstat(path, { mode: attrs.mode, ...times }, (err) => cb(err)));
  }

  write(handle: Buffer, data: Buffer, position: number): Promise<void> {
    youngGc.note(data.length);
    // ssh2 copies the bytes of a request into its packet before write() returns, which lets
    // the caller reuse `data` at once (see RemoteFs.write); a write longer than the server's
    // limit it splits, and sends the rest later from `data`: that one gets a copy of its own.
    const limit = (this.#sftp as unknown as { _maxWriteLen?: number })._maxWriteLen ?? 0;
    const bytes = data.length <= limit ? data : Buffer.from(data);
    return this.#request<void>('write', '', (cb) => this.#sftp.write(handle, bytes, 0, bytes.length, position, (err) => cb(err)));
  }

  close(handle: Buffer): Promise<void> {
    return this.#request<void>('close', '', (cb) => this.#sftp.close(handle, (err) => cb(err)));
  }

  rename(from: string, to: string): Promise<void> {
    return this.#request<void>('rename', to, (cb) => {
      try {
        this.#sftp.ext_openssh_rename(from, to, (err) => cb(err));
      } catch {
        // ssh2 throws at once when the server did not advertise the extension.
        cb(new RenameUnsupported('the server has no posix-rename@openssh.com'));
      }
    });
  }

  remove(path: string): Promise<void> {
    return this.#request<void>('remove', path, (cb) => this.#sftp.unlink(path, (err) => cb(err)));
  }

  mkdir(path: string): Promise<void> {
    return this.#request<void>('mkdir', path, (cb) => this.#sftp.mkdir(path, (err) => cb(err)));
  }

  async mkdirp(path: string): Promise<void> {
    const st = await this.stat(path);
    if (st?.isDirectory) return;
    const parent = path.slice(0, path.lastIndexOf('/'));
    if (parent && parent !== path) await this.mkdirp(parent);
    try {
      await this.mkdir(path);
    } catch (err) {
      // Another file's upload may have created it meanwhile.
      if (!(await this.stat(path))?.isDirectory) throw err;
    }
  }

  async exec(command: string, timeoutMs = this.#timeoutMs): Promise<ExecResult> {
    const process = await this.spawn(command);
    process.end();
    return process.result(timeoutMs);
  }

  async spawn(command: string): Promise<RemoteProcess> {
    await this.#execSlot();
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.#execsRunning--;
      this.#execWaiters.shift()?.();
    };
    try {
      const { stream, exited } = await this.#start(command);
      exited.then(release, release);
      return {
        write: (text) => {
          if (stream.writable) stream.write(text);
        },
        end: () => {
          if (stream.writable) stream.end();
        },
        result: (timeoutMs) => withDeadline(exited, timeoutMs, `remote command on ${this.#label}`, () => this.disconnect('stalled (remote command got no answer)')),
      };
    } catch (err) {
      release();
      throw err;
    }
  }

  async startLineService(command: string): Promise<RemoteLineService> {
    // Its answers are read here as they come: kept by #start as well, they would pile up for
    // as long as the connection lives (a line per small file, each holding a packet's buffer).
    const { stream, exited } = await this.#start(command, false);
    const waiting: { resolve(line: string): void; reject(err: unknown): void }[] = [];
    let partial = '';
    let ended: Error | undefined;
    let answered = false;
    const endAll = (err: Error) => {
      ended ??= err;
      for (const q of waiting.splice(0)) q.reject(ended);
    };
    stream.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        answered = true;
        waiting.shift()?.resolve(line);
      }
    });
    exited.then(
      (r) => endAll(new TransientError(`ended (exit ${r.code ?? r.signal})${r.stderr ? `: ${r.stderr.split('\n')[0]}` : ''}`)),
      (err: Error) => endAll(err),
    );
    const stop = () => {
      endAll(new TransientError('stopped'));
      stream.close();
    };
    return {
      get answered() { return answered; },
      get ended() { return ended !== undefined; },
      close: stop,
      ask: (line, timeoutMs) => {
        if (ended) return Promise.reject(ended);
        this.#busy();
        this.#questionsPending++;
        const answer = new Promise<string>((resolve, reject) => {
          waiting.push({ resolve, reject });
          stream.write(`${line}\n`);
        });
        return withDeadline(answer, timeoutMs, `remote command on ${this.#label}`, stop).finally(() => {
          this.#questionsPending--;
        });
      },
    };
  }

  async #execSlot(): Promise<void> {
    while (this.#execsRunning >= MAX_EXECS) await new Promise<void>((r) => this.#execWaiters.push(r));
    this.#busy();
    this.#execsRunning++;
  }

  /**
   * Opens an exec channel for a script (it reaches sh whatever the login shell: see carried);
   * `exited` settles with the exit code once its output has ended.
   */
  #start(command: string, keepStdout = true): Promise<{ stream: ClientChannel; exited: Promise<ExecResult> }> {
    if (this.#end.reason) return Promise.reject(this.#end.reason);
    return new Promise((resolve, reject) => {
      const off = this.onClose(reject);
      const { command: line, prologue } = carried(command);
      try {
        this.#client.exec(line, (err, stream: ClientChannel) => {
          off();
          if (err) {
            // A channel that could not open says why (`reason`: too many sessions, say); one that
            // opened and was then refused the command means the server runs no commands at all.
            reject('reason' in err || this.#end.reason ? classify(err, { vessel: this.vessel }) : commandsRefused(this.vessel, err));
            return;
          }
          stream.on('error', () => {}); // a write after the peer closed; the exit says what happened
          stream.write(prologue);
          const exited = new Promise<ExecResult>((done, fail) => {
            const offExit = this.onClose(fail);
            const out: Buffer[] = [];
            const errOut: Buffer[] = [];
            if (keepStdout) stream.on('data', (d: Buffer) => out.push(d));
            let errBytes = 0;
            stream.stderr.on('data', (d: Buffer) => {
              // The start of what it says is what explains a failure; a chatty command never fills memory.
              if (errBytes >= STDERR_KEPT) return;
              errBytes += d.length;
              errOut.push(Buffer.from(d)); // a copy: the chunk may be a view of a whole packet
            });
            // The exit code arrives with 'close' (an 'exit' event may come before the output ends).
            stream.on('close', (code: number | null, signal: string | null) => {
              offExit();
              done({ code: code ?? null, signal: signal ?? null, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(errOut).toString().trim() });
            });
          });
          exited.catch(() => {}); // awaited through result(); a dead connection must not be unhandled
          resolve({ stream, exited });
        });
      } catch (err) {
        // ssh2 throws at once when its socket is already gone ("Not connected").
        off();
        reject(new TransientError(`cannot start a command on ${this.#label}: ${(err as Error).message}`, { vessel: this.vessel, cause: err }));
      }
    });
  }
}

function entryOf(name: string, st: Stats): RemoteEntry {
  const kind: EntryKind = st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'other';
  return { name, kind, size: st.size, mtime: st.mtime };
}

/** The server refused to run a command on an open channel (ssh2: "Unable to exec"). */
function commandsRefused(vessel: string, cause: Error): CommandsRefusedError {
  return new CommandsRefusedError(
    `vessel ${vessel} cannot run commands: the server refuses them (an SFTP-only account such as ForceCommand internal-sftp, or a server without remote commands such as ProFTPD mod_sftp); contentmonster needs sh, cat and sha256sum there to join and verify files`,
    { vessel, cause },
  );
}

/** Rejects with a TransientError (and runs `onTimeout`) if `p` has not settled in time. */
function withDeadline<T>(p: Promise<T>, ms: number, what: string, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new TransientError(`${what}: no answer within ${Math.round(ms / 1000)} s`));
      onTimeout();
    }, ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
