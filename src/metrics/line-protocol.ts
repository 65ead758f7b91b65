/**
 * InfluxDB line protocol encoder: one `Point` → one line, escaped as the line protocol
 * reference says:
 * - measurement: `,` and space;
 * - tag keys, tag values, field keys: `,`, `=` and space;
 * - string field values: double-quoted, with `"` and `\` escaped.
 *
 * The protocol cannot carry a newline in any of these (a newline ends the point), so `\n`
 * and `\r` become a space. Backslashes are not escaped outside string values (the protocol
 * reads them literally), but a run of backslashes right before a separator or at the end
 * of a name would escape the separator that follows and corrupt the line; the protocol has
 * no way to write such a backslash (telegraf#3004), so that run is dropped.
 */

export type FieldValue = number | string | boolean;

export interface Point {
  measurement: string;
  /** Tags whose value is undefined or '' are left out: InfluxDB rejects empty tag values. */
  tags?: Record<string, string | undefined>;
  /** Non-finite numbers are left out; a point with no field left is not written. */
  fields: Record<string, FieldValue>;
  /** A bigint is nanoseconds since the epoch. Absent (or an invalid Date): the receiver stamps it. */
  time?: Date | bigint;
}

const lineBreaks = /[\r\n]/g;

/** Replace line breaks, drop backslashes that would escape a separator, then escape `special`. */
function escaper(special: string): (text: string) => string {
  const danglingBackslashes = new RegExp(`\\\\+(?=[${special}]|$)`, 'g');
  const toEscape = new RegExp(`[${special}]`, 'g');
  return (text) => text.replace(lineBreaks, ' ').replace(danglingBackslashes, '').replace(toEscape, '\\$&');
}

const escapeMeasurement = escaper(', ');
const escapeKey = escaper(',= ');
const escapeTagValue = escapeKey;

function escapeString(text: string): string {
  return `"${text.replace(lineBreaks, ' ').replace(/["\\]/g, '\\$&')}"`;
}

/**
 * Numbers carry no `i` suffix, so InfluxDB stores every number as a float: a field that is
 * sometimes 1024 and sometimes 409.6 must keep one type, or later points are rejected for a
 * field type conflict. Whole numbers are printed in full (String() switches to an exponent
 * from 1e21).
 */
function formatNumber(n: number): string {
  return Number.isInteger(n) ? BigInt(n).toString() : String(n);
}

function formatValue(value: FieldValue): string | undefined {
  if (typeof value === 'number') return Number.isFinite(value) ? formatNumber(value) : undefined;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return escapeString(value);
}

function formatTime(time: Date | bigint | undefined): string | undefined {
  if (typeof time === 'bigint') return time.toString();
  if (time === undefined || Number.isNaN(time.getTime())) return undefined;
  return (BigInt(time.getTime()) * 1_000_000n).toString();
}

/**
 * One line of line protocol, with its trailing newline, or undefined when nothing valid is
 * left to write (no field, or an empty measurement name).
 */
export function formatPoint(point: Point): string | undefined {
  const measurement = escapeMeasurement(point.measurement);
  if (measurement === '') return undefined;

  const fields: string[] = [];
  for (const [key, value] of Object.entries(point.fields)) {
    const k = escapeKey(key);
    const v = formatValue(value);
    if (k !== '' && v !== undefined) fields.push(`${k}=${v}`);
  }
  if (fields.length === 0) return undefined;

  // Sorted by key, as InfluxDB recommends: it saves the server from sorting each point.
  const tags = Object.entries(point.tags ?? {})
    .map(([key, value]) => [escapeKey(key), value === undefined ? '' : escapeTagValue(value)] as const)
    .filter(([k, v]) => k !== '' && v !== '')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

  let line = measurement;
  for (const [k, v] of tags) line += `,${k}=${v}`;
  line += ` ${fields.join(',')}`;
  const time = formatTime(point.time);
  if (time !== undefined) line += ` ${time}`;
  return `${line}\n`;
}

/** The fields of one transfer, as both the push and the pull measurements carry them. */
export function transferFields(bytes: number, durationS: number): Record<string, number> {
  return { bytes, duration_seconds: durationS, bytes_per_second: durationS > 0 ? bytes / durationS : 0 };
}
