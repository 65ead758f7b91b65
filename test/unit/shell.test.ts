import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { carried } from '../../src/ssh/quote.js';
import {
  AssembleExit,
  attrsWords,
  fileAttrs,
  parseAttrsFailed,
  hasherProbeScript,
  joinScript,
  parseHasherProbe,
  parseFree,
  parsePlaced,
  checkExistingScript,
  checkProbeScript,
  parseCheckProbe,
  probeSha256,
  quote,
  removeChunksCommand,
  removeLeftoversScript,
  type JoinPlan,
} from '../../src/push/upload/shell.js';

let root: string;
/** Every injection attempt below tries to create this file (by absolute path and, with cwd = root, by name). */
let marker: string;
const markerName = 'MARKER';

before(() => {
  root = mkdtempSync(join(tmpdir(), 'cm-shell-'));
  marker = join(root, markerName);
});

after(() => {
  rmSync(root, { recursive: true, force: true });
});

// File names cannot hold `/`, so injections hidden in names use the bare marker name; every
// script runs with cwd = root, where that name resolves to `marker`.
function assertNoMarker(): void {
  assert.equal(existsSync(marker), false, `an injection created ${marker}`);
}

/** No half-joined file `${prefix}.<pid>.tmp` is left beside the destination. */
function assertNoAssembly(prefix: string): void {
  const dir = dirname(prefix);
  const left = existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith(`${basename(prefix)}.`) && n.endsWith('.tmp')) : [];
  assert.deepEqual(left, [], `assembly files left in ${dir}`);
}

function sha256(data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

interface ShResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function sh(script: string): ShResult {
  const r = spawnSync('/bin/sh', ['-c', script], { cwd: root, encoding: 'utf8', timeout: 30_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

let caseNo = 0;
/** A fresh directory per case, so cases never see each other's files. */
function caseDir(name = 'case'): string {
  const dir = join(root, `${name}-${++caseNo}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function writeChunks(prefix: string, chunks: (string | Buffer)[]): void {
  chunks.forEach((c, i) => writeFileSync(`${prefix}.${i}`, c));
}

function chunksLeft(prefix: string, count: number): number[] {
  const left: number[] = [];
  for (let i = 0; i < count; i++) if (existsSync(`${prefix}.${i}`)) left.push(i);
  return left;
}

// Strings that would do something if a shell saw them unquoted.
const hostile: string[] = [
  '',
  ' ',
  'two words',
  '  leading and trailing  ',
  "it's",
  "'",
  "''",
  "'\\''",
  '"double"',
  `mixed '"' "'" quotes`,
  `$(touch ${markerName})`,
  '$(touch MARKER_ABS)', // replaced below by the absolute marker path
  `\`touch ${markerName}\``,
  `; touch ${markerName}`,
  `&& touch ${markerName}`,
  `| touch ${markerName}`,
  `a\ntouch ${markerName}\nb`,
  '\n',
  'tab\there',
  '-n',
  '-e x',
  '--',
  '-',
  '*',
  '?',
  '[a-z]*',
  '~',
  '~root',
  '\\',
  'back\\slash\\n',
  '$HOME ${HOME} $1 $@ $? $$',
  '%s %d %%',
  '> out.txt',
  '< /etc/passwd',
  '#comment',
  '!',
  '{a,b}',
  '日本語 ünïcödé 😀',
  '\u00a0nbsp\u200bzwsp',
  `'; touch ${markerName}; echo '`,
  `"; touch ${markerName}; echo "`,
];

describe('quote', () => {
  before(() => {
    const i = hostile.indexOf('$(touch MARKER_ABS)');
    hostile[i] = `$(touch '${marker}')`;
  });

  it('wraps a plain word in single quotes', () => {
    assert.equal(quote('abc'), `'abc'`);
    assert.equal(quote(''), `''`);
    assert.equal(quote("a'b"), `'a'\\''b'`);
  });

  for (const [i, s] of hostile.entries()) {
    it(`makes hostile string #${i} ${JSON.stringify(s)} one inert word`, () => {
      const value = hostile[i]!; // read at run time: one entry is rewritten in before()
      const out = execFileSync('/bin/sh', ['-c', `printf %s ${quote(value)}`], { cwd: root, encoding: 'utf8' });
      assert.equal(out, value);
      assertNoMarker();
    });
  }

  it('keeps every hostile string one word among others (argument count)', () => {
    const script = `set -- ${hostile.map(quote).join(' ')}; printf '%s\\n' "$#"`;
    const out = execFileSync('/bin/sh', ['-c', script], { cwd: root, encoding: 'utf8' });
    assert.equal(out, `${hostile.length}\n`);
    assertNoMarker();
  });

  it('concatenated quoted strings form one word with the literal concatenation', () => {
    const a = "it's";
    const b = '$(x)';
    const out = execFileSync('/bin/sh', ['-c', `printf %s ${quote(a)}${quote(b)}`], { cwd: root, encoding: 'utf8' });
    assert.equal(out, a + b);
  });
});

interface AssemblePlan extends JoinPlan {
  chunkCount: number;
  sha256: string;
}

/** Runs the join script as the shore drives it: the index of each chunk on stdin, then `end <sha256>`. */
function assemble(p: AssemblePlan, input?: string): ShResult {
  const lines = Array.from({ length: p.chunkCount }, (_, i) => `${i}\n`).join('') + `end ${p.sha256}\n`;
  const r = spawnSync('/bin/sh', ['-c', joinScript(p)], { cwd: root, encoding: 'utf8', timeout: 30_000, input: input ?? lines });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * The login shells sshd may run a command through (`SHELL -c COMMAND`), as Debian installs them
 * (.ci/run installs the packages). busybox is run as `busybox sh`, which is what a login shell
 * of /bin/busybox-linked ash amounts to.
 */
const loginShells: [string, string[]][] = [
  ['sh', ['/bin/sh']], ['dash', ['/bin/dash']], ['bash', ['/bin/bash']], ['zsh', ['/usr/bin/zsh']], ['ksh', ['/usr/bin/ksh']],
  ['busybox ash', ['/usr/bin/busybox', 'sh']], ['tcsh', ['/usr/bin/tcsh']], ['csh', ['/bin/csh']], ['fish', ['/usr/bin/fish']],
];

describe('carried: a script reaches sh unchanged whatever the login shell', () => {
  const hostile = `/tmp/x y/it's "q" \\back $HOME \`id\` !bang %s %% \n new line é ${markerName}$(touch ${markerName})`;
  const script = [
    `p=${quote(hostile)}`,
    `printf '%s|' "$p"`,
    'echo "LC_ALL=$LC_ALL"',
    // What follows the script on stdin is the script's own input.
    'while IFS= read -r line; do echo "read:$line"; done',
    'exit 7',
  ].join('\n');
  for (const [name, argv] of loginShells) {
    it(name, () => {
      const { command, prologue } = carried(script);
      const r = spawnSync(argv[0]!, [...argv.slice(1), '-c', command], { cwd: root, input: Buffer.concat([prologue, Buffer.from('one\ntwo \\ $x\n')]), encoding: 'utf8', timeout: 30_000 });
      if (r.error) throw r.error;
      assert.equal(r.stdout, `${hostile}|LC_ALL=C\nread:one\nread:two \\ $x\n`, r.stderr);
      assert.equal(r.status, 7, 'the script\'s exit code, not the login shell\'s');
      assertNoMarker();
    });
  }

  it('the line a login shell sees has no character any of them treats specially outside single quotes', () => {
    const { command } = carried(script);
    const outside = command.replace(/'[^']*'/g, '');
    assert.match(outside, /^exec \/bin\/sh -c $/);
    assert.doesNotMatch(command, /[!\\\n]/);
  });
});

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
    // A failing tee stands in for a full disk; the free space is whatever df says.
    const dir = caseDir('full');
    const prefix = join(dir, 'cm-full');
    writeChunks(prefix, ['x']);
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'tee'), '#!/bin/sh\necho "tee: write error: No space left on device" >&2\nexit 1\n', { mode: 0o755 });
    const plan = { chunkPrefix: prefix, chunkCount: 1, assemblyPrefix: join(dir, '.asm'), destination: join(dir, 'dest'), sha256: sha256('x') };
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
    assert.equal(r.stdout.trim(), `mismatch ${sha256(chunks.join(''))}`);
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
    assert.equal(r.stdout.trim(), `mismatch ${sha256('new content')}`);
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
    assert.ok(joinScript(plan).length < 2500, `script is ${joinScript(plan).length} characters`);
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
    for (const tool of ['cat', 'tee', 'mkdir', 'rm', 'mv', 'wc', 'sha256sum']) symlinkSync(execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(bin, tool));
    const run = (destination: string) => spawnSync('/bin/sh', ['-c', joinScript({ chunkPrefix: prefix, assemblyPrefix: join(dir, '.asm'), destination })], {
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
    const withName = joinScript({ chunkPrefix: join(dir, 'c'), assemblyPrefix: join(dir, '.a'), destination: join(dir, 'd'), size: large, hasher: 'sha256sum' });
    assert.match(withName, /^hasher='sha256sum'$/m);
    assert.doesNotMatch(withName, /openssl/);
    const probing = joinScript({ chunkPrefix: join(dir, 'c'), assemblyPrefix: join(dir, '.a'), destination: join(dir, 'd'), size: large });
    assert.match(probing, /openssl dgst -sha256 -r 2>\/dev\/null/);
    const small = joinScript({ chunkPrefix: join(dir, 'c'), assemblyPrefix: join(dir, '.a'), destination: join(dir, 'd'), size: 1000, hasher: 'openssl' });
    assert.doesNotMatch(small, /^hasher='openssl dgst -sha256 -r'$/m, 'files below the large size keep sha256sum first');
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
    const plan = { chunkPrefix: prefix, assemblyPrefix: join(dir, 'out', '.cm-a'), destination };
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
    const p: JoinPlan = { chunkPrefix: '/t/p', assemblyPrefix: '/d/.a', destination: '/d/f' };
    assert.match(joinScript(p), /^tmp='\/d\/.a'\.\$\$\.tmp\n\[ -d '\/d' \] \|\| mkdir -p -- '\/d' \|\| exit 10\n/);
  });
});

describe('checkProbeScript / parseCheckProbe', () => {
  /** Runs the probe with `PATH` limited to `bin` when given (to hide or fake cat, tee and sha256sum). */
  function probe(tempDir: string, locations: string[], bin?: string) {
    const env = bin ? { ...process.env, PATH: bin } : process.env;
    const r = spawnSync('/bin/sh', ['-c', checkProbeScript(tempDir, locations)], { cwd: root, env, encoding: 'utf8', timeout: 30_000 });
    if (r.error) throw r.error;
    assert.equal(r.status, 0, r.stderr);
    return { stdout: r.stdout, parsed: parseCheckProbe(r.stdout, locations.length) };
  }

  /** A PATH folder holding `rm` (the probe removes its file) and the given fake tools. */
  function fakeBin(tools: Record<string, string>): string {
    const bin = caseDir('bin');
    symlinkSync(execFileSync('/bin/sh', ['-c', 'command -v rm'], { encoding: 'utf8' }).trim(), join(bin, 'rm'));
    for (const [name, body] of Object.entries(tools)) {
      writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    }
    return bin;
  }

  it('existing writable folders and working tools: all ok, and nothing is left behind', () => {
    const dir = caseDir('probe-ok');
    mkdirSync(join(dir, 'temp'));
    mkdirSync(join(dir, 'loc'));
    const { parsed, stdout } = probe(join(dir, 'temp'), [join(dir, 'loc'), dir]);
    assert.deepEqual(parsed, {
      tempDir: { state: 'ok', missingLevels: 0 },
      locations: [{ state: 'ok', missingLevels: 0 }, { state: 'ok', missingLevels: 0 }],
      cat: { state: 'ok' },
      tee: { state: 'ok' },
      sha256sum: { state: 'ok' },
    }, stdout);
    assert.deepEqual(readdirSync(dir).sort(), ['loc', 'temp']);
    assert.deepEqual(readdirSync(join(dir, 'temp')), []);
  });

  it('a missing folder is judged by its nearest existing ancestor, and not created', () => {
    const dir = caseDir('probe-missing');
    const { parsed } = probe(join(dir, 'a', 'b', 'c'), [join(dir, 'x')]);
    assert.deepEqual(parsed?.tempDir, { state: 'ok', missingLevels: 3 });
    assert.deepEqual(parsed?.locations, [{ state: 'ok', missingLevels: 1 }]);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('a file where a folder is expected, itself or as an ancestor: notdir', () => {
    const dir = caseDir('probe-notdir');
    writeFileSync(join(dir, 'file'), 'x');
    const { parsed } = probe(join(dir, 'file'), [join(dir, 'file', 'deeper', 'still')]);
    assert.deepEqual(parsed?.tempDir, { state: 'notdir', missingLevels: 0 });
    assert.deepEqual(parsed?.locations, [{ state: 'notdir', missingLevels: 2 }]);
    assert.equal(readFileSync(join(dir, 'file'), 'utf8'), 'x');
  });

  it('a folder where no file can be created: unwritable, with the reason and without the path', () => {
    // /proc refuses new files even to root, where permission bits would not.
    const { parsed, stdout } = probe('/proc/cm-check-nothing-here/sub', ['/proc']);
    assert.equal(parsed?.tempDir.state, 'unwritable', stdout);
    assert.equal(parsed?.tempDir.missingLevels, 2);
    assert.equal(parsed?.locations[0]?.state, 'unwritable');
    const reason = parsed?.tempDir.state === 'unwritable' ? parsed.tempDir.reason : '';
    assert.ok(reason.length > 0 && !reason.includes('/proc'), `reason: ${reason}`);
  });

  it('hostile folder names: inert, one line per finding, no path bytes in the output, nothing created', () => {
    const dir = caseDir('probe-hostile');
    const nasty = `sp ace 'q' "dq" $(touch ${markerName}) \`touch ${markerName}\` ; & | * ? [x] ~ \\ \n nl\ttab\nloc:0 notdir 0\nend 😀`;
    const existing = join(dir, `-d ${nasty}`);
    mkdirSync(existing);
    const missing = join(dir, `m ${nasty}`, `$(touch ${markerName})`, `;touch ${markerName};`);
    const { parsed, stdout } = probe(missing, [existing, join(existing, `'`), `${existing}/`]);
    assert.deepEqual(parsed, {
      tempDir: { state: 'ok', missingLevels: 3 },
      locations: [{ state: 'ok', missingLevels: 0 }, { state: 'ok', missingLevels: 1 }, { state: 'ok', missingLevels: 0 }],
      cat: { state: 'ok' },
      tee: { state: 'ok' },
      sha256sum: { state: 'ok' },
    }, stdout);
    assert.deepEqual(stdout.split('\n'), ['tempdir ok 3', 'loc:0 ok 0', 'loc:1 ok 1', 'loc:2 ok 0', 'cat ok', 'tee ok', 'sha256sum ok', 'end', '']);
    assert.deepEqual(readdirSync(dir), [`-d ${nasty}`]);
    assert.deepEqual(readdirSync(existing), []);
    assertNoMarker();
  });

  it('cat, tee and sha256sum not installed: missing', () => {
    const { parsed } = probe(root, [], fakeBin({}));
    assert.deepEqual([parsed?.cat, parsed?.tee, parsed?.sha256sum], [{ state: 'missing' }, { state: 'missing' }, { state: 'missing' }]);
  });

  it('a failing command: its exit code and its output on one line; a wrong answer: what it printed', () => {
    const bin = fakeBin({
      cat: 'echo "cat: read error:" >&2; echo "Input/output error" >&2; exit 1',
      tee: 'exit 3',
      sha256sum: 'echo "0000  -"',
    });
    const { parsed } = probe(root, [], bin);
    assert.deepEqual(parsed?.cat, { state: 'exit', code: 1, output: 'cat: read error: Input/output error' });
    assert.deepEqual(parsed?.tee, { state: 'exit', code: 3, output: '' });
    assert.deepEqual(parsed?.sha256sum, { state: 'wrong', output: '0000 -' });
  });

  it('sha256sum must print the SHA-256 of abc; cat must print abc exactly', () => {
    const bin = fakeBin({ cat: 'printf "abc\\n"; printf more', sha256sum: `echo "${probeSha256}  -"` });
    const { parsed } = probe(root, [], bin);
    assert.deepEqual(parsed?.cat, { state: 'wrong', output: 'abc more' });
    assert.deepEqual(parsed?.sha256sum, { state: 'ok' });
  });

  it('output that stops before `end`, or lacks a line, is not a result; unrelated lines are ignored', () => {
    const full = 'motd noise\ntempdir ok 0\nloc:0 unwritable 1 Read-only file system\ncat ok\ntee missing\nsha256sum exit 126 Permission denied\nend\n';
    assert.deepEqual(parseCheckProbe(full, 1), {
      tempDir: { state: 'ok', missingLevels: 0 },
      locations: [{ state: 'unwritable', missingLevels: 1, reason: 'Read-only file system' }],
      cat: { state: 'ok' },
      tee: { state: 'missing' },
      sha256sum: { state: 'exit', code: 126, output: 'Permission denied' },
    });
    assert.equal(parseCheckProbe(full.replace('end\n', ''), 1), undefined);
    assert.equal(parseCheckProbe(full.replace('tee missing\n', ''), 1), undefined);
    assert.equal(parseCheckProbe(full, 2), undefined);
    assert.equal(parseCheckProbe('This account is currently not available.\n', 0), undefined);
  });
});
