import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { AssembleExit, JOIN_BATCH_ARG_BYTES, JOIN_BATCH_BYTES, JOIN_BATCH_MAX_CHUNKS, joinBatch, joinScript, parseFree, parsePlaced, removeChunksCommand, removeLeftoversScript, type JoinPlan } from '../../src/push/upload/join.js';
import { hasherProbeScript, parseHasherProbe } from '../../src/push/upload/probes.js';
import {
  assertNoAssembly, assertNoMarker, caseDir, chunksLeft, markerName, removeScratch, root, sh, sha256, writeChunks, type ShResult,
} from '../helpers/sh-scripts.js';

after(removeScratch);

/** The chunk size the tests give: 4 chunks to a `cat`, as with the default ChunkSize (10 MiB). */
const CHUNK = JOIN_BATCH_BYTES / 4;

interface AssemblePlan extends Omit<JoinPlan, 'chunkSize'> {
  /** Default CHUNK. */
  chunkSize?: number;
  chunkCount: number;
  sha256: string;
}

/** Runs the join script as the shore drives it: the index of each chunk on stdin, then `end <sha256>`. */
function assemble(p: AssemblePlan, input?: string): ShResult {
  const lines = Array.from({ length: p.chunkCount }, (_, i) => `${i}\n`).join('') + `end ${p.sha256}\n`;
  const r = spawnSync('/bin/sh', ['-c', joinScript({ chunkSize: CHUNK, ...p })], { cwd: root, encoding: 'utf8', timeout: 30_000, input: input ?? lines });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('joinScript', () => {
  it('0 chunks: creates an empty destination, creating a missing parent folder', () => {
    const dir = caseDir('empty');
    const destination = join(dir, 'not', 'there', 'yet', 'empty.bin');
    const assemblyPrefix = join(dir, 'not', 'there', 'yet', '.cm-empty.tmp');
    const r = assemble({ chunkPrefix: join(dir, 'cm-empty'), chunkCount: 0, assemblyPrefix, destination, sha256: sha256('') });
    assert.equal(r.status, 0, r.stderr);
    assert.ok(statSync(destination).isFile());
    assert.equal(statSync(destination).size, 0);
    assertNoAssembly(assemblyPrefix);
  });

  it('once placed, removes the half-joined files of earlier attempts cut without the vessel noticing', () => {
    const dir = caseDir('stale');
    const prefix = join(dir, 'tmp', 'cm-stale');
    mkdirSync(join(dir, 'tmp'));
    writeChunks(prefix, [Buffer.from('one'), Buffer.from('two')]);
    const assemblyPrefix = join(dir, '.cm-stale');
    // Left by joiners of connections that were cut: one per attempt, named by its shell's pid.
    writeFileSync(`${assemblyPrefix}.4711.tmp`, 'on');
    writeFileSync(`${assemblyPrefix}.4712.tmp`, 'onet');
    // Not ours to remove: another version's file, and a name that only starts the same.
    writeFileSync(join(dir, '.cm-other.4711.tmp'), 'x');
    writeFileSync(`${assemblyPrefix}.up.tmp`, 'x');
    const destination = join(dir, 'file.bin');
    const r = assemble({ chunkPrefix: prefix, chunkCount: 2, assemblyPrefix, destination, sha256: sha256('onetwo') });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(destination, 'utf8'), 'onetwo');
    assert.deepEqual(readdirSync(dir).sort(), ['.cm-other.4711.tmp', '.cm-stale.up.tmp', 'file.bin', 'tmp']);
  });

  it('3 chunks: the destination is their concatenation, chunks and the assembly file are removed', () => {
    const dir = caseDir('three');
    const prefix = join(dir, 'tmp', 'cm-three');
    mkdirSync(join(dir, 'tmp'));
    const chunks = [Buffer.from('alpha\n'), Buffer.from([0, 1, 2, 255, 10, 13]), Buffer.from('gamma without newline')];
    writeChunks(prefix, chunks);
    const whole = Buffer.concat(chunks);
    const destination = join(dir, 'out', 'file.bin');
    const assemblyPrefix = join(dir, 'out', '.cm-three.tmp');
    const r = assemble({ chunkPrefix: prefix, chunkCount: 3, assemblyPrefix, destination, sha256: sha256(whole) });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readFileSync(destination), whole);
    assert.deepEqual(chunksLeft(prefix, 3), []);
    assertNoAssembly(assemblyPrefix);
    assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
    assert.deepEqual(readdirSync(join(dir, 'out')), ['file.bin']);
    // The proof the shore requires: the placed file's digest and size, as the vessel sees them.
    assert.deepEqual(parsePlaced(r.stdout), { sha256: sha256(whole), size: whole.length });
  });

  it('a full destination: exits join and says how much room is left there', () => {
    // A failing cat stands in for a full disk; the free space is whatever df says.
    const dir = caseDir('full');
    const prefix = join(dir, 'cm-full');
    writeChunks(prefix, ['x']);
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'cat'), '#!/bin/sh\necho "cat: write error: No space left on device" >&2\nexit 1\n', { mode: 0o755 });
    const plan = { chunkPrefix: prefix, chunkCount: 1, assemblyPrefix: join(dir, '.asm'), destination: join(dir, 'dest'), sha256: sha256('x'), chunkSize: CHUNK };
    const r = spawnSync('/bin/sh', ['-c', joinScript(plan)], { cwd: root, encoding: 'utf8', input: `0\nend ${plan.sha256}\n`, env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
    assert.equal(r.status, AssembleExit.join, r.stderr);
    assert.equal(typeof parseFree(r.stdout), 'number', r.stdout);
    assert.equal(existsSync(plan.destination), false);
  });

  it('12 chunks: joins them in numeric order (10 and 11 after 9) and removes all of them', () => {
    const dir = caseDir('twelve');
    const prefix = join(dir, 'cm-twelve');
    const chunks = Array.from({ length: 12 }, (_, i) => `<${i}>`);
    writeChunks(prefix, chunks);
    const whole = chunks.join('');
    const destination = join(dir, 'dest.txt');
    const r = assemble({ chunkPrefix: prefix, chunkCount: 12, assemblyPrefix: join(dir, '.asm'), destination, sha256: sha256(whole) });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(destination, 'utf8'), whole);
    assert.deepEqual(readdirSync(dir), ['dest.txt']);
  });

  it('a wrong sha256: exits mismatch, prints the actual hash, leaves no destination, keeps the chunks, removes the assembly file', () => {
    const dir = caseDir('mismatch');
    const prefix = join(dir, 'cm-mm');
    const chunks = ['one', 'two', 'three'];
    writeChunks(prefix, chunks);
    const destination = join(dir, 'sub', 'dest.txt');
    const assemblyPrefix = join(dir, 'sub', '.cm-mm.tmp');
    const r = assemble({ chunkPrefix: prefix, chunkCount: 3, assemblyPrefix, destination, sha256: sha256('something else') });
    assert.equal(r.status, AssembleExit.mismatch);
    assert.equal(r.stdout.trim(), `mismatch ${sha256(chunks.join(''))} 11`);
    assert.equal(existsSync(destination), false);
    assertNoAssembly(assemblyPrefix);
    assert.deepEqual(chunksLeft(prefix, 3), [0, 1, 2]);
  });

  it('a wrong sha256 leaves an existing older destination untouched', () => {
    const dir = caseDir('mismatch-old');
    const prefix = join(dir, 'cm-mo');
    writeChunks(prefix, ['new ', 'content']);
    const destination = join(dir, 'dest.txt');
    writeFileSync(destination, 'old content');
    const r = assemble({ chunkPrefix: prefix, chunkCount: 2, assemblyPrefix: join(dir, '.asm'), destination, sha256: '0'.repeat(64) });
    assert.equal(r.status, AssembleExit.mismatch);
    assert.equal(r.stdout.trim(), `mismatch ${sha256('new content')} 11`);
    assert.equal(readFileSync(destination, 'utf8'), 'old content');
    assert.deepEqual(chunksLeft(prefix, 2), [0, 1]);
    assert.equal(existsSync(join(dir, '.asm')), false);
  });

  it('a destination that is a directory: exits destinationIsDirectory and leaves the directory alone', () => {
    const dir = caseDir('isdir');
    const prefix = join(dir, 'cm-dir');
    writeChunks(prefix, ['x']);
    const destination = join(dir, 'dest');
    mkdirSync(destination);
    writeFileSync(join(destination, 'inside'), 'keep');
    const assemblyPrefix = join(dir, '.cm-dir.tmp');
    const r = assemble({ chunkPrefix: prefix, chunkCount: 1, assemblyPrefix, destination, sha256: sha256('x') });
    assert.equal(r.status, AssembleExit.destinationIsDirectory);
    assert.ok(statSync(destination).isDirectory());
    assert.deepEqual(readdirSync(destination), ['inside']);
    assertNoAssembly(assemblyPrefix);
    assert.deepEqual(chunksLeft(prefix, 1), [0]);
  });

  it('a missing chunk: exits vanished and creates no destination', () => {
    const dir = caseDir('missing-chunk');
    const prefix = join(dir, 'cm-missing');
    writeFileSync(`${prefix}.0`, 'a');
    writeFileSync(`${prefix}.2`, 'c');
    const destination = join(dir, 'dest');
    const r = assemble({ chunkPrefix: prefix, chunkCount: 3, assemblyPrefix: join(dir, '.asm'), destination, sha256: sha256('abc') });
    assert.equal(r.status, AssembleExit.vanished);
    assert.equal(existsSync(destination), false);
    assert.equal(existsSync(join(dir, '.asm')), false, 'no half-assembled file is left beside the destination');
    assert.deepEqual(chunksLeft(prefix, 3), [0, 2]);
  });

  it('500 chunks: the script stays short and joins them all in order', () => {
    const dir = caseDir('many');
    const prefix = join(dir, 'cm-many');
    const chunks = Array.from({ length: 500 }, (_, i) => `${i},`);
    writeChunks(prefix, chunks);
    const destination = join(dir, 'dest.txt');
    const plan = { chunkPrefix: prefix, chunkCount: 500, assemblyPrefix: join(dir, '.asm'), destination, sha256: sha256(chunks.join('')) };
    assert.ok(joinScript({ ...plan, chunkSize: CHUNK }).length < 2500, `script is ${joinScript({ ...plan, chunkSize: CHUNK }).length} characters`);
    const r = assemble(plan);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(destination, 'utf8'), chunks.join(''));
    assert.deepEqual(readdirSync(dir), ['dest.txt']);
  });

  it('stdin ending without the end line (the shore went away): exits incomplete, places nothing, keeps the chunks', () => {
    const dir = caseDir('incomplete');
    const prefix = join(dir, 'cm-inc');
    writeChunks(prefix, ['one', 'two']);
    const destination = join(dir, 'dest.txt');
    const assemblyPrefix = join(dir, '.asm');
    const r = assemble({ chunkPrefix: prefix, chunkCount: 2, assemblyPrefix, destination, sha256: sha256('onetwo') }, '0\n1\n');
    assert.equal(r.status, AssembleExit.incomplete);
    assert.equal(existsSync(destination), false);
    assert.deepEqual(readdirSync(dir).sort(), ['cm-inc.0', 'cm-inc.1'], 'no half-joined file or side file is left');
  });

  it('a line that is not a chunk index stops the join (exit join) and runs nothing', () => {
    const dir = caseDir('protocol');
    const prefix = join(dir, 'cm-p');
    writeChunks(prefix, ['x']);
    const destination = join(dir, 'dest.txt');
    const r = assemble({ chunkPrefix: prefix, chunkCount: 1, assemblyPrefix: join(dir, '.asm'), destination, sha256: sha256('x') }, `0\n$(touch ${markerName})\nend ${sha256('x')}\n`);
    assert.equal(r.status, AssembleExit.join);
    assert.equal(existsSync(destination), false);
    assertNoMarker();
  });

  it('without openssl it falls back to sha256sum; with neither it exits hash', () => {
    const dir = caseDir('hashers');
    const prefix = join(dir, 'cm-h');
    writeChunks(prefix, ['abc']);
    // A PATH with the tools the script needs, but no openssl; then neither hasher.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    for (const tool of ['cat', 'mkdir', 'rm', 'mv', 'wc', 'sha256sum']) symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(bin, tool));
    const run = (destination: string) => spawnSync('/bin/sh', ['-c', joinScript({ chunkPrefix: prefix, assemblyPrefix: join(dir, '.asm'), destination, chunkSize: CHUNK })], {
      cwd: root, encoding: 'utf8', input: `0\nend ${sha256('abc')}\n`, env: { PATH: bin },
    });
    const fallback = run(join(dir, 'one.txt'));
    assert.equal(fallback.status, 0, fallback.stderr);
    assert.equal(readFileSync(join(dir, 'one.txt'), 'utf8'), 'abc');
    rmSync(join(bin, 'sha256sum'));
    writeChunks(prefix, ['abc']);
    const none = run(join(dir, 'two.txt'));
    assert.equal(none.status, AssembleExit.hash);
    assert.match(none.stderr, /neither openssl nor sha256sum/);
    assert.equal(existsSync(join(dir, 'two.txt')), false);
  });

  it('the hasher probe names openssl where it works, else sha256sum; a join told the name skips its own probe', () => {
    const dir = caseDir('hasher-probe');
    const probe = (env?: NodeJS.ProcessEnv) => spawnSync('/bin/sh', ['-c', hasherProbeScript()], { encoding: 'utf8', env });
    assert.equal(parseHasherProbe(probe().stdout), 'openssl');
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    for (const tool of ['sha256sum']) symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(bin, tool));
    assert.equal(parseHasherProbe(probe({ PATH: bin }).stdout), 'sha256sum');
    rmSync(join(bin, 'sha256sum'));
    const none = probe({ PATH: bin });
    assert.equal(none.status, AssembleExit.hash);
    assert.equal(parseHasherProbe(none.stdout), undefined);
    assert.equal(parseHasherProbe('garbled\n'), undefined);

    // Given a name, a large file's join sets that tool and runs no probe of its own.
    const large = 9 * 1024 * 1024;
    const withName = joinScript({ chunkPrefix: join(dir, 'c'), assemblyPrefix: join(dir, '.a'), destination: join(dir, 'd'), size: large, hasher: 'sha256sum', chunkSize: CHUNK });
    assert.match(withName, /^hasher='sha256sum'$/m);
    assert.doesNotMatch(withName, /openssl/);
    const probing = joinScript({ chunkPrefix: join(dir, 'c'), assemblyPrefix: join(dir, '.a'), destination: join(dir, 'd'), size: large, chunkSize: CHUNK });
    assert.match(probing, /openssl dgst -sha256 -r 2>\/dev\/null/);
    const small = joinScript({ chunkPrefix: join(dir, 'c'), assemblyPrefix: join(dir, '.a'), destination: join(dir, 'd'), size: 1000, hasher: 'openssl', chunkSize: CHUNK });
    assert.doesNotMatch(small, /^hasher='openssl dgst -sha256 -r'$/m, 'files below the large size keep sha256sum first');
  });

  it('joins the chunks a batch at a time, one cat for each, in order; the last batch once the end line is in', () => {
    const dir = caseDir('batches');
    const prefix = join(dir, 'cm-b');
    const chunks = Array.from({ length: 10 }, (_, i) => `[${i}]`);
    writeChunks(prefix, chunks);
    // A cat that logs how many chunks each run was given, then does the work.
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const log = join(dir, 'cat.log');
    const realCat = execFileSync('sh', ['-c', 'command -v cat'], { encoding: 'utf8' }).trim();
    writeFileSync(join(bin, 'cat'), `#!/bin/sh\necho $(($# - 1)) >> '${log}'\nexec ${realCat} "$@"\n`, { mode: 0o755 });
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    const run = (chunkSize: number, destination: string) => spawnSync('/bin/sh', ['-c', joinScript({ chunkPrefix: prefix, assemblyPrefix: join(dir, '.asm'), destination, chunkSize })], {
      cwd: root, encoding: 'utf8', env, input: `${chunks.map((_, i) => `${i}\n`).join('')}end ${sha256(chunks.join(''))}\n`,
    });
    const four = run(JOIN_BATCH_BYTES / 4, join(dir, 'four'));
    assert.equal(four.status, 0, four.stderr);
    assert.equal(readFileSync(join(dir, 'four'), 'utf8'), chunks.join(''));
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), ['4', '4', '2']);
    writeChunks(prefix, chunks);
    rmSync(log);
    const one = run(JOIN_BATCH_BYTES, join(dir, 'one'));
    assert.equal(one.status, 0, one.stderr);
    assert.equal(readFileSync(join(dir, 'one'), 'utf8'), chunks.join(''));
    assert.deepEqual(readFileSync(log, 'utf8').trim().split('\n'), Array(10).fill('1'));
  });

  it('stdin ending without the end line joins no pending batch', () => {
    const dir = caseDir('pending');
    const prefix = join(dir, 'cm-pend');
    writeChunks(prefix, ['a', 'b']);
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const log = join(dir, 'cat.log');
    writeFileSync(join(bin, 'cat'), `#!/bin/sh\necho ran >> '${log}'\nexit 1\n`, { mode: 0o755 });
    const r = spawnSync('/bin/sh', ['-c', joinScript({ chunkPrefix: prefix, assemblyPrefix: join(dir, '.asm'), destination: join(dir, 'dest'), chunkSize: CHUNK })], {
      cwd: root, encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, input: '0\n1\n',
    });
    assert.equal(r.status, AssembleExit.incomplete, r.stderr);
    assert.equal(existsSync(log), false, 'no cat ran');
    assert.deepEqual(readdirSync(dir).sort(), ['bin', 'cm-pend.0', 'cm-pend.1']);
  });

  it('a chunk gone between its line and its batch\'s turn: exits vanished', () => {
    const dir = caseDir('gone');
    const prefix = join(dir, 'cm-gone');
    writeChunks(prefix, ['a', 'b']);
    // A cat that finds its second file gone (as after a reboot that emptied a tmpfs TempDir).
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'cat'), `#!/bin/sh\nrm -f -- '${prefix}.1'\necho "cat: ${prefix}.1: No such file or directory" >&2\nexit 1\n`, { mode: 0o755 });
    const r = spawnSync('/bin/sh', ['-c', joinScript({ chunkPrefix: prefix, assemblyPrefix: join(dir, '.asm'), destination: join(dir, 'dest'), chunkSize: CHUNK })], {
      cwd: root, encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, input: `0\n1\nend ${sha256('ab')}\n`,
    });
    assert.equal(r.status, AssembleExit.vanished, r.stderr);
    assert.equal(existsSync(join(dir, 'dest')), false);
    assert.deepEqual(readdirSync(dir).sort(), ['bin', 'cm-gone.0']);
  });

  it('the digest is of the joined file itself: a cat that writes less and exits 0 is caught (mismatch)', () => {
    const dir = caseDir('short');
    const prefix = join(dir, 'cm-short');
    writeChunks(prefix, ['abcdef', 'ghijkl']);
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    // Drops the last byte of what it copies, and says nothing.
    writeFileSync(join(bin, 'cat'), `#!/bin/sh\nshift\nfor f; do head -c 5 -- "$f"; done\n`, { mode: 0o755 });
    const r = spawnSync('/bin/sh', ['-c', joinScript({ chunkPrefix: prefix, assemblyPrefix: join(dir, '.asm'), destination: join(dir, 'dest'), chunkSize: CHUNK })], {
      cwd: root, encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, input: `0\n1\nend ${sha256('abcdefghijkl')}\n`,
    });
    assert.equal(r.status, AssembleExit.mismatch, r.stderr);
    assert.equal(r.stdout.trim(), `mismatch ${sha256('abcdeghijk')} 10`);
    assert.equal(existsSync(join(dir, 'dest')), false);
    assertNoAssembly(join(dir, '.asm'));
  });

  it('the size must be the shore\'s too before the rename: a wc that says otherwise stops it (mismatch); one that pads with blanks does not', () => {
    const dir = caseDir('size');
    const prefix = join(dir, 'cm-size');
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };
    const run = (wc: string, destination: string) => {
      writeChunks(prefix, ['abc', 'def']);
      writeFileSync(join(bin, 'wc'), `#!/bin/sh\n${wc}\n`, { mode: 0o755 });
      return spawnSync('/bin/sh', ['-c', joinScript({ chunkPrefix: prefix, assemblyPrefix: join(dir, '.asm'), destination, size: 6, chunkSize: CHUNK })], {
        cwd: root, encoding: 'utf8', env, input: `0\n1\nend ${sha256('abcdef')}\n`,
      });
    };
    const wrong = run('echo 7', join(dir, 'wrong'));
    assert.equal(wrong.status, AssembleExit.mismatch, wrong.stderr);
    assert.equal(wrong.stdout.trim(), `mismatch ${sha256('abcdef')} 7`);
    assert.equal(existsSync(join(dir, 'wrong')), false);
    assertNoAssembly(join(dir, '.asm'));
    assert.deepEqual(chunksLeft(prefix, 2), [0, 1], 'the chunks are left to the shore, which discards them');
    // BSD's wc pads the count.
    const padded = run('echo "       6"', join(dir, 'padded'));
    assert.equal(padded.status, 0, padded.stderr);
    assert.deepEqual(parsePlaced(padded.stdout), { sha256: sha256('abcdef'), size: 6 });
    assert.equal(readFileSync(join(dir, 'padded'), 'utf8'), 'abcdef');
  });

  it('the hidden file removed while joining (another attempt placed the file first): exits vanished, places nothing', () => {
    const dir = caseDir('removed');
    const prefix = join(dir, 'cm-rm');
    const destination = join(dir, 'dest');
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    const realCat = execFileSync('sh', ['-c', 'command -v cat'], { encoding: 'utf8' }).trim();
    const first = join(dir, 'first');
    const removeTmp = `rm -f -- '${dir}'/.asm.*.tmp`;
    // One chunk per cat. `after`: the first cat removes the hidden file once it has appended its
    // chunk, so the second would start a new one; `during`: the second removes it after its
    // `>>` opened it, so it appends to a file no longer there.
    const cats = {
      after: `[ -e '${first}' ] && exec ${realCat} "$@"\n: > '${first}'\n${realCat} "$@" && ${removeTmp}`,
      during: `[ -e '${first}' ] && ${removeTmp}\n: > '${first}'\nexec ${realCat} "$@"`,
    };
    for (const [when, cat] of Object.entries(cats)) {
      rmSync(first, { force: true });
      writeChunks(prefix, ['first', 'second']);
      // The other attempt's file, already in place.
      writeFileSync(destination, 'firstsecond');
      writeFileSync(join(bin, 'cat'), `#!/bin/sh\n${cat}\n`, { mode: 0o755 });
      const r = spawnSync('/bin/sh', ['-c', joinScript({ chunkPrefix: prefix, assemblyPrefix: join(dir, '.asm'), destination, size: 11, chunkSize: JOIN_BATCH_BYTES })], {
        cwd: root, encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` }, input: `0\n1\nend ${sha256('firstsecond')}\n`,
      });
      assert.equal(r.status, AssembleExit.vanished, `${when}: ${r.stderr}`);
      assert.equal(readFileSync(destination, 'utf8'), 'firstsecond', `${when}: the placed file is left as it was`);
      assertNoAssembly(join(dir, '.asm'));
    }
  });

  it('the end line with the shore\'s mode and time: set on the placed file', () => {
    const dir = caseDir('attrs');
    const prefix = join(dir, 'cm-attrs');
    writeChunks(prefix, ['x', 'y']);
    const destination = join(dir, 'dest');
    const r = assemble({ chunkPrefix: prefix, chunkCount: 2, assemblyPrefix: join(dir, '.asm'), destination, sha256: `${sha256('xy')} 640 202001021504.05` });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(parsePlaced(r.stdout), { sha256: sha256('xy'), size: 2 });
    const st = statSync(destination);
    assert.equal(st.mode & 0o777, 0o640);
    assert.equal(st.mtimeMs, Date.UTC(2020, 0, 2, 15, 4, 5));
  });

  it('joinBatch: JOIN_BATCH_BYTES of chunks per cat, at least one, at most JOIN_BATCH_MAX_CHUNKS, and no more than JOIN_BATCH_ARG_BYTES of paths', () => {
    const prefix = '/tmp/.ContentMonster/cm-0123456789abcdef0123456789abcdef';
    assert.equal(joinBatch(10 * 1024 * 1024, prefix), 4);
    assert.equal(joinBatch(JOIN_BATCH_BYTES, prefix), 1);
    assert.equal(joinBatch(JOIN_BATCH_BYTES * 10, prefix), 1);
    assert.equal(joinBatch(1024 * 1024, prefix), 40);
    assert.equal(joinBatch(1024, '/t/p'), JOIN_BATCH_MAX_CHUNKS);
    // A tiny ChunkSize: as many as the arguments allow.
    assert.equal(joinBatch(1, prefix), Math.floor(JOIN_BATCH_ARG_BYTES / (prefix.length + 18)));
    // A TempDir as long as a path can be: a few per cat, never none.
    assert.equal(joinBatch(1, `/${'d'.repeat(4000)}/cm-x`), Math.floor(JOIN_BATCH_ARG_BYTES / 4025));
    assert.equal(joinBatch(1, `/${'d'.repeat(40_000)}/cm-x`), 1);
    // Bytes, not characters.
    assert.equal(joinBatch(1, `/${'é'.repeat(2000)}/cm-x`), Math.floor(JOIN_BATCH_ARG_BYTES / (4006 + 18)));
  });

  it('replaces an older destination file', () => {
    const dir = caseDir('replace');
    const prefix = join(dir, 'cm-rep');
    writeChunks(prefix, ['fresh ', 'bytes']);
    const destination = join(dir, 'dest.txt');
    writeFileSync(destination, 'an older and longer version of the file');
    const r = assemble({ chunkPrefix: prefix, chunkCount: 2, assemblyPrefix: join(dir, '.asm'), destination, sha256: sha256('fresh bytes') });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(destination, 'utf8'), 'fresh bytes');
    assert.deepEqual(readdirSync(dir), ['dest.txt']);
  });

  it('chunk prefixes and destinations with hostile characters work and inject nothing', () => {
    const dir = caseDir('hostile');
    const nasty = `sp ace 'q' "dq" $(touch ${markerName}) \`touch ${markerName}\` ; & | * ? [x] ~ \\ \n nl\ttab 😀`;
    const tempDir = join(dir, `tmp ${nasty}`);
    mkdirSync(tempDir);
    const prefix = join(tempDir, `cm-${nasty}`);
    const chunks = ['first;', ' $(second)', "\n'third'"];
    writeChunks(prefix, chunks);
    // A bystander that a mis-quoted glob (`*`, `?`, `[x]` taken as patterns) could remove.
    const bystander = join(tempDir, 'cm-other.0');
    writeFileSync(bystander, 'keep me');
    const destDir = join(dir, `dest ${nasty}`, `-sub $(touch ${markerName})`);
    const destination = join(destDir, `-file ${nasty}.txt`);
    const assemblyPrefix = join(destDir, `.cm-${nasty}.tmp`);
    const whole = chunks.join('');
    const r = assemble({ chunkPrefix: prefix, chunkCount: 3, assemblyPrefix, destination, sha256: sha256(whole) });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(destination, 'utf8'), whole);
    assert.deepEqual(chunksLeft(prefix, 3), []);
    assertNoAssembly(assemblyPrefix);
    assert.deepEqual(readdirSync(tempDir), ['cm-other.0']);
    assertNoMarker();
    assert.equal(existsSync(join(root, markerName)), false);
  });

  it('a hostile sha256 string is compared, not executed', () => {
    const dir = caseDir('hostile-sha');
    const prefix = join(dir, 'cm');
    writeChunks(prefix, ['x']);
    const destination = join(dir, 'dest');
    const r = assemble({ chunkPrefix: prefix, chunkCount: 1, assemblyPrefix: join(dir, '.asm'), destination, sha256: `x" ] || touch ${markerName}; [ "` });
    assert.equal(r.status, AssembleExit.mismatch);
    assert.equal(existsSync(destination), false);
    assertNoMarker();
  });
});

describe('removeLeftoversScript / removeChunksCommand', () => {
  it('the glob `prefix.[0-9]*` removes prefix.0..N (and prefix.<digit><anything>) and the assembly files, keeps prefix-other, prefix.txt, prefix and prefix.', () => {
    const dir = caseDir('leftovers');
    const prefix = join(dir, 'cm-abc');
    const removed = ['cm-abc.0', 'cm-abc.1', 'cm-abc.9', 'cm-abc.10', 'cm-abc.123', 'cm-abc.1.bak', 'cm-abc.2x'];
    const kept = ['cm-abc-other', 'cm-abc.txt', 'cm-abc', 'cm-abc.', 'cm-abc.x1', 'cm-abcd.0', 'cm-ab.0', 'other.0'];
    for (const name of [...removed, ...kept]) writeFileSync(join(dir, name), name);
    const assemblyPrefix = join(dir, '.cm-abc');
    writeFileSync(`${assemblyPrefix}.123.tmp`, 'half, from one attempt');
    writeFileSync(`${assemblyPrefix}.456.tmp`, 'half, from another');
    writeFileSync(join(dir, '.cm-abcd.7.tmp'), 'another version: kept');
    const r = sh(removeLeftoversScript(prefix, assemblyPrefix));
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(dir).sort(), [...kept, '.cm-abcd.7.tmp'].sort());
  });

  it('succeeds when there is nothing to remove (idempotent)', () => {
    const dir = caseDir('leftovers-none');
    const r = sh(removeLeftoversScript(join(dir, 'cm-none'), join(dir, '.cm-none')));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(sh(removeChunksCommand(join(dir, 'cm-none'))).status, 0);
  });

  it('glob characters in the prefix are literal: a prefix `p*` does not remove `pX.0`', () => {
    const dir = caseDir('leftovers-glob');
    writeFileSync(join(dir, 'p*.0'), '');
    writeFileSync(join(dir, 'p*.1'), '');
    writeFileSync(join(dir, 'pX.0'), '');
    writeFileSync(join(dir, 'p?.0'), '');
    writeFileSync(join(dir, 'p[a].0'), '');
    writeFileSync(join(dir, 'pa.0'), '');
    assert.equal(sh(removeChunksCommand(join(dir, 'p*'))).status, 0);
    assert.equal(sh(removeChunksCommand(join(dir, 'p[a]'))).status, 0);
    assert.deepEqual(readdirSync(dir).sort(), ['p?.0', 'pX.0', 'pa.0'].sort());
  });

  it('hostile prefixes and assembly paths work and inject nothing', () => {
    const dir = caseDir('leftovers-hostile');
    const nasty = `x y 'q' "d" $(touch ${markerName}) \`touch ${markerName}\` ; && | \n\t ~ \\`;
    const prefix = join(dir, `cm-${nasty}`);
    writeChunks(prefix, ['a', 'b', 'c']);
    const assemblyPrefix = join(dir, `.cm-${nasty}`);
    writeFileSync(`${assemblyPrefix}.99.tmp`, 'half');
    writeFileSync(join(dir, 'bystander'), '');
    const r = sh(removeLeftoversScript(prefix, assemblyPrefix));
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(dir), ['bystander']);
    assertNoMarker();
  });
});

describe('AssembleExit', () => {
  it('has one distinct, non-zero code per step', () => {
    const codes = Object.values(AssembleExit);
    assert.equal(new Set(codes).size, codes.length);
    for (const c of codes) assert.ok(c > 1 && c < 126, `code ${c} must not collide with shell conventions`);
  });

  it('the script starts by naming its file and creating the destination folder', () => {
    const p: JoinPlan = { chunkPrefix: '/t/p', assemblyPrefix: '/d/.a', destination: '/d/f', chunkSize: CHUNK };
    assert.match(joinScript(p), /^tmp='\/d\/.a'\.\$\$\.tmp\n\[ -d '\/d' \] \|\| mkdir -p -- '\/d' \|\| exit 10\n/);
  });
});
