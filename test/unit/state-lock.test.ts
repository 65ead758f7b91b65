// One daemon per state database (issue 16, item 2): the lock is held for the life of a process
// and dies with it (kill -9 leaves nothing stale); a second taker is told the holder's PID. And
// the store itself: readers never make the writer fail, and a write that fails after all is one
// StateDatabaseError naming the database, handed once to onFailure.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { AlreadyRunningError, StateDatabaseError } from '../../src/errors.js';
import { lockStateDatabase } from '../../src/state/lock.js';
import { StateStore } from '../../src/state/store.js';

let root: string;
let n = 0;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'cm-state-lock-'));
});
after(() => {
  rmSync(root, { recursive: true, force: true });
});

const lockModule = pathToFileURL(new URL('../../src/state/lock.ts', import.meta.url).pathname).href;

/** A process that takes the lock, says `locked` and waits to be killed. */
function holder(database: string): Promise<ChildProcess> {
  const script = `const { lockStateDatabase } = await import(${JSON.stringify(lockModule)}); lockStateDatabase(${JSON.stringify(database)}); process.stdout.write('locked\\n'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'], cwd: new URL('../..', import.meta.url).pathname });
  return new Promise((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => d.includes('locked') && resolve(child));
    child.once('exit', (code) => reject(new Error(`the holder exited (${code}) before taking the lock`)));
  });
}

describe('state database lock', () => {
  it('a second taker gets AlreadyRunningError naming the holder; after kill -9 of the holder the lock is free', async () => {
    const database = join(root, `db-${++n}.sqlite3`);
    const child = await holder(database);
    try {
      assert.throws(() => lockStateDatabase(database), (err: Error) => {
        assert.ok(err instanceof AlreadyRunningError, String(err));
        assert.equal(err.message, `the state database ${database} is in use by another contentmonster run (PID ${child.pid}); one daemon per database: stop that one first, or give this one another Database in [MONSTER]`);
        return true;
      });
    } finally {
      child.kill('SIGKILL');
    }
    await new Promise((r) => child.once('exit', r));
    const lock = lockStateDatabase(database);
    lock.release();
    lockStateDatabase(database).release(); // released: free again
  });
});

describe('state store failures', () => {
  it('a reader (status, check) next to the writer never makes it fail', () => {
    const file = join(root, `store-${++n}.sqlite3`);
    const failures: StateDatabaseError[] = [];
    const writer = new StateStore(file, { onFailure: (e) => failures.push(e) });
    const reader = new StateStore(file, { readonly: true });
    try {
      writer.recordHostKey('h:22', 'SHA256:x');
      // The reader holds a read snapshot while the writer commits and writes again.
      reader.snapshot(() => {
        reader.waitingByVessel();
        writer.flush();
        writer.recordHostKey('h2:22', 'SHA256:y');
        writer.flush();
        assert.equal(reader.hostKey('h2:22'), undefined, 'the reader sees its snapshot');
      });
      assert.equal(reader.hostKey('h2:22'), 'SHA256:y');
      assert.deepEqual(failures, []);
    } finally {
      reader.close();
      writer.close();
    }
  });

  it('a write that cannot be made is one StateDatabaseError naming the database, given once to onFailure', () => {
    const file = join(root, `store-${++n}.sqlite3`);
    const failures: StateDatabaseError[] = [];
    const store = new StateStore(file, { busyTimeoutMs: 50, onFailure: (e) => failures.push(e) });
    const other = new Database(file);
    try {
      other.exec('BEGIN IMMEDIATE'); // another writer that never lets go (no daemon does: see the lock)
      for (let i = 0; i < 2; i++) {
        assert.throws(() => store.recordHostKey('h:22', 'SHA256:x'), (err: Error) => {
          assert.ok(err instanceof StateDatabaseError, String(err));
          assert.equal(err.message, `state database ${file}: database is locked (SQLITE_BUSY)`);
          return true;
        });
      }
      assert.equal(failures.length, 1, 'said once');
    } finally {
      other.close();
      store.close();
    }
  });
});
