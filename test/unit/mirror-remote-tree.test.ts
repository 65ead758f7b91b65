import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { partialName } from '../../src/mirror/partial.js';
import { filesOf, joinRemote, listItems } from '../../src/mirror/remote-tree.js';
import type { EntryKind, RemoteEntry, RemoteReader } from '../../src/ssh/remote-fs.js';

type Node =
  | { kind: 'file'; size: number; mtime: number }
  | { kind: 'dir'; children: Record<string, Node> }
  | { kind: 'link'; target: string }
  | { kind: 'other' };

const file = (size: number, mtime = 1_700_000_000): Node => ({ kind: 'file', size, mtime });
const dir = (children: Record<string, Node> = {}): Node => ({ kind: 'dir', children });
const link = (target: string): Node => ({ kind: 'link', target });
const other: Node = { kind: 'other' };

/** A server's tree in memory, read through RemoteReader as SFTP would answer. */
/** A reader for listings only: reading a file is never asked of these fakes. */
abstract class ListingsOnly {
  openRead(): Promise<Buffer> {
    throw new Error('not used');
  }

  fstat(): Promise<{ size: number; mtime: number }> {
    throw new Error('not used');
  }

  read(): Promise<Buffer> {
    throw new Error('not used');
  }

  close(): Promise<void> {
    throw new Error('not used');
  }
}

class FakeTree extends ListingsOnly implements RemoteReader {
  readonly maxReadLength = 32_768;
  readonly #root: Node;
  readdirs: string[] = [];

  constructor(root: Record<string, Node>) {
    super();
    this.#root = dir(root);
  }

  #lookup(path: string): Node | undefined {
    assert.ok(path.startsWith('/'), `relative path ${path}`);
    assert.ok(!path.includes('//'), `doubled slash in ${path}`);
    let node: Node | undefined = this.#root;
    for (const part of path.split('/').filter((p) => p !== '')) {
      if (node?.kind !== 'dir') return undefined;
      node = node.children[part];
    }
    return node;
  }

  #follow(path: string, depth = 0): Node | undefined {
    const node = this.#lookup(path);
    if (node?.kind === 'link' && depth < 10) return this.#follow(node.target, depth + 1);
    return node;
  }

  static #entry(name: string, node: Node): RemoteEntry {
    const kinds: Record<Node['kind'], EntryKind> = { file: 'file', dir: 'directory', link: 'symlink', other: 'other' };
    const size = node.kind === 'file' ? node.size : node.kind === 'link' ? node.target.length : 4096;
    const mtime = node.kind === 'file' ? node.mtime : 1_600_000_000;
    return { name, kind: kinds[node.kind], size, mtime };
  }

  async readdir(path: string): Promise<RemoteEntry[]> {
    this.readdirs.push(path);
    const node = this.#follow(path);
    if (node?.kind !== 'dir') throw new Error(`readdir ${path}: not a directory`);
    return Object.entries(node.children).map(([name, child]) => FakeTree.#entry(name, child));
  }

  async statFollow(path: string): Promise<RemoteEntry | null> {
    const node = this.#follow(path);
    return node === undefined || node.kind === 'link' ? null : FakeTree.#entry(path.slice(path.lastIndexOf('/') + 1), node);
  }
}

/** Collects onSkip calls. */
function skips(): { onSkip: (path: string, reason: string) => void; seen: [string, string][]; paths: () => string[] } {
  const seen: [string, string][] = [];
  return { onSkip: (path, reason) => seen.push([path, reason]), seen, paths: () => seen.map(([p]) => p).sort() };
}

const noSkip = (path: string, reason: string): void => assert.fail(`unexpected skip of ${path}: ${reason}`);
const noRefuse = (dir: string, name: string, reason: string): void => assert.fail(`unexpected refusal of ${JSON.stringify(name)} in ${dir}: ${reason}`);

describe('joinRemote', () => {
  it('joins with exactly one slash', () => {
    assert.equal(joinRemote('/srv/data', 'x'), '/srv/data/x');
    assert.equal(joinRemote('/srv/data/', 'x'), '/srv/data/x');
    assert.equal(joinRemote('/', 'x'), '/x');
  });
});

describe('listItems', () => {
  it('lists folders newest first, then files newest first', async () => {
    const tree = new FakeTree({
      srv: dir({
        'a.txt': file(1),
        '20251117': dir(),
        day9: dir(),
        'c.txt': file(3),
        '20251118': dir(),
        day10: dir(),
        'b.txt': file(2),
      }),
    });
    const items = await listItems(tree, '/srv', noSkip, noRefuse);
    assert.deepEqual(items.map((e) => [e.name, e.kind]), [
      ['day10', 'directory'], ['day9', 'directory'], ['20251118', 'directory'], ['20251117', 'directory'],
      ['c.txt', 'file'], ['b.txt', 'file'], ['a.txt', 'file'],
    ]);
    assert.deepEqual(tree.readdirs, ['/srv'], 'lists the top level only');
  });

  it('lists nothing for an empty folder', async () => {
    assert.deepEqual(await listItems(new FakeTree({ srv: dir() }), '/srv', noSkip, noRefuse), []);
  });

  it('resolves a symlink to a file into a file with the target size and mtime', async () => {
    const tree = new FakeTree({ data: dir({ 'real.bin': file(12345, 1_700_000_123) }), srv: dir({ 'latest.bin': link('/data/real.bin') }) });
    assert.deepEqual(await listItems(tree, '/srv', noSkip, noRefuse), [{ name: 'latest.bin', kind: 'file', size: 12345, mtime: 1_700_000_123 }]);
  });

  it('skips a symlink to a folder, a dangling symlink, a symlink to a special file and a special file, once each', async () => {
    const tree = new FakeTree({
      data: dir({ sub: dir({ x: file(1) }), sock: other }),
      srv: dir({
        keep: file(5),
        'to-dir': link('/data/sub'),
        dangling: link('/data/nowhere'),
        'to-socket': link('/data/sock'),
        fifo: other,
      }),
    });
    const s = skips();
    const items = await listItems(tree, '/srv', s.onSkip, noRefuse);
    assert.deepEqual(items.map((e) => e.name), ['keep']);
    assert.deepEqual(s.paths(), ['/srv/dangling', '/srv/fifo', '/srv/to-dir', '/srv/to-socket']);
    const reason = new Map(s.seen);
    assert.match(reason.get('/srv/to-dir')!, /directory/);
    assert.match(reason.get('/srv/dangling')!, /does not exist/);
    assert.match(reason.get('/srv/to-socket')!, /not a regular file/);
    assert.match(reason.get('/srv/fifo')!, /not a regular file/);
    assert.deepEqual(tree.readdirs, ['/srv'], 'the symlinked folder is not listed');
  });

  it('skips entries with the name of a partial download', async () => {
    const hidden = partialName('big.iso', 100, 1_700_000_000);
    const tree = new FakeTree({ srv: dir({ 'big.iso': file(100), [hidden]: file(40), '.odd.cm-partial': dir() }) });
    const s = skips();
    assert.deepEqual((await listItems(tree, '/srv', s.onSkip, noRefuse)).map((e) => e.name), ['big.iso']);
    assert.deepEqual(s.paths(), [`/srv/${hidden}`, '/srv/.odd.cm-partial'].sort());
    assert.ok(s.seen.every(([, reason]) => /partial/.test(reason)));
  });

  it('keeps hidden files and visible names that end in .cm-partial', async () => {
    const tree = new FakeTree({ srv: dir({ '.hidden': file(1), 'x.cm-partial': file(2) }) });
    assert.deepEqual((await listItems(tree, '/srv', noSkip, noRefuse)).map((e) => e.name).sort(), ['.hidden', 'x.cm-partial']);
  });

  it('gives the same items and skip paths with and without a trailing slash', async () => {
    const make = () => new FakeTree({ srv: dir({ data: dir({ a: dir(), 'b.txt': file(2), bad: link('/none') }) }) });
    const plain = skips();
    const slashed = skips();
    const withoutSlash = await listItems(make(), '/srv/data', plain.onSkip, noRefuse);
    const withSlash = await listItems(make(), '/srv/data/', slashed.onSkip, noRefuse);
    assert.deepEqual(withSlash, withoutSlash);
    assert.deepEqual(plain.paths(), ['/srv/data/bad']);
    assert.deepEqual(slashed.paths(), ['/srv/data/bad']);
  });

  it('works at the root of the server', async () => {
    const tree = new FakeTree({ 'a.txt': file(1), bad: link('/none') });
    const s = skips();
    assert.deepEqual((await listItems(tree, '/', s.onSkip, noRefuse)).map((e) => e.name), ['a.txt']);
    assert.deepEqual(s.paths(), ['/bad']);
  });
});

describe('filesOf', () => {
  const item = (name: string, kind: EntryKind, size = 0, mtime = 0): RemoteEntry => ({ name, kind, size, mtime });

  it('gives a file item as its only file, without listing anything', async () => {
    const tree = new FakeTree({ srv: dir({ 'a.bin': file(10) }) });
    assert.deepEqual(await filesOf(tree, '/srv', item('a.bin', 'file', 10, 1_700_000_000), noSkip, noRefuse), [{ relPath: 'a.bin', size: 10, mtime: 1_700_000_000 }]);
    assert.deepEqual(tree.readdirs, []);
  });

  it('walks a folder depth first: sub-folders newest first, then files, at every level', async () => {
    const tree = new FakeTree({
      srv: dir({
        '20251118': dir({
          'a.bin': file(1, 11),
          'b.bin': file(2, 12),
          hour9: dir({ 'x.bin': file(3, 13), deep: dir({ 'y.bin': file(4, 14) }) }),
          hour10: dir({ 'z.bin': file(5, 15) }),
          empty: dir(),
        }),
      }),
    });
    const files = await filesOf(tree, '/srv', item('20251118', 'directory'), noSkip, noRefuse);
    assert.deepEqual(files, [
      { relPath: '20251118/hour10/z.bin', size: 5, mtime: 15 },
      { relPath: '20251118/hour9/deep/y.bin', size: 4, mtime: 14 },
      { relPath: '20251118/hour9/x.bin', size: 3, mtime: 13 },
      { relPath: '20251118/b.bin', size: 2, mtime: 12 },
      { relPath: '20251118/a.bin', size: 1, mtime: 11 },
    ]);
  });

  it('gives nothing for an empty folder item', async () => {
    const tree = new FakeTree({ srv: dir({ empty: dir() }) });
    assert.deepEqual(await filesOf(tree, '/srv', item('empty', 'directory'), noSkip, noRefuse), []);
  });

  it('includes a symlink to a file with the target size, and skips the rest with their full paths', async () => {
    const tree = new FakeTree({
      data: dir({ 'real.bin': file(777, 1_700_000_777), sub: dir({ secret: file(1) }) }),
      srv: dir({
        item: dir({
          'own.bin': file(3, 1),
          'link.bin': link('/data/real.bin'),
          nested: dir({ 'to-dir': link('/data/sub'), dangling: link('/data/none'), dev: other }),
          [partialName('own.bin', 3, 1)]: file(1),
        }),
      }),
    });
    const s = skips();
    const files = await filesOf(tree, '/srv', item('item', 'directory'), s.onSkip, noRefuse);
    assert.deepEqual(files, [
      { relPath: 'item/own.bin', size: 3, mtime: 1 },
      { relPath: 'item/link.bin', size: 777, mtime: 1_700_000_777 },
    ]);
    assert.deepEqual(s.paths(), [
      `/srv/item/${partialName('own.bin', 3, 1)}`,
      '/srv/item/nested/dangling',
      '/srv/item/nested/dev',
      '/srv/item/nested/to-dir',
    ].sort());
    assert.ok(!tree.readdirs.includes('/srv/item/nested/to-dir'), 'a symlinked folder is not walked');
  });

  it('gives the same files and skip paths with and without a trailing slash on the root', async () => {
    const make = () => new FakeTree({ srv: dir({ item: dir({ sub: dir({ 'a.bin': file(1) }), 'b.bin': file(2), bad: link('/none') }) }) });
    const plain = skips();
    const slashed = skips();
    const withoutSlash = await filesOf(make(), '/srv', item('item', 'directory'), plain.onSkip, noRefuse);
    const withSlash = await filesOf(make(), '/srv/', item('item', 'directory'), slashed.onSkip, noRefuse);
    assert.deepEqual(withoutSlash.map((f) => f.relPath), ['item/sub/a.bin', 'item/b.bin']);
    assert.deepEqual(withSlash, withoutSlash);
    assert.deepEqual(plain.paths(), ['/srv/item/bad']);
    assert.deepEqual(slashed.paths(), ['/srv/item/bad']);
  });

  it('works below the root of the server', async () => {
    const tree = new FakeTree({ item: dir({ 'a.bin': file(1) }) });
    assert.deepEqual((await filesOf(tree, '/', item('item', 'directory'), noSkip, noRefuse)).map((f) => f.relPath), ['item/a.bin']);
    assert.deepEqual(tree.readdirs, ['/item']);
  });
});

/** A server whose listings are given verbatim, hostile names and all (no path parsing). */
class ScriptedListings extends ListingsOnly implements RemoteReader {
  readonly maxReadLength = 32_768;
  readonly #listings: Map<string, RemoteEntry[]>;
  readdirs: string[] = [];
  stats: string[] = [];

  constructor(listings: Record<string, [string, EntryKind][]>) {
    super();
    this.#listings = new Map(Object.entries(listings).map(([dir, entries]) => [dir, entries.map(([name, kind]) => ({ name, kind, size: 1, mtime: 1 }))]));
  }

  async readdir(path: string): Promise<RemoteEntry[]> {
    this.readdirs.push(path);
    const list = this.#listings.get(path);
    if (!list) throw new Error(`readdir ${JSON.stringify(path)}: not listed`);
    return list;
  }

  async statFollow(path: string): Promise<RemoteEntry | null> {
    this.stats.push(path);
    return { name: path.slice(path.lastIndexOf('/') + 1), kind: 'file', size: 1, mtime: 1 };
  }
}

/** Collects onRefuse calls as [relDir, name]. */
function refusals(): { onRefuse: (relDir: string, name: string, reason: string) => void; seen: [string, string, string][] } {
  const seen: [string, string, string][] = [];
  return { onRefuse: (relDir, name, reason) => seen.push([relDir, name, reason]), seen };
}

const hostileNames: [string, EntryKind][] = [
  ['../escape1.txt', 'file'],
  ['sub/../../escape2.txt', 'file'],
  ['../escdir', 'directory'],
  ['a/b', 'file'],
  ['new\nline', 'file'],
  ['x'.repeat(300), 'file'],
  ['.', 'directory'],
  ['..', 'directory'],
  ['', 'file'],
  ['nul\0name', 'file'],
  ['ctl\x01name', 'file'],
  ['../link', 'symlink'],
];

describe('names from the listing', () => {
  it('listItems refuses every unsafe name once, before touching it, and keeps the rest', async () => {
    const reader = new ScriptedListings({ '/srv': [...hostileNames, ['ok.txt', 'file'], ['day1', 'directory'], ['..x', 'file'], ['x'.repeat(255), 'file']] });
    const r = refusals();
    const items = await listItems(reader, '/srv', noSkip, r.onRefuse);
    assert.deepEqual(items.map((e) => e.name), ['day1', 'x'.repeat(255), 'ok.txt', '..x']);
    assert.deepEqual(r.seen.map(([dir, name]) => [dir, name]), hostileNames.map(([name]) => ['', name]));
    assert.deepEqual(reader.stats, [], 'a refused symlink is not even followed');
    assert.deepEqual(reader.readdirs, ['/srv']);
    const reason = new Map(r.seen.map(([, name, why]) => [name, why]));
    assert.match(reason.get('../escape1.txt')!, /contains "\/"/);
    assert.match(reason.get('..')!, /itself or its parent/);
    assert.match(reason.get('')!, /empty/);
    assert.match(reason.get('nul\0name')!, /NUL/);
    assert.match(reason.get('new\nline')!, /control character/);
    assert.match(reason.get('x'.repeat(300))!, /300 bytes/);
  });

  it('refuses a name listed a second time (as anything), keeping the first', async () => {
    const reader = new ScriptedListings({ '/srv': [['x', 'directory'], ['ok', 'file'], ['x', 'file'], ['x', 'file']] });
    const r = refusals();
    const items = await listItems(reader, '/srv', noSkip, r.onRefuse);
    assert.deepEqual(items.map((e) => [e.name, e.kind]), [['x', 'directory'], ['ok', 'file']]);
    assert.deepEqual(r.seen, [['', 'x', 'is listed more than once'], ['', 'x', 'is listed more than once']], 'reported per occurrence; the mirror says it once');
  });

  it('filesOf refuses unsafe names at every level with the folder they are in, and does not walk refused folders', async () => {
    const reader = new ScriptedListings({
      '/srv/item': [['../../escape3.txt', 'file'], ['good.bin', 'file'], ['sub', 'directory'], ['../escdir', 'directory']],
      '/srv/item/sub': [['deep.bin', 'file'], ['x/y', 'file'], ['..', 'directory']],
    });
    const r = refusals();
    const files = await filesOf(reader, '/srv', { name: 'item', kind: 'directory', size: 0, mtime: 0 }, noSkip, r.onRefuse);
    assert.deepEqual(files.map((f) => f.relPath), ['item/sub/deep.bin', 'item/good.bin']);
    assert.deepEqual(r.seen.map(([dir, name]) => [dir, name]), [
      ['item', '../../escape3.txt'], ['item', '../escdir'], ['item/sub', 'x/y'], ['item/sub', '..'],
    ]);
    assert.deepEqual(reader.readdirs, ['/srv/item', '/srv/item/sub']);
  });
});
