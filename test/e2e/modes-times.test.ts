// Modes and times (issue 16, item 4): files arrive with the shore's permission bits (setuid and
// setgid dropped) and modification time, on both ways a file takes (small files over SFTP,
// large ones joined on the vessel) and when a file already there is confirmed. A vessel that
// refuses them gets every file all the same, and one warning.
//
// v1: a plain vessel. v2: its SFTP server refuses setstat (sftp-server -P setstat,fsetstat, as
// a server on a filesystem without Unix permissions answers chmod), so small files cannot get
// them. v3: its chmod fails (a script bound over /bin/chmod and /usr/bin/chmod in its
// namespace), so large files cannot get their mode.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, copyFile, mkdir, stat, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startVesselFarm, type Vessel, type VesselFarm } from '../helpers/sshd.js';
import { runCli } from '../helpers/process.js';
import { listFiles, sha256File, writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, assertVesselClean, onVessel, resetFarm, writeSettings } from '../helpers/push.js';

const MiB = 1024 * 1024;
const SFTP_SERVER = '/usr/lib/openssh/sftp-server';
const WARNING = /refuses to set file modes or times/;
/** 2001-02-03 04:05:06 UTC, and an hour later per file. */
const PAST = Date.UTC(2001, 1, 3, 4, 5, 6) / 1000;

let farm: VesselFarm;

before(async () => {
  farm = await startVesselFarm({ count: 3 });
  const [, v2, v3] = farm.vessels as [Vessel, Vessel, Vessel];
  const tools = join(farm.root, 'tools');
  await mkdir(tools);
  // v2: the real sftp-server, reached under another name, refusing setstat and fsetstat.
  await copyFile(SFTP_SERVER, join(tools, 'sftp-server.real'));
  await chmod(join(tools, 'sftp-server.real'), 0o755);
  await writeFile(join(tools, 'sftp-no-setstat'), `#!/bin/sh\nexec '${tools}/sftp-server.real' -P setstat,fsetstat "$@"\n`, { mode: 0o755 });
  onVessel(v2, `mount --bind '${tools}/sftp-no-setstat' '${SFTP_SERVER}'`);
  // v3: a chmod that fails the way one on a filesystem without permissions does.
  await writeFile(join(tools, 'chmod'), '#!/bin/sh\necho "chmod: changing permissions of \'$2\': Operation not permitted" >&2\nexit 1\n', { mode: 0o755 });
  onVessel(v3, `mount --bind '${tools}/chmod' /bin/chmod && mount --bind '${tools}/chmod' /usr/bin/chmod`);
});
after(async () => {
  await farm?.stop();
});

interface Spec {
  rel: string;
  size: number;
  mode: number;
  /** What the vessel must show. */
  expected: number;
  mtime: number;
}

const specs: Spec[] = [];
for (const [kind, size] of [['small', 1000], ['large', 3 * MiB + 17]] as const) {
  for (const [mode, expected] of [[0o600, 0o600], [0o640, 0o640], [0o755, 0o755], [0o4755, 0o755], [0o2750, 0o750]] as const) {
    specs.push({ rel: `${kind}/mode-${mode.toString(8)}.bin`, size, mode, expected, mtime: PAST + specs.length * 3600 });
  }
}
const isLarge = (s: Spec) => s.size > MiB;

async function makeFiles(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  let seed = 16_400;
  for (const s of specs) {
    const path = join(farm.viewPath, s.rel);
    files.set(s.rel, await writeRandomFile(path, s.size, seed++));
    await chmod(path, s.mode);
    await utimes(path, s.mtime, s.mtime);
  }
  return files;
}

async function attrsOn(v: Vessel, rel: string): Promise<{ mode: number; mtime: number }> {
  const st = await stat(v.hostPath(join(farm.viewPath, rel)));
  return { mode: st.mode & 0o7777, mtime: Math.floor(st.mtimeMs / 1000) };
}

function warnings(out: string, vessel: string): string[] {
  return out.split('\n').filter((l) => WARNING.test(l) && l.includes(`vessel=${vessel}`));
}

describe('modes and times', () => {
  beforeEach(() => resetFarm(farm));

  it('arrive on every vessel, small and large; a vessel that refuses them gets the files and one warning', async () => {
    const files = await makeFiles();
    const [v1, v2, v3] = farm.vessels as [Vessel, Vessel, Vessel];
    // Already on v1 with the same content (a lost state file, or the Python version's
    // delivery), but with the arrival's mode and time: confirmed, and given the shore's.
    const there = specs.find((s) => isLarge(s) && s.mode === 0o640)!;
    await mkdir(join(v1.backing, 'large'), { recursive: true });
    await copyFile(join(farm.viewPath, there.rel), join(v1.backing, there.rel));
    await chmod(join(v1.backing, there.rel), 0o644);
    const settings = await writeSettings(farm, { chunkSize: MiB });
    const r = await runCli(['run', '-c', settings, '--once', '--log-format', 'text'], { cwd: farm.root, timeoutMs: 240_000 });
    const out = r.stdout + r.stderr;
    assert.equal(r.code, 0, out);
    assert.match(out, new RegExp(`already on vessel .*vessel=v1 file=\\S*${there.rel}`), 'the file already on v1 was confirmed, not sent');

    for (const v of farm.vessels) {
      await assertOnVessel(v, farm.viewPath, files);
      await assertVesselClean(v, farm.viewPath);
      assert.deepEqual(await listFiles(v.backing), [...files.keys()].sort(), `only the files on ${v.name}`);
    }
    // v1: every file with the shore's mode (no setuid, setgid) and time.
    for (const s of specs) assert.deepEqual(await attrsOn(v1, s.rel), { mode: s.expected, mtime: s.mtime }, `${s.rel} on v1`);
    // v2 (no setstat): large files have both; small ones arrive as the vessel user's alone.
    for (const s of specs) {
      const got = await attrsOn(v2, s.rel);
      if (isLarge(s)) assert.deepEqual(got, { mode: s.expected, mtime: s.mtime }, `${s.rel} on v2`);
      else assert.equal(got.mode, 0o600, `${s.rel} on v2: never more readable than created`);
    }
    // v3 (no chmod): small files have both; large ones their time, and the vessel user's mode.
    for (const s of specs) {
      const got = await attrsOn(v3, s.rel);
      assert.deepEqual(got, { mode: isLarge(s) ? 0o600 : s.expected, mtime: s.mtime }, `${s.rel} on v3`);
    }
    // One warning per refusing vessel, not one per file; none for v1.
    assert.equal(warnings(out, 'v1').length, 0, out);
    const w2 = warnings(out, 'v2');
    const w3 = warnings(out, 'v3');
    assert.equal(w2.length, 1, out);
    assert.equal(w3.length, 1, out);
    assert.match(w2[0], /\bWARN\b.*setstat.*permission denied/i);
    assert.match(w3[0], /\bWARN\b.*Operation not permitted/);
    if (process.env.SHOW_FAILURE_LINES) console.log([...w2, ...w3].join('\n'));
    // Every file left the shore for processed/, intact.
    for (const [rel, sha] of files) assert.equal(await sha256File(join(farm.viewPath, 'processed', rel)), sha, `processed/${rel}`);
  });
});
