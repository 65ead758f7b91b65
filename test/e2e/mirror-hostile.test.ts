// `contentmonster mirror` against a hostile (or broken) SFTP server (issue 15, point 7; the scp
// CVE-2019-6111 class): names in its listings that would reach outside LOCAL_PATH or are no
// valid local name, and files whose size lies. Nothing may be written outside LOCAL_PATH, each
// such name is refused with one warning naming it (escaped), every other file arrives intact,
// no file with wrong contents gets its final name, and the run exits 1 so that cron notices.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostileDir as dir, hostileFile as file, startHostileSftp, type HostileServer } from '../helpers/hostile-sftp.js';
import { runCli, type RunResult } from '../helpers/process.js';
import { listFiles, sha256File } from '../helpers/tree.js';

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Files that must arrive, by local path below LOCAL_PATH. */
const good = new Map<string, Buffer>([
  ['normal.txt', randomBytes(10_000)],
  ['x'.repeat(255), randomBytes(100)], // the longest name a local filesystem allows
  ['20251118/a.bin', randomBytes(300_000)], // several reads
  ['20251118/deep/b.bin', randomBytes(5000)],
  ['20251117/c.bin', randomBytes(7000)],
  ['long/ok.bin', randomBytes(50)],
  ['empty.bin', Buffer.alloc(0)],
]);
const g = (rel: string) => file(good.get(rel)!);

/** 21 nested folders of 200-byte names: each name is fine, the path is too long for Linux. */
function tooDeep(level: number): ReturnType<typeof dir> {
  return dir([[`${String(level).padStart(2, '0')}${'d'.repeat(198)}`, level === 21 ? dir([['f.bin', file('too deep')]]) : tooDeep(level + 1)]]);
}

/**
 * Each refused name, as the warning must print it (JSON-escaped, in quotes), with the folder it
 * is listed in. `.` and `..` are not here: ssh2's client drops them from every listing.
 */
const refused: [string, string][] = [
  ['"../escape1.txt"', '/pub'],
  ['"sub/../../escape2.txt"', '/pub'],
  ['"../../deep-escape.txt"', '/pub'],
  ['"../escdir"', '/pub'],
  ['"a/b"', '/pub'],
  ['"/abs.txt"', '/pub'],
  ['"new\\nline"', '/pub'],
  [`"${'y'.repeat(300)}"`, '/pub'],
  ['""', '/pub'],
  ['"nul\\u0000name"', '/pub'],
  ['"ctl\\u0001name"', '/pub'],
  ['"esc\\u001b[31mred"', '/pub'],
  ['"normal.txt"', '/pub'],
  ['"../../escape3.txt"', '/pub/20251118'],
  ['"x/y"', '/pub/20251118/deep'],
  ['"../escdir2"', '/pub/20251118/deep'],
];

const tree = dir([
  ['../escape1.txt', file('escape 1')],
  ['sub/../../escape2.txt', file('escape 2')],
  ['../../deep-escape.txt', file('escape deep')],
  ['../escdir', dir([['inside.txt', file('inside')], ['more', dir([['m.txt', file('m')]])]])],
  ['a/b', file('slash')],
  ['/abs.txt', file('absolute')],
  ['new\nline', file('newline')],
  ['y'.repeat(300), file('long name')],
  ['.', dir([['dot.txt', file('dot')]])],
  ['..', dir([['dotdot.txt', file('dotdot')]])],
  ['', file('empty name')],
  ['nul\0name', file('nul')],
  ['ctl\x01name', file('ctl')],
  ['esc\x1b[31mred', file('escape sequence')],
  ['normal.txt', g('normal.txt')],
  ['normal.txt', file('a second file of the same name')],
  ['x'.repeat(255), g('x'.repeat(255))],
  ['empty.bin', g('empty.bin')],
  ['20251118', dir([
    ['a.bin', g('20251118/a.bin')],
    ['../../escape3.txt', file('escape 3')],
    ['deep', dir([['b.bin', g('20251118/deep/b.bin')], ['x/y', file('slash inside')], ['../escdir2', dir([['z.txt', file('z')]])]])],
  ])],
  ['20251117', dir([['c.bin', g('20251117/c.bin')]])],
  ['long', dir([['ok.bin', g('long/ok.bin')], ['chain', tooDeep(1)]])],
  // Sizes that lie: listed (and fstat'ed) larger than the contents, and smaller.
  ['short.bin', file(randomBytes(3000), 5000)],
  ['grown.bin', file(randomBytes(5000), 3000)],
  ['lies', dir([['grown-big.bin', file(randomBytes(400_000), 300_000)], ['short-big.bin', file(randomBytes(200_000), 300_000)]])],
]);

let server: HostileServer;
const works: string[] = [];
let work: string;
/** Everything the run may touch lives below `work`; LOCAL_PATH is two levels down. */
let local: string;
let hostKeys: string;

before(async () => {
  server = await startHostileSftp(tree);
});
after(async () => {
  await server?.stop();
  for (const w of works) await rm(w, { recursive: true, force: true });
});

beforeEach(async () => {
  work = await mkdtemp(join(tmpdir(), 'cm-hostile-'));
  works.push(work);
  await mkdir(join(work, 'home'));
  await mkdir(join(work, 'p', 'inner'), { recursive: true });
  local = join(work, 'p', 'inner', 'local');
  hostKeys = join(work, 'host-keys');
});

function mirror(): Promise<RunResult> {
  return runCli(['mirror', '127.0.0.1', server.root, local, '-p', String(server.port), '--host-key-file', hostKeys, '--metrics-socket', ''], {
    env: { HOME: join(work, 'home'), SSH_AUTH_SOCK: undefined, SFTP_USERNAME: 'anyone', SFTP_PASSWORD: 'anything', JOURNAL_STREAM: undefined },
  });
}

/** Every entry below `root` (folders, files, links), with its type, except those below `skip`. */
async function snapshot(root: string, skip: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (abs: string): Promise<void> => {
    for (const e of await readdir(abs, { withFileTypes: true })) {
      const path = join(abs, e.name);
      if (path === skip) continue;
      const st = await lstat(path);
      out.push(`${st.isDirectory() ? 'd' : st.isSymbolicLink() ? `l->${await readlink(path)}` : 'f'} ${path.slice(root.length)}`);
      if (st.isDirectory()) await walk(path);
    }
  };
  await walk(root);
  return out.sort();
}

function warnings(r: RunResult): string[] {
  return r.stdout.split('\n').filter((l) => / WARN  /.test(l));
}

/** The run as a whole, the same on every run against this server. */
async function assertContained(r: RunResult, before: string[]): Promise<void> {
  // Nothing outside LOCAL_PATH: `work` is as it was, but for LOCAL_PATH and the host-key record.
  assert.deepEqual((await snapshot(work, local)).filter((e) => e !== `f /host-keys`), before.filter((e) => e !== `f /host-keys`),
    `nothing created or changed outside LOCAL_PATH\n${r.stdout}`);
  // The client never asked the server for a refused name: it was refused before any use.
  for (const path of server.opened) {
    assert.ok(!path.split('/').slice(1).some((p) => p === '..' || p === '.' || p === ''), `opened ${JSON.stringify(path)}`);
    assert.ok(!/[\x00-\x1f]/.test(path), `opened ${JSON.stringify(path)}`);
  }
  // Every other file arrived, intact; the lying ones have no file under their final name.
  const files = await listFiles(local);
  assert.deepEqual(files.filter((f) => !f.endsWith('.cm-partial')), [...good.keys()].sort(), r.stdout);
  for (const [rel, content] of good) assert.equal(await sha256File(join(local, rel)), sha256(content), `${rel} intact`);
  // Only the short files keep a partial (a clean prefix to resume from); the grown ones none.
  assert.deepEqual(files.filter((f) => f.endsWith('.cm-partial')), ['.short.bin.5000.1700000000.cm-partial', 'lies/.short-big.bin.300000.1700000000.cm-partial']);

  // One line per log record: no name broke a line or put a control character on the terminal.
  for (const line of r.stdout.split('\n').filter((l) => l !== '')) assert.match(line, /^\d{4}-\d\d-\d\dT\S+ (INFO|WARN|ERROR) /, JSON.stringify(line));
  assert.ok(!/[\x00-\x09\x0b-\x1f\x7f]/.test(r.stdout), 'no control character in the output');
  assert.equal(r.stderr, '', 'no stack trace');

  // Each refused name: exactly one warning, naming it escaped, with its folder.
  const warned = warnings(r);
  for (const [quoted, folder] of refused) {
    const lines = warned.filter((l) => l.includes(`refused a name from the server: ${quoted} `));
    assert.equal(lines.length, 1, `one warning for ${quoted}:\n${warned.join('\n')}`);
    assert.ok(lines[0].endsWith(` folder=${folder}`), lines[0]);
  }
  const tooLong = warned.filter((l) => l.includes('refused a file from the server: its local path would be'));
  assert.equal(tooLong.length, 1, warned.join('\n'));
  assert.match(tooLong[0], /file=long\/chain\/01d+\/.*\/21d+\/f\.bin$/);
  assert.equal(warned.length, refused.length + 1, `no other warning:\n${warned.join('\n')}`);

  // The lying sizes: each file fails, named, with what was wrong.
  assert.match(r.stdout, /ERROR not downloaded file=short\.bin reason=".*ended at 3000 bytes, its size was 5000/);
  assert.match(r.stdout, /ERROR not downloaded file=lies\/short-big\.bin reason=".*ended at 200000 bytes, its size was 300000/);
  assert.match(r.stdout, /ERROR not downloaded file=grown\.bin reason="the remote file has more than the 3000 bytes/);
  assert.match(r.stdout, /ERROR not downloaded file=lies\/grown-big\.bin reason="the remote file has more than the 300000 bytes/);

  // The run went on to the end and says that it failed: exit 1.
  const failures = refused.length + 1 + 4;
  assert.match(r.stdout, new RegExp(`ERROR mirror finished with ${failures} failed file\\(s\\)`));
  assert.equal(r.code, 1);
}

describe('mirror against a hostile server', () => {
  it('writes nothing outside LOCAL_PATH, refuses each bad name once, fetches the rest, keeps no file whose size lied; exit 1', async () => {
    const untouched = await snapshot(work, local);
    const first = await mirror();
    await assertContained(first, untouched);
    // A clean item is reported as usual; one with a refused name is not reported complete.
    assert.match(first.stdout, /INFO  downloaded item=20251117 type=directory files=1 bytes=7000/);
    assert.match(first.stdout, /INFO  downloaded item=normal\.txt type=file/);
    assert.doesNotMatch(first.stdout, /INFO  downloaded item=20251118/);
    assert.match(first.stdout, /ERROR not mirrored item=20251118 file=20251118\/\.\.\/\.\.\/escape3\.txt reason="unsafe name from the server: it contains \\"\/\\""/);

    // The next run: the same refusals and failures, once each, nothing fetched again.
    const second = await mirror();
    await assertContained(second, untouched);
    assert.match(second.stdout, /INFO  up to date; skipped item=20251117/);
    assert.match(second.stdout, /INFO  resuming a partial download file=short\.bin from=3000 size=5000/);
  });
});
