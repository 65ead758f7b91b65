/**
 * What the rest of contentmonster needs from a remote host, and nothing more of ssh2: the push
 * side writes through RemoteFs, the mirror reads through RemoteReader. SftpConnection (see
 * connection.ts) implements both; unit tests fake them.
 */

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
  /** Writes `data` at `position`; `data` may be reused as soon as this returns (the request holds a copy). */
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
  /** Renames over an existing file atomically (posix-rename@openssh.com); rejects with RenameUnsupported (see errors.ts) without it. */
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

/**
 * A live connection to a vessel as the push side holds it: SftpConnection on this thread, or
 * ThreadedConnection (threaded-connection.ts), its stand-in for one that lives in an SSH thread.
 */
export interface VesselConnection extends RemoteFs {
  /** The vessel's name. */
  readonly vessel: string;
  readonly closed: boolean;
  /** Called once with the reason when the connection dies (at once if it is dead already). */
  onClose(listener: (err: Error) => void): () => void;
  /** Tears the connection down; every pending request fails. */
  disconnect(reason?: string): void;
}
