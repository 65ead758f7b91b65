import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ExecResult, RemoteFs, RemoteLineService } from '../../src/ssh/remote-fs.js';
import { checkOnVessel } from '../../src/push/upload/remote-check.js';

const dir = mkdtempSync(join(tmpdir(), 'cm-remote-check-'));
/** Every checker started; they live until stopped, like on a vessel. */
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) c.kill();
  rmSync(dir, { recursive: true, force: true });
});
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/**
 * A vessel on this machine: `exec` and `startLineService` run their command with /bin/sh and
 * `PATH` (to hide or fake tools); counts both.
 */
function localVessel(path = process.env.PATH!): { remote: RemoteFs; counts: { execs: number; services: number } } {
  const counts = { execs: 0, services: 0 };
  const env = { ...process.env, PATH: path };
  const remote = {
    exec: async (command: string): Promise<ExecResult> => {
      counts.execs++;
      const r = spawnSync('/bin/sh', ['-c', command], { encoding: 'utf8', env });
      return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr.trim() };
    },
    startLineService: async (command: string): Promise<RemoteLineService> => {
      counts.services++;
      const child = spawn('/bin/sh', ['-c', command], { env, stdio: ['pipe', 'pipe', 'ignore'] });
      children.push(child);
      const waiting: { resolve(l: string): void; reject(e: unknown): void }[] = [];
      let partial = '';
      let ended = false;
      let answered = false;
      child.stdout.on('data', (d: Buffer) => {
        const lines = (partial + d.toString()).split('\n');
        partial = lines.pop()!;
        for (const l of lines) { answered = true; waiting.shift()?.resolve(l); }
      });
      child.on('close', (code) => {
        ended = true;
        for (const q of waiting.splice(0)) q.reject(new Error(`ended (exit ${code})`));
      });
      child.stdin.on('error', () => {});
      return {
        get answered() { return answered; },
        get ended() { return ended; },
        close: () => child.kill(),
        ask: (line) => new Promise((resolve, reject) => {
          if (ended) return reject(new Error('ended'));
          waiting.push({ resolve, reject });
          child.stdin.write(`${line}\n`);
        }),
      };
    },
  } as unknown as RemoteFs;
  return { remote, counts };
}

/** A PATH folder with the given real tools linked in and fakes written (never both for one name). */
function bin(name: string, real: string[], fakes: Record<string, string> = {}): string {
  const b = join(dir, name);
  mkdirSync(b);
  assert.ok(real.every((t) => !(t in fakes)), 'a fake must not be written through a link to the real tool');
  for (const tool of real) symlinkSync(spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim(), join(b, tool));
  for (const [tool, body] of Object.entries(fakes)) {
    writeFileSync(join(b, tool), `#!/bin/sh\n${body}\n`);
    chmodSync(join(b, tool), 0o755);
  }
  return b;
}

describe('checkOnVessel', () => {
  it('one checker answers every file in order: a match, a mismatch with the digest the vessel has, a missing file', async () => {
    const names = ['plain', 'with space', `quote'd`, '$(touch MARKER)', ' leading space', 'ends: OK'];
    names.forEach((n, i) => writeFileSync(join(dir, n), `content ${i}`));
    const { remote, counts } = localVessel();
    const verdicts = await Promise.all(names.map((n, i) => checkOnVessel(remote, join(dir, n), sha(`content ${i}`), 10_000)));
    assert.deepEqual(verdicts, names.map(() => undefined));
    assert.equal(await checkOnVessel(remote, join(dir, 'plain'), sha('something else'), 10_000), sha('content 0'), 'a mismatch names the digest found');
    await assert.rejects(checkOnVessel(remote, join(dir, 'gone'), sha('x'), 10_000), /cannot read/);
    assert.equal(await checkOnVessel(remote, join(dir, 'ends: OK'), sha('content 5'), 10_000), undefined, 'the checker still answers in step');
    assert.equal(counts.services, 1, 'one checker for all of them');
    assert.equal(spawnSync('ls', [join(dir, 'MARKER')]).status !== 0, true, 'no injection');
  });

  it('names sha256sum would escape (newline, backslash, carriage return) are checked by digest', async () => {
    const names = ['new\nline', 'back\\slash', 'carriage\rreturn'];
    names.forEach((n, i) => writeFileSync(join(dir, n), `escaped ${i}`));
    const { remote, counts } = localVessel();
    const verdicts = await Promise.all(names.map((n, i) => checkOnVessel(remote, join(dir, n), sha(`escaped ${i}`), 10_000)));
    assert.deepEqual(verdicts, [undefined, undefined, undefined]);
    assert.equal(await checkOnVessel(remote, join(dir, 'back\\slash'), sha('no'), 10_000), sha('escaped 1'));
    assert.equal(counts.services, 0);
  });

  it('a vessel without sha256sum (openssl only): the checker never answers, and digests decide from then on', async () => {
    writeFileSync(join(dir, 'o1'), 'one');
    const { remote, counts } = localVessel(bin('openssl-only', ['openssl']));
    assert.equal(await checkOnVessel(remote, join(dir, 'o1'), sha('one'), 10_000), undefined);
    assert.equal(await checkOnVessel(remote, join(dir, 'o1'), sha('two'), 10_000), sha('one'));
    assert.equal(counts.services, 1, 'not started again once it could not run');
  });

  it('answers that do not match the question: a new checker, and a digest for this file', async () => {
    writeFileSync(join(dir, 'g1'), 'gee');
    const { remote, counts } = localVessel(bin('garbling', ['cat'], { sha256sum: `case "$1" in -c) while read -r l; do echo 'motd: hello'; done ;; *) exec "${join(dir, 'garbling-real')}" "$@" ;; esac` }));
    symlinkSync(spawnSync('sh', ['-c', 'command -v sha256sum'], { encoding: 'utf8' }).stdout.trim(), join(dir, 'garbling-real'));
    assert.equal(await checkOnVessel(remote, join(dir, 'g1'), sha('gee'), 10_000), undefined);
    assert.equal(await checkOnVessel(remote, join(dir, 'g1'), sha('gee'), 10_000), undefined);
    assert.equal(counts.services, 2);
  });
});

describe('checkOnVessel without a session to spare', () => {
  it('a server that refuses the checker session: digests decide', async () => {
    writeFileSync(join(dir, 'r1'), 'refused');
    const { remote, counts } = localVessel();
    remote.startLineService = async () => { counts.services++; throw new Error('open failed (administratively prohibited)'); };
    assert.equal(await checkOnVessel(remote, join(dir, 'r1'), sha('refused'), 10_000), undefined);
    assert.equal(await checkOnVessel(remote, join(dir, 'r1'), sha('other'), 10_000), sha('refused'));
    assert.equal(counts.services, 1);
    assert.equal(counts.execs, 2);
  });
});
