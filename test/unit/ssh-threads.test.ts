// `[MONSTER] Threads = auto` (ssh-threads.ts): SSH threads only with 2 vessels and 2 cores, one
// per vessel up to the cores; a number is taken as it is, 0 is off.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sshThreadCount } from '../../src/ssh/ssh-threads.js';

describe('sshThreadCount', () => {
  it('auto: none for one vessel or one core', () => {
    assert.equal(sshThreadCount('auto', 1, 8), 0);
    assert.equal(sshThreadCount('auto', 5, 1), 0);
  });

  it('auto: one per vessel, at most one per core', () => {
    assert.equal(sshThreadCount('auto', 2, 2), 2);
    assert.equal(sshThreadCount('auto', 3, 2), 2);
    assert.equal(sshThreadCount('auto', 3, 8), 3);
  });

  it('a number is the count, whatever the vessels and cores; 0 is off', () => {
    assert.equal(sshThreadCount(0, 4, 8), 0);
    assert.equal(sshThreadCount(3, 1, 2), 3);
  });
});
