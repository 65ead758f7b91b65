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
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { connect as tcpConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { AuthenticationType, ClientChannel, ConnectConfig, FileEntryWithStats, SFTPWrapper, Stats } from 'ssh2';
import { CommandsRefusedError, ConfigError, TransientError, VesselRefusedError, classify } from '../errors.js';
import type { VesselSettings } from '../settings/load.js';
import { youngGc } from './young-gc.js';
import { fingerprint, judgeHostKey, type HostKeyRecords, type HostKeyVerdict } from './host-key.js';
import { carried } from './quote.js';

const { Client } = ssh2;

/** ssh2 reports SFTP status codes on `code`. */
const SFTP_NO_SUCH_FILE = 2;
const SFTP_PERMISSION_DENIED = 3;
const SFTP_FAILURE = 4;

// aes128-gcm first: AES-NI makes it the cheapest cipher per byte on the shore and on the vessel.
const ciphers = [
  'aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'aes128-ctr', 'aes192-ctr', 'aes256-ctr',
  'chacha20-poly1305@openssh.com',
] as ConnectConfig['algorithms'] extends infer A ? A extends { cipher?: infer C } ? C : never : never;

// OpenSSH allows 10 sessions per connection (MaxSessions); the SFTP session is one of them.
const MAX_EXECS = 8;

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

export interface RemoteStat {
  size: number;
  isFile: boolean;
  isDirectory: boolean;
}

export type EntryKind = 'file' | 'directory' | 'symlink' | 'other';

export interface RemoteEntry {
  name: string;
  kind: EntryKind;
  size: number;
  /** Seconds since the epoch, as SFTP carries it. */
  mtime: number;
}

/** What the pull mirror needs from a server. */
export interface RemoteReader {
  /** Largest payload of one SFTP read answer the server sends. */
  readonly maxReadLength: number;
  /** A folder's entries, not following symlinks (`.` and `..` left out). */
  readdir(path: string): Promise<RemoteEntry[]>;
  /** What `path` is, following symlinks; null when it (or a link's target) does not exist. */
  statFollow(path: string): Promise<RemoteEntry | null>;
  openRead(path: string): Promise<Buffer>;
  fstat(handle: Buffer): Promise<{ size: number; mtime: number }>;
  /**
   * Up to `length` bytes at `position`; fewer near the end, none at or past it. The answer is
   * a view into `into` when given (at least `length` bytes), else into a new buffer.
   */
  read(handle: Buffer, position: number, length: number, into?: Buffer): Promise<Buffer>;
  close(handle: Buffer): Promise<void>;
}

export type OpenFlags = 'w' | 'r+' | 'keep';

/** SFTP open flags (SSH_FXF_WRITE | SSH_FXF_CREAT): ssh2's flag strings have no "create, do not truncate". */
const WRITE_CREATE = 0x02 | 0x08;
/**
 * The mode files are created with (the server's umask applies too): chunks and hidden copies
 * hold the content of files that may be confidential, and get their shore mode only before
 * they are placed (see setstat).
 */
const CREATE_MODE = 0o600;

/** What the transfer code needs from a vessel; nothing more of ssh2 leaks past this. */
export interface RemoteFs {
  /** Largest payload of one SFTP write request the server accepts. */
  readonly maxWriteLength: number;
  stat(path: string): Promise<RemoteStat | null>;
  /**
   * `w` creates or truncates; `r+` opens an existing file; `keep` creates the file when missing
   * and keeps what it holds, so that an interrupted upload can go on from its end.
   */
  open(path: string, flags: OpenFlags): Promise<Buffer>;
  write(handle: Buffer, data: Buffer, position: number): Promise<void>;
  close(handle: Buffer): Promise<void>;
  /**
   * Sets a file's permission bits and, when given, its modification time in seconds (and its
   * access time to the same: SFTP sets both or neither).
   */
  setstat(path: string, attrs: { mode: number; mtime?: number }): Promise<void>;
  /** Creates one folder (its parent must exist). */
  mkdir(path: string): Promise<void>;
  /** Creates a folder and the parents it lacks, asking about each level first: slow, but says exactly what failed. */
  mkdirp(path: string): Promise<void>;
  /** Renames over an existing file atomically (posix-rename@openssh.com); rejects with RenameUnsupported without it. */
  rename(from: string, to: string): Promise<void>;
  remove(path: string): Promise<void>;
  exec(command: string, timeoutMs?: number): Promise<ExecResult>;
  /** Starts a remote command that is fed on stdin while other requests go on. */
  spawn(command: string): Promise<RemoteProcess>;
  /**
   * Starts a remote command that lives as long as the connection and answers every line
   * written to it with one line. It takes no exec slot (it holds one SSH session of its own).
   */
  startLineService(command: string): Promise<RemoteLineService>;
}

/** A remote command started by `startLineService`. */
export interface RemoteLineService {
  /**
   * Writes `line` and resolves with the next line of output not yet claimed: answers come in
   * the order of the questions. Rejects when the command has ended (with its exit and the
   * first line of its stderr) or the connection dies; after `timeoutMs` it rejects and stops the
   * command, whose later answers could no longer be matched.
   */
  ask(line: string, timeoutMs: number): Promise<string>;
  /** Whether it has answered at least once. */
  readonly answered: boolean;
  readonly ended: boolean;
  /** Stops the command; questions not answered yet are rejected. */
  close(): void;
}

/** A remote command started by `spawn`. */
export interface RemoteProcess {
  write(text: string): void;
  /** Closes its stdin. */
  end(): void;
  /** Its exit; rejects when the connection dies, or `timeoutMs` after this call. */
  result(timeoutMs: number): Promise<ExecResult>;
}

/** Where to connect and how to log in: a vessel when pushing, the server when mirroring. */
export interface Endpoint extends Pick<VesselSettings,
  'name' | 'address' | 'port' | 'username' | 'password' | 'passphrase' | 'identityFile' | 'hostKey' | 'timeoutS'> {
  /** How messages name the peer: `vessel v1`, `server example.com`. */
  label: string;
  /** How messages name the key setting: `[Vessel v1] IdentityFile`, `-i`. */
  identitySetting: string;
  /** How the operator pins a host key: `HostKey =`, `--host-key`. */
  hostKeySetting: string;
}

export function vesselEndpoint(vessel: VesselSettings): Endpoint {
  return { ...vessel, label: `vessel ${vessel.name}`, identitySetting: `[Vessel ${vessel.name}] IdentityFile`, hostKeySetting: 'HostKey =' };
}

export interface ConnectOptions {
  endpoint: Endpoint;
  hostKeys: HostKeyRecords;
  /**
   * Called with every key the peer offers and the verdict on it, before the connection goes on
   * or is refused: `check` learns known / new / changed without connecting twice.
   */
  onHostKey?: (fingerprint: string, verdict: HostKeyVerdict) => void;
  signal?: AbortSignal;
}

/** Private keys to offer when no IdentityFile is set, in OpenSSH's order. */
const defaultKeyNames = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

function privateKeyFor(vessel: Endpoint): Buffer | undefined {
  if (vessel.identityFile) {
    let key: Buffer;
    try {
      key = readFileSync(vessel.identityFile);
    } catch (err) {
      throw new ConfigError(`${vessel.identitySetting}: cannot read ${vessel.identityFile}: ${(err as Error).message}`, { vessel: vessel.name, cause: err });
    }
    // Parsed here so that a wrong or missing Passphrase is a settings error, not a network one.
    const parsed = ssh2.utils.parseKey(key, vessel.passphrase);
    if (parsed instanceof Error) {
      const hint = vessel.passphrase === undefined ? ' (is a passphrase needed?)' : ' (is the passphrase right?)';
      throw new ConfigError(`${vessel.identitySetting}: cannot use ${vessel.identityFile}: ${parsed.message}${hint}`, { vessel: vessel.name });
    }
    return key;
  }
  for (const name of defaultKeyNames) {
    let key: Buffer;
    try {
      key = readFileSync(join(homedir(), '.ssh', name));
    } catch {
      continue;
    }
    // A default key that needs a passphrase we do not have is skipped, as ssh would skip it.
    if (!(ssh2.utils.parseKey(key, vessel.passphrase) instanceof Error)) return key;
  }
  return undefined;
}

/** The methods to try, in OpenSSH's order; `none` last, for a server that lets anyone in. */
function authOrder(key: boolean, password: boolean): AuthenticationType[] {
  return [
    ...(key ? ['publickey' as const] : []),
    ...(process.env.SSH_AUTH_SOCK ? ['agent' as const] : []),
    ...(password ? ['password' as const, 'keyboard-interactive' as const] : []),
    'none',
  ];
}

export class SftpConnection implements RemoteFs, RemoteReader {
  /** The endpoint's name: a vessel's name, or the server when mirroring. */
  readonly vessel: string;
  readonly #label: string;
  readonly maxWriteLength: number;
  readonly maxReadLength: number;
  readonly #client: InstanceType<typeof Client>;
  readonly #sftp: SFTPWrapper;
  readonly #timeoutMs: number;
  #closedError: Error | undefined;
  #closeListeners = new Set<(err: Error) => void>();
  #execsRunning = 0;
  #execWaiters: (() => void)[] = [];
  #sftpPending = 0;
  /** Questions to line services not answered yet. */
  #questionsPending = 0;
  /** When the last byte came from the vessel, or when work started after a quiet time. */
  #lastHeard = Date.now();
  #lastProbe = 0;
  readonly #stallWatch: NodeJS.Timeout;

  private constructor(endpoint: Endpoint, client: InstanceType<typeof Client>, sftp: SFTPWrapper, timeoutMs: number, socket: Socket) {
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

  static async open(options: ConnectOptions): Promise<SftpConnection> {
    const { endpoint: vessel, hostKeys } = options;
    const client = new Client();
    const timeoutMs = vessel.timeoutS * 1000;
    const privateKey = privateKeyFor(vessel); // before any socket: a settings error leaks nothing
    // Our own socket, so that the connection can see every byte that arrives (see above).
    // No Nagle: pipelined requests are small packets that must go out at once, not wait for an ACK.
    const socket = tcpConnect({ host: vessel.address, port: vessel.port, noDelay: true });
    socket.on('error', () => {}); // ssh2 reports it; this only keeps it from being unhandled
    const host = `${vessel.address}:${vessel.port}`;
    let refusal: string | undefined;
    const config: ConnectConfig = {
      host: vessel.address,
      port: vessel.port,
      username: vessel.username,
      password: vessel.password,
      privateKey,
      passphrase: vessel.passphrase,
      agent: process.env.SSH_AUTH_SOCK || undefined,
      tryKeyboard: vessel.password !== undefined,
      // ssh2 starts with the `none` method only to learn which ones the server allows: a round
      // trip (0.6 s on a satellite link) that the first real method learns as well.
      authHandler: authOrder(privateKey !== undefined, vessel.password !== undefined),
      // The handshake is watched by the bytes that arrive (below), not by a total time.
      readyTimeout: 0,
      // Only keeps idle connections (and NAT mappings) alive; stalls under load are found by
      // the byte-level watch above, which does not mistake a slow link for a dead one.
      keepaliveInterval: 30_000,
      keepaliveCountMax: 4,
      sock: socket,
      algorithms: { cipher: ciphers },
      hostVerifier: (key: Buffer) => {
        const seen = fingerprint(key);
        const verdict = judgeHostKey(vessel.label, host, seen, vessel.hostKey, hostKeys, vessel.hostKeySetting);
        options.onHostKey?.(seen, verdict);
        if (!verdict.ok) refusal = verdict.reason;
        return verdict.ok;
      },
    };
    if (vessel.password !== undefined) {
      client.on('keyboard-interactive', (_name, _instructions, _lang, prompts, finish) => finish(prompts.map(() => vessel.password!)));
    }
    const abort = () => client.destroy();
    options.signal?.addEventListener('abort', abort, { once: true });
    // Connecting takes about ten round trips (TCP, key exchange, authentication, the SFTP
    // channel): 6 s at a 600 ms round trip, 12 s on GPRS. It is given up when nothing arrives
    // for Timeout, as an established connection is, not after a fixed total.
    let heardAt = Date.now();
    const heard = () => {
      heardAt = Date.now();
    };
    socket.on('data', heard);
    let silent: TransientError | undefined;
    const watch = setInterval(() => {
      if (Date.now() - heardAt < timeoutMs) return;
      silent = new TransientError(`cannot connect to ${vessel.label} (${host}): nothing received for ${timeoutMs / 1000} s`, { vessel: vessel.name });
      client.destroy();
    }, Math.min(1000, timeoutMs / 4));
    try {
      await new Promise<void>((resolve, reject) => {
        client.once('ready', resolve);
        // `on`, not `once`: ssh2 can emit several errors for one failed handshake, and an
        // 'error' with no listener would crash the daemon.
        client.on('error', reject);
        client.once('close', () => reject(new TransientError(`connection to ${vessel.label} closed during handshake`, { vessel: vessel.name })));
        client.connect(config);
      });
      const sftp = await new Promise<SFTPWrapper>((resolve, reject) => client.sftp((err, s) => (err ? reject(err) : resolve(s))));
      return new SftpConnection(vessel, client, sftp, timeoutMs, socket);
    } catch (err) {
      client.destroy();
      socket.destroy();
      if (refusal) throw new VesselRefusedError(refusal, { vessel: vessel.name });
      if (options.signal?.aborted) throw new TransientError(`connecting to ${vessel.label} aborted`, { vessel: vessel.name });
      if (silent) throw silent;
      const classified = classify(err, { vessel: vessel.name });
      if (classified instanceof VesselRefusedError) {
        throw new VesselRefusedError(`${vessel.label}: authentication as ${vessel.username} failed (${(err as Error).message})`, { vessel: vessel.name, cause: err });
      }
      throw new TransientError(`cannot connect to ${vessel.label} (${host}): ${(err as Error).message}`, { vessel: vessel.name, cause: err });
    } finally {
      clearInterval(watch);
      socket.off('data', heard);
      options.signal?.removeEventListener('abort', abort);
    }
  }

  get closed(): boolean {
    return this.#closedError !== undefined;
  }

  /** Called once with the reason when the connection dies. */
  onClose(listener: (err: Error) => void): () => void {
    if (this.#closedError) {
      listener(this.#closedError);
      return () => {};
    }
    this.#closeListeners.add(listener);
    return () => this.#closeListeners.delete(listener);
  }

  #fail(err: Error): void {
    if (this.#closedError) return;
    this.#closedError = err;
    clearInterval(this.#stallWatch);
    this.#client.destroy();
    for (const l of this.#closeListeners) l(err);
    this.#closeListeners.clear();
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
    if (this.#closedError) return Promise.reject(this.#closedError);
    this.#busy();
    this.#sftpPending++;
    return new Promise<T>((resolve, reject) => {
      const off = this.onClose(reject);
      start((err, value) => {
        off();
        if (err) reject(describeRequest(requestError(err, this.vessel, path), what, path));
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
    return this.#request<void>('write', '', (cb) => this.#sftp.write(handle, data, 0, data.length, position, (err) => cb(err)));
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
    const { stream, exited } = await this.#start(command);
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
  #start(command: string): Promise<{ stream: ClientChannel; exited: Promise<ExecResult> }> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    return new Promise((resolve, reject) => {
      const off = this.onClose(reject);
      const { command: line, prologue } = carried(command);
      try {
        this.#client.exec(line, (err, stream: ClientChannel) => {
          off();
          if (err) {
            // A channel that could not open says why (`reason`: too many sessions, say); one that
            // opened and was then refused the command means the server runs no commands at all.
            reject('reason' in err || this.#closedError ? classify(err, { vessel: this.vessel }) : commandsRefused(this.vessel, err));
            return;
          }
          stream.on('error', () => {}); // a write after the peer closed; the exit says what happened
          stream.write(prologue);
          const exited = new Promise<ExecResult>((done, fail) => {
            const offExit = this.onClose(fail);
            const out: Buffer[] = [];
            const errOut: Buffer[] = [];
            stream.on('data', (d: Buffer) => out.push(d));
            stream.stderr.on('data', (d: Buffer) => errOut.push(d));
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

/** Names the request and its path in the message, so that "Failure" says what failed where. */
function describeRequest<E extends Error>(err: E, what: string, path: string): E {
  err.message = `SFTP ${what}${path ? ` ${path}` : ''}: ${err.message}`;
  return err;
}

/**
 * A failed SFTP request: the server's answer carries a status code (classify knows them all);
 * without one, no answer came at all (ssh2's "No response from server" when the SFTP channel
 * ends with requests in flight), which is the link's doing, not the file's.
 */
function requestError(err: Error, vessel: string, path: string): Error {
  if (typeof (err as { code?: unknown }).code === 'number' || err instanceof RenameUnsupported) return classify(err, { vessel, path });
  return new TransientError(err.message, { vessel, path, cause: err });
}

/** The server refused to run a command on an open channel (ssh2: "Unable to exec"). */
function commandsRefused(vessel: string, cause: Error): CommandsRefusedError {
  return new CommandsRefusedError(
    `vessel ${vessel} cannot run commands: the server refuses them (an SFTP-only account such as ForceCommand internal-sftp, or a server without remote commands such as ProFTPD mod_sftp); contentmonster needs sh, cat, tee and sha256sum there to join and verify files`,
    { vessel, cause },
  );
}

export class RenameUnsupported extends Error {}

export function isRenameUnsupported(err: unknown): boolean {
  return err instanceof RenameUnsupported || (err as { cause?: unknown }).cause instanceof RenameUnsupported;
}

/** SFTP status 4, FAILURE: what OpenSSH says for a read-only or full filesystem, among others. */
export function isSftpFailure(err: unknown): boolean {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  return cause?.code === SFTP_FAILURE || (err as { code?: unknown }).code === SFTP_FAILURE;
}

/**
 * The server answered the request with an error status (permission denied, failure, not
 * supported...), as opposed to no answer at all (the link or the SFTP session went away).
 */
export function isSftpStatus(err: unknown): boolean {
  return sftpStatus(err) !== undefined;
}

/** SFTP status 3, PERMISSION_DENIED. */
export function isPermissionDenied(err: unknown): boolean {
  return sftpStatus(err) === SFTP_PERMISSION_DENIED;
}

/** The SFTP status code an error carries, itself or through the errors that wrap it. */
function sftpStatus(err: unknown): number | undefined {
  for (let e = err, depth = 0; e !== null && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'number') return code;
  }
  return undefined;
}

export function isNoSuchFile(err: unknown): boolean {
  const cause = (err as { cause?: { code?: unknown } }).cause;
  return cause?.code === SFTP_NO_SUCH_FILE || (err as { code?: unknown }).code === SFTP_NO_SUCH_FILE;
}

/** Rejects with a TransientError (and runs `onTimeout`) if `p` has not settled in time. */
export function withDeadline<T>(p: Promise<T>, ms: number, what: string, onTimeout: () => void): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new TransientError(`${what}: no answer within ${Math.round(ms / 1000)} s`));
      onTimeout();
    }, ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
