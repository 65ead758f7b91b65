/**
 * settings.ini: the option table, and the loader that turns the file into checked, typed values.
 *
 * The file is read line by line before `ini` sees it, because `ini` alone gets the seed's own
 * files wrong: it cuts `Password = pa;ss#word` at `;`, ignores `[Directory x]  # comment` as a
 * header (its keys then land in the section before), nests `[Vessel a.b.c]`, turns `true` into a
 * boolean and merges duplicate sections silently. The line pass strips comments, finds sections,
 * keys and duplicates and keeps line numbers; `ini` then decodes the values, handed to it
 * JSON-quoted under synthetic names so none of those rules can apply.
 *
 * Every error is a ConfigError of exactly one line:
 * `<file>:<line>: [<section>] <Key>: <what was expected>, got \`<value>\``.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import ini from 'ini';
import { ConfigError } from '../errors.js';
import { globToRegExp } from './glob.js';
import { logLevels, type LogLevel } from '../log.js';
import { fingerprintExpected, parseFingerprint } from '../ssh/host-key.js';

/** Global options, from the optional `[MONSTER]` section. */
export interface MonsterSettings {
  /** Size of the chunks a file is split into, in bytes. @default 10485760 */
  chunkSize: number;
  /** Absolute path of the SQLite state file. @default `database.sqlite3` beside the settings file */
  database: string;
  /** Milliseconds a new file's size and mtime must stay unchanged before it is queued. @default 2000 */
  stableTimeMs: number;
  /** Base-name globs never replicated. @default ['.*', '*.part', '*.tmp', '*~', '*.swp'] */
  ignore: string[];
  /** Seconds between full rescans; 0 = off. @default 600 */
  rescanIntervalS: number;
  /** Absolute path of the Telegraf unix stream socket; null = no metrics. @default null */
  metricsSocket: string | null;
  /** pino level. @default 'info' */
  logLevel: LogLevel;
}

/** One `[Directory NAME]`: a local folder replicated to the vessels. */
export interface DirectorySettings {
  name: string;
  /** Absolute, normalised local folder, no trailing slash. */
  location: string;
  /** Absolute, normalised POSIX folder on the vessels, no trailing slash. @default location */
  remoteLocation: string;
}

/** One `[Vessel NAME]`: an SFTP server the files are pushed to. */
export interface VesselSettings {
  name: string;
  address: string;
  /** @default 22 */
  port: number;
  /** @default the user running the daemon */
  username: string;
  password?: string;
  /** Passphrase of the private key. */
  passphrase?: string;
  /** Seconds to wait for the connection and each request. @default 10 */
  timeoutS: number;
  /** Absolute POSIX folder on the vessel for uploaded chunks. @default '/tmp/.ContentMonster' */
  tempDir: string;
  /** Directory names not sent to this vessel. @default [] */
  ignoreDirs: string[];
  /** Absolute path of the private key. */
  identityFile?: string;
  /** Pinned fingerprint, `SHA256:` and 43 base64 characters (no padding). */
  hostKey?: string;
  /** Files in flight to this vessel at once. @default 2 */
  concurrency: number;
}

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

type Kind = 'MONSTER' | 'Directory' | 'Vessel';

const defaultIgnore = ['.*', '*.part', '*.tmp', '*~', '*.swp'];
// setTimeout/setInterval fire at once (with a warning) beyond 2^31-1 ms.
const maxTimerMs = 2 ** 31 - 1;
const maxTimerS = Math.floor(maxTimerMs / 1000);

/** The option table: the loader refuses keys not in it; docs and `check` print it. */
export const settingsTable: ReadonlyArray<{
  section: 'MONSTER' | 'Directory' | 'Vessel';
  key: string;
  default: string;
  required: boolean;
  description: string;
}> = [
  { section: 'MONSTER', key: 'ChunkSize', default: '10485760', required: false, description: 'Size of the chunks a file is split into for upload, in bytes (10485760 = 10 MiB).' },
  { section: 'MONSTER', key: 'Database', default: 'database.sqlite3', required: false, description: "SQLite state file; a relative path is taken from the settings file's folder. Default: database.sqlite3 in $STATE_DIRECTORY (systemd's StateDirectory=) when set, else beside the settings file." },
  { section: 'MONSTER', key: 'StableTime', default: '2000', required: false, description: "Milliseconds a new file's size and modification time must stay unchanged before it is queued." },
  { section: 'MONSTER', key: 'Ignore', default: defaultIgnore.join(', '), required: false, description: 'Comma-separated base-name globs (*, ?, [abc], [!abc]) of files never replicated; an empty value ignores nothing.' },
  { section: 'MONSTER', key: 'RescanInterval', default: '600', required: false, description: 'Seconds between full rescans that catch missed file events; 0 turns them off.' },
  { section: 'MONSTER', key: 'MetricsSocket', default: '(off)', required: false, description: 'Telegraf unix stream socket that receives InfluxDB line-protocol metrics; empty turns metrics off.' },
  { section: 'MONSTER', key: 'LogLevel', default: 'info', required: false, description: `Log level: ${logLevels.join(', ')}.` },
  { section: 'Directory', key: 'Location', default: '', required: true, description: "Local folder watched recursively; a relative path is taken from the settings file's folder." },
  { section: 'Directory', key: 'RemoteLocation', default: '(same as Location)', required: false, description: 'Absolute folder on the vessels where the files land.' },
  { section: 'Vessel', key: 'Address', default: '', required: true, description: 'Host name or IP address of the vessel.' },
  { section: 'Vessel', key: 'Port', default: '22', required: false, description: 'SSH port of the vessel.' },
  { section: 'Vessel', key: 'Username', default: '(current user)', required: false, description: 'User to log in as on the vessel.' },
  { section: 'Vessel', key: 'Password', default: '(none)', required: false, description: 'Password to log in with; leave it out to log in with a key.' },
  { section: 'Vessel', key: 'Passphrase', default: '(none)', required: false, description: 'Passphrase of the private key; leave it out for a key without one.' },
  { section: 'Vessel', key: 'Timeout', default: '10', required: false, description: 'Seconds to wait for the connection; while work is outstanding, a link from which nothing arrives for this long counts as stalled and is reconnected.' },
  { section: 'Vessel', key: 'TempDir', default: '/tmp/.ContentMonster', required: false, description: 'Absolute folder on the vessel where chunks are uploaded before reassembly; must be writable.' },
  { section: 'Vessel', key: 'IgnoreDirs', default: '(none)', required: false, description: 'Comma-separated names of Directory sections not replicated to this vessel.' },
  { section: 'Vessel', key: 'IdentityFile', default: '(SSH agent, then ~/.ssh/id_*)', required: false, description: "Private key file; ~/ is the home folder, a relative path is taken from the settings file's folder." },
  { section: 'Vessel', key: 'HostKey', default: '(trust on first use)', required: false, description: 'Pinned host key fingerprint as ssh-keygen -lf prints it: SHA256: and 43 base64 characters.' },
  { section: 'Vessel', key: 'Concurrency', default: '2', required: false, description: 'Connections to this vessel, 1 to 64; each carries one large file and up to 16 small ones at a time.' },
];

// Values that must never be echoed into an error or a log.
const secretKeys = new Set(['Password', 'Passphrase']);

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
  const sections = scanLines(text.replace(/^\uFEFF/, ''), abs);
  decodeValues(sections);
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
// Line pass

interface RawEntry {
  key: string;
  value: string;
  line: number;
}

interface RawSection {
  kind: Kind;
  name: string;
  /** `[MONSTER]` or `[Kind name]`, as messages show it. */
  label: string;
  line: number;
  entries: Map<string, RawEntry>;
}

const kinds: readonly Kind[] = ['MONSTER', 'Directory', 'Vessel'];
const sectionChoices = '[MONSTER], [Directory NAME] or [Vessel NAME]';

/** Splits the text into sections and entries; syntax, section and key-name errors come from here, in file order. */
function scanLines(text: string, file: string): RawSection[] {
  const sections: RawSection[] = [];
  const firstLine = new Map<string, number>(); // section label -> line, to report duplicates
  let current: RawSection | undefined;
  const lines = text.split(/\r\n|\n|\r/);
  for (let i = 0; i < lines.length; i++) {
    const at = `${file}:${i + 1}`;
    const content = stripComment(lines[i]!);
    if (content === '') continue;
    if (content.startsWith('[')) {
      current = openSection(content, at, i + 1);
      const first = firstLine.get(current.label);
      if (first !== undefined) throw new ConfigError(`${at}: ${current.label}: duplicate section (first at line ${first})`);
      firstLine.set(current.label, i + 1);
      sections.push(current);
      continue;
    }
    const entry = splitEntry(content, at, i + 1);
    if (!current) {
      throw new ConfigError(`${at}: ${entry.key}: key outside any section; expected a ${sectionChoices} header above it`);
    }
    addEntry(current, entry, at);
  }
  return sections;
}

/**
 * The line without its comment. A comment fills a line starting with `#` or `;`, or starts at
 * white space followed by `#` or `;`: that is how the seed writes them, and it keeps values
 * such as `pa;ss#word` whole.
 */
function stripComment(line: string): string {
  const trimmed = line.trim();
  if (trimmed.startsWith('#') || trimmed.startsWith(';')) return '';
  const comment = /\s[#;]/.exec(trimmed);
  return comment ? trimmed.slice(0, comment.index).trimEnd() : trimmed;
}

function openSection(header: string, at: string, line: number): RawSection {
  if (!header.endsWith(']')) throw new ConfigError(`${at}: expected a section header such as [Vessel NAME], got \`${header}\``);
  const [, word = '', rest = ''] = /^(\S*)\s*(.*)$/s.exec(header.slice(1, -1).trim())!;
  const kind = kinds.find((k) => k === word);
  if (!kind) throw new ConfigError(`${at}: ${header}: unknown section; expected ${sectionChoices}`);
  const name = rest.trim();
  if (kind === 'MONSTER' && name) throw new ConfigError(`${at}: ${header}: expected [MONSTER] without a name`);
  if (kind !== 'MONSTER' && !name) throw new ConfigError(`${at}: ${header}: expected a name, as in [${kind} NAME]`);
  // IgnoreDirs lists Directory names separated by commas, so such a name could never be listed.
  if (kind === 'Directory' && name.includes(',')) {
    throw new ConfigError(`${at}: ${header}: expected a name without commas (IgnoreDirs separates names with commas)`);
  }
  const label = kind === 'MONSTER' ? '[MONSTER]' : `[${kind} ${name}]`;
  return { kind, name, label, line, entries: new Map() };
}

function splitEntry(content: string, at: string, line: number): RawEntry {
  const eq = content.indexOf('=');
  const key = eq > 0 ? content.slice(0, eq).trim() : '';
  if (!key) {
    // The line may be a mistyped `Password: secret`: never echo anything that could be one.
    const shown = /pass|secret/i.test(content) ? '<hidden>' : `\`${content}\``;
    throw new ConfigError(`${at}: expected \`Key = value\`, a ${sectionChoices} header or a comment, got ${shown}`);
  }
  return { key, value: content.slice(eq + 1).trim(), line };
}

function addEntry(section: RawSection, entry: RawEntry, at: string): void {
  if (!settingsTable.some((o) => o.section === section.kind && o.key === entry.key)) {
    throw new ConfigError(`${at}: ${section.label} ${entry.key}: unknown key${unknownKeyHint(entry.key, section.kind)}`);
  }
  const first = section.entries.get(entry.key);
  if (first) throw new ConfigError(`${at}: ${section.label} ${entry.key}: duplicate key (first at line ${first.line})`);
  section.entries.set(entry.key, entry);
}

// What people bring from ssh_config; edit distance would not find these.
const sshConfigNames: Record<string, string> = { Host: 'Address', HostName: 'Address', Hostname: 'Address', User: 'Username' };

function unknownKeyHint(key: string, kind: Kind): string {
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
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * `ini` decodes every value. Synthetic section and key names and JSON-quoted values keep its
 * dot nesting, `;`/`#` cutting and `[]` arrays out of play; it still maps a quoted `true`,
 * `false` or `null` to a non-string, which String() turns back into the same text.
 */
function decodeValues(sections: RawSection[]): void {
  const text = sections
    .map((s, i) => [`[s${i}]`, ...[...s.entries.values()].map((e, j) => `k${j} = ${JSON.stringify(e.value)}`)].join('\n'))
    .join('\n');
  const decoded = ini.decode(text);
  sections.forEach((s, i) => {
    [...s.entries.values()].forEach((e, j) => {
      e.value = String(decoded[`s${i}`]?.[`k${j}`] ?? '');
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Values

/** Thrown by a value parser with what was expected; SectionValues adds file, line and key. */
class Expected extends Error {}

function invalid(expected: string): never {
  throw new Expected(expected);
}

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

  /** Parses `key` when present, else returns the fallback. */
  read<T>(key: string, parse: (value: string) => T, fallback: () => T): T {
    const entry = this.#section.entries.get(key);
    if (!entry) return fallback();
    try {
      return parse(entry.value);
    } catch (err) {
      if (err instanceof Expected) throw this.error(key, `${err.message}, got ${shown(entry)}`);
      throw err;
    }
  }

  optional<T>(key: string, parse: (value: string) => T): T | undefined {
    return this.read<T | undefined>(key, parse, () => undefined);
  }

  required<T>(key: string, parse: (value: string) => T): T {
    return this.read(key, parse, () => {
      throw this.error(key, 'required key missing');
    });
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

function wholeNumber(min: number, max: number, expected: string): (value: string) => number {
  return (value) => {
    // Number() alone would take `1e3`, `0x10`, `-0` and an empty value (as 0).
    const n = /^\d+$/.test(value) ? Number(value) : NaN;
    return n >= min && n <= max ? n : invalid(expected);
  };
}

function positiveSeconds(value: string): number {
  const n = /^(\d+\.?\d*|\.\d+)$/.test(value) ? Number(value) : NaN;
  return n > 0 && n <= maxTimerS ? n : invalid(`expected a number of seconds > 0 and <= ${maxTimerS}`);
}

function nonEmpty(expected: string): (value: string) => string {
  return (value) => (value === '' ? invalid(expected) : value);
}

function localPath(base: string, expected: string): (value: string) => string {
  return (value) => path.resolve(base, nonEmpty(expected)(value));
}

/** Remote paths are POSIX whatever the shore runs, and must not depend on the login folder. */
function remotePath(value: string): string {
  if (!value.startsWith('/')) invalid('expected an absolute path on the vessel (starting with /)');
  const normal = path.posix.normalize(value);
  return normal.length > 1 ? normal.replace(/\/+$/, '') : normal;
}

function identityPath(base: string): (value: string) => string {
  return (value) => {
    nonEmpty('expected the path of a private key file')(value);
    if (value === '~' || value.startsWith('~/')) return path.join(os.homedir(), value.slice(1));
    return path.resolve(base, value);
  };
}

function hostKey(value: string): string {
  return parseFingerprint(value) ?? invalid(fingerprintExpected);
}

function commaList(value: string): string[] {
  return [...new Set(value.split(',').map((item) => item.trim()).filter(Boolean))];
}

function globList(value: string): string[] {
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

function logLevel(value: string): LogLevel {
  return logLevels.find((level) => level === value) ?? invalid(`expected one of ${logLevels.join(', ')}`);
}

function metricsSocket(base: string): (value: string) => string | null {
  return (value) => {
    // Telegraf's own config writes the socket as unix:///path; accept it copied from there.
    const socket = value.replace(/^unix:\/\//, '');
    if (value !== '' && socket === '') invalid('expected the path of a unix socket');
    return socket === '' ? null : path.resolve(base, socket);
  };
}

// ---------------------------------------------------------------------------------------------
// Sections

function buildSettings(sections: RawSection[], file: string): Settings {
  const base = path.dirname(file);
  const monsterSection = sections.find((s) => s.kind === 'MONSTER');
  const monster = buildMonster(new SectionValues(file, monsterSection ?? emptyMonster()), base);
  const directories: Array<[DirectorySettings, SectionValues]> = [];
  const vessels: Array<[VesselSettings, SectionValues]> = [];
  for (const section of sections) {
    const values = new SectionValues(file, section);
    if (section.kind === 'Directory') directories.push([buildDirectory(values, base), values]);
    if (section.kind === 'Vessel') vessels.push([buildVessel(values, base), values]);
  }
  if (directories.length === 0) throw new ConfigError(`${file}: no [Directory NAME] section; at least one is required`);
  if (vessels.length === 0) throw new ConfigError(`${file}: no [Vessel NAME] section; at least one is required`);
  const warnings = [...quotedValues(sections, file), ...checkLocations(directories), ...checkIgnoreDirs(vessels, directories.map(([d]) => d.name))];
  return { file, monster, directories: directories.map(([d]) => d), vessels: vessels.map(([v]) => v), warnings };
}

function emptyMonster(): RawSection {
  return { kind: 'MONSTER', name: '', label: '[MONSTER]', line: 0, entries: new Map() };
}

function buildMonster(v: SectionValues, base: string): MonsterSettings {
  return {
    chunkSize: v.read('ChunkSize', wholeNumber(1, Number.MAX_SAFE_INTEGER, 'expected a whole number of bytes >= 1'), () => 10485760),
    database: v.read('Database', localPath(base, 'expected a file path'), () => defaultDatabase(base)),
    stableTimeMs: v.read('StableTime', wholeNumber(0, maxTimerMs, `expected a whole number of milliseconds from 0 to ${maxTimerMs}`), () => 2000),
    ignore: v.read('Ignore', globList, () => [...defaultIgnore]),
    rescanIntervalS: v.read('RescanInterval', wholeNumber(0, maxTimerS, `expected a whole number of seconds from 0 (off) to ${maxTimerS}`), () => 600),
    metricsSocket: v.read('MetricsSocket', metricsSocket(base), () => null),
    logLevel: v.read('LogLevel', logLevel, (): LogLevel => 'info'),
  };
}

/**
 * `database.sqlite3` in the unit's StateDirectory= under systemd (`$STATE_DIRECTORY`, the first
 * folder if it lists several: the settings file's folder is read-only there), else beside the
 * settings file.
 */
function defaultDatabase(base: string, env: NodeJS.ProcessEnv = process.env): string {
  const state = env.STATE_DIRECTORY?.split(':')[0];
  return path.resolve(state || base, 'database.sqlite3');
}

function buildDirectory(v: SectionValues, base: string): DirectorySettings {
  const location = v.required('Location', localPath(base, 'expected a folder path'));
  return { name: v.name, location, remoteLocation: v.read('RemoteLocation', remotePath, () => location) };
}

function buildVessel(v: SectionValues, base: string): VesselSettings {
  const vessel: VesselSettings = {
    name: v.name,
    address: v.required('Address', (value) => (/^[^\s]+$/.test(value) ? value : invalid('expected a host name or IP address'))),
    port: v.read('Port', wholeNumber(1, 65535, 'expected a whole number from 1 to 65535'), () => 22),
    username: v.read('Username', nonEmpty('expected a user name'), () => currentUser(v)),
    timeoutS: v.read('Timeout', positiveSeconds, () => 10),
    tempDir: v.read('TempDir', remotePath, () => '/tmp/.ContentMonster'),
    ignoreDirs: v.read('IgnoreDirs', commaList, () => []),
    concurrency: v.read('Concurrency', wholeNumber(1, 64, 'expected a whole number from 1 to 64'), () => 2),
  };
  // Optional fields are left out rather than set to undefined, so `'password' in vessel` means set.
  const password = v.optional('Password', nonEmpty('expected a password; leave the key out for none (white space then # or ; starts a comment)'));
  const passphrase = v.optional('Passphrase', nonEmpty('expected a passphrase; leave the key out for none (white space then # or ; starts a comment)'));
  const identityFile = v.optional('IdentityFile', identityPath(base));
  const pinned = v.optional('HostKey', hostKey);
  if (password !== undefined) vessel.password = password;
  if (passphrase !== undefined) vessel.passphrase = passphrase;
  if (identityFile !== undefined) vessel.identityFile = identityFile;
  if (pinned !== undefined) vessel.hostKey = pinned;
  return vessel;
}

function currentUser(v: SectionValues): string {
  try {
    return os.userInfo().username;
  } catch {
    // A uid without a passwd entry (some containers) has no name to log in with.
    throw v.error('Username', 'required here, since the user running contentmonster has no name');
  }
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

function checkIgnoreDirs(vessels: Array<[VesselSettings, SectionValues]>, names: string[]): string[] {
  const warnings: string[] = [];
  for (const [vessel, values] of vessels) {
    // The seed README itself names a Directory it does not define, so this only warns.
    for (const name of vessel.ignoreDirs.filter((n) => !names.includes(n))) {
      warnings.push(`${values.where('IgnoreDirs')}: no [Directory ${name}] is defined`);
    }
    if (names.every((n) => vessel.ignoreDirs.includes(n))) {
      warnings.push(`${values.where('IgnoreDirs')}: every Directory is ignored; nothing is sent to this vessel`);
    }
  }
  return warnings;
}
