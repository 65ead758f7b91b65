import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fingerprint, judgeHostKey, type HostKeyRecords } from '../../src/ssh/host-key.js';

/** An in-memory HostKeyRecords that also counts writes. */
function memoryRecords(initial: Record<string, string> = {}) {
  const map = new Map(Object.entries(initial));
  const writes: [string, string][] = [];
  const records: HostKeyRecords = {
    hostKey: (host) => map.get(host),
    recordHostKey: (host, fp) => {
      writes.push([host, fp]);
      if (!map.has(host)) map.set(host, fp); // INSERT OR IGNORE, like the state store
    },
  };
  return { records, map, writes };
}

describe('fingerprint', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'cm-hostkey-'));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  for (const type of ['ed25519', 'ecdsa', 'rsa'] as const) {
    it(`equals ssh-keygen -lf for a generated ${type} key`, () => {
      const file = join(dir, `k-${type}`);
      execFileSync('ssh-keygen', ['-q', '-t', type, ...(type === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-C', 'test key', '-f', file]);
      const pub = readFileSync(`${file}.pub`, 'utf8').trim().split(/\s+/);
      const blob = Buffer.from(pub[1], 'base64');
      const listed = execFileSync('ssh-keygen', ['-lf', `${file}.pub`], { encoding: 'utf8' });
      const expected = listed.split(/\s+/).find((w) => w.startsWith('SHA256:'));
      assert.ok(expected, `no SHA256 fingerprint in ${listed}`);
      assert.equal(fingerprint(blob), expected);
      // No base64 padding, like OpenSSH.
      assert.doesNotMatch(fingerprint(blob), /=$/);
    });
  }

  it('is deterministic and differs for different keys', () => {
    const a = Buffer.from('key a');
    const b = Buffer.from('key b');
    assert.equal(fingerprint(a), fingerprint(Buffer.from('key a')));
    assert.notEqual(fingerprint(a), fingerprint(b));
    assert.match(fingerprint(a), /^SHA256:[A-Za-z0-9+/]{43}$/);
  });
});

describe('judgeHostKey', () => {
  const fpA = 'SHA256:AAAAaaaaAAAAaaaaAAAAaaaaAAAAaaaaAAAAaaaaAAA';
  const fpB = 'SHA256:BBBBbbbbBBBBbbbbBBBBbbbbBBBBbbbbBBBBbbbbBBB';

  it('first use: records the key and returns firstUse', () => {
    const { records, map, writes } = memoryRecords();
    assert.deepEqual(judgeHostKey('ship1', 'ship1.example:22', fpA, undefined, records), { ok: true, firstUse: true });
    assert.equal(map.get('ship1.example:22'), fpA);
    assert.deepEqual(writes, [['ship1.example:22', fpA]]);
  });

  it('the same key again is accepted without recording anything', () => {
    const { records, writes } = memoryRecords();
    judgeHostKey('ship1', 'h', fpA, undefined, records);
    assert.deepEqual(judgeHostKey('ship1', 'h', fpA, undefined, records), { ok: true, firstUse: false });
    assert.equal(writes.length, 1);
  });

  it('a changed key is refused; the reason names the vessel and both fingerprints', () => {
    const { records, map, writes } = memoryRecords({ 'h:2222': fpA });
    const verdict = judgeHostKey('ship-seven', 'h:2222', fpB, undefined, records);
    assert.equal(verdict.ok, false);
    assert.ok(!verdict.ok);
    assert.match(verdict.reason, /ship-seven/);
    assert.ok(verdict.reason.includes(fpA), 'names the recorded fingerprint');
    assert.ok(verdict.reason.includes(fpB), 'names the offered fingerprint');
    // The recorded key is not replaced by the offered one.
    assert.equal(map.get('h:2222'), fpA);
    assert.equal(writes.length, 0);
    // And it stays refused.
    assert.equal(judgeHostKey('ship-seven', 'h:2222', fpB, undefined, records).ok, false);
  });

  it('keys are per host: another host records its own key', () => {
    const { records, map } = memoryRecords({ h1: fpA });
    assert.deepEqual(judgeHostKey('v2', 'h2', fpB, undefined, records), { ok: true, firstUse: true });
    assert.equal(map.get('h1'), fpA);
    assert.equal(map.get('h2'), fpB);
  });

  it('a pinned key that matches is accepted and never recorded', () => {
    const { records, writes } = memoryRecords();
    assert.deepEqual(judgeHostKey('v', 'h', fpA, fpA, records), { ok: true, firstUse: false });
    assert.deepEqual(writes, []);
  });

  it('a pinned key wins over a different recorded key', () => {
    const { records, map, writes } = memoryRecords({ h: fpA });
    assert.deepEqual(judgeHostKey('v', 'h', fpB, fpB, records), { ok: true, firstUse: false });
    assert.deepEqual(writes, []);
    assert.equal(map.get('h'), fpA);
  });

  it('a pinned key that does not match is refused, names the vessel and both fingerprints, records nothing', () => {
    const { records, writes } = memoryRecords();
    const verdict = judgeHostKey('pinned-ship', 'h', fpB, fpA, records);
    assert.ok(!verdict.ok);
    assert.match(verdict.reason, /pinned-ship/);
    assert.ok(verdict.reason.includes(fpA));
    assert.ok(verdict.reason.includes(fpB));
    assert.deepEqual(writes, []);
  });

  it('a pinned check refuses even when the offered key is the recorded one', () => {
    const { records, writes } = memoryRecords({ h: fpB });
    assert.equal(judgeHostKey('v', 'h', fpB, fpA, records).ok, false);
    assert.deepEqual(writes, []);
  });
});
