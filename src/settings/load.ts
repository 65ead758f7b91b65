/**
 * settings.ini: the loader that turns the file into checked, typed values, with the parsers and
 * defaults of the option table (./table.ts) and the line pass of ./ini-text.ts.
 *
 * Every error is a ConfigError of exactly one line:
 * `<file>:<line>: [<section>] <Key>: <what was expected>, got \`<value>\``.
 */
import fs from 'node:fs';
import path from 'node:path';
import { ConfigError, Expected } from '../errors.js';
import { readSections, type RawEntry, type RawSection } from './ini-text.js';
import {
  directoryOptions, monsterOptions, settingsTable, vesselOptions,
  type DirectorySettings, type Kind, type MonsterSettings, type Option, type SectionOptions, type VesselSettings,
} from './table.js';
import type { ValueContext } from './values.js';

export type { DirectorySettings, MonsterSettings, VesselSettings } from './table.js';
export { settingsTable } from './table.js';

export interface Settings {
  /** Absolute path of the settings file. */
  file: string;
  monster: MonsterSettings;
  /** In file order. */
  directories: DirectorySettings[];
  /** In file order. */
  vessels: VesselSettings[];
  /** Non-fatal findings, one line each. */
  warnings: string[];
}

// Values that must never be echoed into an error or a log.
const secretKeys = new Set(settingsTable.filter((o) => o.secret).map((o) => o.key));

/** Reads and validates; throws ConfigError (from ./errors.js) with one clear line. */
export function loadSettings(file: string): Settings {
  const abs = path.resolve(file);
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(abs);
  } catch (err) {
    throw readFailure(abs, err);
  }
  if (bytes.includes(0)) throw new ConfigError(`${abs}: not a text settings file`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (err) {
    // A Latin-1 file would otherwise load with mangled passwords and paths.
    throw new ConfigError(`${abs}: not a text settings file (not valid UTF-8)`, { cause: err });
  }
  return parseSettings(text, abs);
}

/** Same from text already read; `file` is used for messages and relative paths. */
export function parseSettings(text: string, file: string): Settings {
  const abs = path.resolve(file);
  if (text.includes('\0')) throw new ConfigError(`${abs}: not a text settings file`);
  const sections = readSections(text.replace(/^\uFEFF/, ''), abs, unknownKey);
  return buildSettings(sections, abs);
}

/** The config path: explicit -c value, else $CONTENTMONSTER_CONFIG, else ./settings.ini (absolute). */
export function resolveSettingsPath(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  // `-c ""` is a mistake worth stopping at; an empty variable is treated as unset, as shells do.
  if (explicit === '') throw new ConfigError('-c: expected a settings file path, got an empty value');
  const chosen = explicit ?? (env.CONTENTMONSTER_CONFIG || 'settings.ini');
  return path.resolve(chosen);
}

/** One line saying why the settings file cannot be read (no `ENOENT: ...` after it). */
function readFailure(file: string, err: unknown): ConfigError {
  const code = (err as { code?: unknown } | undefined)?.code;
  switch (code) {
    case 'ENOENT': return new ConfigError(`settings file ${file} does not exist`);
    case 'ENOTDIR': return new ConfigError(`settings file ${file} does not exist (a parent is not a directory)`);
    case 'EISDIR': return new ConfigError(`settings file ${file} is a directory, not a file`);
    case 'EACCES':
    case 'EPERM': return new ConfigError(`settings file ${file} cannot be read: permission denied`);
    default: return new ConfigError(`settings file ${file} cannot be read: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------------------------
// Key names

// What people bring from ssh_config; edit distance would not find these.
const sshConfigNames: Record<string, string> = { Host: 'Address', HostName: 'Address', Hostname: 'Address', User: 'Username' };

/** Undefined for a key of the option table in its section, else a hint for the "unknown key" line. */
function unknownKey(kind: Kind, key: string): string | undefined {
  if (settingsTable.some((o) => o.section === kind && o.key === key)) return undefined;
  const elsewhere = settingsTable.find((o) => o.key === key);
  if (elsewhere) return `; \`${key}\` belongs in ${elsewhere.section === 'MONSTER' ? '[MONSTER]' : `[${elsewhere.section} NAME]`}`;
  const keys = settingsTable.filter((o) => o.section === kind).map((o) => o.key);
  const alias = sshConfigNames[key];
  const best = alias && keys.includes(alias) ? alias : closest(key, keys);
  return best ? `; did you mean \`${best}\`?` : '';
}

/** The candidate nearest by edit distance (ignoring case), if near enough to be a typo. */
function closest(word: string, candidates: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  // A third of the length: `Concurency` finds `Concurrency`, but `Host` does not find `Port`.
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(best.length / 3)) ? best : undefined;
}

/** Optimal string alignment distance: a swapped pair of letters (`Prot`) counts as one typo. */
function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

// ---------------------------------------------------------------------------------------------
// Values

/** Typed access to one section's values; every failure names file, line, section and key. */
class SectionValues {
  readonly #file: string;
  readonly #section: RawSection;

  constructor(file: string, section: RawSection) {
    this.#file = file;
    this.#section = section;
  }

  get name(): string {
    return this.#section.name;
  }

  /**
   * The options' values, in table order: first those that always have one (set, defaulted or
   * required), then the optional ones, left out of the object when the key is absent.
   */
  read<S>(options: SectionOptions<S>, ctx: ValueContext): S {
    const values: Partial<S> = {};
    const all = Object.entries<Option<unknown, S>>(options) as Array<[keyof S, Option<S[keyof S], S>]>;
    const valued = (o: Option<unknown, S>) => o.required === true || o.default !== undefined;
    for (const [field, option] of all.filter(([, o]) => valued(o))) values[field] = this.#value(option, ctx, values);
    for (const [field, option] of all.filter(([, o]) => !valued(o))) {
      if (this.#section.entries.has(option.key)) values[field] = this.#value(option, ctx, values);
    }
    return values as S;
  }

  #value<T, S>(option: Option<T, S>, ctx: ValueContext, before: Partial<S>): T {
    const { key, default: fallback } = option;
    const entry = this.#section.entries.get(key);
    try {
      if (entry) return option.parse(entry.value, ctx);
      if (fallback === undefined) throw new Expected('required key missing');
      return typeof fallback === 'string' ? option.parse(fallback, ctx) : fallback(ctx, before);
    } catch (err) {
      if (err instanceof Expected) throw this.error(key, entry ? `${err.message}, got ${shown(entry)}` : err.message);
      throw err;
    }
  }

  /** One line naming the key, with its line number when the key is in the file. */
  error(key: string, message: string): ConfigError {
    const line = this.#section.entries.get(key)?.line;
    return new ConfigError(`${this.#file}${line === undefined ? '' : `:${line}`}: ${this.#section.label} ${key}: ${message}`);
  }

  /** Where `key` is, for messages about it: `<file>:<line>: [Section] Key`. */
  where(key: string): string {
    const line = this.#section.entries.get(key)?.line ?? this.#section.line;
    return `${this.#file}:${line}: ${this.#section.label} ${key}`;
  }
}

function shown(entry: RawEntry): string {
  if (secretKeys.has(entry.key)) return '<hidden>';
  return entry.value === '' ? 'an empty value' : `\`${entry.value}\``;
}

// ---------------------------------------------------------------------------------------------
// Sections

function buildSettings(sections: RawSection[], file: string): Settings {
  const ctx: ValueContext = { base: path.dirname(file), env: process.env };
  const monsterSection = sections.find((s) => s.kind === 'MONSTER');
  const monster = new SectionValues(file, monsterSection ?? emptyMonster()).read(monsterOptions, ctx);
  const directories: Array<[DirectorySettings, SectionValues]> = [];
  const vessels: Array<[VesselSettings, SectionValues]> = [];
  for (const section of sections) {
    const values = new SectionValues(file, section);
    if (section.kind === 'Directory') directories.push([{ name: values.name, ...values.read(directoryOptions, ctx) }, values]);
    if (section.kind === 'Vessel') vessels.push([{ name: values.name, ...values.read(vesselOptions, ctx) }, values]);
  }
  if (directories.length === 0) throw new ConfigError(`${file}: no [Directory NAME] section; at least one is required`);
  if (vessels.length === 0) throw new ConfigError(`${file}: no [Vessel NAME] section; at least one is required`);
  const warnings = [...quotedValues(sections, file), ...checkLocations(directories), ...checkIgnoreDirs(vessels, directories)];
  return { file, monster, directories: directories.map(([d]) => d), vessels: vessels.map(([v]) => v), warnings };
}

function emptyMonster(): RawSection {
  return { kind: 'MONSTER', name: '', label: '[MONSTER]', line: 0, entries: new Map() };
}

/**
 * A value wholly in quotes keeps them, as the seed's Python configparser does: `Password = "x"`
 * is the 3-character password `"x"`. Right for a password that has them, a silent surprise for
 * everyone else, so it is warned about (without showing a secret).
 */
function quotedValues(sections: RawSection[], file: string): string[] {
  const warnings: string[] = [];
  for (const section of sections) {
    for (const entry of section.entries.values()) {
      if (!/^(["']).*\1$/s.test(entry.value) || entry.value.length < 2) continue;
      const value = secretKeys.has(entry.key) ? 'value' : `value ${entry.value}`;
      warnings.push(`${file}:${entry.line}: ${section.label} ${entry.key}: the ${value} is in quotes, which are kept as part of it; leave them out unless they belong to it`);
    }
  }
  return warnings;
}

/** Two Directories on one folder would race each other; nested ones are legal but surprising. */
function checkLocations(directories: Array<[DirectorySettings, SectionValues]>): string[] {
  const warnings: string[] = [];
  directories.forEach(([dir, values], i) => {
    for (const [other] of directories.slice(0, i)) {
      if (dir.location === other.location) {
        throw values.error('Location', `expected a folder no other Directory uses, got \`${dir.location}\`, the Location of [Directory ${other.name}]`);
      }
      const [outer, inner] = dir.location.length < other.location.length ? [dir, other] : [other, dir];
      if (inner.location.startsWith(outer.location === '/' ? '/' : `${outer.location}/`)) {
        warnings.push(`${values.where('Location')}: \`${inner.location}\` is inside \`${outer.location}\` of [Directory ${outer.name}]; files there belong to both`);
      }
    }
  });
  return warnings;
}

function checkIgnoreDirs(vessels: Array<[VesselSettings, SectionValues]>, directories: Array<[DirectorySettings, SectionValues]>): string[] {
  const warnings: string[] = [];
  const names = directories.map(([d]) => d.name);
  for (const [vessel, values] of vessels) {
    // The seed README itself names a Directory it does not define, so this only warns.
    for (const name of vessel.ignoreDirs.filter((n) => !names.includes(n))) {
      warnings.push(`${values.where('IgnoreDirs')}: no [Directory ${name}] is defined`);
    }
    if (names.every((n) => vessel.ignoreDirs.includes(n))) {
      warnings.push(`${values.where('IgnoreDirs')}: every Directory is ignored; nothing is sent to this vessel`);
    }
  }
  // Its files have no vessel to wait for, so they count as replicated everywhere: moved to
  // processed/ as they come, a copy nowhere. Legal (a Directory paused for every vessel), but
  // never what a typo in IgnoreDirs meant.
  for (const [dir, values] of directories) {
    if (vessels.every(([v]) => v.ignoreDirs.includes(dir.name))) {
      warnings.push(`${values.where('Location')}: every vessel lists [Directory ${dir.name}] in IgnoreDirs; its files are sent nowhere, and moved to processed/ as they come`);
    }
  }
  return warnings;
}
