import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FileError, StoppedError } from '../../src/errors.js';
import { downloadFile, type DownloadResult } from '../../src/mirror/download.js';
import { partialName } from '../../src/mirror/partial.js';
import type { RemoteEntry, RemoteReader } from '../../src/ssh/remote-fs.js';

const MTIME = 1_700_000_000;

interface FakeOptions {
  /** Largest read answer; requests above it are a bug in the caller. */
  maxReadLength?: number;
  mtime?: number;
  /** What fstat reports; the data's length unless set (a file that shrank reports more). */
  reportedSize?: number;
  /** Every Nth read answers only half of what it could. */
  shortEvery?: number;
  /** Answer after a random number of event-loop and microtask hops, so out of order. */
  outOfOrder?: boolean;
  seed?: number;
  /** Once this many bytes have been served, every further read fails. */
  failAfterBytes?: number;
}

/** A seeded PRNG (mulberry32): failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One remote file in memory, served through the RemoteReader interface. */
class FakeRemoteFile implements RemoteReader {
  readonly maxReadLength: number;
  readonly data: Buffer;
  readonly #options: FakeOptions;
  readonly #random: () => number;
  /** Bytes handed out by read(). */
  served = 0;
  requests: { position: number; length: number }[] = [];
  /** Request numbers (1-based) in the order they were answered. */
  answered: number[] = [];
  openHandles = 0;
  opens = 0;

  constructor(data: Buffer, options: FakeOptions = {}) {
    this.data = data;
    this.#options = options;
    this.maxReadLength = options.maxReadLength ?? 1000;
    this.#random = prng(options.seed ?? 1);
  }

  async readdir(): Promise<RemoteEntry[]> {
    throw new Error('not used by downloadFile');
  }

  async statFollow(): Promise<RemoteEntry | null> {
    throw new Error('not used by downloadFile');
  }

  async openRead(): Promise<Buffer> {
    this.opens++;
    this.openHandles++;
    return Buffer.from(`handle-${this.opens}`);
  }

  async fstat(): Promise<{ size: number; mtime: number }> {
    return { size: this.#options.reportedSize ?? this.data.length, mtime: this.#options.mtime ?? MTIME };
  }

  read(_handle: Buffer, position: number, length: number): Promise<Buffer> {
    this.requests.push({ position, length });
    const number = this.requests.length;
    const answer = (): Buffer => {
      this.answered.push(number);
      const { failAfterBytes, shortEvery } = this.#options;
      if (failAfterBytes !== undefined && this.served >= failAfterBytes) throw new Error('connection lost');
      let n = Math.min(length, Math.max(0, this.data.length - position));
      if (shortEvery && number % shortEvery === 0 && n > 1) n = Math.floor(n / 2);
      this.served += n;
      return Buffer.from(this.data.subarray(position, position + n));
    };
    if (!this.#options.outOfOrder) return new Promise((resolve) => resolve(answer()));
    return this.#hops().then(answer);
  }

  async close(): Promise<void> {
    this.openHandles--;
  }

  async #hops(): Promise<void> {
    const hops = Math.floor(this.#random() * 6);
    for (let i = 0; i < hops; i++) {
      await new Promise<void>((resolve) => (this.#random() < 0.5 ? setImmediate(resolve) : queueMicrotask(resolve)));
    }
  }

  /** Some answer came before one requested earlier. */
  get answeredOutOfOrder(): boolean {
    return this.answered.some((n, i) => i > 0 && n < this.answered[i - 1]);
  }
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function assertPrefix(partial: Buffer, source: Buffer): void {
  assert.ok(partial.length <= source.length, `partial of ${partial.length} bytes is longer than the source (${source.length})`);
  assert.ok(partial.equals(source.subarray(0, partial.length)), `the ${partial.length} bytes of the partial are not a prefix of the source`);
}

describe('downloadFile', () => {
  let root: string;
  let n = 0;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'cm-mirror-download-'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** A fresh local folder and the destination path in it. */
  async function place(name = 'file.bin'): Promise<{ dir: string; dest: string; partialOf: (size: number, mtime?: number) => string }> {
    const dir = join(root, `case-${++n}`);
    await mkdir(dir);
    return { dir, dest: join(dir, name), partialOf: (size, mtime = MTIME) => join(dir, partialName(name, size, mtime)) };
  }

  interface Run {
    result: DownloadResult;
    starts: [number, number][];
    bytes: number[];
  }

  async function run(reader: RemoteReader, dest: string, signal = new AbortController().signal, onBytes?: (n: number) => void): Promise<Run> {
    const starts: [number, number][] = [];
    const bytes: number[] = [];
    const result = await downloadFile(reader, { remotePath: '/remote/file.bin', localPath: dest }, {
      signal,
      onStart: (size, present) => starts.push([size, present]),
      onBytes: (b) => {
        bytes.push(b);
        onBytes?.(b);
      },
    });
    return { result, starts, bytes };
  }

  describe('a fresh download equals the source', () => {
    const max = 1000;
    const cases: [string, number, number][] = [
      ['0 bytes', 0, max],
      ['1 byte', 1, max],
      ['maxReadLength - 1', max - 1, max],
      ['maxReadLength', max, max],
      ['maxReadLength + 1', max + 1, max],
      ['several reads', 10 * max + 7, max],
      ['several MiB', 5 * 1024 * 1024 + 333, 32 * 1024],
    ];
    for (const [label, size, maxReadLength] of cases) {
      it(label, async () => {
        const source = randomBytes(size);
        const fake = new FakeRemoteFile(source, { maxReadLength });
        const { dest, partialOf } = await place();
        const { result, starts, bytes } = await run(fake, dest);

        assert.equal(sha256(await readFile(dest)), sha256(source));
        assert.deepEqual(result, { fetched: size, resumedFrom: 0, size });
        assert.equal(fake.served, size);
        assert.deepEqual(starts, [[size, 0]]);
        assert.equal(bytes.reduce((a, b) => a + b, 0), size);
        assert.ok(bytes.every((b) => b > 0 && b <= maxReadLength));
        // One read at the size checks that the file ends there; every other stays inside.
        assert.deepEqual(fake.requests.filter((r) => r.position >= size), [{ position: size, length: 1 }], 'one read at the end');
        for (const r of fake.requests.filter((r) => r.position < size)) {
          assert.ok(r.length > 0 && r.length <= maxReadLength, `read of ${r.length} bytes`);
          assert.ok(r.position + r.length <= size, `read past the end: ${r.position}+${r.length}`);
        }
        assert.equal(existsSync(partialOf(size)), false, 'the partial is renamed away');
        assert.equal(fake.openHandles, 0, 'the remote handle is closed');
      });
    }
  });

  it('gives the exact file when the server answers short reads', async () => {
    const source = randomBytes(50_000 + 17);
    const fake = new FakeRemoteFile(source, { maxReadLength: 1000, shortEvery: 3 });
    const { dest } = await place();
    const { result, bytes } = await run(fake, dest);
    assert.equal(sha256(await readFile(dest)), sha256(source));
    assert.deepEqual(result, { fetched: source.length, resumedFrom: 0, size: source.length });
    assert.ok(bytes.some((b) => b < 1000 && b > 1), 'some reads were short');
    assert.equal(fake.served, source.length, 'nothing fetched twice');
  });

  it('gives the exact file, written in order, when answers come out of order', async () => {
    const source = randomBytes(200_000 + 5);
    const fake = new FakeRemoteFile(source, { maxReadLength: 1000, outOfOrder: true, seed: 7 });
    const { dest, partialOf } = await place();
    const partial = partialOf(source.length);
    // After every write, the partial must be a clean prefix of the source.
    let checks = 0;
    await run(fake, dest, undefined, () => {
      assertPrefix(readFileSync(partial), source);
      checks++;
    });
    assert.ok(fake.answeredOutOfOrder, 'the fake did answer out of order');
    assert.ok(checks > 100);
    assert.equal(sha256(await readFile(dest)), sha256(source));
    assert.equal(fake.served, source.length);
  });

  it('gives the exact file with short reads answered out of order', async () => {
    const source = randomBytes(3 * 1024 * 1024 + 1);
    const fake = new FakeRemoteFile(source, { maxReadLength: 32 * 1024, outOfOrder: true, shortEvery: 3, seed: 11 });
    const { dest } = await place();
    await run(fake, dest);
    assert.ok(fake.answeredOutOfOrder);
    assert.equal(sha256(await readFile(dest)), sha256(source));
    assert.equal(fake.served, source.length);
  });

  for (const outOfOrder of [false, true]) {
    it(`leaves a prefix after an error mid-way and resumes from it${outOfOrder ? ' (answers out of order)' : ''}`, async () => {
      const source = randomBytes(100_000 + 3);
      const { dest, partialOf } = await place();
      const partial = partialOf(source.length);

      const failing = new FakeRemoteFile(source, { maxReadLength: 1000, failAfterBytes: 40_000, outOfOrder, shortEvery: 5, seed: 3 });
      await assert.rejects(run(failing, dest), /connection lost/);
      assert.equal(failing.openHandles, 0, 'the remote handle is closed after the error');
      assert.equal(existsSync(dest), false, 'no final file after an error');
      const kept = await readFile(partial);
      assert.ok(kept.length > 0 && kept.length < source.length, `partial of ${kept.length} bytes`);
      assertPrefix(kept, source);

      const resuming = new FakeRemoteFile(source, { maxReadLength: 1000, outOfOrder, seed: 4 });
      const { result, starts, bytes } = await run(resuming, dest);
      assert.equal(resuming.served, source.length - kept.length, 'only the rest is fetched');
      assert.ok(resuming.requests.every((r) => r.position >= kept.length), 'nothing before the partial is asked for');
      assert.deepEqual(result, { fetched: source.length - kept.length, resumedFrom: kept.length, size: source.length });
      assert.deepEqual(starts, [[source.length, kept.length]]);
      assert.equal(bytes.reduce((a, b) => a + b, 0), source.length - kept.length);
      assert.equal(sha256(await readFile(dest)), sha256(source));
      assert.equal(existsSync(partial), false);
    });
  }

  it('completes a partial that already has every byte without reading', async () => {
    const source = randomBytes(5000);
    const { dest, partialOf } = await place();
    await writeFile(partialOf(source.length), source);
    const fake = new FakeRemoteFile(source);
    const { result, bytes } = await run(fake, dest);
    assert.deepEqual(result, { fetched: 0, resumedFrom: source.length, size: source.length });
    assert.equal(fake.served, 0);
    assert.deepEqual(bytes, []);
    assert.ok((await readFile(dest)).equals(source));
  });

  it('discards a partial longer than the remote file and starts from 0', async () => {
    const source = randomBytes(5000);
    const { dest, partialOf } = await place();
    await writeFile(partialOf(source.length), randomBytes(source.length + 10));
    const fake = new FakeRemoteFile(source);
    const { result, starts } = await run(fake, dest);
    assert.deepEqual(result, { fetched: source.length, resumedFrom: 0, size: source.length });
    assert.deepEqual(starts, [[source.length, 0]]);
    assert.equal(fake.served, source.length);
    assert.ok((await readFile(dest)).equals(source));
  });

  it('does not resume into the partial of another version (other mtime)', async () => {
    const source = randomBytes(5000);
    const { dest, partialOf } = await place();
    const stale = partialOf(source.length, MTIME - 60);
    await writeFile(stale, randomBytes(2000));
    const fake = new FakeRemoteFile(source);
    const { result } = await run(fake, dest);
    assert.equal(result.resumedFrom, 0);
    assert.equal(fake.served, source.length);
    assert.ok((await readFile(dest)).equals(source));
    assert.ok(existsSync(stale), 'left for the mirror to discard');
  });

  it('gives the final file the remote mtime', async () => {
    const source = randomBytes(3000);
    const { dest } = await place();
    await run(new FakeRemoteFile(source, { mtime: 1_234_567_890 }), dest);
    const st = await stat(dest);
    assert.equal(st.mtimeMs, 1_234_567_890_000);
  });

  it('replaces a file already at the destination', async () => {
    const source = randomBytes(3000);
    const { dest } = await place();
    await writeFile(dest, Buffer.alloc(10_000, 0x41));
    await run(new FakeRemoteFile(source), dest);
    assert.ok((await readFile(dest)).equals(source));
  });

  it('creates missing parent folders of the destination', async () => {
    const source = randomBytes(3000);
    const { dir } = await place();
    const dest = join(dir, 'a', 'b', 'c.bin');
    await run(new FakeRemoteFile(source), dest);
    assert.ok((await readFile(dest)).equals(source));
  });

  it('fails with a FileError and keeps the partial when the file shrank', async () => {
    const source = randomBytes(10_000);
    const reportedSize = source.length + 4321;
    const { dest, partialOf } = await place();
    const fake = new FakeRemoteFile(source, { reportedSize, maxReadLength: 1000 });
    await assert.rejects(run(fake, dest), (err: unknown) => {
      assert.ok(err instanceof FileError, `got ${String(err)}`);
      assert.match(err.message, /shrank/);
      return true;
    });
    assert.equal(existsSync(dest), false);
    const kept = await readFile(partialOf(reportedSize));
    assert.ok(kept.equals(source), 'everything the server had is in the partial');
    assert.equal(fake.openHandles, 0);
  });

  it('fails with a FileError when the file shrank mid-chunk, with short reads out of order', async () => {
    const source = randomBytes(10_500);
    const reportedSize = 20_000;
    const { dest, partialOf } = await place();
    const fake = new FakeRemoteFile(source, { reportedSize, maxReadLength: 1000, shortEvery: 3, outOfOrder: true, seed: 5 });
    await assert.rejects(run(fake, dest), FileError);
    assert.ok((await readFile(partialOf(reportedSize))).equals(source));
  });

  for (const outOfOrder of [false, true]) {
    it(`fails with a FileError and keeps no partial when the file has more bytes than its size${outOfOrder ? ' (answers out of order)' : ''}`, async () => {
      // A server that says 10 000 bytes and has more (it grew, or it lies).
      const source = randomBytes(10_000 + 2500);
      const reportedSize = 10_000;
      const { dest, partialOf } = await place();
      const fake = new FakeRemoteFile(source, { reportedSize, maxReadLength: 1000, shortEvery: 4, outOfOrder, seed: 13 });
      await assert.rejects(run(fake, dest), (err: unknown) => {
        assert.ok(err instanceof FileError, `got ${String(err)}`);
        assert.match(err.message, /more than the 10000 bytes its size said/);
        return true;
      });
      assert.equal(existsSync(dest), false, 'never renamed to its final name');
      assert.equal(existsSync(partialOf(reportedSize)), false, 'the partial is discarded');
      assert.equal(fake.openHandles, 0);
      assert.ok(fake.requests.every((r) => r.position + r.length <= reportedSize + 1), 'only one byte asked past the size');
    });
  }

  it('a file longer than its size leaves an existing file at the destination untouched', async () => {
    const { dest } = await place();
    await writeFile(dest, 'the previous version');
    await assert.rejects(run(new FakeRemoteFile(randomBytes(3000), { reportedSize: 2000 }), dest), FileError);
    assert.equal(await readFile(dest, 'utf8'), 'the previous version');
  });

  it('an empty file that has bytes after all fails', async () => {
    const { dest, partialOf } = await place();
    await assert.rejects(run(new FakeRemoteFile(randomBytes(10), { reportedSize: 0 }), dest), /more than the 0 bytes/);
    assert.equal(existsSync(dest), false);
    assert.equal(existsSync(partialOf(0)), false);
  });

  it('a complete partial is not renamed when the file has grown past it', async () => {
    const source = randomBytes(6000);
    const { dest, partialOf } = await place();
    await writeFile(partialOf(5000), source.subarray(0, 5000));
    const fake = new FakeRemoteFile(source, { reportedSize: 5000 });
    await assert.rejects(run(fake, dest), /more than the 5000 bytes/);
    assert.equal(existsSync(dest), false);
    assert.equal(existsSync(partialOf(5000)), false);
  });

  it('a short read at the very end of a lying size keeps the partial, never the final name', async () => {
    // The listed size is 1 byte more than the server hands out.
    const source = randomBytes(4000);
    const { dest, partialOf } = await place();
    await assert.rejects(run(new FakeRemoteFile(source, { reportedSize: 4001, maxReadLength: 1000 }), dest), /ended at 4000 bytes/);
    assert.equal(existsSync(dest), false);
    assert.ok((await readFile(partialOf(4001))).equals(source));
  });

  it('throws a StoppedError when stopped before it starts, keeping the partial as it was', async () => {
    const source = randomBytes(10_000);
    const { dest, partialOf } = await place();
    const partial = partialOf(source.length);
    await writeFile(partial, source.subarray(0, 3000));
    const stop = new AbortController();
    stop.abort();
    const fake = new FakeRemoteFile(source);
    await assert.rejects(run(fake, dest, stop.signal), StoppedError);
    assert.equal(fake.served, 0);
    assert.equal(fake.openHandles, 0);
    assert.equal(existsSync(dest), false);
    assert.ok((await readFile(partial)).equals(source.subarray(0, 3000)));
  });

  for (const outOfOrder of [false, true]) {
    it(`throws a StoppedError when stopped while downloading, keeping a prefix to resume from${outOfOrder ? ' (answers out of order)' : ''}`, async () => {
      const source = randomBytes(100_000);
      const { dest, partialOf } = await place();
      const partial = partialOf(source.length);
      const stop = new AbortController();
      let seen = 0;
      const fake = new FakeRemoteFile(source, { maxReadLength: 1000, outOfOrder, seed: 9 });
      await assert.rejects(run(fake, dest, stop.signal, (b) => {
        seen += b;
        if (seen >= 20_000) stop.abort();
      }), StoppedError);
      assert.equal(fake.openHandles, 0);
      assert.equal(existsSync(dest), false);
      const kept = await readFile(partial);
      assert.equal(kept.length, seen, 'every byte reported was written, and no more');
      assert.ok(kept.length >= 20_000 && kept.length < source.length);
      assertPrefix(kept, source);

      const resuming = new FakeRemoteFile(source, { maxReadLength: 1000 });
      const { result } = await run(resuming, dest);
      assert.equal(result.resumedFrom, kept.length);
      assert.equal(resuming.served, source.length - kept.length);
      assert.ok((await readFile(dest)).equals(source));
    });
  }
});
