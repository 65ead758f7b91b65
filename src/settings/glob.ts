/**
 * Base-name globs for the `Ignore` setting.
 *
 * Only `*`, `?` and `[...]` classes are special; everything else, backslash included, is
 * literal (write `[*]` or `[[]` for a literal `*` or `[`). Globs match a whole base name, so
 * there is no `/` handling, and a leading dot is not special: `*` and `.*` both match `.hidden`.
 */

// Characters that mean something to RegExp outside a class; everything else is written as is
// (the `u` flag rejects escapes of non-syntax characters such as `\-`).
const regexSpecials = /[\\^$.*+?()[\]{}|/]/g;
// Inside a class only these can change its meaning.
const classSpecials = /[\\\]\[^-]/g;

/** Compiles one glob to an anchored RegExp over a base name; throws on a reversed range. */
export function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${globSource(glob)}$`, 'su');
}

/** One predicate for a list of globs; an empty list ignores nothing. */
export function makeIgnoreMatcher(globs: string[]): (baseName: string) => boolean {
  if (globs.length === 0) return () => false;
  // One alternation instead of a loop: a single pass per name, and the per-event cost stays
  // flat as the list grows.
  const re = new RegExp(`^(?:${globs.map(globSource).join('|')})$`, 'su');
  return (baseName) => re.test(baseName);
}

function globSource(glob: string): string {
  const chars = Array.from(glob); // code points, so `?` and classes see whole characters
  let out = '';
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (c === '*') out += '.*';
    else if (c === '?') out += '.';
    else if (c === '[') {
      const cls = classSource(chars, i);
      if (cls) {
        out += cls.source;
        i = cls.end;
      } else out += '\\[';
    } else out += c.replace(regexSpecials, '\\$&');
  }
  return out;
}

/**
 * Reads the class opening at `start`. Returns undefined when it is not closed, so that a stray
 * `[` is a literal, as in fnmatch. `]` right after `[` or `[!` is a member, not the end.
 */
function classSource(chars: string[], start: number): { source: string; end: number } | undefined {
  let i = start + 1;
  const negate = chars[i] === '!' || chars[i] === '^';
  if (negate) i++;
  const members: string[] = [];
  for (let first = true; i < chars.length; i++, first = false) {
    const c = chars[i];
    if (c === ']' && !first) {
      return { source: `[${negate ? '^' : ''}${classBody(members)}]`, end: i };
    }
    members.push(c);
  }
  return undefined;
}

// `a-z` is a range; a `-` first or last is a literal.
function classBody(members: string[]): string {
  let out = '';
  for (let i = 0; i < members.length; i++) {
    const c = members[i];
    const to = members[i + 2];
    if (members[i + 1] === '-' && to !== undefined) {
      if (c.codePointAt(0)! > to.codePointAt(0)!) throw new Error(`reversed range \`${c}-${to}\` in a [...] class`);
      out += `${escapeInClass(c)}-${escapeInClass(to)}`;
      i += 2;
    } else out += escapeInClass(c);
  }
  return out;
}

function escapeInClass(c: string): string {
  return c.replace(classSpecials, '\\$&');
}
