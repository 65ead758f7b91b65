import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { formatLine, logLevels, resolveFormat } from '../../src/log.js';

const logModule = pathToFileURL(fileURLToPath(new URL('../../src/log.ts', import.meta.url))).href;
const projectRoot = fileURLToPath(new URL('../..', import.meta.url));

const pinoLevel = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 } as const;

function line(record: Record<string, unknown>): string {
  return JSON.stringify({ time: Date.UTC(2024, 4, 6, 7, 8, 9, 123), pid: 1234, hostname: 'shore', ...record });
}

const stack = 'Error: connection lost\n    at first (/app/a.js:1:1)\n    at second (/app/b.js:2:2)';

describe('formatLine, journal style', () => {
  const cases: [keyof typeof pinoLevel, string][] = [
    ['trace', '<7>'],
    ['debug', '<7>'],
    ['info', '<6>'],
    ['warn', '<4>'],
    ['error', '<3>'],
    ['fatal', '<2>'],
  ];
  for (const [name, prefix] of cases) {
    it(`${name} gets the syslog prefix ${prefix}`, () => {
      const out = formatLine(line({ level: pinoLevel[name], msg: 'hello there' }), 'journal');
      assert.equal(out, `${prefix}hello there\n`);
    });
  }

  it('has no timestamp, pid or hostname (journald adds its own)', () => {
    const out = formatLine(line({ level: 30, msg: 'm', vessel: 'ship1' }), 'journal');
    assert.equal(out, '<6>m vessel=ship1\n');
    assert.doesNotMatch(out, /2024|1234|shore/);
  });

  it('an unknown level falls back to info (<6>)', () => {
    assert.equal(formatLine(line({ level: 35, msg: 'odd' }), 'journal'), '<6>odd\n');
  });

  it('a multi-line err stack gets the prefix on every line', () => {
    const out = formatLine(line({ level: 50, msg: 'failed', err: { type: 'Error', message: 'connection lost', stack } }), 'journal');
    assert.ok(out.endsWith('\n'));
    const lines = out.slice(0, -1).split('\n');
    assert.equal(lines.length, 4);
    for (const l of lines) assert.ok(l.startsWith('<3>'), `line without prefix: ${JSON.stringify(l)}`);
    assert.ok(lines[0].startsWith('<3>failed'));
    assert.equal(lines[1], '<3>Error: connection lost');
    assert.equal(lines[3], '<3>    at second (/app/b.js:2:2)');
  });

  it('a multi-line message gets the prefix on every line too', () => {
    assert.equal(formatLine(line({ level: 40, msg: 'one\ntwo' }), 'journal'), '<4>one\n<4>two\n');
  });

  it('a field value with a newline stays on one line (JSON-escaped)', () => {
    const out = formatLine(line({ level: 30, msg: 'm', file: 'a\nb' }), 'journal');
    assert.equal(out, '<6>m file="a\\nb"\n');
  });

  it('a line that is not JSON is passed through unchanged', () => {
    assert.equal(formatLine('not json at all', 'journal'), 'not json at all');
    assert.equal(formatLine('not json at all', 'text'), 'not json at all');
  });
});

describe('formatLine, text style', () => {
  it('starts with the ISO time and a padded level name', () => {
    const out = formatLine(line({ level: 30, msg: 'started' }), 'text');
    assert.match(out, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z /);
    assert.equal(out, '2024-05-06T07:08:09.123Z INFO  started\n');
    assert.equal(formatLine(line({ level: 40, msg: 'w' }), 'text'), '2024-05-06T07:08:09.123Z WARN  w\n');
    assert.equal(formatLine(line({ level: 50, msg: 'e' }), 'text'), '2024-05-06T07:08:09.123Z ERROR e\n');
    assert.equal(formatLine(line({ level: 20, msg: 'd' }), 'text'), '2024-05-06T07:08:09.123Z DEBUG d\n');
  });

  it('quotes field values with spaces, quotes, = or nothing in them; leaves plain ones bare', () => {
    const out = formatLine(line({
      level: 30, msg: 'hi', file: 'a b.txt', plain: 'ship-1', n: 3, yes: true, empty: '', eq: 'a=b', q: 'say "x"', tab: 'a\tb', nul: null, obj: { a: 1 },
    }), 'text');
    assert.equal(
      out,
      '2024-05-06T07:08:09.123Z INFO  hi file="a b.txt" plain=ship-1 n=3 yes=true empty="" eq="a=b" q="say \\"x\\"" tab="a\\tb" nul=null obj="{\\"a\\":1}"\n',
    );
  });

  it('an err with a stack is written after the message, on its own lines', () => {
    const out = formatLine(line({ level: 50, msg: 'failed', err: { message: 'connection lost', stack } }), 'text');
    assert.equal(out, `2024-05-06T07:08:09.123Z ERROR failed \n${stack}\n`);
  });

  it('an err that is a plain string is an ordinary field', () => {
    const out = formatLine(line({ level: 40, msg: 'retry', err: 'timed out' }), 'text');
    assert.equal(out, '2024-05-06T07:08:09.123Z WARN  retry err="timed out"\n');
  });
});

describe('resolveFormat', () => {
  it('auto is journal under systemd (JOURNAL_STREAM set), text otherwise', () => {
    assert.equal(resolveFormat('auto', { JOURNAL_STREAM: 'x' }), 'journal');
    assert.equal(resolveFormat('auto', {}), 'text');
    assert.equal(resolveFormat('auto', { JOURNAL_STREAM: '' }), 'text');
  });

  it('an explicit format wins over the environment', () => {
    assert.equal(resolveFormat('json', { JOURNAL_STREAM: 'x' }), 'json');
    assert.equal(resolveFormat('text', { JOURNAL_STREAM: 'x' }), 'text');
    assert.equal(resolveFormat('journal', {}), 'journal');
  });

  it('logLevels lists pino levels from most to least severe', () => {
    assert.deepEqual([...logLevels], ['fatal', 'error', 'warn', 'info', 'debug', 'trace']);
  });
});

/** Runs `body` in a child process with `createLogger` in scope; returns its stdout. */
function runLogger(body: string, env: NodeJS.ProcessEnv = {}): string {
  const code = `import { createLogger } from ${JSON.stringify(logModule)};\n${body}`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
    cwd: projectRoot,
    encoding: 'utf8',
    timeout: 60_000,
    env: { ...process.env, JOURNAL_STREAM: undefined, ...env },
  });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

describe('createLogger (child process)', () => {
  for (const format of ['json', 'journal', 'text'] as const) {
    it(`redacts password and a nested passphrase in ${format} output`, () => {
      const out = runLogger(`
        const log = createLogger('info', '${format}');
        log.info({ password: 'hunter2', vessel: { name: 'ship1', passphrase: 'pp' } }, 'connecting');
      `);
      assert.ok(out.includes('connecting'), out);
      assert.ok(out.includes('ship1'), out);
      assert.ok(!out.includes('hunter2'), out);
      assert.ok(!out.includes('pp"'), out);
      assert.ok(!out.includes('pp\\"'), out);
      assert.ok(out.includes('[redacted]'), out);
    });
  }

  // The redact paths are a safety net two levels deep, array elements included.
  it('redacts passwords nested two levels deep and inside arrays', () => {
    const out = runLogger(`
      const log = createLogger('info', 'json');
      log.info({ settings: { vessel: { password: 'deep-secret' } }, vessels: [{ name: 'a', passphrase: 'array-secret' }] }, 'settings');
      log.info({ err: Object.assign(new Error('e'), { password: 'err-secret' }) }, 'with err');
    `);
    assert.ok(!out.includes('deep-secret'), out);
    assert.ok(!out.includes('array-secret'), out);
    assert.ok(!out.includes('err-secret'), out);
    assert.equal(out.split('[redacted]').length - 1, 3, out);
  });

  it('json output is one pino JSON object per line at the chosen level', () => {
    const out = runLogger(`
      const log = createLogger('info', 'json');
      log.debug('hidden');
      log.info({ vessel: 'ship1' }, 'shown');
      log.warn('careful');
    `);
    const records = out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(records.map((r) => [r.level, r.msg]), [[30, 'shown'], [40, 'careful']]);
    assert.equal(records[0].vessel, 'ship1');
  });

  it('auto picks journal when JOURNAL_STREAM is set, and an error stack is prefixed on every line', () => {
    const out = runLogger(`
      const log = createLogger('debug', 'auto');
      log.debug('dbg');
      log.error({ err: new Error('boom') }, 'failed');
    `, { JOURNAL_STREAM: '8:1234' });
    const lines = out.trimEnd().split('\n');
    assert.equal(lines[0], '<7>dbg');
    assert.ok(lines.length > 3, out);
    for (const l of lines.slice(1)) assert.ok(l.startsWith('<3>'), `unprefixed line: ${JSON.stringify(l)}`);
    assert.ok(lines.includes('<3>Error: boom'), out);
  });
});
