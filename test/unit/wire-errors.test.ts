// Errors across the SSH thread boundary (wire-errors.ts): every class the push code branches on
// comes back as itself, with its fields and its cause chain, after a real structured clone.
import assert from 'node:assert/strict';
import { describe as suite, it } from 'node:test';
import {
  AlreadyRunningError, CommandsRefusedError, ConfigError, FileError, RenameUnsupported, SftpStatus, StateDatabaseError, StoppedError,
  TransientError, UnexpectedError, VesselRefusedError, classify, describe,
} from '../../src/errors.js';
import { isNoSuchFile, isPermissionDenied, isRenameUnsupported, isSftpFailure, requestError } from '../../src/ssh/sftp-errors.js';
import { fromWire, toWire } from '../../src/ssh/wire-errors.js';

/** Through toWire, a structured clone (what postMessage does) and fromWire. */
function across(err: unknown): Error {
  return fromWire(structuredClone(toWire(err)));
}

suite('wire errors', () => {
  it('each contentmonster error class comes back as itself, with message, vessel, path and code', () => {
    const classes = [ConfigError, TransientError, FileError, VesselRefusedError, CommandsRefusedError, UnexpectedError, AlreadyRunningError, StateDatabaseError, StoppedError];
    for (const Class of classes) {
      const back = across(new Class('it went wrong', { vessel: 'v1', path: '/a/b', code: 'ECONNRESET' })) as InstanceType<typeof Class>;
      assert.ok(back instanceof Class, Class.name);
      assert.equal(back.message, 'it went wrong');
      assert.equal(back.name, new Class('x').name);
      assert.equal(back.vessel, 'v1');
      assert.equal(back.path, '/a/b');
      assert.equal(back.code, 'ECONNRESET');
    }
  });

  it('RenameUnsupported (a subclass that keeps the name Error) comes back as itself, also as a cause', () => {
    assert.ok(across(new RenameUnsupported('no rename')) instanceof RenameUnsupported);
    const wrapped = classify(new RenameUnsupported('no rename'), { vessel: 'v1', path: '/p' }, 'SFTP rename /p');
    const back = across(wrapped);
    assert.ok(isRenameUnsupported(back));
    assert.equal(back.constructor, wrapped.constructor);
  });

  it('SFTP status errors keep the numeric status the callers test, through the cause chain', () => {
    const raw = (code: number, message: string) => Object.assign(new Error(message), { code });
    const cases: [number, (e: unknown) => boolean][] = [
      [SftpStatus.NO_SUCH_FILE, isNoSuchFile], [SftpStatus.PERMISSION_DENIED, isPermissionDenied], [SftpStatus.FAILURE, isSftpFailure],
    ];
    for (const [code, test] of cases) {
      const err = requestError(raw(code, 'status'), 'open', 'v1', '/x');
      const back = across(err);
      assert.equal(back.constructor, err.constructor);
      assert.ok(test(back), `status ${code}`);
      assert.equal(describe(back), describe(err));
    }
  });

  it('raw ssh2 and Node errors keep what classify() looks at: level, reason, code', () => {
    const level = Object.assign(new Error('auth'), { level: 'client-authentication' });
    const reason = Object.assign(new Error('open failed'), { reason: 4 });
    const code = Object.assign(new Error('reset'), { code: 'ECONNRESET' });
    const odd = new TypeError('a bug');
    for (const raw of [level, reason, code, odd]) {
      const back = across(raw);
      assert.equal(back.name, raw.name);
      assert.equal(back.message, raw.message);
      assert.equal(classify(back).constructor, classify(raw).constructor, raw.message);
      assert.equal(classify(back).message, classify(raw).message);
    }
  });

  it('the cause chain comes back, classes and all; the stack is the original one', () => {
    const inner = Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' });
    const outer = new TransientError('connection to v1 lost', { vessel: 'v1', cause: inner });
    const back = across(outer);
    assert.ok(back instanceof TransientError);
    assert.equal((back.cause as Error).message, 'socket hang up');
    assert.equal((back.cause as { code?: unknown }).code, 'ECONNRESET');
    assert.equal(back.stack, outer.stack);
  });

  it('what is not an Error crosses as one with its text', () => {
    const back = across('a string thrown');
    assert.ok(back instanceof Error);
    assert.equal(back.message, 'a string thrown');
  });
});
