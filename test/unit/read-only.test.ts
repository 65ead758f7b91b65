// A read-only filesystem is called read-only (issue 16, item 6), where Node's recursive mkdir
// says ENOENT ("no such file or directory") as soon as two levels are missing: the move to
// processed/, the state database's folder, a mirror's LOCAL_PATH. The calls run in a child
// process with a folder made read-only in its own mount namespace (root only: skipped otherwise).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { runReadOnly } from '../helpers/read-only.js';

let root: string;
let ro: string;
const src = (file: string) => pathToFileURL(new URL(`../../src/${file}`, import.meta.url).pathname).href;
const root0 = process.getuid?.() === 0;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'cm-read-only-'));
  ro = join(root, 'ro');
  mkdirSync(join(ro, 'location', 'a'), { recursive: true });
  writeFileSync(join(ro, 'location', 'a', 'x.txt'), 'x');
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

/** Runs `body` (an async function's body, ESM, with `ro` in scope) with `ro` read-only; returns what it printed. */
async function inReadOnly(body: string): Promise<string> {
  const script = join(root, `script-${Math.random().toString(36).slice(2)}.mts`);
  writeFileSync(script, `const ro = ${JSON.stringify(ro)};\nconst say = (s: unknown) => process.stdout.write(String(s) + '\\n');\n${body}\n`);
  const r = await runReadOnly([ro], process.execPath, ['--import', 'tsx', script], { cwd: new URL('../..', import.meta.url).pathname });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  return r.stdout;
}

describe('read-only filesystems are called read-only', { skip: !root0 && 'needs root (mount namespaces)' }, () => {
  it('the move to processed/: the folder it could not create, and why', async () => {
    const out = await inReadOnly(`
      const { moveToProcessed } = await import(${JSON.stringify(src('push/processed.ts'))});
      await moveToProcessed(ro + '/location', 'a/x.txt').catch((e) => say(e.code + ' ' + e.message));
    `);
    assert.equal(out, `EROFS cannot create the folder ${ro}/location/processed/a: read-only file system\n`);
  });

  it('makeFolders and makeFoldersAsync (the mirror\'s LOCAL_PATH) say EROFS for the first level they cannot make', async () => {
    const out = await inReadOnly(`
      const { makeFolders, makeFoldersAsync } = await import(${JSON.stringify(src('shore-fs.ts'))});
      try { makeFolders(ro + '/new/deeper'); } catch (e) { say(e.message); }
      await makeFoldersAsync(ro + '/other/deeper').catch((e) => say(e.message));
      makeFolders(ro + '/location/a'); // already there: nothing to do, no error
      say('ok');
    `);
    assert.equal(out, `EROFS: read-only file system, mkdir '${ro}/new'\nEROFS: read-only file system, mkdir '${ro}/other'\nok\n`);
  });

  it('a mirror download into a read-only LOCAL_PATH fails with a FileError saying read-only', async () => {
    const out = await inReadOnly(`
      const { downloadFile } = await import(${JSON.stringify(src('mirror/download.ts'))});
      const reader = {
        maxReadLength: 1000,
        openRead: async () => Buffer.from('h'),
        fstat: async () => ({ size: 1, mtime: 1700000000 }),
        read: async () => Buffer.alloc(0),
        close: async () => {},
      };
      await downloadFile(reader, { remotePath: '/r/item/sub/f', localPath: ro + '/mirror/item/sub/f' }, { signal: new AbortController().signal })
        .catch((e) => say(e.constructor.name + ' ' + e.message));
    `);
    assert.equal(out, `FileError ${ro}/mirror/item/sub/f: EROFS: read-only file system, mkdir '${ro}/mirror'\n`);
  });

  it('the state database: folders that cannot be made, a folder that cannot be written', async () => {
    const out = await inReadOnly(`
      const { parseSettings } = await import(${JSON.stringify(src('settings/load.ts'))});
      const { lockStateFolder } = await import(${JSON.stringify(src('state/database.ts'))});
      for (const db of [ro + '/state/more/db.sqlite3', ro + '/db.sqlite3']) {
        const settings = parseSettings('[MONSTER]\\nDatabase = ' + db + '\\n[Directory d]\\nLocation = /srv\\n[Vessel v]\\nAddress = h\\n', '/etc/cm/settings.ini');
        try { lockStateFolder(settings); } catch (e) { say(e.constructor.name + ' ' + e.message); }
      }
    `);
    assert.equal(out, [
      `ConfigError /etc/cm/settings.ini: [MONSTER] Database: cannot open ${ro}/state/more/db.sqlite3: its folder ${ro}/state/more cannot be created: read-only file system`,
      `ConfigError /etc/cm/settings.ini: [MONSTER] Database: cannot open ${ro}/db.sqlite3: its folder ${ro} is not writable: read-only file system`,
      '',
    ].join('\n'));
  });
});
