/**
 * Text from elsewhere (a vessel's stderr, a path from the settings) shown inside one line of a
 * log or a report: a newline or an escape sequence in it must not break the line or the
 * terminal.
 */

/** Remote text on one line, control characters as spaces, at most `max` characters. */
export function oneLine(text: string, max = 200): string {
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

/** A path as typed, or JSON-quoted when it holds control characters (a newline would break the line). */
export function shownPath(path: string): string {
  return /[\u0000-\u001f\u007f]/.test(path) ? JSON.stringify(path) : path;
}
