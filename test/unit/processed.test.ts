import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { moveToProcessed } from '../../src/push/processed.js';

let root: string;
let n = 0;

before(() => {
  root = mkdtempSync(join(tmpdir(), 'cm-processed-'));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A fresh Location per test. */
function location(): string {
  const dir = join(root, `loc-${++n}`);
  mkdirSync(dir);
  return dir;
}

function put(loc: string, rel: string, content: string): void {
  mkdirSync(join(loc, rel, '..'), { recursive: true });
  writeFileSync(join(loc, rel), content);
}

describe('moveToProcessed', () => {
  it('moves a top-level file into processed/, creating it', async () => {
    const loc = location();
    put(loc, 'a.txt', 'A');
    const r = await moveToProcessed(loc, 'a.txt');
    assert.deepEqual(r, { target: join(loc, 'processed', 'a.txt'), keptOlderAs: undefined });
    assert.equal(existsSync(join(loc, 'a.txt')), false);
    assert.equal(readFileSync(join(loc, 'processed', 'a.txt'), 'utf8'), 'A');
  });

  it('keeps the relative path, creating missing parent folders', async () => {
    const loc = location();
    put(loc, 'x/y/z/deep.bin', 'deep');
    const r = await moveToProcessed(loc, 'x/y/z/deep.bin');
    assert.equal(r.target, join(loc, 'processed', 'x', 'y', 'z', 'deep.bin'));
    assert.equal(r.keptOlderAs, undefined);
    assert.equal(readFileSync(r.target, 'utf8'), 'deep');
    assert.equal(existsSync(join(loc, 'x/y/z/deep.bin')), false);
    // The source folders stay (the watcher may still be writing there).
    assert.ok(existsSync(join(loc, 'x/y/z')));
  });

  it('an older file of the same name becomes name.~1~, then the next one .~2~; the newest is at the canonical name', async () => {
    const loc = location();
    const rel = 'sub/report.csv';
    const target = join(loc, 'processed', 'sub', 'report.csv');

    put(loc, rel, 'version 1');
    assert.equal((await moveToProcessed(loc, rel)).keptOlderAs, undefined);

    put(loc, rel, 'version 2');
    const second = await moveToProcessed(loc, rel);
    assert.equal(second.target, target);
    assert.equal(second.keptOlderAs, `${target}.~1~`);
    assert.equal(readFileSync(target, 'utf8'), 'version 2');
    assert.equal(readFileSync(`${target}.~1~`, 'utf8'), 'version 1');

    put(loc, rel, 'version 3');
    const third = await moveToProcessed(loc, rel);
    assert.equal(third.keptOlderAs, `${target}.~2~`);
    assert.equal(readFileSync(target, 'utf8'), 'version 3');
    assert.equal(readFileSync(`${target}.~2~`, 'utf8'), 'version 2');
    assert.equal(readFileSync(`${target}.~1~`, 'utf8'), 'version 1');

    assert.deepEqual(readdirSync(join(loc, 'processed', 'sub')).sort(), ['report.csv', 'report.csv.~1~', 'report.csv.~2~']);
    assert.equal(existsSync(join(loc, rel)), false);
  });

  it('an empty file is moved too', async () => {
    const loc = location();
    put(loc, 'empty', '');
    const r = await moveToProcessed(loc, 'empty');
    assert.equal(readFileSync(r.target, 'utf8'), '');
  });

  it('names with spaces, quotes and unicode are moved as they are', async () => {
    const loc = location();
    const rel = `dir with space/it's "q" 😀.txt`;
    put(loc, rel, 'odd');
    const r = await moveToProcessed(loc, rel);
    assert.equal(r.target, join(loc, 'processed', rel));
    assert.equal(readFileSync(r.target, 'utf8'), 'odd');
  });

  it('a missing source rejects and destroys nothing already in processed/', async () => {
    const loc = location();
    put(loc, 'f', 'first');
    await moveToProcessed(loc, 'f');
    await assert.rejects(moveToProcessed(loc, 'f'), { code: 'ENOENT' });
    // The older file was put aside before the source turned out to be missing; it still exists.
    const target = join(loc, 'processed', 'f');
    const kept = [target, `${target}.~1~`].filter((p) => existsSync(p)).map((p) => readFileSync(p, 'utf8'));
    assert.deepEqual(kept, ['first']);
  });
});
