import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkExistingScript } from '../../src/push/upload/digest-scripts.js';
import { AssembleExit } from '../../src/push/upload/join.js';
import { assertNoMarker, caseDir, chunksLeft, markerName, removeScratch, sh, sha256, writeChunks } from '../helpers/sh-scripts.js';

after(removeScratch);

describe('checkExistingScript', () => {
  it('prints the hash and removes the chunks when it matches', () => {
    const dir = caseDir('check-match');
    const prefix = join(dir, 'cm-chk');
    writeChunks(prefix, ['a', 'b']);
    const destination = join(dir, 'dest');
    writeFileSync(destination, 'ab');
    const r = sh(checkExistingScript(destination, sha256('ab'), prefix));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${sha256('ab')}\n`);
    assert.deepEqual(chunksLeft(prefix, 2), []);
    assert.equal(readFileSync(destination, 'utf8'), 'ab');
  });

  it('prints the actual hash and keeps the chunks when it does not match', () => {
    const dir = caseDir('check-mismatch');
    const prefix = join(dir, 'cm-chk');
    writeChunks(prefix, ['a', 'b']);
    const destination = join(dir, 'dest');
    writeFileSync(destination, 'XY');
    const r = sh(checkExistingScript(destination, sha256('ab'), prefix));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${sha256('XY')}\n`);
    assert.deepEqual(chunksLeft(prefix, 2), [0, 1]);
  });

  it('a missing destination exits with the hash step code and keeps the chunks', () => {
    const dir = caseDir('check-missing');
    const prefix = join(dir, 'cm-chk');
    writeChunks(prefix, ['a']);
    const r = sh(checkExistingScript(join(dir, 'nope'), sha256('a'), prefix));
    assert.equal(r.status, AssembleExit.hash);
    assert.deepEqual(chunksLeft(prefix, 1), [0]);
  });

  it('works with hostile destination and prefix names', () => {
    const dir = caseDir('check-hostile');
    const nasty = `a b 'c' "d" $(touch ${markerName}) \`touch ${markerName}\`; | \n *`;
    const prefix = join(dir, `cm ${nasty}`);
    writeChunks(prefix, ['1', '2']);
    const destination = join(dir, `dest ${nasty}`);
    writeFileSync(destination, 'content');
    const r = sh(checkExistingScript(destination, sha256('content'), prefix));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${sha256('content')}\n`);
    assert.deepEqual(chunksLeft(prefix, 2), []);
    assertNoMarker();
  });
});
