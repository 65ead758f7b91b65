/**
 * The value parsers of the option table: each turns the text of one settings.ini value into a
 * typed value, or throws Expected with what it expected (the loader adds file, line and key).
 */
import os from 'node:os';
import path from 'node:path';
import { globToRegExp } from './glob.js';
import { logLevels, type LogLevel } from '../log.js';
import { Expected } from '../errors.js';
import { fingerprintExpected, parseFingerprint } from '../ssh/host-key.js';
import { isTimeZone } from './timetable.js';

export function invalid(expected: string): never {
  throw new Expected(expected);
}

/** What parsers and defaults may depend on besides the value. */
export interface ValueContext {
  /** The settings file's folder: relative shore paths are taken from it. */
  base: string;
  env: NodeJS.ProcessEnv;
}

export type Parser<T> = (value: string, ctx: ValueContext) => T;

// setTimeout/setInterval fire at once (with a warning) beyond 2^31-1 ms.
export const maxTimerMs = 2 ** 31 - 1;
export const maxTimerS = Math.floor(maxTimerMs / 1000);

export function wholeNumber(min: number, max: number, expected: string): Parser<number> {
  return (value) => {
    // Number() alone would take `1e3`, `0x10`, `-0` and an empty value (as 0).
    const n = /^\d+$/.test(value) ? Number(value) : NaN;
    return n >= min && n <= max ? n : invalid(expected);
  };
}

/** `[MONSTER] Threads`: `off` (0), `auto`, or a count of SSH threads. */
export function threads(value: string, ctx: ValueContext): 'auto' | number {
  if (value === 'off') return 0;
  if (value === 'auto') return 'auto';
  return wholeNumber(1, 64, 'expected off, auto or a whole number from 1 to 64')(value, ctx);
}

/** A whole number that may be negative (`-5`), within [min, max]. */
export function signedWholeNumber(min: number, max: number, expected: string): Parser<number> {
  return (value) => {
    const n = /^[-+]?\d+$/.test(value) ? Number(value) : NaN;
    return n >= min && n <= max ? n + 0 : invalid(expected); // + 0: `-0` is 0
  };
}

/** One of a few words, as written (case-sensitive, like every key). */
export function oneOf<T extends string>(values: readonly T[]): Parser<T> {
  return (value) => values.find((v) => v === value) ?? invalid(`expected one of ${values.join(', ')}`);
}

export function positiveSeconds(value: string): number {
  const n = /^(\d+\.?\d*|\.\d+)$/.test(value) ? Number(value) : NaN;
  return n > 0 && n <= maxTimerS ? n : invalid(`expected a number of seconds > 0 and <= ${maxTimerS}`);
}

export function nonEmpty(expected: string): Parser<string> {
  return (value) => (value === '' ? invalid(expected) : value);
}

export function localPath(expected: string): Parser<string> {
  return (value, { base }) => path.resolve(base, value === '' ? invalid(expected) : value);
}

/** Remote paths are POSIX whatever the shore runs, and must not depend on the login folder. */
export function remotePath(value: string): string {
  if (!value.startsWith('/')) invalid('expected an absolute path on the vessel (starting with /)');
  const normal = path.posix.normalize(value);
  return normal.length > 1 ? normal.replace(/\/+$/, '') : normal;
}

export function identityPath(value: string, { base }: ValueContext): string {
  if (value === '') invalid('expected the path of a private key file');
  if (value === '~' || value.startsWith('~/')) return path.join(os.homedir(), value.slice(1));
  return path.resolve(base, value);
}

export function hostKey(value: string): string {
  return parseFingerprint(value) ?? invalid(fingerprintExpected);
}

export function commaList(value: string): string[] {
  return [...new Set(value.split(',').map((item) => item.trim()).filter(Boolean))];
}

export function globList(value: string): string[] {
  const globs = commaList(value);
  for (const glob of globs) {
    if (glob.includes('/')) invalid(`expected globs for base names, without / (\`${glob}\` can never match)`);
    try {
      globToRegExp(glob);
    } catch (err) {
      invalid(`expected valid globs (${(err as Error).message})`);
    }
  }
  return globs;
}

export function logLevel(value: string): LogLevel {
  return logLevels.find((level) => level === value) ?? invalid(`expected one of ${logLevels.join(', ')}`);
}

export function metricsSocket(value: string, { base }: ValueContext): string | null {
  // Telegraf's own config writes the socket as unix:///path; accept it copied from there.
  const socket = value.replace(/^unix:\/\//, '');
  if (value !== '' && socket === '') invalid('expected the path of a unix socket');
  return socket === '' ? null : path.resolve(base, socket);
}

export function hostName(value: string): string {
  return /^[^\s]+$/.test(value) ? value : invalid('expected a host name or IP address');
}

export function timeZone(value: string): string {
  return isTimeZone(value) ? value : invalid('expected an IANA time zone such as `UTC`, `Europe/Berlin` or `America/New_York`');
}
