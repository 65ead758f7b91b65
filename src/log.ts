/**
 * The root logger. pino writes synchronously to stdout (no transport worker threads, which
 * lose lines on a hard exit). Three formats:
 * - `journal`: readable text with a `<N>` syslog priority prefix, which journald reads, so
 *   `journalctl -p warning` works; chosen automatically when `JOURNAL_STREAM` is set;
 * - `text`: the same with a timestamp and level name, for a terminal;
 * - `json`: pino's own lines.
 * `withPriority` gives text written to stderr outside the logger the same prefix under journald.
 * Passwords and passphrases are redacted wherever they appear in a log object.
 */
import { pino, type Logger, type DestinationStream } from 'pino';

export type { Logger };
export type LogFormat = 'auto' | 'text' | 'json' | 'journal';
export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof logLevels)[number];

const syslogPriority: Record<number, number> = { 10: 7, 20: 7, 30: 6, 40: 4, 50: 3, 60: 2 };
const levelName: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
// pino's own fields, not shown as key=value.
const hidden = new Set(['level', 'time', 'msg', 'pid', 'hostname']);

/** `key=value` with the value quoted only when it needs to be. */
function formatField(key: string, value: unknown): string {
  if (key === 'err' && value && typeof value === 'object' && 'stack' in value) {
    return `\n${String((value).stack)}`;
  }
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return `${key}=${/^[^\s"=]*$/.test(text) && text !== '' ? text : JSON.stringify(text)}`;
}

export function formatLine(line: string, style: 'text' | 'journal'): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const level = Number(record.level);
  const fields = Object.entries(record).filter(([k]) => !hidden.has(k)).map(([k, v]) => formatField(k, v));
  const body = [typeof record.msg === 'string' ? record.msg : '', ...fields].join(' ');
  if (style === 'journal') {
    // journald takes the prefix of the first line only; continuation lines of a stack trace
    // get their own prefix so they keep the priority.
    const prefix = `<${syslogPriority[level] ?? 6}>`;
    return body.split('\n').map((l) => prefix + l).join('\n') + '\n';
  }
  const time = new Date(Number(record.time)).toISOString();
  return `${time} ${(levelName[level] ?? 'INFO').padEnd(5)} ${body}\n`;
}

/** Where formatted text lines go instead of stdout (the mirror's progress display). */
export interface TextSink {
  write(text: string): void;
}

function textDestination(style: 'text' | 'journal', sink?: TextSink): DestinationStream {
  const out = sink ?? pino.destination({ dest: 1, sync: true });
  return { write: (line: string) => out.write(formatLine(line, style)) };
}

/** Syslog priorities, as journald reads them from a `<N>` line prefix. */
export const priority = { error: 3, warning: 4, info: 6 } as const;

/**
 * Text written outside the logger (a fatal error, a usage error from the command line): under
 * journald (`JOURNAL_STREAM` set, as for the logger's `auto` format) every line gets the `<N>`
 * prefix, so `journalctl -p err` shows why a unit stopped; elsewhere the text is unchanged.
 */
export function withPriority(text: string, level: number, env: NodeJS.ProcessEnv = process.env): string {
  if (!env.JOURNAL_STREAM) return text;
  const lines = text.split('\n');
  return lines.map((line, i) => (i === lines.length - 1 && line === '' ? line : `<${level}>${line}`)).join('\n');
}

export function resolveFormat(format: LogFormat, env: NodeJS.ProcessEnv = process.env): Exclude<LogFormat, 'auto'> {
  if (format !== 'auto') return format;
  return env.JOURNAL_STREAM ? 'journal' : 'text';
}

/** `sink` takes the text lines (text and journal formats) in place of stdout. */
export function createLogger(level: LogLevel, format: LogFormat = 'auto', sink?: TextSink): Logger {
  const resolved = resolveFormat(format);
  const options = {
    level,
    base: undefined,
    // Secrets are never put in a log object on purpose; this is the safety net, two levels deep.
    redact: {
      paths: ['password', 'passphrase', '*.password', '*.passphrase', '*.*.password', '*.*.passphrase', '*[*].password', '*[*].passphrase'],
      censor: '[redacted]',
    },
  };
  const destination = resolved === 'json' ? pino.destination({ dest: 1, sync: true }) : textDestination(resolved, sink);
  return pino(options, destination);
}
