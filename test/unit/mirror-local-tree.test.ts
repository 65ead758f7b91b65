import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { scanLocalItem } from '../../src/mirror/local-tree.js';
import { partialName } from '../../src/mirror/partial.js';

describe('scanLocalItem', () => {
  let root: string;
  let n = 0;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'cm-mirror-local-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** A fresh LOCAL_PATH holding `files` (path → size in bytes). */
  async function localPath(files: Record<string, number> = {}): Promise<string> {
    const dir = join(root, `case-${++n}`);
    await mkdir(dir);
    for (const [rel, size] of Object.entries(files)) {
      await mkdir(dirname(join(dir, rel)), { recursive: true });
      await writeFile(join(dir, rel), Buffer.alloc(size, 0x78));
    }
    return dir;
  }

  it('finds nothing for an item that is not here', async () => {
    const dir = await localPath();
    assert.deepEqual(await scanLocalItem(dir, '20251118'), { total: 0, sizes: new Map(), partials: [] });
  });

  it('finds nothing when LOCAL_PATH itself is missing', async () => {
    assert.deepEqual(await scanLocalItem(join(root, 'no-such-dir'), 'item'), { total: 0, sizes: new Map(), partials: [] });
  });

  it('finds nothing when LOCAL_PATH is a file (ENOTDIR)', async () => {
    const dir = await localPath({ plain: 3 });
    assert.deepEqual(await scanLocalItem(join(dir, 'plain'), 'item'), { total: 0, sizes: new Map(), partials: [] });
  });

  it('counts a file item by its own name', async () => {
    const dir = await localPath({ 'report.csv': 1234, 'other.csv': 99 });
    assert.deepEqual(await scanLocalItem(dir, 'report.csv'), { total: 1234, sizes: new Map([['report.csv', 1234]]), partials: [] });
  });

  it('counts an empty file', async () => {
    const dir = await localPath({ empty: 0 });
    assert.deepEqual(await scanLocalItem(dir, 'empty'), { total: 0, sizes: new Map([['empty', 0]]), partials: [] });
  });

  it('walks nested folders, keyed by /-separated paths below LOCAL_PATH', async () => {
    const dir = await localPath({
      '20251118/a.bin': 10,
      '20251118/sub/b.bin': 20,
      '20251118/sub/deeper/c.bin': 30,
      '20251118/empty.bin': 0,
      '20251117/not-this-item.bin': 1000,
    });
    await mkdir(join(dir, '20251118', 'empty-dir'));
    const item = await scanLocalItem(dir, '20251118');
    assert.equal(item.total, 60);
    assert.deepEqual(new Map([...item.sizes].sort()), new Map([
      ['20251118/a.bin', 10],
      ['20251118/empty.bin', 0],
      ['20251118/sub/b.bin', 20],
      ['20251118/sub/deeper/c.bin', 30],
    ]));
    assert.deepEqual(item.partials, []);
  });

  it('an empty folder item is zero', async () => {
    const dir = await localPath();
    await mkdir(join(dir, 'empty'));
    assert.deepEqual(await scanLocalItem(dir, 'empty'), { total: 0, sizes: new Map(), partials: [] });
  });

  it('lists partial downloads without counting them', async () => {
    const nested = `item/sub/${partialName('b.bin', 500, 1700000000)}`;
    const top = `item/${partialName('a.bin', 100, 1700000000)}`;
    const dir = await localPath({ 'item/a.bin': 40, [top]: 60, [nested]: 250, 'item/sub/c.bin': 5 });
    const item = await scanLocalItem(dir, 'item');
    assert.equal(item.total, 45);
    assert.deepEqual(new Map([...item.sizes].sort()), new Map([['item/a.bin', 40], ['item/sub/c.bin', 5]]));
    assert.deepEqual([...item.partials].sort(), [top, nested].sort());
  });

  it('counts hidden files and visible names ending in .cm-partial as ordinary files', async () => {
    const dir = await localPath({ 'item/.hidden': 7, 'item/data.cm-partial': 8 });
    const item = await scanLocalItem(dir, 'item');
    assert.equal(item.total, 15);
    assert.deepEqual(item.partials, []);
  });

  it('neither follows nor counts symlinks', async () => {
    const dir = await localPath({ 'item/real.bin': 10, 'elsewhere/big.bin': 5000, 'target.bin': 700 });
    await symlink(join(dir, 'elsewhere'), join(dir, 'item', 'dir-link'));
    await symlink(join(dir, 'target.bin'), join(dir, 'item', 'file-link'));
    await symlink(join(dir, 'nowhere'), join(dir, 'item', 'dangling'));
    await symlink(join(dir, 'item'), join(dir, 'item', 'loop'));
    const item = await scanLocalItem(dir, 'item');
    assert.deepEqual(item, { total: 10, sizes: new Map([['item/real.bin', 10]]), partials: [] });
  });

  it('does not follow an item that is itself a symlink', async () => {
    const dir = await localPath({ 'real/x.bin': 10, 'real.bin': 20 });
    await symlink(join(dir, 'real'), join(dir, 'dir-item'));
    await symlink(join(dir, 'real.bin'), join(dir, 'file-item'));
    assert.deepEqual(await scanLocalItem(dir, 'dir-item'), { total: 0, sizes: new Map(), partials: [] });
    assert.deepEqual(await scanLocalItem(dir, 'file-item'), { total: 0, sizes: new Map(), partials: [] });
  });
});
