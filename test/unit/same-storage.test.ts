// The same-storage probe (issue 16, item 1) against a "vessel" that is this host's filesystem:
// a RemoteLocation that is the Location, or an alias of it, is found; anything else is not;
// the markers never stay.
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { TransientError, VesselRefusedError } from '../../src/errors.js';
import type { RemoteFs } from '../../src/ssh/remote-fs.js';
import {
  SameStorageError, findSameStorage, isStorageMarker, proveSeparateStorage, sameStorageStep, type StoragePair,
} from '../../src/push/same-storage.js';

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'cm-same-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

let n = 0;
function folder(name: string): string {
  const dir = join(root, `${name}-${++n}`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'a.txt'), 'a');
  return dir;
}

/** A vessel that sees this host's files (as SFTP's lstat does), counting its requests. */
function localVessel(fail?: (path: string) => Error | undefined): { remote: RemoteFs; stats: string[] } {
  const stats: string[] = [];
  const remote = {
    stat: async (path: string) => {
      stats.push(path);
      const err = fail?.(path);
      if (err) throw err;
      const st = lstatSync(path, { throwIfNoEntry: false });
      return st ? { size: st.size, isFile: st.isFile(), isDirectory: st.isDirectory() } : null;
    },
  } as unknown as RemoteFs;
  return { remote, stats };
}

const pair = (location: string, remoteLocation: string, directory = 'd'): StoragePair => ({ directory, location, remoteLocation });

describe('same storage', () => {
  it('a RemoteLocation that is the Location, by its own path or another (symlink), is found; the markers are gone', async () => {
    const shore = folder('shore');
    const alias = join(root, `alias-${++n}`);
    symlinkSync(shore, alias);
    const { remote, stats } = localVessel();
    const found = await findSameStorage(remote, [pair(shore, shore, 'one'), pair(shore, `${alias}/`, 'two')]);
    assert.deepEqual(found.same.map((p) => p.directory), ['one', 'two']);
    assert.deepEqual(found.unknown, []);
    assert.deepEqual(readdirSync(shore), ['a.txt'], 'no marker left');
    assert.equal(stats.length, 2);
    for (const s of stats) assert.ok(isStorageMarker(s.slice(s.lastIndexOf('/') + 1)), s);
  });

  it('another folder, or one that does not exist yet, is not the same storage', async () => {
    const shore = folder('shore');
    const other = folder('other');
    const { remote } = localVessel();
    const found = await findSameStorage(remote, [pair(shore, other), pair(shore, join(root, 'not', 'there'))]);
    assert.deepEqual(found, { same: [], unknown: [] });
    assert.deepEqual(readdirSync(shore), ['a.txt']);
    assert.deepEqual(readdirSync(other), ['a.txt']);
  });

  it('a RemoteLocation the vessel may not look into is not the same storage; a dead link rejects, and the markers are gone', async () => {
    const shore = folder('shore');
    const denied = Object.assign(new Error('SFTP stat: permission denied'), { cause: Object.assign(new Error('Permission denied'), { code: 3 }) });
    const found = await findSameStorage(localVessel(() => denied).remote, [pair(shore, shore)]);
    assert.deepEqual(found.same, []);
    const cut = new TransientError('connection to vessel v closed');
    await assert.rejects(findSameStorage(localVessel(() => cut).remote, [pair(shore, shore)]), TransientError);
    assert.deepEqual(readdirSync(shore), ['a.txt'], 'no marker left');
  });

  it('a Location where no marker can be created: cannot tell, said, and nothing asked of the vessel', async () => {
    const { remote, stats } = localVessel();
    const missing = join(root, 'gone');
    const found = await findSameStorage(remote, [pair(missing, missing)]);
    assert.deepEqual(found.same, []);
    assert.equal(found.unknown.length, 1);
    assert.match(found.unknown[0].reason, /cannot create a marker in .*gone/);
    assert.deepEqual(stats, []);
  });

  it('proveSeparateStorage refuses the vessel with one line naming each Directory; check gets it without the vessel name', async () => {
    const shore = folder('shore');
    const other = folder('other');
    const { remote } = localVessel();
    const err = await proveSeparateStorage(remote, 'v1', [pair(shore, shore, 'out'), pair(other, join(root, 'elsewhere'), 'in')]).catch((e: unknown) => e);
    assert.ok(err instanceof SameStorageError);
    assert.ok(err instanceof VesselRefusedError, 'a refusal: --once gives the vessel up, the daemon retries slowly');
    assert.equal(
      err.message,
      `RemoteLocation ${shore} of [Directory out] on vessel v1 is the shore's own Location ${shore} (the same storage: this host, or a share both see): refused, nothing is sent, confirmed or moved`,
    );
    assert.doesNotMatch(err.message, /\n/);
    const step = await sameStorageStep(remote, [{ name: 'out', location: shore, remoteLocation: shore }]);
    assert.equal(step.state, 'fail');
    assert.deepEqual(step.problems, [`RemoteLocation ${shore} of [Directory out] is the shore's own Location ${shore} (the same storage: this host, or a share both see): refused, nothing is sent, confirmed or moved`]);
    assert.deepEqual(await proveSeparateStorage(remote, 'v1', [pair(other, shore)]), []);
  });

  it('isStorageMarker matches the marker names only', () => {
    assert.equal(isStorageMarker(`.cm-same-${'0a'.repeat(16)}`), true);
    for (const name of ['.cm-same-', `.cm-same-${'0a'.repeat(16)}x`, `cm-same-${'0a'.repeat(16)}`, '.cm-0123.up.tmp', `.cm-same-${'0A'.repeat(16)}`]) {
      assert.equal(isStorageMarker(name), false, name);
    }
  });
});
