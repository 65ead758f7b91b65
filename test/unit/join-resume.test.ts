// The join across a cut (issue 19): chunks are appended a batch at a time, so a connection can
// be cut with a batch pending or with a `cat` halfway through one. The next attempt must still
// place exactly the shore's file (SHA-256 checked) from the chunks left in TempDir, and leave
// nothing behind. Run by every sh a vessel may have as /bin/sh, the way ssh/quote.ts carries
// it there, and through the login shells that do not speak POSIX sh.
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it } from 'node:test';
import { attrsWords } from '../../src/push/upload/file-attrs.js';
import { AssembleExit, JOIN_BATCH_BYTES, joinScript, parsePlaced, type JoinPlan } from '../../src/push/upload/join.js';
import { carried } from '../../src/ssh/quote.js';
import { caseDir, removeScratch, root, sha256, writeChunks } from '../helpers/sh-scripts.js';

after(removeScratch);

/** 4 chunks to a `cat`, as with the default ChunkSize (10 MiB). */
const CHUNK = JOIN_BATCH_BYTES / 4;

/** 10 chunks of a few KiB with every byte value in them; the file is their concatenation. */
function chunksOf(seed: number): Buffer[] {
  return Array.from({ length: 10 }, (_, i) => {
    const b = Buffer.alloc(3000 + i * 101);
    for (let k = 0; k < b.length; k++) b[k] = (k * 31 + i * 7 + seed) & 0xff;
    return b;
  });
}

interface Case {
  dir: string;
  prefix: string;
  plan: JoinPlan;
  chunks: Buffer[];
  whole: Buffer;
}

function newCase(name: string): Case {
  const dir = caseDir(name);
  mkdirSync(join(dir, 'temp'));
  const prefix = join(dir, 'temp', 'cm-r');
  const chunks = chunksOf(name.length);
  writeChunks(prefix, chunks);
  const whole = Buffer.concat(chunks);
  const plan = { chunkPrefix: prefix, assemblyPrefix: join(dir, '.cm-r'), destination: join(dir, 'file.bin'), size: whole.length, chunkSize: CHUNK };
  return { dir, prefix, plan, chunks, whole };
}

const lines = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => `${from + i}\n`).join('');
/** Hidden files beside the destination: the half-joined files of attempts. */
const hidden = (c: Case) => readdirSync(c.dir).filter((n) => n.startsWith('.cm-r.'));

/** The second attempt, as the shore makes it: every chunk's line again, then the end line. */
function assertRejoined(c: Case, run: (input: string) => { status: number | null; stdout: string; stderr: string }): void {
  const stamp = attrsWords({ mode: 0o640, mtime: 1_600_000_000 });
  const r = run(`${lines(0, c.chunks.length)}end ${sha256(c.whole)} ${stamp.join(' ')}\n`);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(parsePlaced(r.stdout), { sha256: sha256(c.whole), size: c.whole.length });
  assert.equal(createHash('sha256').update(readFileSync(c.plan.destination)).digest('hex'), sha256(c.whole), 'the exact file');
  assert.equal(statSync(c.plan.destination).mode & 0o777, 0o640);
  assert.deepEqual(readdirSync(join(c.dir, 'temp')), [], 'the chunks are removed once it is placed');
  assert.deepEqual(hidden(c), [], 'no half-joined file is left');
}

/** A `cat` that appends the first 2 chunks of its batch, says so, and waits for `gate` before the rest. */
function halfwayCat(c: Case): { bin: string; half: string; gate: string } {
  const bin = join(c.dir, 'bin');
  mkdirSync(bin);
  const half = join(c.dir, 'half');
  const gate = join(c.dir, 'gate');
  const real = execFileSync('/bin/sh', ['-c', 'command -v cat'], { encoding: 'utf8' }).trim();
  writeFileSync(join(bin, 'cat'), [
    '#!/bin/sh',
    'shift', // --
    `'${real}' -- "$1" "$2" || exit 1`,
    `: > '${half}'`,
    `i=0; while [ ! -e '${gate}' ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done`,
    'shift 2',
    `exec '${real}' -- "$@"`,
  ].join('\n'), { mode: 0o755 });
  return { bin, half, gate };
}

async function until(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (ok()) return;
    await sleep(25);
  }
  assert.fail(`timed out waiting for ${what}`);
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** A joiner that stays alive until told: its own process group, so that it can be killed whole. */
function startJoiner(c: Case, bin: string): ChildProcess {
  const child = spawn('/bin/sh', ['-c', joinScript(c.plan)], {
    cwd: root, detached: true, stdio: ['pipe', 'ignore', 'ignore'], env: { ...process.env, PATH: `${bin}:${process.env.PATH}` },
  });
  child.stdin.write(lines(0, 4)); // one whole batch: its `cat` starts
  return child;
}

describe('join: a cut in the middle of a batch, then the next attempt', () => {
  const run = (c: Case) => (input: string) => spawnSync('/bin/sh', ['-c', joinScript(c.plan)], { cwd: root, encoding: 'utf8', timeout: 30_000, input });

  it('cut with a batch pending (4 chunks joined, 2 waiting): nothing placed, nothing kept; then the exact file', () => {
    const c = newCase('pending');
    const cut = run(c)(lines(0, 6));
    assert.equal(cut.status, AssembleExit.incomplete, cut.stderr);
    assert.equal(existsSync(c.plan.destination), false);
    assert.deepEqual(hidden(c), [], 'the half-joined file is removed');
    assert.equal(readdirSync(join(c.dir, 'temp')).length, c.chunks.length, 'every chunk is kept');
    assertRejoined(c, run(c));
  });

  it('cut while a cat is halfway through its batch (2 of 4 appended), the vessel noticing: then the exact file', async () => {
    const c = newCase('halfway');
    const { bin, half, gate } = halfwayCat(c);
    const joiner = startJoiner(c, bin);
    const exit = exited(joiner);
    await until('2 chunks of the batch appended', () => existsSync(half));
    const [file] = hidden(c);
    assert.deepEqual(readFileSync(join(c.dir, file)), Buffer.concat(c.chunks.slice(0, 2)), 'the premise: half a batch is in');
    // sshd closes the command's stdin; the `cat` goes on to the end of its batch meanwhile.
    joiner.stdin!.end();
    writeFileSync(gate, '');
    assert.equal(await exit, AssembleExit.incomplete);
    assert.deepEqual(hidden(c), [], 'the half-joined file is removed');
    assertRejoined(c, run(c));
  });

  it('killed while a cat is halfway through its batch (the vessel cleans nothing up): then the exact file, and the leftover is removed', async () => {
    const c = newCase('killed');
    const { bin, half } = halfwayCat(c);
    const joiner = startJoiner(c, bin);
    const exit = exited(joiner);
    await until('2 chunks of the batch appended', () => existsSync(half));
    process.kill(-joiner.pid!, 'SIGKILL');
    await exit;
    const [left] = hidden(c);
    assert.deepEqual(readFileSync(join(c.dir, left)), Buffer.concat(c.chunks.slice(0, 2)), 'the premise: a half-joined file is left');
    // Another pid, another file: nothing of the leftover is continued or doubled.
    assertRejoined(c, run(c));
  });

  it('a leftover under the very name the next attempt gets (its pid reused) is emptied, not continued', () => {
    const c = newCase('reused');
    // The same shell pid for both: the leftover's name is the next attempt's.
    const script = joinScript(c.plan).replace('.$$.tmp', '.4711.tmp');
    writeFileSync(`${c.plan.assemblyPrefix}.4711.tmp`, Buffer.concat(c.chunks.slice(0, 2)));
    assertRejoined(c, (input) => spawnSync('/bin/sh', ['-c', script], { cwd: root, encoding: 'utf8', timeout: 30_000, input }));
  });
});

/**
 * The sh a vessel may have as /bin/sh: dash (Debian, Ubuntu), bash (Red Hat, Arch, macOS),
 * busybox ash (Alpine, embedded), ksh93. Run as `carried` runs the script, with the shell
 * swapped in for /bin/sh.
 */
const posixShells: [string, string[]][] = [
  ['dash', ['/bin/dash']], ['bash', ['/bin/bash', '--posix']], ['busybox ash', ['/usr/bin/busybox', 'sh']], ['ksh93', ['/usr/bin/ksh']],
];
/** Login shells that do not read sh: the command line `carried` gives them must still start /bin/sh. */
const loginShells: [string, string[]][] = [['fish', ['/usr/bin/fish']], ['tcsh', ['/usr/bin/tcsh']], ['zsh', ['/usr/bin/zsh']]];

describe('join: the same, in every sh and through every login shell', () => {
  const carriedBy = (argv: string[], c: Case, asSh: boolean) => (input: string) => {
    const { command, prologue } = carried(joinScript(c.plan));
    const line = asSh ? /^exec \/bin\/sh -c '(.*)'$/.exec(command)![1] : command;
    const r = spawnSync(argv[0], [...argv.slice(1), '-c', line], { cwd: root, encoding: 'utf8', timeout: 30_000, input: Buffer.concat([prologue, Buffer.from(input)]) });
    if (r.error) throw r.error;
    return r;
  };
  const cutThenRejoin = (name: string, run: (c: Case) => (input: string) => { status: number | null; stdout: string; stderr: string }) => {
    const c = newCase(name);
    const cut = run(c)(lines(0, 6));
    assert.equal(cut.status, AssembleExit.incomplete, cut.stderr);
    assert.deepEqual(hidden(c), []);
    assertRejoined(c, run(c));
  };

  for (const [name, argv] of posixShells) {
    it(`as /bin/sh: ${name}`, { skip: !existsSync(argv[0]) && `${argv[0]} is not installed` }, () => {
      cutThenRejoin(name.replace(/\W/g, '-'), (c) => carriedBy(argv, c, true));
    });
  }
  for (const [name, argv] of loginShells) {
    it(`login shell ${name}`, { skip: !existsSync(argv[0]) && `${argv[0]} is not installed` }, () => {
      cutThenRejoin(`login-${name}`, (c) => carriedBy(argv, c, false));
    });
  }
});
