// The watcher on a real folder tree: one inotify watch per folder and none per file (counted
// from this process's /proc/self/fdinfo), what it reports, and how it lets go of folders that
// leave. ENOSPC needs a user namespace with a low limit: test/e2e/watcher-scale.test.ts.
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, beforeEach, describe, it } from 'node:test';
import { makeIgnoreMatcher } from '../../src/settings/glob.js';
import { Watcher } from '../../src/push/watcher.js';
import { ranOutMessage, watchesNeeded } from '../../src/push/watch-limit.js';

// A safety net so a broken test fails instead of hanging; nothing asserts how long anything took.
const SAFETY_MS = 20_000;

const filter = { isIgnored: makeIgnoreMatcher(['.*', '*.part', '*.tmp', '*~', '*.swp']) };

/** inotify watches this process holds. */
function watches(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) !== 'anon_inode:inotify') continue;
      n += readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n').filter((l) => l.startsWith('inotify wd:')).length;
    } catch {
      // closed meanwhile (the listing's own descriptor)
    }
  }
  return n;
}

async function until(what: string, test: () => boolean): Promise<void> {
  const deadline = Date.now() + SAFETY_MS;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Seen {
  kind: 'path' | 'folder';
  relpath: string;
}

function fakeLog() {
  const lines: { level: string; msg: string; fields: unknown }[] = [];
  const at = (level: string) => (fields: unknown, msg?: string) => void lines.push({ level, msg: msg ?? String(fields), fields });
  return { lines, log: { warn: at('warn'), info: at('info'), debug: at('debug'), error: at('error') } as any };
}

let root: string;
let watcher: Watcher | undefined;
let seen: Seen[];
let logged: ReturnType<typeof fakeLog>;

const has = (kind: Seen['kind'], relpath: string) => () => seen.some((s) => s.kind === kind && s.relpath === relpath);

async function start(): Promise<Watcher> {
  seen = [];
  logged = fakeLog();
  watcher = new Watcher([{ directory: 'd', location: root }], filter, {
    path: (d, relpath) => {
      assert.equal(d, 'd');
      seen.push({ kind: 'path', relpath });
    },
    folder: (d, relpath) => {
      assert.equal(d, 'd');
      seen.push({ kind: 'folder', relpath });
    },
  }, logged.log);
  await watcher.ready();
  return watcher;
}

describe('Watcher', () => {
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'cm-watcher-'));
  });
  afterEach(async () => {
    await watcher?.close();
    watcher = undefined;
    rmSync(root, { recursive: true, force: true });
  });
  after(() => assert.equal(watches(), 0, 'every watch closed'));

  it('one watch per folder, none per file; processed/ at the top, ignored names and linked folders get none', async () => {
    mkdirSync(join(root, 'a', 'b', 'c'), { recursive: true });
    mkdirSync(join(root, 'a', 'processed'), { recursive: true }); // deeper down it is an ordinary folder
    mkdirSync(join(root, 'processed', 'x'), { recursive: true });
    mkdirSync(join(root, '.cache', 'y'), { recursive: true });
    mkdirSync(join(root, 'a', 'movie.part'), { recursive: true });
    for (let i = 0; i < 200; i++) writeFileSync(join(root, 'a', `f${i}.bin`), 'x');
    symlinkSync(join(root, 'a'), join(root, 'link'));
    await start();
    assert.equal(watches(), 5, 'the Location, a, a/b, a/b/c, a/processed');
    await watcher!.close();
    assert.equal(watches(), 0);
  });

  it('reports files written, changed and removed, anywhere below; nothing under processed/ or ignored names', async () => {
    mkdirSync(join(root, 'a', 'b'), { recursive: true });
    mkdirSync(join(root, 'processed'));
    mkdirSync(join(root, '.cache'));
    await start();
    writeFileSync(join(root, 'processed', 'done.bin'), 'x');
    writeFileSync(join(root, '.cache', 'c.bin'), 'x');
    writeFileSync(join(root, 'a', 'b', 'skip.tmp'), 'x');
    writeFileSync(join(root, 'a', 'b', 'one.bin'), 'x');
    await until('a/b/one.bin', has('path', 'a/b/one.bin'));
    // Events come in order: by now those of the excluded files have come too.
    assert.deepEqual(seen.filter((s) => s.relpath !== 'a/b/one.bin'), []);
    seen.length = 0;
    writeFileSync(join(root, 'a', 'b', 'one.bin'), 'changed');
    await until('the change', has('path', 'a/b/one.bin'));
    seen.length = 0;
    rmSync(join(root, 'a', 'b', 'one.bin'));
    await until('the removal', has('path', 'a/b/one.bin'));
    writeFileSync(join(root, 'top.bin'), 'x');
    await until('top.bin', has('path', 'top.bin'));
  });

  it('a new folder (with folders in it) is watched and then reported for a scan; files written in it later are reported', async () => {
    await start();
    const before = watches();
    mkdirSync(join(root, 'n', 'm', 'k'), { recursive: true });
    writeFileSync(join(root, 'n', 'm', 'k', 'early.bin'), 'x');
    await until('the folder event', has('folder', 'n'));
    assert.equal(watches(), before + 3);
    writeFileSync(join(root, 'n', 'm', 'k', 'late.bin'), 'x');
    await until('late.bin', has('path', 'n/m/k/late.bin'));
    assert.equal(seen.filter((s) => s.kind === 'folder').length, 1, 'one scan for the new tree');
  });

  it('a folder moved away or removed is let go with everything below it; one moved in is watched under its new name', async () => {
    mkdirSync(join(root, 'a', 'b', 'c'), { recursive: true });
    mkdirSync(join(root, 'gone', 'x'), { recursive: true });
    const outside = mkdtempSync(join(tmpdir(), 'cm-watcher-outside-'));
    try {
      await start();
      assert.equal(watches(), 6);
      renameSync(join(root, 'a'), join(outside, 'a'));
      await until('the moved tree let go', () => watches() === 3);
      rmSync(join(root, 'gone'), { recursive: true });
      await until('the removed tree let go', () => watches() === 1);
      // Moved back in under another name: watched again, and scanned.
      renameSync(join(outside, 'a'), join(root, 'again'));
      await until('the folder event', has('folder', 'again'));
      assert.equal(watches(), 4);
      writeFileSync(join(root, 'again', 'b', 'c', 'f.bin'), 'x');
      await until('again/b/c/f.bin', has('path', 'again/b/c/f.bin'));
      assert.ok(!seen.some((s) => s.relpath.startsWith('a/')), 'nothing reported under the old name');
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it('a folder replaced by another of the same name is watched afresh', async () => {
    mkdirSync(join(root, 'a'));
    const spare = join(root, 'spare');
    mkdirSync(join(spare, 'inner'), { recursive: true });
    await start();
    assert.equal(watches(), 4);
    rmSync(join(root, 'a'), { recursive: true });
    renameSync(spare, join(root, 'a'));
    await until('the folder event', has('folder', 'a'));
    await until('the watches settled', () => watches() === 3);
    writeFileSync(join(root, 'a', 'inner', 'f.bin'), 'x');
    await until('a/inner/f.bin', has('path', 'a/inner/f.bin'));
  });

  it('the Location itself removed: one warning, no crash; once back it is watched and scanned again', async () => {
    mkdirSync(join(root, 'a'));
    await start();
    rmSync(root, { recursive: true });
    await until('the warning', () => logged.lines.some((l) => l.level === 'warn'));
    assert.equal(watches(), 0);
    const warnings = logged.lines.filter((l) => l.level === 'warn');
    assert.equal(warnings.length, 1);
    assert.equal(warnings[0].msg, `Location ${root} of [Directory d] was removed or moved away; it is watched again once it is back`);
    mkdirSync(join(root, 'b'), { recursive: true });
    await until('the scan of the whole Location', has('folder', ''));
    assert.equal(watches(), 2);
    assert.ok(logged.lines.some((l) => l.level === 'info' && l.msg === `Location ${root} of [Directory d] is back; watching it`));
    writeFileSync(join(root, 'b', 'f.bin'), 'x');
    await until('b/f.bin', has('path', 'b/f.bin'));
  });
});

describe('the warning when inotify watches run out', () => {
  it('names the limit, the folders without a watch and the value to set', () => {
    const r = { watched: 8192, folders: 100_301, watchedWhenRefused: 8192, limits: { sysctl: 8192, namespace: 8192 } };
    assert.equal(watchesNeeded(r), 111_000);
    assert.equal(
      ranOutMessage(r),
      'inotify watches ran out after 8,192 of 100,301 folders (fs.inotify.max_user_watches = 8,192, shared by every process of this user): ' +
        'the 92,109 folders without a watch are only seen by the periodic rescan (RescanInterval); ' +
        'set fs.inotify.max_user_watches to at least 111,000 (sysctl -w fs.inotify.max_user_watches=111000, and in /etc/sysctl.d/ to keep it)',
    );
  });

  it('counts the watches other processes of the user hold', () => {
    // 8,192 in all, 3,000 of them ours when the first was refused: 5,192 held by others.
    assert.equal(watchesNeeded({ watched: 3000, folders: 20_000, watchedWhenRefused: 3000, limits: { sysctl: 8192, namespace: 8192 } }), 28_000);
    // Small trees still get room to grow.
    assert.equal(watchesNeeded({ watched: 40, folders: 121, watchedWhenRefused: 40, limits: { sysctl: 192_543, namespace: 40 } }), 2000);
    assert.equal(watchesNeeded({ watched: 10, folders: 50, watchedWhenRefused: 10, limits: {} }), 2000);
  });

  it('inside a user namespace with a lower limit, names that limit and never advises lowering the host\'s', () => {
    const text = ranOutMessage({ watched: 40, folders: 121, watchedWhenRefused: 40, limits: { sysctl: 192_543, namespace: 40 } });
    assert.equal(
      text,
      'inotify watches ran out after 40 of 121 folders (fs.inotify.max_user_watches = 192,543, shared by every process of this user; user.max_inotify_watches = 40 in this user namespace): ' +
        'the 81 folders without a watch are only seen by the periodic rescan (RescanInterval); ' +
        'set user.max_inotify_watches of this user namespace to at least 2,000 (sysctl -w user.max_inotify_watches=2000)',
    );
    // Both, where the host's limit is below the need as well.
    assert.match(
      ranOutMessage({ watched: 500, folders: 9000, watchedWhenRefused: 500, limits: { sysctl: 8192, namespace: 500 } }),
      /set fs\.inotify\.max_user_watches to at least 10,000 \(sysctl -w fs\.inotify\.max_user_watches=10000, and in \/etc\/sysctl\.d\/ to keep it\); set user\.max_inotify_watches of this user namespace to at least 10,000 \(sysctl -w user\.max_inotify_watches=10000\)$/,
    );
  });
});
