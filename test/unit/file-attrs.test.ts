import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkExistingScript } from '../../src/push/upload/digest-scripts.js';
import { attrsWords, fileAttrs, parseAttrsFailed } from '../../src/push/upload/file-attrs.js';
import { joinScript, parsePlaced } from '../../src/push/upload/join.js';
import { assertNoMarker, caseDir, markerName, removeScratch, root, sh, sha256, writeChunks } from '../helpers/sh-scripts.js';

after(removeScratch);

describe('file attributes (mode and mtime)', () => {
  // 2001-02-03 04:05:06 UTC
  const past = Date.UTC(2001, 1, 3, 4, 5, 6) / 1000;
  const mode = (path: string) => statSync(path).mode & 0o7777;
  const mtime = (path: string) => Math.floor(statSync(path).mtimeMs / 1000);
  /** A bin folder whose `name` prints an error and fails, put first on PATH. */
  const failing = (dir: string, ...names: string[]) => {
    const bin = join(dir, 'bin');
    mkdirSync(bin, { recursive: true });
    for (const name of names) writeFileSync(join(bin, name), `#!/bin/sh\necho "${name}: changing things: Operation not permitted" >&2\nexit 1\n`, { mode: 0o755 });
    return { ...process.env, PATH: `${bin}:${process.env.PATH}` };
  };
  const joinWith = (dir: string, endWords: string, env?: NodeJS.ProcessEnv) => {
    const prefix = join(dir, 'cm-a');
    writeChunks(prefix, ['sec', 'ret']);
    const destination = join(dir, 'out', 'secret.txt');
    const plan = { chunkPrefix: prefix, assemblyPrefix: join(dir, 'out', '.cm-a'), destination, chunkSize: 3 };
    const r = spawnSync('/bin/sh', ['-c', joinScript(plan)], { cwd: root, encoding: 'utf8', timeout: 30_000, input: `0\n1\nend ${sha256('secret')}${endWords}\n`, env });
    if (r.error) throw r.error;
    return { r, destination };
  };

  it('fileAttrs keeps the permission bits only (setuid, setgid, sticky dropped) and whole seconds', () => {
    assert.deepEqual(fileAttrs({ mode: 0o104755, mtimeMs: past * 1000 + 999.5 }), { mode: 0o755, mtime: past });
    assert.deepEqual(fileAttrs({ mode: 0o103777, mtimeMs: 0 }), { mode: 0o777, mtime: 0 });
    assert.deepEqual(fileAttrs({ mode: 0o100600, mtimeMs: -1500 }), { mode: 0o600, mtime: undefined }, 'before 1970: SFTP cannot carry it');
    assert.deepEqual(fileAttrs({ mode: 0o100600, mtimeMs: 2 ** 32 * 1000 }), { mode: 0o600, mtime: undefined }, 'after 2106 either');
  });

  it('attrsWords: octal mode and touch -t in UTC; - for what is not set', () => {
    assert.deepEqual(attrsWords({ mode: 0o640, mtime: past }), ['640', '200102030405.06']);
    assert.deepEqual(attrsWords({ mode: 0o7, mtime: 0 }), ['007', '197001010000.00']);
    assert.deepEqual(attrsWords({ mode: 0o755 }), ['755', '-']);
    assert.deepEqual(attrsWords(undefined), ['-', '-']);
  });

  it('join: the placed file has the shore\'s mode and mtime, set before the rename, and no attrs-failed line', () => {
    for (const m of [0o600, 0o640, 0o755, 0o400, 0o200, 0o000]) {
      const dir = caseDir('attrs');
      const { r, destination } = joinWith(dir, ` ${attrsWords({ mode: m, mtime: past }).join(' ')}`);
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readFileSync(destination, 'utf8'), 'secret');
      assert.equal(mode(destination), m, `mode ${m.toString(8)}`);
      assert.equal(mtime(destination), past);
      assert.deepEqual(parsePlaced(r.stdout), { sha256: sha256('secret'), size: 6 });
      assert.equal(parseAttrsFailed(r.stdout), false, r.stdout);
    }
  });

  it('join: the hidden file is the vessel user\'s alone until then (umask 077); without attributes the file stays so', () => {
    const dir = caseDir('attrs-none');
    const { r, destination } = joinWith(dir, '');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(mode(destination), 0o600);
    assert.equal(statSync(join(dir, 'out')).mode & 0o777, 0o755 & ~process.umask(), 'the destination folder gets the usual umask');
  });

  it('join: a vessel that refuses chmod or touch still gets the file; the result line is followed by attrs-failed', () => {
    for (const tools of [['chmod'], ['touch'], ['chmod', 'touch']]) {
      const dir = caseDir('attrs-refused');
      const { r, destination } = joinWith(dir, ` ${attrsWords({ mode: 0o644, mtime: past }).join(' ')}`, failing(dir, ...tools));
      assert.equal(r.status, 0, r.stderr);
      assert.equal(readFileSync(destination, 'utf8'), 'secret');
      assert.deepEqual(parsePlaced(r.stdout), { sha256: sha256('secret'), size: 6 }, tools.join());
      assert.equal(parseAttrsFailed(r.stdout), true, r.stdout);
      assert.match(r.stderr, /Operation not permitted/);
      assert.deepEqual(readdirSync(join(dir, 'out')), ['secret.txt'], 'nothing else left');
    }
  });

  it('join: words on the end line that are not a mode or a stamp are ignored, never run', () => {
    const dir = caseDir('attrs-hostile');
    const { r, destination } = joinWith(dir, ` $(touch ${markerName}) ;touch${markerName} 1234567890123.45 \`touch ${markerName}\``);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(mode(destination), 0o600);
    assert.equal(parseAttrsFailed(r.stdout), false);
    const odd = caseDir('attrs-odd');
    const { r: r2, destination: d2 } = joinWith(odd, ' 7777 20010203040506');
    assert.equal(r2.status, 0, r2.stderr);
    assert.equal(mode(d2), 0o600, 'four digits are not a mode the shore sends');
    assertNoMarker();
  });

  it('checkExistingScript: a matching destination gets the shore\'s attributes; a different one is left alone', () => {
    const dir = caseDir('check-attrs');
    const prefix = join(dir, 'cm-chk');
    const destination = join(dir, `dest 'x' $(touch ${markerName})`);
    writeFileSync(destination, 'ab', { mode: 0o644 });
    const r = sh(checkExistingScript(destination, sha256('ab'), prefix, 2, undefined, { mode: 0o600, mtime: past }));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${sha256('ab')}\n`);
    assert.equal(mode(destination), 0o600);
    assert.equal(mtime(destination), past);
    writeFileSync(destination, 'XY');
    chmodSync(destination, 0o644);
    const other = sh(checkExistingScript(destination, sha256('ab'), prefix, 2, undefined, { mode: 0o600, mtime: past }));
    assert.equal(other.status, 0, other.stderr);
    assert.equal(mode(destination), 0o644, 'not this version: not touched');
    assert.notEqual(mtime(destination), past);
    assertNoMarker();
  });

  it('checkExistingScript: refused attributes say attrs-failed after the hash line', () => {
    const dir = caseDir('check-attrs-refused');
    const destination = join(dir, 'dest');
    writeFileSync(destination, 'ab');
    const r = spawnSync('/bin/sh', ['-c', checkExistingScript(destination, sha256('ab'), join(dir, 'cm'), 2, undefined, { mode: 0o600, mtime: past })], { cwd: root, encoding: 'utf8', env: failing(dir, 'chmod') });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.split('\n')[0], sha256('ab'));
    assert.equal(parseAttrsFailed(r.stdout), true);
  });
});
