import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FileError, RenameUnsupported, SftpStatus, TransientError, UnexpectedError } from '../../src/errors.js';
import { isNoSuchFile, isPermissionDenied, isRenameUnsupported, isSftpFailure, isSftpStatus, requestError } from '../../src/ssh/sftp-errors.js';

function sftpError(code: number, message: string): Error {
  return Object.assign(new Error(message), { code });
}

describe('requestError', () => {
  it('a status answer: classified, the message naming the request and its path, the raw error its cause, the code kept', () => {
    const raw = sftpError(SftpStatus.PERMISSION_DENIED, 'Permission denied');
    const err = requestError(raw, 'open', 'ship', '/in/a.txt');
    assert.ok(err instanceof FileError);
    assert.equal(err.message, 'SFTP open /in/a.txt: permission denied: Permission denied');
    assert.equal(err.cause, raw);
    assert.equal(err.code, SftpStatus.PERMISSION_DENIED);
    assert.equal(err.vessel, 'ship');
    assert.equal(err.path, '/in/a.txt');
    assert.equal(raw.message, 'Permission denied', 'the raw error\'s message is not rewritten');
  });

  it('a request without a path names only the request', () => {
    const err = requestError(sftpError(SftpStatus.FAILURE, 'Failure'), 'write', 'ship', '');
    assert.ok(err instanceof TransientError);
    assert.equal(err.message, 'SFTP write: Failure');
    assert.equal(err.code, SftpStatus.FAILURE);
    assert.ok(isSftpFailure(err));
  });

  it('no answer at all (no status code) is the link\'s doing: transient', () => {
    const raw = new Error('No response from server');
    const err = requestError(raw, 'read', 'ship', '');
    assert.ok(err instanceof TransientError);
    assert.equal(err.message, 'SFTP read: No response from server');
    assert.equal(err.cause, raw);
    assert.equal(err.code, undefined);
    assert.ok(!isSftpStatus(err));
    assert.equal(raw.message, 'No response from server');
    const coded = requestError(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }), 'write', 'ship', '');
    assert.ok(coded instanceof TransientError);
    assert.equal(coded.code, 'EPIPE');
  });

  it('a server without posix-rename: an error that isRenameUnsupported recognises', () => {
    const raw = new RenameUnsupported('the server has no posix-rename@openssh.com');
    const err = requestError(raw, 'rename', 'ship', '/in/a.txt');
    assert.ok(err instanceof UnexpectedError);
    assert.equal(err.message, 'SFTP rename /in/a.txt: unexpected error: the server has no posix-rename@openssh.com');
    assert.ok(isRenameUnsupported(err));
    assert.ok(isRenameUnsupported(raw));
    assert.ok(!isRenameUnsupported(new Error('x')));
  });
});

describe('SFTP status predicates', () => {
  const raw = (code: number) => sftpError(code, 'm');
  const classified = (code: number) => requestError(raw(code), 'open', 'ship', '/p');
  const wrapped = (code: number) => new FileError('outer', { cause: classified(code) });

  for (const make of [raw, classified, wrapped]) {
    it(`read the status of ${make === raw ? 'a raw error' : make === classified ? 'a classified one' : 'one wrapped in another'}`, () => {
      assert.ok(isNoSuchFile(make(SftpStatus.NO_SUCH_FILE)));
      assert.ok(!isNoSuchFile(make(SftpStatus.PERMISSION_DENIED)));
      assert.ok(isPermissionDenied(make(SftpStatus.PERMISSION_DENIED)));
      assert.ok(!isPermissionDenied(make(SftpStatus.FAILURE)));
      assert.ok(isSftpFailure(make(SftpStatus.FAILURE)));
      assert.ok(!isSftpFailure(make(SftpStatus.NO_SUCH_FILE)));
      assert.ok(isSftpStatus(make(SftpStatus.OP_UNSUPPORTED)));
    });
  }

  it('an error without a status has none', () => {
    for (const err of [new Error('x'), new TransientError('t'), Object.assign(new Error('e'), { code: 'ECONNRESET' }), undefined, null, 'text']) {
      assert.ok(!isSftpStatus(err));
      assert.ok(!isNoSuchFile(err));
      assert.ok(!isSftpFailure(err));
    }
  });
});
