// A small file's mode and time (issue 16, item 4) on a vessel kept in memory, which records
// every request: they are set on the hidden file just before the rename, in the same round trip
// (nothing waits between setstat, rename and the stat that proves the file in place); a vessel
// that refuses them gets the file and says so once; a hidden copy left read-only by a cut
// attempt is started over rather than failing the file.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileError } from '../../src/errors.js';
import type { RemoteFs, RemoteLineService, RemoteStat } from '../../src/ssh/remote-fs.js';
import { deliverFile, type DeliveryHooks, type DeliveryJob } from '../../src/push/upload/upload.js';

const PAST = Date.UTC(2001, 1, 3, 4, 5, 6) / 1000;

/** An SFTP status error as SftpConnection raises it: classified, with the server's code as its cause. */
function status(code: number, text: string): FileError {
  return new FileError(`SFTP request: ${text}`, { cause: Object.assign(new Error(text), { code }) });
}

interface Vessel {
  remote: RemoteFs;
  files: Map<string, { data: Buffer; mode: number; mtime?: number }>;
  log: string[];
  /** Requests issued while the setstat was still unanswered. */
  issuedBeforeSetstatAnswer: string[];
}

function memoryVessel(o: { refuseSetstat?: boolean; readOnly?: Set<string> } = {}): Vessel {
  const files = new Map<string, { data: Buffer; mode: number; mtime?: number }>();
  const handles = new Map<string, string>();
  const log: string[] = [];
  const issuedBeforeSetstatAnswer: string[] = [];
  let setstatPending = false;
  const note = (what: string) => {
    log.push(what);
    if (setstatPending) issuedBeforeSetstatAnswer.push(what);
  };
  const statOf = (path: string): RemoteStat | null => {
    const f = files.get(path);
    return f ? { size: f.data.length, isFile: true, isDirectory: false } : null;
  };
  const service: RemoteLineService = {
    answered: true,
    ended: false,
    close: () => {},
    ask: async (line: string) => {
      const [sha, path] = line.split('  ') as [string, string];
      const f = files.get(path);
      note(`check ${path}`);
      return f && createHash('sha256').update(f.data).digest('hex') === sha ? `${path}: OK` : `${path}: FAILED`;
    },
  };
  const remote = {
    maxWriteLength: 32 * 1024,
    stat: async (path: string) => {
      note(`stat ${path}`);
      return statOf(path);
    },
    open: async (path: string, flags: string) => {
      note(`open ${path} ${flags}`);
      if (o.readOnly?.has(path) && files.has(path)) throw status(3, 'Permission denied');
      if (flags === 'w' || !files.has(path)) files.set(path, { data: Buffer.alloc(0), mode: 0o600 });
      const handle = `h${handles.size}`;
      handles.set(handle, path);
      return Buffer.from(handle);
    },
    write: async (handle: Buffer, data: Buffer, position: number) => {
      const f = files.get(handles.get(handle.toString())!)!;
      const grown = Buffer.alloc(Math.max(f.data.length, position + data.length));
      f.data.copy(grown);
      data.copy(grown, position);
      f.data = grown;
    },
    close: async () => {
      note('close');
    },
    mkdir: async () => {},
    remove: async (path: string) => {
      note(`remove ${path}`);
      files.delete(path);
    },
    setstat: (path: string, attrs: { mode: number; mtime?: number }) => {
      note(`setstat ${path} ${attrs.mode.toString(8)} ${attrs.mtime}`);
      // Done at once, as the server handles requests in order; answered on a later turn, so
      // whatever is asked meanwhile went out in the same round trip.
      const f = files.get(path);
      const answer = o.refuseSetstat ? status(3, 'Permission denied') : f ? undefined : status(2, 'No such file');
      if (f && !answer) {
        f.mode = attrs.mode;
        f.mtime = attrs.mtime;
      }
      setstatPending = true;
      return new Promise<void>((resolve, reject) => setTimeout(() => {
        setstatPending = false;
        if (answer) reject(answer);
        else resolve();
      }, 5));
    },
    rename: async (from: string, to: string) => {
      note(`rename ${from} ${to}`);
      const f = files.get(from);
      if (!f) throw status(2, 'No such file');
      files.set(to, f);
      files.delete(from);
    },
    startLineService: async () => service,
    exec: async () => {
      throw new Error('no command expected');
    },
  } as unknown as RemoteFs;
  return { remote, files, log, issuedBeforeSetstatAnswer };
}

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'cm-small-attrs-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

async function shoreFile(name: string, content: string, mode: number): Promise<DeliveryJob> {
  const localPath = join(dir, name);
  await writeFile(localPath, content);
  await chmod(localPath, mode);
  await utimes(localPath, PAST, PAST);
  const st = await stat(localPath);
  return {
    vessel: 'v', versionKey: name, localPath, destination: `/dest/${name}`, size: st.size, mtimeMs: st.mtimeMs,
    sha256: null, chunkSize: 1024 * 1024, chunkPrefix: `/tmp/cm-${name}`, assemblyPrefix: `/dest/.cm-${name}`,
  };
}

function hooks(refusals: string[]): DeliveryHooks {
  return {
    signal: new AbortController().signal,
    sha256Known: () => {}, progress: () => {},
    attrsRefused: (detail) => refusals.push(detail),
  };
}

describe('a small file\'s mode and time', () => {
  it('are set on the hidden file before the rename, in the same round trip as the rename and the proof', async () => {
    const job = await shoreFile('setuid.sh', 'echo hi\n', 0o4755);
    const v = memoryVessel();
    const refusals: string[] = [];
    const outcome = await deliverFile(v.remote, job, hooks(refusals), { execBaseMs: 1000 });
    assert.equal(outcome.kind, 'done');
    const tmp = `${job.assemblyPrefix}.up.tmp`;
    const placed = v.files.get(job.destination)!;
    assert.deepEqual({ mode: placed.mode, mtime: placed.mtime, data: placed.data.toString() }, { mode: 0o755, mtime: PAST, data: 'echo hi\n' }, 'setuid dropped');
    const at = (prefix: string) => v.log.findIndex((l) => l.startsWith(prefix));
    assert.ok(at(`check ${tmp}`) < at(`setstat ${tmp}`), v.log.join('\n'));
    assert.ok(at(`setstat ${tmp}`) < at(`rename ${tmp}`), v.log.join('\n'));
    assert.deepEqual(v.issuedBeforeSetstatAnswer, [`rename ${tmp} ${job.destination}`, `stat ${job.destination}`], 'no round trip of its own');
    assert.deepEqual(refusals, []);
  });

  it('a vessel that refuses them gets the file, and the refusal is reported, not thrown', async () => {
    const job = await shoreFile('secret.txt', 'top secret', 0o600);
    const v = memoryVessel({ refuseSetstat: true });
    const refusals: string[] = [];
    const outcome = await deliverFile(v.remote, job, hooks(refusals), { execBaseMs: 1000 });
    assert.equal(outcome.kind, 'done');
    assert.equal(v.files.get(job.destination)?.data.toString(), 'top secret');
    assert.equal(v.files.get(job.destination)?.mode, 0o600, 'as created: never more readable than that');
    assert.equal(refusals.length, 1);
    assert.match(refusals[0], /Permission denied/);
  });

  it('a hidden copy an earlier attempt left without write permission is started over', async () => {
    const job = await shoreFile('readonly.txt', 'read only', 0o400);
    const tmp = `${job.assemblyPrefix}.up.tmp`;
    const v = memoryVessel({ readOnly: new Set([tmp]) });
    v.files.set(tmp, { data: Buffer.from('read only'), mode: 0o400, mtime: PAST });
    const outcome = await deliverFile(v.remote, job, hooks([]), { execBaseMs: 1000 });
    assert.equal(outcome.kind, 'done');
    assert.ok(v.log.includes(`remove ${tmp}`), v.log.join('\n'));
    assert.ok(v.log.includes(`open ${tmp} w`), v.log.join('\n'));
    const placed = v.files.get(job.destination)!;
    assert.deepEqual({ mode: placed.mode, mtime: placed.mtime, data: placed.data.toString() }, { mode: 0o400, mtime: PAST, data: 'read only' });
  });
});
