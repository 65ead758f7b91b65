// A stand-in for Telegraf's socket_listener: a unix stream socket that collects InfluxDB line
// protocol lines, and a parser that undoes the escaping, so tests check names, tags and values.
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface MetricLine {
  measurement: string;
  tags: Record<string, string>;
  fields: Record<string, number | string | boolean>;
  time?: bigint;
}

/** Splits at `sep` outside double quotes and not after a backslash. */
function splitUnescaped(text: string, sep: string, limit = Infinity): string[] {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch === '\\' && i + 1 < text.length) {
      current += ch + text[i + 1];
      i++;
      continue;
    }
    if (ch === '"') quoted = !quoted;
    if (ch === sep && !quoted && parts.length < limit - 1) {
      parts.push(current);
      current = '';
      continue;
    }
    current += ch;
  }
  parts.push(current);
  return parts;
}

const unescape = (s: string): string => s.replace(/\\(.)/g, '$1');

export function parseLine(line: string): MetricLine {
  const [head = '', fieldText = '', time] = splitUnescaped(line, ' ');
  const [measurement = '', ...tagParts] = splitUnescaped(head, ',');
  const tags: Record<string, string> = {};
  for (const t of tagParts) {
    const [k = '', v = ''] = splitUnescaped(t, '=', 2);
    tags[unescape(k)] = unescape(v);
  }
  const fields: MetricLine['fields'] = {};
  for (const f of splitUnescaped(fieldText, ',')) {
    const [k = '', v = ''] = splitUnescaped(f, '=', 2);
    if (v.startsWith('"')) fields[unescape(k)] = v.slice(1, -1).replace(/\\(["\\])/g, '$1');
    else if (v === 'true' || v === 'false') fields[unescape(k)] = v === 'true';
    else if (/^-?[\d.]+(e[-+]?\d+)?$/.test(v)) fields[unescape(k)] = Number(v);
    else throw new Error(`not a field value: ${v} in ${line}`);
  }
  return { measurement: unescape(measurement), tags, fields, time: time === undefined ? undefined : BigInt(time) };
}

export interface MetricsServer {
  path: string;
  /** Complete lines received so far, in order. */
  lines(): string[];
  parsed(): MetricLine[];
  clear(): void;
  stop(): Promise<void>;
}

export async function startMetricsServer(): Promise<MetricsServer> {
  const dir = await mkdtemp(join(tmpdir(), 'cm-metrics-'));
  const path = join(dir, 'telegraf.sock');
  let received: string[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    let pending = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      pending += d;
      const parts = pending.split('\n');
      pending = parts.pop()!;
      received.push(...parts.filter((l) => l !== ''));
    });
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return {
    path,
    lines: () => [...received],
    parsed: () => received.map(parseLine),
    clear: () => {
      received = [];
    },
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
