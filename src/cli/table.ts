/** Plain-text tables for the commands' reports (`check`, `status`). */

/** Left-aligned columns two spaces apart; the last column is not padded (it may be long). */
export function table(header: string[], rows: string[][]): string[] {
  const all = [header, ...rows.map((row) => row.map(oneLine))];
  const widths = header.map((_, i) => Math.max(...all.map((row) => row[i].length)));
  return all.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]))).join('  '));
}

/** A file name or error with a newline must not break the table. */
const oneLine = (s: string) => s.replace(/[\r\n\t]/g, (c) => (c === '\t' ? '\\t' : c === '\n' ? '\\n' : '\\r'));
