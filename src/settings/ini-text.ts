/**
 * settings.ini as text: sections, keys, values and their line numbers.
 *
 * The file is read line by line before `ini` sees it, because `ini` alone gets the seed's own
 * files wrong: it cuts `Password = pa;ss#word` at `;`, ignores `[Directory x]  # comment` as a
 * header (its keys then land in the section before), nests `[Vessel a.b.c]`, turns `true` into a
 * boolean and merges duplicate sections silently. The line pass strips comments, finds sections,
 * keys and duplicates and keeps line numbers; `ini` then decodes the values, handed to it
 * JSON-quoted under synthetic names so none of those rules can apply.
 */
import ini from 'ini';
import { ConfigError } from '../errors.js';
import type { Kind } from './table.js';

export interface RawEntry {
  key: string;
  value: string;
  line: number;
}

export interface RawSection {
  kind: Kind;
  name: string;
  /** `[MONSTER]` or `[Kind name]`, as messages show it. */
  label: string;
  line: number;
  entries: Map<string, RawEntry>;
}

/**
 * Says whether a section of `kind` takes `key`: undefined when it does, else the end of the
 * "unknown key" message (a hint such as `; did you mean ...?`, or nothing).
 */
export type UnknownKey = (kind: Kind, key: string) => string | undefined;

const kinds: readonly Kind[] = ['MONSTER', 'Directory', 'Vessel'];
const sectionChoices = '[MONSTER], [Directory NAME] or [Vessel NAME]';

/**
 * The sections of the text, in file order, with their values decoded. Syntax, section and
 * key-name errors are ConfigErrors of one line, the first in file order.
 */
export function readSections(text: string, file: string, unknownKey: UnknownKey): RawSection[] {
  const sections = scanLines(text, file, unknownKey);
  decodeValues(sections);
  return sections;
}

function scanLines(text: string, file: string, unknownKey: UnknownKey): RawSection[] {
  const sections: RawSection[] = [];
  const firstLine = new Map<string, number>(); // section label -> line, to report duplicates
  let current: RawSection | undefined;
  const lines = text.split(/\r\n|\n|\r/);
  for (let i = 0; i < lines.length; i++) {
    const at = `${file}:${i + 1}`;
    const content = stripComment(lines[i]);
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
    const unknown = unknownKey(current.kind, entry.key);
    if (unknown !== undefined) throw new ConfigError(`${at}: ${current.label} ${entry.key}: unknown key${unknown}`);
    const first = current.entries.get(entry.key);
    if (first) throw new ConfigError(`${at}: ${current.label} ${entry.key}: duplicate key (first at line ${first.line})`);
    current.entries.set(entry.key, entry);
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
    const values = decoded[`s${i}`] as Record<string, string | boolean | null> | undefined;
    [...s.entries.values()].forEach((e, j) => {
      e.value = String(values?.[`k${j}`] ?? '');
    });
  });
}
