import assert from 'node:assert/strict';
import { describe as suite, it } from 'node:test';
import {
  ConfigError,
  ExitCode,
  FileError,
  SftpStatus,
  StoppedError,
  TransientError,
  UnexpectedError,
  VesselRefusedError,
  classify,
  classifyTable,
  describe,
} from '../../src/errors.js';

function errnoError(code: string, message = `${code}: something`): NodeJS.ErrnoException {
  return Object.assign(new Error(message), { code });
}

/** ssh2 SFTP status errors carry the numeric status on `code`. */
function sftpError(code: number, message: string): Error {
  return Object.assign(new Error(message), { code });
}

function ssh2Error(level: string, message: string): Error {
  return Object.assign(new Error(message), { level });
}

type Class = typeof TransientError | typeof FileError | typeof VesselRefusedError | typeof UnexpectedError;

suite('classify', () => {
  const table: [string, unknown, Class][] = [
    ['ECONNRESET', errnoError('ECONNRESET', 'read ECONNRESET'), TransientError],
    ['ETIMEDOUT', errnoError('ETIMEDOUT', 'connect ETIMEDOUT 10.0.0.1:22'), TransientError],
    ['ECONNREFUSED', errnoError('ECONNREFUSED', 'connect ECONNREFUSED 127.0.0.1:22'), TransientError],
    ['EPIPE', errnoError('EPIPE'), TransientError],
    ['EHOSTUNREACH', errnoError('EHOSTUNREACH'), TransientError],
    ['ENOTFOUND (DNS)', errnoError('ENOTFOUND'), TransientError],
    ['ssh2 client-timeout', ssh2Error('client-timeout', 'Timed out while waiting for handshake'), TransientError],
    ['ssh2 client-socket', ssh2Error('client-socket', 'socket closed'), TransientError],
    ['ssh2 protocol', ssh2Error('protocol', 'bad packet'), TransientError],
    ['ssh2 client-authentication', ssh2Error('client-authentication', 'All configured authentication methods failed'), VesselRefusedError],
    ['SFTP 2 NO_SUCH_FILE', sftpError(2, 'No such file'), FileError],
    ['SFTP 3 PERMISSION_DENIED', sftpError(3, 'Permission denied'), FileError],
    ['SFTP 6 NO_CONNECTION', sftpError(6, 'No connection'), TransientError],
    ['SFTP 7 CONNECTION_LOST', sftpError(7, 'Connection lost'), TransientError],
    ['SFTP 4 FAILURE (callers look closer; else transient)', sftpError(4, 'Failure'), TransientError],
    ['SFTP 8 OP_UNSUPPORTED', sftpError(8, 'Operation unsupported'), FileError],
    ['an abort', errnoError('ABORT_ERR', 'This operation was aborted'), TransientError],
    ['ssh2 channel open failure', Object.assign(new Error('(SSH) Channel open failure: open failed'), { reason: 2 }), TransientError],
    ['EACCES', errnoError('EACCES', "EACCES: permission denied, open '/data/x'"), FileError],
    ['EPERM', errnoError('EPERM'), FileError],
    ['ENOENT', errnoError('ENOENT'), FileError],
    ['EISDIR', errnoError('EISDIR'), FileError],
    ['ENAMETOOLONG', errnoError('ENAMETOOLONG'), FileError],
    // A bug: counted against the file (a FileError) and logged with its stack, never retried forever.
    ['an unknown error (a bug)', new Error('weird'), UnexpectedError],
    ['a TypeError (a bug)', new TypeError("Cannot read properties of undefined (reading 'x')"), UnexpectedError],
    ['a string', 'just a string', UnexpectedError],
    ['undefined', undefined, UnexpectedError],
    ['null', null, UnexpectedError],
  ];

  for (const [name, raw, cls] of table) {
    it(`${name} → ${cls.name}`, () => {
      const c = classify(raw);
      assert.ok(c instanceof cls, `got ${c.constructor.name}`);
      assert.equal(c.name, cls.name);
      assert.ok(c instanceof Error);
      assert.equal(c.cause, raw, 'the raw error is kept as the cause');
    });
  }

  it('ssh2 level wins over an errno code (authentication failure on a reset socket is still refused)', () => {
    const raw = Object.assign(new Error('auth failed'), { level: 'client-authentication', code: 'ECONNRESET' });
    assert.ok(classify(raw) instanceof VesselRefusedError);
  });

  it('messages: authentication and SFTP status errors say what happened and keep the original text', () => {
    assert.match(classify(ssh2Error('client-authentication', 'All methods failed')).message, /^authentication failed: All methods failed$/);
    assert.match(classify(sftpError(3, 'Permission denied')).message, /permission denied: Permission denied/);
    assert.match(classify(sftpError(2, 'No such file')).message, /no such file: No such file/);
    assert.equal(classify(errnoError('ECONNRESET', 'read ECONNRESET')).message, 'read ECONNRESET');
    assert.equal(classify('just a string').message, 'unexpected error: just a string');
    assert.ok(classify(new Error('weird')) instanceof FileError, 'counted against the file');
  });

  it('an already-classified error passes through unchanged (same object, context not overwritten)', () => {
    for (const err of [
      new TransientError('t', { vessel: 'a' }),
      new FileError('f', { path: '/p' }),
      new VesselRefusedError('r'),
      new ConfigError('c'),
      new StoppedError('s'),
    ]) {
      const before = { message: err.message, vessel: err.vessel, path: err.path, cause: err.cause };
      const c = classify(err, { vessel: 'other', path: '/other' });
      assert.equal(c, err);
      assert.deepEqual({ message: c.message, vessel: c.vessel, path: c.path, cause: c.cause }, before);
    }
  });

  it('keeps the context (vessel, path) on the classified error', () => {
    const raw = errnoError('EACCES');
    const c = classify(raw, { vessel: 'ship1', path: '/data/in/a.txt' });
    assert.ok(c instanceof FileError);
    assert.equal(c.vessel, 'ship1');
    assert.equal(c.path, '/data/in/a.txt');
    assert.equal(c.cause, raw);
    const t = classify(errnoError('ECONNRESET'), { vessel: 'ship2' });
    assert.equal(t.vessel, 'ship2');
    assert.equal(t.path, undefined);
  });

  it('the raw error wins over a cause passed in the context', () => {
    const raw = errnoError('ETIMEDOUT');
    assert.equal(classify(raw, { cause: new Error('other') }).cause, raw);
  });
});

/**
 * classify()'s table, cell by cell: every row has its cell here (the first test fails when a row
 * is added or removed without one), and each cell checks the class, the name, the message, the
 * cause, the code and the context.
 */
suite('classify: the table, cell by cell', () => {
  /** [key, class, what the message starts with before the raw message ('' for the raw message as it is)] */
  type Cell<K> = [K, Class, string];
  const levelCells: Cell<string>[] = [
    ['client-authentication', VesselRefusedError, 'authentication failed: '],
    ['agent', VesselRefusedError, 'the SSH agent failed: '],
    ['client-socket', TransientError, ''],
    ['client-timeout', TransientError, ''],
    ['protocol', TransientError, ''],
    ['handshake', TransientError, ''],
    ['sftp-protocol', TransientError, ''],
    ['client-dns', TransientError, ''],
  ];
  const codeCells: Cell<string | number>[] = [
    ['ECONNREFUSED', TransientError, ''],
    ['ECONNRESET', TransientError, ''],
    ['ECONNABORTED', TransientError, ''],
    ['ETIMEDOUT', TransientError, ''],
    ['EPIPE', TransientError, ''],
    ['EHOSTUNREACH', TransientError, ''],
    ['ENETUNREACH', TransientError, ''],
    ['ENETDOWN', TransientError, ''],
    ['EHOSTDOWN', TransientError, ''],
    ['EAI_AGAIN', TransientError, ''],
    ['ENOTFOUND', TransientError, ''],
    ['ERR_STREAM_DESTROYED', TransientError, ''],
    ['ERR_STREAM_WRITE_AFTER_END', TransientError, ''],
    ['ERR_SOCKET_CLOSED', TransientError, ''],
    ['ERR_STREAM_PREMATURE_CLOSE', TransientError, ''],
    ['ABORT_ERR', TransientError, ''],
    ['EACCES', FileError, ''],
    ['EPERM', FileError, ''],
    ['ENOENT', FileError, ''],
    ['EISDIR', FileError, ''],
    ['ENOTDIR', FileError, ''],
    ['ENAMETOOLONG', FileError, ''],
    ['ELOOP', FileError, ''],
    ['EIO', FileError, ''],
    ['ENOSPC', FileError, ''],
    ['EROFS', FileError, ''],
    ['EBUSY', FileError, ''],
    ['ETXTBSY', FileError, ''],
    [SftpStatus.EOF, FileError, ''],
    [SftpStatus.NO_SUCH_FILE, FileError, 'no such file: '],
    [SftpStatus.PERMISSION_DENIED, FileError, 'permission denied: '],
    // What OpenSSH says for a full or read-only disk, among others: the callers that can tell look closer.
    [SftpStatus.FAILURE, TransientError, ''],
    [SftpStatus.BAD_MESSAGE, FileError, ''],
    [SftpStatus.NO_CONNECTION, TransientError, ''],
    [SftpStatus.CONNECTION_LOST, TransientError, ''],
    [SftpStatus.OP_UNSUPPORTED, FileError, ''],
  ];

  it('every row of the table has a cell here, and every cell a row', () => {
    assert.deepEqual(new Set(classifyTable.byLevel.keys()), new Set(levelCells.map(([key]) => key)));
    assert.deepEqual(new Set(classifyTable.byCode.keys()), new Set(codeCells.map(([key]) => key)));
    assert.equal(levelCells.length, classifyTable.byLevel.size, 'no level twice here');
    assert.equal(codeCells.length, classifyTable.byCode.size, 'no code twice here');
  });

  it('the SFTP status codes are the protocol\'s (ssh2\'s table)', () => {
    assert.deepEqual({ ...SftpStatus }, {
      OK: 0, EOF: 1, NO_SUCH_FILE: 2, PERMISSION_DENIED: 3, FAILURE: 4, BAD_MESSAGE: 5, NO_CONNECTION: 6, CONNECTION_LOST: 7, OP_UNSUPPORTED: 8,
    });
  });

  function check(raw: Error, cls: Class, prefix: string, code: string | number | undefined): void {
    const context = { vessel: 'ship', path: '/p' };
    const c = classify(raw, context);
    assert.ok(c instanceof cls, `got ${c.constructor.name}`);
    assert.equal(c.constructor, cls, 'exactly this class');
    assert.equal(c.name, cls.name);
    assert.equal(c.message, `${prefix}${raw.message}`);
    assert.equal(c.cause, raw);
    assert.equal(c.code, code);
    assert.equal(c.vessel, 'ship');
    assert.equal(c.path, '/p');
    assert.equal(raw.message, 'the raw message', 'the raw error is not touched');
    const during = classify(raw, context, 'SFTP open /p');
    assert.equal(during.constructor, cls);
    assert.equal(during.message, `SFTP open /p: ${prefix}${raw.message}`);
    assert.equal(during.cause, raw);
    assert.equal(during.code, code);
  }

  for (const [level, cls, prefix] of levelCells) {
    it(`level ${level} → ${cls.name}`, () => {
      check(ssh2Error(level, 'the raw message'), cls, prefix, undefined);
    });
  }

  for (const [code, cls, prefix] of codeCells) {
    it(`code ${typeof code === 'number' ? `${code} (SFTP)` : code} → ${cls.name}`, () => {
      check(Object.assign(new Error('the raw message'), { code }), cls, prefix, code);
    });
  }

  it('reason (a channel the server would not open) → TransientError', () => {
    assert.equal(classifyTable.withReason.as, TransientError);
    check(Object.assign(new Error('the raw message'), { reason: 2 }), TransientError, '', undefined);
  });

  it('otherwise → UnexpectedError, "unexpected error: "', () => {
    assert.equal(classifyTable.otherwise.as, UnexpectedError);
    check(new Error('the raw message'), UnexpectedError, 'unexpected error: ', undefined);
    // A code or a level no row has: still unexpected, the code kept.
    check(Object.assign(new Error('the raw message'), { code: 'EWHATEVER' }), UnexpectedError, 'unexpected error: ', 'EWHATEVER');
    check(Object.assign(new Error('the raw message'), { code: SftpStatus.OK }), UnexpectedError, 'unexpected error: ', 0);
    check(Object.assign(new Error('the raw message'), { code: '3' }), UnexpectedError, 'unexpected error: ', '3');
    check(ssh2Error('some-new-level', 'the raw message'), UnexpectedError, 'unexpected error: ', undefined);
    // Not an Error at all.
    assert.equal(classify(42).message, 'unexpected error: 42');
    assert.equal(classify({ code: {} }).code, undefined, 'a code that is neither a string nor a number is not kept');
  });

  it('order: level, then reason, then code', () => {
    const both = (fields: object) => classify(Object.assign(new Error('m'), fields));
    assert.equal(both({ level: 'client-authentication', reason: 2 }).constructor, VesselRefusedError);
    assert.equal(both({ reason: 2, code: SftpStatus.PERMISSION_DENIED }).constructor, TransientError);
    assert.equal(both({ reason: 2, code: 'EACCES' }).constructor, TransientError);
    // A level no row has falls through to the next lookups.
    assert.equal(both({ level: 'some-new-level', code: 'EACCES' }).constructor, FileError);
    assert.equal(both({ level: 'some-new-level', reason: 2 }).constructor, TransientError);
  });

  it('an already-classified error passes through, `during` or not', () => {
    const err = new FileError('f', { code: 3 });
    assert.equal(classify(err, {}, 'SFTP open /p'), err);
    assert.equal(err.message, 'f');
  });
});

suite('error classes', () => {
  it('carry their own name, the context and an optional cause', () => {
    const cause = new Error('inner');
    const e = new FileError('outer', { vessel: 'v', path: '/p', cause });
    assert.equal(e.name, 'FileError');
    assert.equal(e.message, 'outer');
    assert.equal(e.vessel, 'v');
    assert.equal(e.path, '/p');
    assert.equal(e.cause, cause);
    assert.ok(!('cause' in new ConfigError('no cause')), 'no cause property when none was given');
    assert.equal(e.code, undefined, 'no code unless given');
    assert.equal(new TransientError('t', { code: 'ECONNRESET' }).code, 'ECONNRESET');
    assert.ok(e.stack?.includes('outer'));
  });

  it('ExitCode has the CLI codes', () => {
    assert.deepEqual(ExitCode, { ok: 0, failure: 1, usage: 2 });
  });
});

suite('describe', () => {
  function count(haystack: string, needle: string): number {
    return haystack.split(needle).length - 1;
  }

  it('includes the cause message once when the message already contains it', () => {
    const raw = errnoError('ECONNRESET', 'read ECONNRESET');
    const text = describe(classify(raw));
    assert.equal(text, 'read ECONNRESET');
    assert.equal(count(text, 'read ECONNRESET'), 1);
    const auth = describe(classify(ssh2Error('client-authentication', 'All configured authentication methods failed')));
    assert.equal(count(auth, 'All configured authentication methods failed'), 1);
    const perm = describe(classify(sftpError(3, 'Permission denied')));
    assert.equal(count(perm, 'Permission denied'), 1);
  });

  it('appends the cause message when it adds something', () => {
    const e = new FileError('cannot read the shore file', { cause: new Error("EACCES: permission denied, open '/x'") });
    assert.equal(describe(e), "cannot read the shore file: EACCES: permission denied, open '/x'");
    assert.equal(count(describe(e), 'EACCES'), 1);
  });

  it('an error without a cause, or a non-Error cause, is just its message', () => {
    assert.equal(describe(new Error('plain')), 'plain');
    assert.equal(describe(new TransientError('t', { cause: 'a string cause' })), 't');
  });

  it('a non-Error is stringified', () => {
    assert.equal(describe('text'), 'text');
    assert.equal(describe(42), '42');
    assert.equal(describe(undefined), 'undefined');
  });
});
