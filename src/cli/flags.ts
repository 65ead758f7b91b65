/** Numeric command-line values, checked strictly: `Number()` alone takes `1e3`, `0x10` and ''. */
import { ConfigError } from '../errors.js';

export function wholeNumberFlag(flag: string, value: string, min: number, max: number): number {
  const n = /^\d+$/.test(value.trim()) ? Number(value) : NaN;
  if (!(n >= min && n <= max)) throw new ConfigError(`${flag}: expected a whole number from ${min} to ${max}, got \`${value}\``);
  return n;
}

export function secondsFlag(flag: string, value: string): number {
  const n = /^(\d+\.?\d*|\.\d+)$/.test(value.trim()) ? Number(value) : NaN;
  if (!(n > 0)) throw new ConfigError(`${flag}: expected a number of seconds > 0, got \`${value}\``);
  return n;
}
