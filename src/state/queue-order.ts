/**
 * The order in which a vessel's waiting files start (issue 20): a file whose upload has begun
 * first, then by its Directory's `Priority` (higher first), then by the Directory's `Order`
 * (`size`: smallest first, `mtime`: oldest first, `name`: by relative path), then in the order
 * the files came (their ids).
 *
 * The state database keeps this order as two columns of each delivery, `tier` and `rank`, and
 * an index over (state, vessel, tier, rank, file_id): a vessel's queue is read from it a page at
 * a time in this order, never sorted in memory. `tier` is lower for what goes first: a started
 * file's is STARTED_TIER; otherwise it comes from the Priority and, so that sizes, times and
 * names are never compared with each other, the Order (see tierOf). `rank` is the file's size,
 * mtime or relative path, as the Order says.
 *
 * compareKeys here must order keys exactly as SQLite does (the window in memory and the cursor
 * into the database meet on it): numbers before text, text by its UTF-8 bytes.
 */

/** The values `Order` takes; a Directory's tier depends on the index, so new ones go at the end. */
export const ORDERS = ['size', 'mtime', 'name'] as const;
export type QueueOrderName = (typeof ORDERS)[number];

/** `Priority` is a whole number from -MAX_PRIORITY to MAX_PRIORITY. */
export const MAX_PRIORITY = 1000;

/** Where a Directory's files stand in every vessel's queue. */
export interface DirectoryOrder {
  /** Higher goes first; may be negative. @default 0 */
  priority: number;
  /** @default 'size' */
  order: QueueOrderName;
}

export const DEFAULT_ORDER: Readonly<DirectoryOrder> = { priority: 0, order: 'size' };

/**
 * A Directory's tier: lower goes first. Each Priority has three tiers, one per Order (size,
 * then mtime, then name, when Directories of one Priority have different Orders), and the
 * tiers of two Priorities never overlap.
 */
export function tierOf(d: DirectoryOrder): number {
  return -ORDERS.length * d.priority + ORDERS.indexOf(d.order);
}

/**
 * The tier of a delivery whose upload has begun (a large file: chunks may be on the vessel),
 * below every Directory's: it is resumed before any new work, so that neither a higher
 * Priority nor a stream of smaller files ever starves a file already under way.
 */
export const STARTED_TIER = tierOf({ priority: MAX_PRIORITY + 1, order: 'size' });

/** A file's value for its Directory's Order: a size or an mtime, or a relative path. */
export type Rank = number | string;

/** A delivery's place in its vessel's queue. */
export interface QueueKey {
  tier: number;
  rank: Rank;
  /** The file id: the order the files came in, among equals. */
  id: number;
}

/** Before every key: where reading a queue starts. */
export const BEFORE_ALL: Readonly<QueueKey> = { tier: Number.MIN_SAFE_INTEGER, rank: Number.MIN_SAFE_INTEGER, id: 0 };

/** The rank of a file under `order`, in SQL over a `files` row named `f` and a parameter `@order`. */
export const RANK_SQL = `CASE @order WHEN 'mtime' THEN f.mtime_ms WHEN 'name' THEN f.relpath ELSE f.size END`;

/** Negative when `a` goes before `b`, as SQLite's ORDER BY tier, rank, file_id has it. */
export function compareKeys(a: QueueKey, b: QueueKey): number {
  return a.tier - b.tier || compareRanks(a.rank, b.rank) || a.id - b.id;
}

function compareRanks(a: Rank, b: Rank): number {
  if (typeof a === 'number' && typeof b === 'number') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'number') return -1; // SQLite: every number before any text
  if (typeof b === 'number') return 1;
  // SQLite's BINARY collation compares the UTF-8 bytes; JavaScript's < compares UTF-16 units,
  // which differs from it for characters beyond U+FFFF.
  return a === b ? 0 : Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** The last key before `k` that any file can have: a cursor that reads `k` again. */
export function justBefore(k: QueueKey): QueueKey {
  return { tier: k.tier, rank: k.rank, id: k.id - 1 };
}
