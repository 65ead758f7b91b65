// A deliberately hostile (or broken) SFTP server for end-to-end tests of the mirror, built on
// ssh2's `Server` in this process: it accepts any login and serves a scripted, virtual tree
// whose listings may carry names no honest server sends (`../x`, `a/b`, control characters,
// names too long for a local filesystem) and whose files may have a size that lies (the listed
// and fstat'ed size larger or smaller than what READ hands out).
//
// Paths are resolved literally, never normalised: the entry `../escape.txt` of `/pub` is served
// at `/pub/../escape.txt`, exactly as a client that trusts the listing would ask for it.
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import ssh2 from 'ssh2';
import type { Connection, SFTPWrapper } from 'ssh2';
import { onTestExit } from './cleanup.js';

const { Server, utils } = ssh2;
const { STATUS_CODE } = utils.sftp;

const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const MTIME = 1_700_000_000;

export interface HostileFile {
  kind: 'file';
  content: Buffer;
  /** Size given in listings and by STAT/FSTAT; the content's length unless set (a lie). */
  size?: number;
  mtime?: number;
}

export interface HostileDir {
  kind: 'dir';
  /** In listing order; names are sent exactly as given, duplicates and all. */
  entries: [string, HostileNode][];
}

export type HostileNode = HostileFile | HostileDir;

export const hostileFile = (content: Buffer | string, size?: number): HostileFile => ({
  kind: 'file', content: Buffer.isBuffer(content) ? content : Buffer.from(content), size,
});
export const hostileDir = (entries: [string, HostileNode][]): HostileDir => ({ kind: 'dir', entries });

export interface HostileServer {
  port: number;
  /** The served folder (REMOTE_PATH for the mirror). */
  root: string;
  hostKeyFingerprint: string;
  /** Every path the client asked to OPEN (files) or OPENDIR, in order. */
  opened: string[];
  stop(): Promise<void>;
}

function sizeOf(node: HostileNode): number {
  return node.kind === 'file' ? node.size ?? node.content.length : 4096;
}

function attrsOf(node: HostileNode): { mode: number; size: number; uid: number; gid: number; atime: number; mtime: number } {
  const mtime = node.kind === 'file' ? node.mtime ?? MTIME : MTIME;
  const mode = node.kind === 'file' ? S_IFREG | 0o644 : S_IFDIR | 0o755;
  return { mode, size: sizeOf(node), uid: 0, gid: 0, atime: mtime, mtime };
}

/** Every path of the tree, joined literally (`dir + '/' + name`), to its node. */
function index(root: string, tree: HostileDir): Map<string, HostileNode> {
  const paths = new Map<string, HostileNode>([[root, tree]]);
  const walk = (dir: string, node: HostileDir): void => {
    for (const [name, child] of node.entries) {
      const path = `${dir}/${name}`;
      if (!paths.has(path)) paths.set(path, child);
      if (child.kind === 'dir') walk(path, child);
    }
  };
  walk(root, tree);
  return paths;
}

function fingerprint(publicKeyLine: string): string {
  const blob = Buffer.from(publicKeyLine.trim().split(/\s+/)[1] ?? '', 'base64');
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** Serves `tree` at `/pub` on 127.0.0.1 (a free port); any username and password get in. */
export async function startHostileSftp(tree: HostileDir, root = '/pub'): Promise<HostileServer> {
  const paths = index(root, tree);
  const keys = utils.generateKeyPairSync('ed25519');
  const opened: string[] = [];
  const clients = new Set<Connection>();

  const serveSftp = (sftp: SFTPWrapper): void => {
    const handles = new Map<number, { path: string; node: HostileNode; listed: boolean }>();
    let nextHandle = 0;
    const handleOf = (buf: Buffer) => (buf.length === 4 ? handles.get(buf.readUInt32BE(0)) : undefined);
    const newHandle = (path: string, node: HostileNode): Buffer => {
      const id = nextHandle++;
      handles.set(id, { path, node, listed: false });
      const buf = Buffer.alloc(4);
      buf.writeUInt32BE(id, 0);
      return buf;
    };
    const stat = (reqid: number, path: string): void => {
      const node = paths.get(path);
      if (!node) sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE);
      else sftp.attrs(reqid, attrsOf(node));
    };
    sftp.on('REALPATH', (reqid, path) => {
      sftp.name(reqid, [{ filename: path === '.' ? root : path, longname: '', attrs: {} as never }]);
    });
    sftp.on('STAT', stat);
    sftp.on('LSTAT', stat);
    sftp.on('OPEN', (reqid, path) => {
      opened.push(path);
      const node = paths.get(path);
      if (node?.kind !== 'file') return sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE);
      sftp.handle(reqid, newHandle(path, node));
    });
    sftp.on('OPENDIR', (reqid, path) => {
      opened.push(path);
      const node = paths.get(path);
      if (node?.kind !== 'dir') return sftp.status(reqid, STATUS_CODE.NO_SUCH_FILE);
      sftp.handle(reqid, newHandle(path, node));
    });
    sftp.on('FSTAT', (reqid, handle) => {
      const h = handleOf(handle);
      if (!h) return sftp.status(reqid, STATUS_CODE.FAILURE);
      sftp.attrs(reqid, attrsOf(h.node));
    });
    sftp.on('READ', (reqid, handle, offset, length) => {
      const h = handleOf(handle);
      if (h?.node.kind !== 'file') return sftp.status(reqid, STATUS_CODE.FAILURE);
      const data = h.node.content.subarray(offset, offset + length);
      if (data.length === 0) return sftp.status(reqid, STATUS_CODE.EOF);
      sftp.data(reqid, data);
    });
    sftp.on('READDIR', (reqid, handle) => {
      const h = handleOf(handle);
      if (h?.node.kind !== 'dir') return sftp.status(reqid, STATUS_CODE.FAILURE);
      if (h.listed) return sftp.status(reqid, STATUS_CODE.EOF);
      h.listed = true;
      sftp.name(reqid, h.node.entries.map(([filename, node]) => ({ filename, longname: filename, attrs: attrsOf(node) })));
    });
    sftp.on('CLOSE', (reqid, handle) => {
      if (handle.length === 4) handles.delete(handle.readUInt32BE(0));
      sftp.status(reqid, STATUS_CODE.OK);
    });
    // Anything that would change the server is refused.
    for (const event of ['WRITE', 'SETSTAT', 'FSETSTAT', 'REMOVE', 'RMDIR', 'MKDIR', 'RENAME', 'SYMLINK', 'READLINK'] as const) {
      sftp.on(event as 'REMOVE', (reqid: number) => sftp.status(reqid, STATUS_CODE.PERMISSION_DENIED));
    }
  };

  const server = new Server({ hostKeys: [keys.private] }, (client) => {
    clients.add(client);
    client.on('close', () => clients.delete(client));
    client.on('error', () => {});
    client.on('authentication', (ctx) => ctx.accept());
    client.on('ready', () => {
      client.on('session', (accept) => {
        const session = accept();
        session.on('sftp', (acceptSftp) => serveSftp(acceptSftp()));
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  let stopped = false;
  const stopNow = (): Promise<void> => {
    if (stopped) return Promise.resolve();
    stopped = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const c of clients) c.end();
    return closed;
  };
  onTestExit(() => void stopNow());
  return {
    port: (server.address() as AddressInfo).port,
    root,
    hostKeyFingerprint: fingerprint(keys.public),
    opened,
    stop: stopNow,
  };
}
