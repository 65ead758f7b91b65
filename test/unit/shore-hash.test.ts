import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ShoreFileChanged } from '../../src/errors.js';
import { shoreSha256 } from '../../src/push/upload/shore-hash.js';

const dir = mkdtempSync(join(tmpdir(), 'cm-shore-hash-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('shoreSha256', () => {
  it('hashes the file in a worker: the digest equals createHash over the same bytes', async () => {
    const data = randomBytes(9 * 1024 * 1024 + 17); // more than two of the worker's 4 MiB reads
    const path = join(dir, 'a.bin');
    writeFileSync(path, data);
    assert.equal(await shoreSha256({ versionKey: 'a', localPath: path, size: data.length }), createHash('sha256').update(data).digest('hex'));
  });

  it('callers for the same version share one computation', () => {
    const path = join(dir, 'b.bin');
    writeFileSync(path, 'shared');
    const first = shoreSha256({ versionKey: 'b', localPath: path, size: 6 });
    const second = shoreSha256({ versionKey: 'b', localPath: path, size: 6 });
    assert.equal(first, second);
    return first.then(() => {});
  });

  it('a file whose size is not the expected one was changed: ShoreFileChanged', async () => {
    const path = join(dir, 'c.bin');
    writeFileSync(path, 'grown since it was queued');
    await assert.rejects(shoreSha256({ versionKey: 'c', localPath: path, size: 5 }), ShoreFileChanged);
  });

  it('a missing file rejects with its error code', async () => {
    await assert.rejects(shoreSha256({ versionKey: 'd', localPath: join(dir, 'nope'), size: 1 }), { code: 'ENOENT' });
  });
});
