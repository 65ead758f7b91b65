/**
 * Terminal progress for `mirror`: one line per file in flight and a total line, redrawn in place
 * below the log. Only for a TTY; under journald the caller leaves this out and logs plain lines.
 * Everything is written through one stream, so log lines go through `writeAbove` and the block is
 * never torn by output it does not know about.
 */

import { formatBytes, formatDuration } from '../cli/format.js';

export interface TransferProgress {
  name: string;
  done: number;
  total: number;
  /** ms since the epoch. */
  startedAt: number;
}

export interface ProgressSnapshot {
  files: TransferProgress[];
  total: { done: number; total: number; filesDone: number; filesTotal: number; startedAt: number };
}

/** What TerminalProgress needs of `process.stdout`; a plain object will do in tests. */
export interface ProgressStream {
  write(text: string): unknown;
  columns?: number;
  rows?: number;
  destroyed?: boolean;
  writableEnded?: boolean;
}

/**
 * Bytes per second over a sliding window, from samples of a running byte count. The oldest
 * sample at or before the window start is kept as the anchor, so the rate covers the whole
 * window and not only the samples that happen to fall inside it.
 */
export class RateMeter {
  readonly #windowMs: number;
  #samples: { bytes: number; at: number }[] = [];

  constructor(windowMs = 5000) {
    if (!(windowMs > 0)) throw new TypeError(`Expected \`windowMs\` to be a number > 0, got ${windowMs}`);
    this.#windowMs = windowMs;
  }

  /** `bytes` is the running count so far, not an increment. */
  sample(bytes: number, now: number): void {
    const last = this.#samples.at(-1);
    // A count that goes back is a restarted transfer; time that goes back is a clock step.
    // Either way the old samples describe something else.
    if (last && (bytes < last.bytes || now < last.at)) this.#samples = [];
    this.#samples.push({ bytes, at: now });
    this.#prune(now);
  }

  /** 0 when unknown: fewer than two samples in reach, or none since the window began. */
  rate(now: number): number {
    this.#prune(now);
    const first = this.#samples[0];
    const last = this.#samples.at(-1);
    if (!first || !last || last.at <= first.at) return 0;
    return ((last.bytes - first.bytes) * 1000) / (last.at - first.at);
  }

  #prune(now: number): void {
    const start = now - this.#windowMs;
    while (this.#samples.length > 1 && this.#samples[1].at <= start) this.#samples.shift();
  }
}

const gap = '  ';
/** Below this a name says nothing; the line is cut at the right edge instead. */
const minNameColumns = 8;

/** Remote names are untrusted: a control character in one would move the cursor or wrap. */
function printable(name: string): string {
  return name.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}

/** Cut from the left: the end of a path (the file name) is the part worth seeing. */
function truncateLeft(text: string, columns: number): string {
  const chars = Array.from(text);
  if (chars.length <= columns) return text;
  if (columns <= 0) return '';
  return '…' + chars.slice(chars.length - (columns - 1)).join('');
}

function fit(line: string, width: number): string {
  const chars = Array.from(line);
  return chars.length <= width ? line : chars.slice(0, Math.max(0, width)).join('');
}

/** Rounded down, so 100% means finished; "--" when the size is not known yet. */
function percent(done: number, total: number): string {
  return total > 0 ? `${Math.floor((100 * Math.min(done, total)) / total)}%` : '--';
}

function etaSeconds(done: number, total: number, rate: number): number {
  if (done >= total) return 0;
  return rate > 0 ? (total - done) / rate : Infinity;
}

function fileStats(f: TransferProgress, rate: number): string {
  return [
    `${formatBytes(f.done).padStart(9)} / ${formatBytes(f.total).padStart(9)}`,
    percent(f.done, f.total).padStart(4),
    `${formatBytes(rate)}/s`.padStart(11),
    `ETA ${formatDuration(etaSeconds(f.done, f.total, rate)).padStart(5)}`,
  ].join(gap);
}

/**
 * One line per file, then the total line; every line fits `width` columns. Names are padded to
 * a common width so the figures line up from one redraw to the next.
 */
export function renderProgress(
  snapshot: ProgressSnapshot,
  rates: { file: (name: string) => number; total: number },
  width: number,
): string[] {
  const rows = snapshot.files.map((f) => ({ name: printable(f.name), stats: fileStats(f, rates.file(f.name)) }));
  const statsWidth = Math.max(0, ...rows.map((r) => r.stats.length));
  const longest = Math.max(0, ...rows.map((r) => Array.from(r.name).length));
  const nameWidth = Math.min(longest, Math.max(minNameColumns, width - gap.length - statsWidth));
  const lines = rows.map((r) => {
    const name = truncateLeft(r.name, nameWidth);
    return fit(name + ' '.repeat(nameWidth - Array.from(name).length) + gap + r.stats, width);
  });
  const t = snapshot.total;
  const total = [
    'total',
    `${formatBytes(t.done)} / ${formatBytes(t.total)}`,
    percent(t.done, t.total),
    `${formatBytes(rates.total)}/s`,
    `ETA ${formatDuration(etaSeconds(t.done, t.total, rates.total))}`,
    `files ${t.filesDone}/${t.filesTotal}`,
  ].join(gap);
  lines.push(fit(total, width));
  return lines;
}

/** Cursor up n lines, to column 0, clear to the end of the screen. `\x1b[0A` would move one line. */
function eraseLines(n: number): string {
  return n > 0 ? `\x1b[${n}A\r\x1b[J` : '';
}

export interface TerminalProgressOptions {
  /** Time between redraws. @default 250 */
  intervalMs?: number;
  /** Clock for the rate meters; tests pass their own. @default Date.now */
  now?: () => number;
}

/**
 * The block lives at the bottom of the output, with the cursor on the line below it. Each redraw
 * and each `writeAbove` is a single write, so a terminal never shows a half-erased block.
 */
export class TerminalProgress {
  readonly #out: ProgressStream;
  readonly #source: () => ProgressSnapshot;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #fileMeters = new Map<string, RateMeter>();
  readonly #totalMeter = new RateMeter();
  /** The block as last drawn; `writeAbove` redraws this rather than asking `source` again. */
  #block: string[] = [];
  #timer: NodeJS.Timeout | undefined;
  #started = false;
  #stopped = false;

  constructor(out: ProgressStream, source: () => ProgressSnapshot, options: TerminalProgressOptions = {}) {
    this.#out = out;
    this.#source = source;
    this.#intervalMs = options.intervalMs ?? 250;
    this.#now = options.now ?? Date.now;
  }

  start(): void {
    if (this.#started || this.#stopped) return;
    this.#started = true;
    this.#redraw();
    // unref: the display must never be what keeps the process alive.
    this.#timer = setInterval(() => this.#redraw(), this.#intervalMs);
    this.#timer.unref();
  }

  /** `text` is whole lines; a missing final newline is added, or the block would start mid-line. */
  writeAbove(text: string): void {
    if (text === '') return;
    const lines = text.endsWith('\n') ? text : text + '\n';
    this.#write(eraseLines(this.#block.length) + lines + this.#blockText());
  }

  /** Leaves the last block on screen as the summary, with the cursor below it. */
  stop(): void {
    if (this.#stopped) return;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#started) this.#redraw();
    this.#stopped = true;
    this.#block = [];
  }

  #redraw(): void {
    const previous = this.#block.length;
    this.#block = this.#render();
    this.#write(eraseLines(previous) + this.#blockText());
  }

  #render(): string[] {
    const snapshot = this.#source();
    const now = this.#now();
    const active = new Set(snapshot.files.map((f) => f.name));
    for (const name of this.#fileMeters.keys()) if (!active.has(name)) this.#fileMeters.delete(name);
    for (const f of snapshot.files) {
      let meter = this.#fileMeters.get(f.name);
      if (!meter) this.#fileMeters.set(f.name, (meter = new RateMeter()));
      meter.sample(f.done, now);
    }
    this.#totalMeter.sample(snapshot.total.done, now);

    // Cursor-up cannot reach lines scrolled off the top, so the block must fit the screen:
    // keep a row for the cursor, and fold the files that do not fit into one line.
    const room = Math.max(2, (this.#out.rows ?? 24) - 1);
    const shown = snapshot.files.length + 1 <= room ? snapshot.files : snapshot.files.slice(0, Math.max(0, room - 2));
    const hidden = snapshot.files.length - shown.length;
    // The last column is left empty: some terminals wrap as soon as it is written, which would
    // add a row the next cursor-up does not count.
    const width = Math.max(1, (this.#out.columns || 80) - 1);
    const rates = { file: (name: string) => this.#fileMeters.get(name)?.rate(now) ?? 0, total: this.#totalMeter.rate(now) };
    const lines = renderProgress({ ...snapshot, files: shown }, rates, width);
    if (hidden > 0) lines.splice(-1, 0, fit(`… and ${hidden} more`, width));
    return lines;
  }

  #blockText(): string {
    return this.#block.map((l) => l + '\n').join('');
  }

  /** A closed terminal (hung-up ssh session, `| head`) must not take the mirror down with it. */
  #write(text: string): void {
    if (text === '' || this.#out.destroyed || this.#out.writableEnded) return;
    try {
      this.#out.write(text);
    } catch {
      // Nothing useful to do: the output is gone.
    }
  }
}
