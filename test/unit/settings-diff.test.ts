// What a reload changes (src/settings/diff.ts): vessels and Directories by name, [MONSTER] keys
// applied live or kept for a restart.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diffSettings, RESTART_KEYS } from '../../src/settings/diff.js';
import { parseSettings } from '../../src/settings/load.js';

const file = '/etc/cm/settings.ini';
const parse = (...lines: string[]) => parseSettings(lines.join('\n'), file);

const directories = ['[Directory a]', 'Location = /srv/a', '[Directory b]', 'Location = /srv/b'];
const vessels = ['[Vessel v1]', 'Address = v1.example', '[Vessel v2]', 'Address = v2.example', 'Port = 2222'];

describe('diffSettings', () => {
  it('the same file: nothing added, removed or changed', () => {
    const d = diffSettings(parse(...directories, ...vessels), parse(...vessels, ...directories));
    assert.deepEqual(d.vessels, { added: [], removed: [], changed: [], unchanged: ['v1', 'v2'] });
    assert.deepEqual(d.directories, { added: [], removed: [], changed: [], unchanged: ['b', 'a'].sort() });
    assert.deepEqual([d.monster, d.needRestart], [[], []]);
  });

  it('vessels: added, removed, changed by any key (IgnoreDirs too), unchanged', () => {
    const d = diffSettings(
      parse(...directories, ...vessels, '[Vessel v3]', 'Address = v3.example', '[Vessel v4]', 'Address = v4.example'),
      parse(...directories, '[Vessel v1]', 'Address = v1.example', '[Vessel v2]', 'Address = v2.example', 'Port = 2223',
        '[Vessel v3]', 'Address = v3.example', 'IgnoreDirs = b', '[Vessel v5]', 'Address = v5.example'),
    );
    assert.deepEqual(d.vessels, { added: ['v5'], removed: ['v4'], changed: ['v2', 'v3'], unchanged: ['v1'] });
  });

  it('Directories: added, removed, changed (Location or RemoteLocation)', () => {
    const d = diffSettings(
      parse(...directories, '[Directory c]', 'Location = /srv/c', ...vessels),
      parse('[Directory a]', 'Location = /srv/a', 'RemoteLocation = /elsewhere', '[Directory b]', 'Location = /srv/b', '[Directory d]', 'Location = /srv/d', ...vessels),
    );
    assert.deepEqual(d.directories, { added: ['d'], removed: ['c'], changed: ['a'], unchanged: ['b'] });
  });

  it('[MONSTER]: live keys are applied; Database, ChunkSize and Threads keep their old value', () => {
    const old = parse('[MONSTER]', 'ChunkSize = 1048576', 'Database = /var/lib/cm/a.sqlite3', ...directories, ...vessels);
    const read = parse('[MONSTER]', 'ChunkSize = 2097152', 'Database = /var/lib/cm/b.sqlite3', 'StableTime = 5000', 'Ignore = *.skip',
      'RescanInterval = 60', 'MetricsSocket = /run/t.sock', 'LogLevel = debug', 'Threads = 2', ...directories, ...vessels);
    const d = diffSettings(old, read);
    assert.deepEqual(d.monster, ['StableTime', 'Ignore', 'RescanInterval', 'MetricsSocket', 'LogLevel']);
    assert.deepEqual(d.needRestart, ['ChunkSize', 'Database', 'Threads']);
    assert.deepEqual(RESTART_KEYS, ['database', 'chunkSize', 'threads', 'bandwidthLimit', 'timeZone']);
    assert.equal(d.next.monster.threads, 0);
    assert.equal(d.next.monster.chunkSize, 1048576);
    assert.equal(d.next.monster.database, '/var/lib/cm/a.sqlite3');
    assert.equal(d.next.monster.stableTimeMs, 5000);
    assert.deepEqual(d.next.monster.ignore, ['*.skip']);
    assert.equal(d.next.monster.logLevel, 'debug');
    assert.equal(d.next.vessels, read.vessels);
  });
});
