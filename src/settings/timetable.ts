/**
 * `BandwidthLimit`: a rate, or a timetable of rates by local wall-clock time, as rclone's
 * `--bwlimit` writes it (`08:00,512k 18:00,off`, `Mon-08:00,1M Sat-00:00,off`). Pure: parsing,
 * the rate in force at an instant and the next instant it changes.
 *
 * Units are binary, as everywhere in contentmonster (and in rclone's `--bwlimit`): `k` is 1024
 * bytes a second, `M` 1024², `G` 1024³; a plain number is bytes a second; `off` is no limit.
 *
 * Every timetable is a weekly one: an entry without a weekday stands for the same entry on each
 * of the seven days. The entry in force is the last one at or before the local wall time within
 * the week, and before the first entry of the week the last one of the week goes on (so after
 * midnight the previous evening's entry applies until the first boundary of the day: the wrap
 * rclone once got wrong).
 */
import { Expected } from '../errors.js';

/** Bytes a second; null = no limit. */
export type Rate = number | null;

export interface TimetableEntry {
  /** Minutes since Monday 00:00 local time, 0 to 10079. */
  weekMinute: number;
  rate: Rate;
  /** The token it came from, for messages. */
  token: string;
}

/** A parsed BandwidthLimit: entries in week order, never empty (a plain rate is one entry at Monday 00:00). */
export interface Timetable {
  entries: TimetableEntry[];
  /** The text it was parsed from, as the settings file wrote it. */
  text: string;
}

export const MINUTES_PER_WEEK = 7 * 24 * 60;
const days = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const units: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
/** Below this a limit is a mistake (a 32 KiB write would take more than half a minute). */
export const MIN_RATE = 1024;

export const rateExpected = 'expected a rate in bytes a second (`512k`, `2M`, `1G`, a whole number of bytes, at least 1k) or `off`';
export const timetableExpected = `${rateExpected}, or a timetable of space-separated \`HH:MM,RATE\` pairs, optionally per weekday (\`08:00,512k 18:00,off\`, \`Mon-08:00,1M\`)`;

/** `512k`, `2M`, `1.5G`, `1048576`, `off`: binary units, case-insensitive. */
export function parseRate(text: string): Rate {
  if (/^off$/i.test(text)) return null;
  const m = /^(\d+(?:\.\d+)?)([kmg]?)$/i.exec(text);
  if (!m) throw new Expected(rateExpected);
  const rate = Math.floor(Number(m[1]) * units[m[2].toLowerCase()]);
  if (!(rate >= MIN_RATE) || !Number.isSafeInteger(rate)) throw new Expected(rateExpected);
  return rate;
}

/** The option table's parser: a rate alone, or `[Day-]HH:MM,RATE` pairs separated by spaces. */
export function parseTimetable(text: string): Timetable {
  const tokens = text.trim().split(/\s+/).filter(Boolean);
  if (tokens.length === 0) throw new Expected(timetableExpected);
  if (tokens.length === 1 && !tokens[0].includes(',')) {
    return { entries: [{ weekMinute: 0, rate: parseRate(tokens[0]), token: tokens[0] }], text };
  }
  const entries = new Map<number, TimetableEntry>();
  for (const token of tokens) {
    const m = /^(?:([a-z]{3})-)?(\d{1,2}):(\d{2}),(.+)$/i.exec(token);
    const day = m?.[1] === undefined ? undefined : days.indexOf(m[1].toLowerCase());
    const hour = Number(m?.[2]);
    const minute = Number(m?.[3]);
    if (!m || day === -1 || hour > 23 || minute > 59) throw new Expected(`${timetableExpected}: \`${token}\` is not [Mon-]HH:MM,RATE`);
    let rate: Rate;
    try {
      rate = parseRate(m[4]);
    } catch {
      throw new Expected(`${rateExpected}: \`${token}\` has the rate \`${m[4]}\``);
    }
    for (const d of day === undefined ? [0, 1, 2, 3, 4, 5, 6] : [day]) {
      const weekMinute = d * 1440 + hour * 60 + minute;
      const before = entries.get(weekMinute);
      if (before) throw new Expected(`one rate per time: \`${token}\` and \`${before.token}\` both start at ${days[d]} ${m[2].padStart(2, '0')}:${m[3]}`);
      entries.set(weekMinute, { weekMinute, rate, token });
    }
  }
  return { entries: [...entries.values()].sort((a, b) => a.weekMinute - b.weekMinute), text };
}

/** Whether no entry limits anything: the limiter then costs nothing at all. */
export function isUnlimited(t: Timetable): boolean {
  return t.entries.every((e) => e.rate === null);
}

/** The entry in force at a local week minute (fractions allowed): the last at or before it, else the week's last. */
export function entryAtWeekMinute(t: Timetable, weekMinute: number): TimetableEntry {
  let found = t.entries[t.entries.length - 1];
  for (const e of t.entries) {
    if (e.weekMinute > weekMinute) break;
    found = e;
  }
  return found;
}

/** Whether `zone` is an IANA time zone this Node knows (`UTC`, `Europe/Berlin`). */
export function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/**
 * The local wall time of instant `t` (ms since the epoch) in `zone`, as minutes since Monday
 * 00:00 with the seconds as a fraction. Intl applies the zone's rules, DST included.
 */
export function localWeekMinute(t: number, zone: string): number {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: zone, hourCycle: 'h23', weekday: 'short', hour: '2-digit', minute: '2-digit', second: '2-digit' });
    formatters.set(zone, f);
  }
  const parts = Object.fromEntries(f.formatToParts(t).map((p) => [p.type, p.value]));
  const day = days.indexOf(parts.weekday.toLowerCase());
  const ms = ((t % 1000) + 1000) % 1000;
  return day * 1440 + Number(parts.hour) * 60 + Number(parts.minute) + (Number(parts.second) + ms / 1000) / 60;
}

/** The rate in force at instant `t` in `zone`. */
export function rateAt(t: Timetable, at: number, zone: string): Rate {
  return entryAtWeekMinute(t, localWeekMinute(at, zone)).rate;
}

/**
 * The first instant after `at` at which another entry is in force, or null when there is only
 * one entry. The wall-clock distance to the next entry gives it, unless a DST change lies in
 * between (the distance is then off by the shift): then the minutes around it are looked at one
 * by one, at most 3 hours either side. Every zone's offset today is whole minutes, so
 * boundaries fall on whole UTC minutes. A boundary inside the hour skipped in spring takes
 * effect at its end; in the hour repeated in autumn the wall clock decides, so an entry inside
 * it may take effect twice.
 */
export function nextBoundary(t: Timetable, at: number, zone: string): number | null {
  if (t.entries.length < 2) return null;
  const wall = localWeekMinute(at, zone);
  const current = entryAtWeekMinute(t, wall);
  const next = t.entries[(t.entries.indexOf(current) + 1) % t.entries.length];
  const wallDistance = ((next.weekMinute - wall) % MINUTES_PER_WEEK + MINUTES_PER_WEEK) % MINUTES_PER_WEEK;
  const changed = (minute: number) => entryAtWeekMinute(t, localWeekMinute(minute * 60_000, zone)) !== current;
  const first = Math.floor(at / 60_000) + 1;
  const estimate = Math.max(first, Math.round(at / 60_000 + wallDistance));
  if (changed(estimate) && (estimate === first || !changed(estimate - 1))) return estimate * 60_000;
  for (let minute = Math.max(first, estimate - 180); minute <= estimate + 180; minute++) {
    if (changed(minute)) return minute * 60_000;
  }
  return (estimate + 180) * 60_000; // no real zone gets here; the caller looks again then
}
