import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ExecResult, RemoteFs } from '../../src/ssh/remote-fs.js';
import { parseDigests, remoteSha256 } from '../../src/push/upload/hash-batch.js';
import { hashFilesScript } from '../../src/push/upload/digest-scripts.js';

const dir = mkdtempSync(join(tmpdir(), 'cm-hash-batch-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

/** A vessel whose `exec` runs the script with the local /bin/sh, counting the commands. */
function localVessel(env?: NodeJS.ProcessEnv): { remote: RemoteFs; execs: () => number } {
  let execs = 0;
  const remote = {
    exec: async (command: string): Promise<ExecResult> => {
      execs++;
      const r = spawnSync('/bin/sh', ['-c', command], { encoding: 'utf8', env: env ?? process.env });
      return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr.trim() };
    },
  } as unknown as RemoteFs;
  return { remote, execs: () => execs };
}

describe('parseDigests', () => {
  it('takes the digest of each line, also of an escaped one', () => {
    assert.deepEqual(parseDigests(`${sha('a')}  /x/a\n\\${sha('b')}  /x/new\\nline\n`), [sha('a'), sha('b')]);
  });
});

describe('remoteSha256', () => {
  it('files asked for in one turn are hashed by one command; hostile names are inert and map to their own digest', async () => {
    const names = ['plain', 'with space', `quote'd`, '$(touch MARKER)', 'new\nline', 'back\\slash'];
    names.forEach((n, i) => writeFileSync(join(dir, n), `content ${i}`));
    const { remote, execs } = localVessel();
    const digests = await Promise.all(names.map((n) => remoteSha256(remote, join(dir, n), 10_000)));
    assert.deepEqual(digests, names.map((_, i) => sha(`content ${i}`)));
    assert.equal(execs(), 1);
    assert.equal(spawnSync('ls', [join(dir, 'MARKER')]).status !== 0, true, 'no injection');
  });

  it('a missing file fails alone: the others of its batch still get their digests', async () => {
    writeFileSync(join(dir, 'ok1'), 'one');
    writeFileSync(join(dir, 'ok2'), 'two');
    const { remote } = localVessel();
    const results = await Promise.allSettled(['ok1', 'gone', 'ok2'].map((n) => remoteSha256(remote, join(dir, n), 10_000)));
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.equal((results[0] as PromiseFulfilledResult<string>).value, sha('one'));
    assert.equal((results[2] as PromiseFulfilledResult<string>).value, sha('two'));
  });
});

describe('hashFilesScript', () => {
  it('without sha256sum, openssl hashes each file in order', () => {
    writeFileSync(join(dir, 'o1'), 'x');
    writeFileSync(join(dir, 'o 2'), 'y');
    const bin = join(dir, 'bin');
    spawnSync('mkdir', [bin]);
    spawnSync('ln', ['-s', spawnSync('sh', ['-c', 'command -v openssl'], { encoding: 'utf8' }).stdout.trim(), join(bin, 'openssl')]);
    const r = spawnSync('/bin/sh', ['-c', hashFilesScript([join(dir, 'o1'), join(dir, 'o 2')])], { encoding: 'utf8', env: { PATH: bin } });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(parseDigests(r.stdout), [sha('x'), sha('y')]);
  });
});
