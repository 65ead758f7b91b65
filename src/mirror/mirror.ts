/**
 * One mirror run: REMOTE_PATH on the server → LOCAL_PATH here, as the seed does it.
 *
 * The top-level entries of REMOTE_PATH are the items: sub-directories first, newest first, then
 * files. An item whose total size (the sum of its files' sizes) equals the local one is skipped
 * unless `all`; otherwise every file in it whose local size differs is fetched (all of them
 * with `all`). Up to `jobs` files are fetched at once, in item order, through one connection
 * that is re-established when the link drops; a file resumes from its partial.
 *
 * A name from the server that could not safely be a local name (`..`, `a/b`, control
 * characters, too long, listed twice: see safe-name.ts), or a file whose local path would be too
 * long, is refused with one warning and counted as a failure (so the run exits 1); the rest of
 * the run goes on.
 */
import { constants } from 'node:fs';
import { access, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import PQueue from 'p-queue';
import { ConfigError, FileError, StoppedError, TransientError, VesselRefusedError, classify, describe } from '../errors.js';
import type { Logger } from '../log.js';
import { fsReason, makeFoldersAsync } from '../shore-fs.js';
import type { Point } from '../metrics/line-protocol.js';
import type { Endpoint } from '../ssh/connect.js';
import type { SftpConnection } from '../ssh/connection.js';
import type { RemoteEntry } from '../ssh/remote-fs.js';
import type { HostKeyRecords } from '../ssh/host-key.js';
import { discardPartial, downloadFile } from './download.js';
import { scanLocalItem, type LocalItem } from './local-tree.js';
import { downloadPoint, summaryPoint } from './metrics.js';
import { isPartialName, partialName } from './partial.js';
import type { ProgressSnapshot, TransferProgress } from './progress.js';
import { filesOf, joinRemote, listItems, type RefusalReporter, type RemoteFile } from './remote-tree.js';
import { escapeName, isRefused, localPathOf, quoteName } from './safe-name.js';
import { ServerLink } from '../ssh/link.js';

export interface MirrorOptions {
  remotePath: string;
  localPath: string;
  jobs: number;
  all: boolean;
  giveUpAfterMs: number;
  signal: AbortSignal;
}

export interface MirrorDeps {
  endpoint: Endpoint;
  hostKeys: HostKeyRecords;
  log: Logger;
  metrics: { send(point: Point): void };
}

export interface ItemFailure {
  item: string;
  path: string;
  reason: string;
}

export interface MirrorResult {
  downloaded: number;
  skipped: number;
  failed: ItemFailure[];
  bytes: number;
  durationS: number;
  stopped: boolean;
  /** Why the whole run ended early (unreachable server, refused login), if it did. */
  fatal?: string;
}

/** A failed request, named; what ended the link (refusal, giving up, stop) passes unchanged. */
function requestFailure(err: unknown, what: string): unknown {
  if (err instanceof FileError || err instanceof TransientError) return new FileError(`${what}: ${describe(err)}`, { cause: err });
  return err;
}

/** Transient failures in a row without a byte moved before a file counts as failed. */
const MAX_FRUITLESS_ATTEMPTS = 5;

interface ItemRun {
  entry: RemoteEntry;
  startedAt?: number;
  fetched: number;
  transferred: number;
  failures: ItemFailure[];
}

export class Mirror {
  readonly #deps: MirrorDeps;
  readonly #options: MirrorOptions;
  readonly #link: ServerLink;
  readonly #queue: PQueue;
  readonly #active = new Map<number, TransferProgress>();
  #nextId = 0;
  #startedAt = Date.now();
  #bytesQueued = 0;
  #bytesDone = 0;
  #filesQueued = 0;
  #filesDone = 0;
  #fatal: Error | undefined;
  /** Refused top-level names (those below an item count against the item). */
  readonly #refusedItems: ItemFailure[] = [];
  /** Each refused name is reported once, even when its folder is listed again. */
  readonly #refusedSeen = new Set<string>();

  constructor(deps: MirrorDeps, options: MirrorOptions) {
    this.#deps = deps;
    this.#options = options;
    this.#link = new ServerLink(deps.endpoint, deps.hostKeys, deps.log, { giveUpAfterMs: options.giveUpAfterMs, signal: options.signal });
    // Never `clear()`ed: p-queue leaves the promises of cleared tasks pending forever. Queued
    // tasks instead return at once when the run is stopping.
    this.#queue = new PQueue({ concurrency: options.jobs });
  }

  /** For the terminal progress display. */
  snapshot(): ProgressSnapshot {
    return {
      files: [...this.#active.values()],
      total: { done: this.#bytesDone, total: this.#bytesQueued, filesDone: this.#filesDone, filesTotal: this.#filesQueued, startedAt: this.#startedAt },
    };
  }

  async run(): Promise<MirrorResult> {
    this.#startedAt = Date.now();
    const items: ItemRun[] = [];
    const running: Promise<void>[] = [];
    let skipped = 0;
    try {
      const entries = await this.#prepare();
      for (const entry of entries) {
        if (this.#stopping) break;
        // List a little ahead of the transfers, not the whole tree before the first byte.
        await this.#queue.onSizeLessThan(this.#options.jobs * 4);
        if (this.#stopping) break;
        const item: ItemRun = { entry, fetched: 0, transferred: 0, failures: [] };
        items.push(item);
        let files: RemoteFile[];
        let local: LocalItem;
        try {
          files = await this.#retrying((c) => filesOf(c, this.#options.remotePath, entry, this.#onSkip, this.#onRefuse(item)));
          local = await scanLocalItem(this.#options.localPath, entry.name);
        } catch (raw) {
          const err = classify(raw, { vessel: this.#deps.endpoint.name });
          if (!(err instanceof FileError)) throw err;
          item.failures.push({ item: entry.name, path: entry.name, reason: describe(err) });
          this.#deps.log.error({ item: entry.name, reason: describe(err) }, 'cannot list; skipped');
          continue;
        }
        await this.#discardStalePartials(files, local.partials.filter((p) => p.includes('/')));
        const remoteTotal = files.reduce((sum, f) => sum + f.size, 0);
        // The seed compares total sizes only; a missing file (an empty one, say) also counts.
        if (!this.#options.all && local.total === remoteTotal && files.every((f) => local.sizes.has(f.relPath))) {
          skipped++;
          this.#deps.log.info({ item: entry.name, bytes: remoteTotal }, 'up to date; skipped');
          continue;
        }
        const wanted = files.filter((f) => this.#options.all || local.sizes.get(f.relPath) !== f.size);
        if (wanted.length === 0) {
          // Local has more than the server (extra files): nothing to fetch, nothing is deleted.
          skipped++;
          this.#deps.log.info({ item: entry.name, localBytes: local.total, remoteBytes: remoteTotal }, 'every file is here; skipped (local extra files are kept)');
          continue;
        }
        this.#filesQueued += wanted.length;
        this.#bytesQueued += wanted.reduce((sum, f) => sum + f.size, 0);
        running.push(Promise.all(wanted.map((f) => this.#queue.add(() => this.#fetch(item, f)))).then(() => this.#finish(item)));
      }
    } catch (err) {
      if (!(err instanceof StoppedError) || !this.#options.signal.aborted) this.#fatal ??= err as Error;
    } finally {
      await Promise.allSettled(running);
      this.#link.close();
    }
    return this.#result(items, skipped);
  }

  get #stopping(): boolean {
    return this.#options.signal.aborted || this.#fatal !== undefined;
  }

  readonly #onSkip = (path: string, reason: string): void => {
    this.#deps.log.warn({ path }, `skipped: ${reason}`);
  };

  /** Reports a name refused in a listing, once, as a failure of its item (or of the run). */
  #onRefuse(item?: ItemRun): RefusalReporter {
    return (relDir, name, reason) => {
      const key = `${relDir}\0${name}`;
      if (this.#refusedSeen.has(key)) return;
      this.#refusedSeen.add(key);
      const folder = relDir === '' ? this.#options.remotePath : joinRemote(this.#options.remotePath, relDir);
      // The raw name never reaches the log: it may hold newlines or terminal escapes.
      this.#deps.log.warn({ folder }, `refused a name from the server: ${quoteName(name)} ${reason}; not mirrored`);
      const path = relDir === '' ? escapeName(name) : `${relDir}/${escapeName(name)}`;
      const failure = { item: item?.entry.name ?? escapeName(name), path, reason: `unsafe name from the server: it ${reason}` };
      (item?.failures ?? this.#refusedItems).push(failure);
    };
  }

  /** Checks both ends and lists the items; a problem here ends the run. */
  async #prepare(): Promise<RemoteEntry[]> {
    const { remotePath, localPath } = this.#options;
    const root = await this.#retrying((c) => c.statFollow(remotePath)).catch((err: unknown) => {
      throw requestFailure(err, `REMOTE_PATH ${remotePath} on ${this.#deps.endpoint.label}`);
    });
    if (root === null) throw new ConfigError(`REMOTE_PATH ${remotePath} does not exist on ${this.#deps.endpoint.label}`);
    if (root.kind !== 'directory') throw new ConfigError(`REMOTE_PATH ${remotePath} on ${this.#deps.endpoint.label} is not a directory`);
    // Said before anything is fetched, and said as it is: a read-only LOCAL_PATH as read-only.
    await makeFoldersAsync(localPath).catch((err: unknown) => {
      throw new ConfigError(`LOCAL_PATH ${localPath} cannot be created: ${fsReason(err)}`, { cause: err });
    });
    await access(localPath, constants.W_OK).catch((err: unknown) => {
      throw new ConfigError(`LOCAL_PATH ${localPath} is not writable: ${fsReason(err)}`, { cause: err });
    });
    const entries = await this.#retrying((c) => listItems(c, remotePath, this.#onSkip, this.#onRefuse())).catch((err: unknown) => {
      throw requestFailure(err, `listing REMOTE_PATH ${remotePath} on ${this.#deps.endpoint.label}`);
    });
    // Partials of top-level files sit in LOCAL_PATH itself; those of other versions go.
    const top = (await readdir(localPath)).filter(isPartialName);
    const files = entries.filter((e) => e.kind === 'file').map((e) => ({ relPath: e.name, size: e.size, mtime: e.mtime }));
    await this.#discardStalePartials(files, top);
    return entries;
  }

  /** Partials that no file of the listing would resume into belong to older versions. */
  async #discardStalePartials(files: RemoteFile[], partials: string[]): Promise<void> {
    if (partials.length === 0) return;
    const expected = new Set(files.map((f) => {
      const slash = f.relPath.lastIndexOf('/');
      return f.relPath.slice(0, slash + 1) + partialName(f.relPath.slice(slash + 1), f.size, f.mtime);
    }));
    for (const p of partials) {
      if (expected.has(p)) continue;
      this.#deps.log.debug({ partial: p }, 'discarding the partial of a version no longer on the server');
      await discardPartial(join(this.#options.localPath, p));
    }
  }

  /**
   * Runs a request on the live connection, again on a new one if the link drops meanwhile.
   * Throws what the request threw when it is not a link problem (or keeps failing), and what
   * the link throws when the run must end.
   */
  async #retrying<T>(request: (c: SftpConnection) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const connection = await this.#link.get();
      try {
        const value = await request(connection);
        this.#link.progress();
        return value;
      } catch (raw) {
        const err = classify(raw, { vessel: this.#deps.endpoint.name });
        if (this.#options.signal.aborted) throw new StoppedError('stopping');
        if (!(err instanceof TransientError) || attempt >= MAX_FRUITLESS_ATTEMPTS) throw err;
        this.#deps.log.debug({ err: describe(err) }, 'request failed; trying again');
      }
    }
  }

  async #fetch(item: ItemRun, file: RemoteFile): Promise<void> {
    const remotePath = joinRemote(this.#options.remotePath, file.relPath);
    const slash = file.relPath.lastIndexOf('/');
    const localPath = localPathOf(this.#options.localPath, file.relPath, partialName(file.relPath.slice(slash + 1), file.size, file.mtime));
    if (isRefused(localPath)) {
      const path = escapeName(file.relPath);
      this.#deps.log.warn({ file: path }, `refused a file from the server: ${localPath.refused}; not mirrored`);
      item.failures.push({ item: item.entry.name, path, reason: `refused: ${localPath.refused}` });
      return;
    }
    const id = this.#nextId++;
    const progress: TransferProgress = { name: file.relPath, done: 0, total: file.size, startedAt: Date.now() };
    let fruitless = 0;
    try {
      for (;;) {
        if (this.#stopping) return;
        let moved = 0;
        try {
          const connection = await this.#link.get();
          item.startedAt ??= Date.now();
          this.#active.set(id, progress);
          const result = await downloadFile(connection, { remotePath, localPath }, {
            signal: this.#options.signal,
            onStart: (size, present) => {
              progress.total = size;
              progress.done = present;
              if (present > 0) this.#deps.log.info({ file: file.relPath, from: present, size }, 'resuming a partial download');
            },
            onBytes: (n) => {
              moved += n;
              progress.done += n;
              item.fetched += n;
              this.#bytesDone += n;
              this.#link.progress();
            },
          });
          item.transferred++;
          this.#filesDone++;
          this.#deps.log.debug({ file: file.relPath, bytes: result.fetched, resumedFrom: result.resumedFrom }, 'downloaded');
          return;
        } catch (raw) {
          if (this.#options.signal.aborted) return;
          const err = classify(raw, { vessel: this.#deps.endpoint.name, path: remotePath });
          if (err instanceof VesselRefusedError || err instanceof ConfigError || err instanceof StoppedError) {
            this.#fatal ??= err;
            return;
          }
          fruitless = moved > 0 ? 0 : fruitless + 1;
          if (err instanceof FileError || fruitless >= MAX_FRUITLESS_ATTEMPTS) {
            const reason = describe(err);
            item.failures.push({ item: item.entry.name, path: file.relPath, reason });
            this.#deps.log.error({ file: file.relPath, reason }, 'not downloaded');
            return;
          }
          this.#deps.log.debug({ file: file.relPath, err: describe(err) }, 'transfer interrupted; resuming');
        }
      }
    } finally {
      this.#active.delete(id);
    }
  }

  #itemDurations: number[] = [];

  #finish(item: ItemRun): void {
    if (this.#options.signal.aborted || item.failures.length > 0 || item.startedAt === undefined) return;
    const durationS = (Date.now() - item.startedAt) / 1000;
    const type = item.entry.kind === 'directory' ? 'directory' : 'file';
    this.#itemDurations.push(durationS);
    this.#deps.metrics.send(downloadPoint({ server: this.#deps.endpoint.name, type, item: item.entry.name, bytes: item.fetched, durationS }));
    this.#deps.log.info({
      item: item.entry.name, type, files: item.transferred, bytes: item.fetched,
      seconds: +durationS.toFixed(3), MiBps: durationS > 0 ? +(item.fetched / durationS / 2 ** 20).toFixed(1) : undefined, // MiB/s, as everywhere
    }, 'downloaded');
  }

  #result(items: ItemRun[], skipped: number): MirrorResult {
    const durationS = (Date.now() - this.#startedAt) / 1000;
    const failed = [...this.#refusedItems, ...items.flatMap((i) => i.failures)];
    const downloaded = this.#itemDurations.length;
    const bytes = this.#bytesDone;
    const avg = downloaded > 0 ? this.#itemDurations.reduce((a, b) => a + b, 0) / downloaded : 0;
    this.#deps.metrics.send(summaryPoint({
      server: this.#deps.endpoint.name, remotePath: this.#options.remotePath,
      downloaded, skipped, bytes, durationS, avgItemDurationS: avg,
    }));
    return {
      downloaded, skipped, failed, bytes, durationS,
      stopped: this.#options.signal.aborted,
      fatal: this.#fatal ? describe(this.#fatal) : undefined,
    };
  }
}
