import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ConfigError } from '../../src/errors.js';
import { loadSettings, parseSettings, resolveSettingsPath, settingsTable } from '../../src/settings/load.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixtures = path.join(root, 'test/fixtures/settings');
const file = '/etc/cm/settings.ini';
// The smallest valid file, appended where a test is about something else.
const minimal = '[Directory d]\nLocation = /srv/d\n[Vessel v]\nAddress = v.example';

function parse(...lines: string[]) {
  return parseSettings(lines.join('\n'), file);
}

/** The ConfigError message for these lines; every one must be a single line. */
function failure(load: () => unknown): string {
  try {
    load();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    assert.doesNotMatch(err.message, /[\r\n]/);
    return err.message;
  }
  assert.fail('expected a ConfigError');
}

const failureOf = (...lines: string[]) => failure(() => parse(...lines));

/** BandwidthLimit when not set. */
const unlimited = { entries: [{ weekMinute: 0, rate: null, token: 'off' }], text: 'off' };

/**
 * The ConfigError message of loadSettings(file). Root reads any file, so as root the load runs
 * in a child process that becomes `nobody` to see a real EACCES. The child loads the code as
 * root and only then drops to nobody: `nobody` itself may not be able to enter the checkout at
 * all (a clone in a 0700 temporary folder), and needs to read nothing but the settings file.
 */
function loadAsUnprivileged(target: string): string {
  if (process.getuid?.() !== 0) return failure(() => loadSettings(target));
  const script = `import(${JSON.stringify(pathToFileURL(path.join(root, 'src/settings/load.ts')).href)}).then((m) => {
    process.setgroups([]); process.setgid(65534); process.setuid(65534);
    try { m.loadSettings(process.argv[1]); } catch (err) { process.stdout.write(err.constructor.name + ' ' + err.message); }
  })`;
  const child = spawnSync(process.execPath, ['--import', 'tsx', '-e', script, target], { cwd: root, encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  assert.match(child.stdout, /^ConfigError /);
  return child.stdout.slice('ConfigError '.length);
}

describe('the seed README snippets', () => {
  const fixture = path.join(fixtures, 'seed-readme.ini');
  const settings = loadSettings(fixture);

  it('load to the values they state', () => {
    assert.equal(settings.file, fixture);
    assert.equal(settings.monster.chunkSize, 10485760);
    assert.deepEqual(settings.directories, [
      { name: 'sampledir', location: '/home/user/replication', remoteLocation: '/home/user/replication', priority: 0, order: 'size' },
    ]);
    assert.deepEqual(settings.vessels, [
      {
        name: 'samplevessel',
        address: 'example.com',
        port: 22,
        username: 'replication',
        password: 'verysecret',
        passphrase: 'moresecret',
        timeoutS: 10,
        tempDir: '/tmp/.ContentMonster',
        ignoreDirs: ['sampledir', 'anotherdir'],
        concurrency: 2,
        bandwidthLimit: unlimited,
        timeZone: 'UTC',
      },
    ]);
  });

  it('warn, without failing, that IgnoreDirs names an undefined Directory', () => {
    assert.ok(settings.warnings.includes(`${fixture}:12: [Vessel samplevessel] IgnoreDirs: no [Directory anotherdir] is defined`), settings.warnings.join('\n'));
    assert.ok(settings.warnings.every((w) => !w.includes('\n')));
  });
});

describe('settings.example.ini', () => {
  const example = path.join(root, 'settings.example.ini');

  it('loads as shipped, without warnings', () => {
    const settings = loadSettings(example);
    assert.equal(settings.directories[0]?.location, '/home/user/replication');
    assert.equal(settings.vessels[0]?.address, 'example.com');
    assert.deepEqual(settings.warnings, []);
  });

  it('still loads with every #Key = default line switched on', () => {
    const text = fs.readFileSync(example, 'utf8').replace(/^#(?=[A-Za-z]+ =)/gm, '');
    const settings = parseSettings(text, example);
    assert.equal(settings.monster.metricsSocket, '/run/telegraf/telegraf.sock');
    assert.equal(settings.vessels[0]?.password, 'verysecret');
    assert.equal(settings.vessels[0]?.hostKey, 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU');
  });

  it('documents every key of the option table', () => {
    const text = fs.readFileSync(example, 'utf8');
    for (const { key } of settingsTable) assert.match(text, new RegExp(`^#?${key} =`, 'm'), key);
  });
});

describe('settingsTable', () => {
  it('lists each key once per section, with Location and Address required', () => {
    const ids = settingsTable.map((o) => `${o.section}.${o.key}`);
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual(settingsTable.filter((o) => o.required).map((o) => o.key), ['Location', 'Address']);
    assert.ok(settingsTable.every((o) => o.help.length > 0 && o.type.length > 0));
  });

  it('gives every optional key a default (text that parses, or a function), and marks the secrets', () => {
    const ctx = { base: '/etc/cm', env: {} };
    for (const o of settingsTable) {
      if (typeof o.default === 'string') assert.doesNotThrow(() => o.parse(o.default as string, ctx), `${o.key} = ${o.default}`);
      if (o.required) assert.equal(o.default, undefined, o.key);
    }
    assert.deepEqual(settingsTable.filter((o) => o.secret).map((o) => o.key), ['Password', 'Passphrase']);
    assert.deepEqual(settingsTable.filter((o) => !o.required && o.default === undefined).map((o) => o.key), ['Password', 'Passphrase', 'IdentityFile', 'HostKey']);
  });
});

describe('defaults', () => {
  it('fill a file with only the required keys', () => {
    const settings = parseSettings(minimal, file);
    assert.deepEqual(settings.monster, {
      chunkSize: 10485760,
      database: '/etc/cm/database.sqlite3',
      stableTimeMs: 2000,
      ignore: ['.*', '*.part', '*.tmp', '*~', '*.swp'],
      rescanIntervalS: 600,
      metricsSocket: null,
      logLevel: 'info',
      threads: 0,
      bandwidthLimit: unlimited,
      timeZone: 'UTC',
    });
    assert.deepEqual(settings.directories, [{ name: 'd', location: '/srv/d', remoteLocation: '/srv/d', priority: 0, order: 'size' }]);
    assert.deepEqual(settings.vessels, [
      {
        name: 'v',
        address: 'v.example',
        port: 22,
        username: os.userInfo().username,
        timeoutS: 10,
        tempDir: '/tmp/.ContentMonster',
        ignoreDirs: [],
        concurrency: 2,
        bandwidthLimit: unlimited,
        timeZone: 'UTC',
      },
    ]);
    assert.deepEqual(settings.warnings, []);
  });
});

describe('every key set', () => {
  const fixture = path.join(fixtures, 'full.ini');
  const settings = loadSettings(fixture);

  it('reads MONSTER, resolving relative paths against the settings folder', () => {
    assert.deepEqual(settings.monster, {
      chunkSize: 1048576,
      database: path.join(fixtures, 'state/cm.sqlite3'),
      stableTimeMs: 500,
      ignore: ['*.partial', '[!a-z]*.bak', '~*'],
      rescanIntervalS: 0,
      metricsSocket: '/run/telegraf/telegraf.sock',
      logLevel: 'debug',
      threads: 'auto',
      bandwidthLimit: {
        entries: [
          { weekMinute: 480, rate: 4 * 1024 * 1024, token: 'Mon-08:00,4M' },
          { weekMinute: 5 * 1440, rate: null, token: 'Sat-00:00,off' },
        ],
        text: 'Mon-08:00,4M Sat-00:00,off',
      },
      timeZone: 'Europe/Berlin',
    });
  });

  it('normalises Directory paths', () => {
    assert.deepEqual(settings.directories, [
      { name: 'photos', location: '/srv/photos', remoteLocation: '/data/photos', priority: -3, order: 'mtime' },
      { name: 'docs', location: path.join(fixtures, 'docs'), remoteLocation: path.join(fixtures, 'docs'), priority: 0, order: 'size' },
    ]);
  });

  it('reads every Vessel key, keeping dotted names and secrets with ; and #', () => {
    assert.deepEqual(settings.vessels[0], {
      name: 'boat.one.example',
      address: '192.0.2.10',
      port: 2222,
      username: 'replication',
      password: 'pa;ss#word',
      passphrase: 'x#y',
      timeoutS: 2.5,
      tempDir: '/var/tmp/cm',
      ignoreDirs: ['docs'],
      identityFile: path.join(os.homedir(), '.ssh/id_ed25519'),
      hostKey: 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU',
      concurrency: 8,
      bandwidthLimit: { entries: [{ weekMinute: 0, rate: 512 * 1024, token: '512k' }], text: '512k' },
      timeZone: 'America/New_York',
    });
    assert.equal(settings.vessels[1]?.identityFile, path.join(fixtures, 'keys/two'));
    assert.deepEqual(settings.warnings, []);
  });
});

describe('comments and values', () => {
  it('keep ; and # that follow no white space', () => {
    const v = parse(minimal, 'Password = pa;ss#word', 'Passphrase = a;b  ;c').vessels[0];
    assert.equal(v.password, 'pa;ss#word');
    assert.equal(v.passphrase, 'a;b');
  });

  it('cut at white space then # or ;, tabs included', () => {
    assert.equal(parse(minimal, 'Password = x#y ;z').vessels[0]?.password, 'x#y');
    assert.equal(parse(minimal, 'Username = u\t# tab comment').vessels[0]?.username, 'u');
  });

  it('accept a comment after a section header', () => {
    const settings = parse('[Directory sampledir]  # Each directory ...', 'Location = /a', '[Vessel v] ; note', 'Address = h');
    assert.equal(settings.directories[0]?.name, 'sampledir');
    assert.equal(settings.vessels[0]?.name, 'v');
  });

  it('skip full-line comments after white space', () => {
    assert.equal(parse('  # c', '\t; c', minimal).directories.length, 1);
  });

  it('keep dots in section names instead of nesting', () => {
    const settings = parse('[Directory x.y]', 'Location = /x', '[Vessel a.b.c]', 'Address = h', 'IgnoreDirs = x.y');
    assert.equal(settings.directories[0]?.name, 'x.y');
    assert.equal(settings.vessels[0]?.name, 'a.b.c');
    assert.deepEqual(settings.vessels[0]?.ignoreDirs, ['x.y']);
  });

  it('stay strings: true, false, null and quotes are text', () => {
    const v = parse(minimal, 'Username = true', 'Password = "null"', 'Passphrase = false').vessels[0];
    assert.equal(v.username, 'true');
    assert.equal(v.password, '"null"');
    assert.equal(v.passphrase, 'false');
  });

  it('are trimmed, and numbers may carry surrounding white space', () => {
    assert.equal(parse('[MONSTER]', 'ChunkSize =    12   ', minimal).monster.chunkSize, 12);
    assert.equal(parse('[MONSTER]', 'ChunkSize=7', minimal).monster.chunkSize, 7);
  });

  it('read CRLF files and a UTF-8 byte order mark', () => {
    assert.equal(parseSettings(`\uFEFF${minimal.replace(/\n/g, '\r\n')}`, file).vessels[0]?.address, 'v.example');
  });

  it('an empty Ignore ignores nothing, and empty items are dropped', () => {
    assert.deepEqual(parse('[MONSTER]', 'Ignore =', minimal).monster.ignore, []);
    assert.deepEqual(parse('[MONSTER]', 'Ignore = , *.x ,', minimal).monster.ignore, ['*.x']);
  });

  it('an empty MetricsSocket is off; a relative one resolves against the settings folder', () => {
    assert.equal(parse('[MONSTER]', 'MetricsSocket =', minimal).monster.metricsSocket, null);
    assert.equal(parse('[MONSTER]', 'MetricsSocket = m.sock', minimal).monster.metricsSocket, '/etc/cm/m.sock');
  });

  it('Threads: off (0) by default, auto, or a count', () => {
    assert.equal(parse(minimal).monster.threads, 0);
    assert.equal(parse('[MONSTER]', 'Threads = off', minimal).monster.threads, 0);
    assert.equal(parse('[MONSTER]', 'Threads = auto', minimal).monster.threads, 'auto');
    assert.equal(parse('[MONSTER]', 'Threads = 3', minimal).monster.threads, 3);
  });

  it('a HostKey with base64 padding is accepted without it', () => {
    const key = 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU';
    assert.equal(parse(minimal, `HostKey = ${key}=`).vessels[0]?.hostKey, key);
  });

  it('a root RemoteLocation and TempDir stay /', () => {
    const settings = parse('[Directory d]', 'Location = /srv/d', 'RemoteLocation = /', '[Vessel v]', 'Address = h', 'TempDir = //');
    assert.equal(settings.directories[0]?.remoteLocation, '/');
    assert.equal(settings.vessels[0]?.tempDir, '/');
  });
});

describe('errors, one line each', () => {
  it('a bad number names file, line, section and key', () => {
    assert.equal(
      failureOf('[MONSTER]', '# chunks', 'ChunkSize = big', minimal),
      '/etc/cm/settings.ini:3: [MONSTER] ChunkSize: expected a whole number of bytes >= 1, got `big`',
    );
  });

  for (const bad of ['1e3', '12abc', '-1', '0x10', '1.5', '0', '']) {
    it(`ChunkSize = ${bad || '(empty)'} is refused`, () => {
      assert.match(failureOf('[MONSTER]', `ChunkSize = ${bad}`, minimal), /^\/etc\/cm\/settings\.ini:2: \[MONSTER\] ChunkSize: expected a whole number of bytes >= 1, got /);
    });
  }

  it('an empty value is described, not shown as ``', () => {
    assert.match(failureOf('[MONSTER]', 'StableTime =', minimal), /StableTime: expected a whole number of milliseconds .*, got an empty value$/);
  });

  it('other numbers check their ranges', () => {
    assert.match(failureOf(minimal, 'Port = 0'), /\[Vessel v\] Port: expected a whole number from 1 to 65535, got `0`$/);
    assert.match(failureOf(minimal, 'Port = 65536'), /Port: expected a whole number from 1 to 65535, got `65536`$/);
    assert.match(failureOf(minimal, 'Concurrency = 65'), /Concurrency: expected a whole number from 1 to 64, got `65`$/);
    assert.match(failureOf(minimal, 'Concurrency = 0'), /Concurrency: expected a whole number from 1 to 64/);
    assert.match(failureOf(minimal, 'Timeout = 0'), /Timeout: expected a number of seconds > 0/);
    assert.match(failureOf(minimal, 'Timeout = 1e1'), /Timeout: expected a number of seconds > 0/);
    assert.match(failureOf('[MONSTER]', 'RescanInterval = -5', minimal), /RescanInterval: expected a whole number of seconds from 0 \(off\)/);
    assert.match(failureOf('[MONSTER]', 'Threads = 0', minimal), /:2: \[MONSTER\] Threads: expected off, auto or a whole number from 1 to 64, got `0`$/);
    assert.match(failureOf('[MONSTER]', 'Threads = on', minimal), /Threads: expected off, auto or a whole number from 1 to 64, got `on`$/);
    assert.equal(parse(minimal, 'Timeout = .5').vessels[0]?.timeoutS, 0.5);
  });

  it('an unknown key suggests the closest valid one', () => {
    const text = ['[Directory d]', 'Location = /d', '', '# vessels', '[Vessel a]', 'Address = h', 'Port = 22', '', 'Concurency = 4'];
    assert.equal(failureOf(...text), '/etc/cm/settings.ini:9: [Vessel a] Concurency: unknown key; did you mean `Concurrency`?');
    assert.match(failureOf('[MONSTER]', 'chunksize = 1', minimal), /:2: \[MONSTER\] chunksize: unknown key; did you mean `ChunkSize`\?$/);
  });

  it('an unknown key with nothing close gets no suggestion', () => {
    assert.equal(failureOf('[MONSTER]', 'Frobnicate = 1', minimal), '/etc/cm/settings.ini:2: [MONSTER] Frobnicate: unknown key');
    assert.match(failureOf(minimal, 'Colour = 1'), /:5: \[Vessel v\] Colour: unknown key$/);
  });

  it('swapped letters and ssh_config names find the key', () => {
    assert.match(failureOf(minimal, 'Prot = 22'), /Prot: unknown key; did you mean `Port`\?$/);
    assert.match(failureOf(minimal, 'HostName = h'), /HostName: unknown key; did you mean `Address`\?$/);
    assert.match(failureOf(minimal, 'User = u'), /User: unknown key; did you mean `Username`\?$/);
    assert.match(failureOf(minimal, 'Adress = h'), /Adress: unknown key; did you mean `Address`\?$/);
  });

  it('a key from another kind of section says where it belongs', () => {
    assert.match(failureOf(minimal, 'Location = /x'), /\[Vessel v\] Location: unknown key; `Location` belongs in \[Directory NAME\]$/);
  });

  it('a duplicate section names the first one', () => {
    const text = ['[Vessel v]', 'Address = a', '#', '[Directory x]', 'Location = /a', '', '', '', '', '', '', '[Directory x]', 'Location = /b'];
    assert.equal(failureOf(...text), '/etc/cm/settings.ini:12: [Directory x]: duplicate section (first at line 4)');
    assert.equal(failureOf('[MONSTER]', '[MONSTER]', minimal), '/etc/cm/settings.ini:2: [MONSTER]: duplicate section (first at line 1)');
    assert.match(failureOf(minimal, '[Vessel v]'), /:5: \[Vessel v\]: duplicate section \(first at line 3\)$/);
  });

  it('a duplicate key names the first one', () => {
    assert.equal(failureOf(minimal, 'Port = 22', 'Port = 23'), '/etc/cm/settings.ini:6: [Vessel v] Port: duplicate key (first at line 5)');
  });

  it('an unknown section lists the valid ones', () => {
    const text = ['[Directory d]', 'Location = /d', '[Vessel v]', 'Address = h', '', '', '[Vesel a]'];
    assert.equal(failureOf(...text), '/etc/cm/settings.ini:7: [Vesel a]: unknown section; expected [MONSTER], [Directory NAME] or [Vessel NAME]');
    assert.match(failureOf('[monster]', minimal), /:1: \[monster\]: unknown section/);
  });

  it('a missing required key has no line', () => {
    assert.equal(failureOf('[Directory d]', 'Location = /d', '[Vessel a]', 'Port = 22'), '/etc/cm/settings.ini: [Vessel a] Address: required key missing');
    assert.equal(failureOf('[Directory d]', '[Vessel a]', 'Address = h'), '/etc/cm/settings.ini: [Directory d] Location: required key missing');
  });

  it('a key before any section', () => {
    assert.match(failureOf('ChunkSize = 5', minimal), /^\/etc\/cm\/settings\.ini:1: ChunkSize: key outside any section/);
  });

  it('a section without a name, or MONSTER with one', () => {
    assert.equal(failureOf(minimal, '[Vessel ]'), '/etc/cm/settings.ini:5: [Vessel ]: expected a name, as in [Vessel NAME]');
    assert.match(failureOf('[Directory]', minimal), /:1: \[Directory\]: expected a name, as in \[Directory NAME\]$/);
    assert.match(failureOf('[MONSTER x]', minimal), /:1: \[MONSTER x\]: expected \[MONSTER\] without a name$/);
    assert.match(failureOf('[Directory a,b]', 'Location = /x', minimal), /:1: \[Directory a,b\]: expected a name without commas/);
  });

  it('a header that does not close', () => {
    assert.match(failureOf(minimal, '[Vessel w'), /:5: expected a section header such as \[Vessel NAME\], got `\[Vessel w`$/);
  });

  it('a line that is no key = value names the line', () => {
    assert.equal(
      failureOf(minimal, 'Port: 22'),
      '/etc/cm/settings.ini:5: expected `Key = value`, a [MONSTER], [Directory NAME] or [Vessel NAME] header or a comment, got `Port: 22`',
    );
    assert.match(failureOf(minimal, '= 22'), /:5: expected `Key = value`/);
  });

  it('a file without Directory or Vessel sections', () => {
    assert.equal(failureOf(''), '/etc/cm/settings.ini: no [Directory NAME] section; at least one is required');
    assert.equal(failureOf('[MONSTER]', '# nothing else'), '/etc/cm/settings.ini: no [Directory NAME] section; at least one is required');
    assert.equal(failureOf('[Directory d]', 'Location = /d'), '/etc/cm/settings.ini: no [Vessel NAME] section; at least one is required');
    assert.equal(failureOf('[Vessel v]', 'Address = h'), '/etc/cm/settings.ini: no [Directory NAME] section; at least one is required');
  });

  it('two Directories on the same Location', () => {
    const message = failureOf('[Directory a]', 'Location = /srv/x', '[Directory b]', 'Location = /srv/x/', '[Vessel v]', 'Address = h');
    assert.match(message, /^\/etc\/cm\/settings\.ini:4: \[Directory b\] Location: expected a folder no other Directory uses, got `\/srv\/x`, the Location of \[Directory a\]$/);
  });

  it('Priority is a whole number, negative allowed, within its range; Order one of its words', () => {
    const dir = (...lines: string[]) => ['[Directory d]', 'Location = /d', ...lines, '[Vessel v]', 'Address = h'];
    assert.equal(parse(...dir('Priority = -7')).directories[0]?.priority, -7);
    assert.equal(parse(...dir('Priority = +2')).directories[0]?.priority, 2);
    assert.equal(parse(...dir('Priority = -0')).directories[0]?.priority, 0);
    assert.equal(failureOf(...dir('Priority = high')), '/etc/cm/settings.ini:3: [Directory d] Priority: expected a whole number from -1000 to 1000, got `high`');
    assert.match(failureOf(...dir('Priority = 1001')), /Priority: expected a whole number from -1000 to 1000, got `1001`$/);
    assert.match(failureOf(...dir('Priority = 1.5')), /Priority: expected a whole number/);
    assert.equal(parse(...dir('Order = name')).directories[0]?.order, 'name');
    assert.equal(failureOf(...dir('Order = newest')), '/etc/cm/settings.ini:3: [Directory d] Order: expected one of size, mtime, name, got `newest`');
    assert.match(failureOf(...dir('Odrer = size')), /Odrer: unknown key; did you mean `Order`\?$/);
  });

  it('LogLevel lists the pino levels', () => {
    assert.equal(
      failureOf('[MONSTER]', 'LogLevel = verbose', minimal),
      '/etc/cm/settings.ini:2: [MONSTER] LogLevel: expected one of fatal, error, warn, info, debug, trace, got `verbose`',
    );
    assert.match(failureOf('[MONSTER]', 'LogLevel = INFO', minimal), /LogLevel: expected one of/);
  });

  it('paths on the vessel must be absolute', () => {
    assert.match(failureOf(minimal, 'TempDir = tmp/cm'), /:5: \[Vessel v\] TempDir: expected an absolute path on the vessel \(starting with \/\), got `tmp\/cm`$/);
    assert.match(failureOf('[Directory d]', 'Location = /d', 'RemoteLocation = d', '[Vessel v]', 'Address = h'), /:3: \[Directory d\] RemoteLocation: expected an absolute path/);
  });

  it('a malformed HostKey', () => {
    for (const bad of ['SHA256:abc', 'MD5:12:34', '47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU', 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV']) {
      assert.match(failureOf(minimal, `HostKey = ${bad}`), /:5: \[Vessel v\] HostKey: expected `SHA256:` followed by 43 base64 characters/, bad);
    }
  });

  it('Ignore globs that can never match or do not compile', () => {
    assert.match(failureOf('[MONSTER]', 'Ignore = *.tmp, logs/*.log', minimal), /:2: \[MONSTER\] Ignore: expected globs for base names, without \//);
    assert.match(failureOf('[MONSTER]', 'Ignore = [z-a]', minimal), /:2: \[MONSTER\] Ignore: expected valid globs \(reversed range `z-a`/);
  });

  it('an Address with white space', () => {
    assert.match(failureOf('[Directory d]', 'Location = /d', '[Vessel v]', 'Address = a b'), /:4: \[Vessel v\] Address: expected a host name or IP address, got `a b`$/);
  });
});

describe('secrets never reach a message', () => {
  const secret = 'verysecret';
  const cases: Array<[string, string[]]> = [
    ['an empty password', [minimal, 'Password =']],
    ['a password cut to nothing by a comment', [minimal, 'Password = #verysecret']],
    ['a password outside any section', ['Password = verysecret', minimal]],
    ['a duplicate password', [minimal, 'Password = verysecret', 'Password = verysecret']],
    ['a password line without =', [minimal, 'Password verysecret']],
    ['a password line with :', [minimal, 'Passphrase: verysecret']],
    ['a password in the wrong section', ['[MONSTER]', 'Password = verysecret', minimal]],
  ];
  for (const [name, lines] of cases) {
    it(name, () => {
      const message = failureOf(...lines);
      assert.ok(!message.includes(secret), message);
    });
  }

  it('an empty Password says got <hidden>', () => {
    assert.match(failureOf(minimal, 'Password ='), /:5: \[Vessel v\] Password: expected a password; .*, got <hidden>$/);
    assert.match(failureOf(minimal, 'Passphrase ='), /:5: \[Vessel v\] Passphrase: expected a passphrase; .*, got <hidden>$/);
  });
});

describe('warnings', () => {
  it('a value in quotes keeps them (as configparser does), with a warning that never shows a secret', () => {
    const settings = parse('[Directory d]', "Location = '/srv/in'", '[Vessel v]', 'Address = h', 'Password = "pa;ss"', 'Passphrase = ""');
    assert.equal(settings.vessels[0].password, '"pa;ss"');
    assert.equal(settings.vessels[0].passphrase, '""');
    assert.equal(settings.directories[0].location, "/etc/cm/'/srv/in'");
    assert.deepEqual(settings.warnings, [
      "/etc/cm/settings.ini:2: [Directory d] Location: the value '/srv/in' is in quotes, which are kept as part of it; leave them out unless they belong to it",
      '/etc/cm/settings.ini:5: [Vessel v] Password: the value is in quotes, which are kept as part of it; leave them out unless they belong to it',
      '/etc/cm/settings.ini:6: [Vessel v] Passphrase: the value is in quotes, which are kept as part of it; leave them out unless they belong to it',
    ]);
    assert.ok(settings.warnings.every((w) => !w.includes('pa;ss')));
    assert.deepEqual(parse('[Directory d]', 'Location = /srv/"in"', '[Vessel v]', 'Address = h', 'Password = "a" b "c', 'Passphrase = "').warnings, []);
  });

  it('IgnoreDirs naming an undefined Directory, and a vessel that ignores everything', () => {
    const settings = parse(minimal, 'IgnoreDirs = d, nope');
    assert.deepEqual(settings.warnings, [
      '/etc/cm/settings.ini:5: [Vessel v] IgnoreDirs: no [Directory nope] is defined',
      '/etc/cm/settings.ini:5: [Vessel v] IgnoreDirs: every Directory is ignored; nothing is sent to this vessel',
      '/etc/cm/settings.ini:2: [Directory d] Location: every vessel lists [Directory d] in IgnoreDirs; its files are sent nowhere, and moved to processed/ as they come',
    ]);
  });

  it('a Directory every vessel ignores is warned about; one some vessel receives is not', () => {
    const two = ['[Directory a]', 'Location = /srv/a', '[Directory b]', 'Location = /srv/b'];
    assert.deepEqual(parse(...two, '[Vessel v]', 'Address = h', 'IgnoreDirs = a', '[Vessel w]', 'Address = h', 'IgnoreDirs = a').warnings, [
      '/etc/cm/settings.ini:2: [Directory a] Location: every vessel lists [Directory a] in IgnoreDirs; its files are sent nowhere, and moved to processed/ as they come',
    ]);
    assert.deepEqual(parse(...two, '[Vessel v]', 'Address = h', 'IgnoreDirs = a', '[Vessel w]', 'Address = h', 'IgnoreDirs = b').warnings, []);
  });

  it('nested Locations', () => {
    const settings = parse('[Directory a]', 'Location = /srv', '[Directory b]', 'Location = /srv/b', '[Vessel v]', 'Address = h');
    assert.deepEqual(settings.warnings, ['/etc/cm/settings.ini:4: [Directory b] Location: `/srv/b` is inside `/srv` of [Directory a]; files there belong to both']);
    assert.deepEqual(parse('[Directory a]', 'Location = /srv', '[Directory b]', 'Location = /srv2', '[Vessel v]', 'Address = h').warnings, []);
  });
});

describe('loadSettings reading the file', () => {
  let dir = '';
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cm-settings-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a missing file', () => {
    const missing = path.join(dir, 'nope.ini');
    const message = failure(() => loadSettings(missing));
    assert.equal(message, `settings file ${missing} does not exist`);
    assert.doesNotMatch(message, /ENOENT/);
  });

  it('a directory', () => {
    assert.equal(failure(() => loadSettings(dir)), `settings file ${dir} is a directory, not a file`);
  });

  it('an unreadable file', () => {
    const locked = path.join(dir, 'locked.ini');
    fs.writeFileSync(locked, minimal, { mode: 0o000 });
    fs.chmodSync(dir, 0o755);
    assert.equal(loadAsUnprivileged(locked), `settings file ${locked} cannot be read: permission denied`);
  });

  it('an empty file', () => {
    const empty = path.join(dir, 'empty.ini');
    fs.writeFileSync(empty, '');
    assert.equal(failure(() => loadSettings(empty)), `${empty}: no [Directory NAME] section; at least one is required`);
  });

  it('binary garbage', () => {
    const binary = path.join(dir, 'binary.ini');
    fs.writeFileSync(binary, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01, 0x00, 0x00, 0xff]));
    assert.equal(failure(() => loadSettings(binary)), `${binary}: not a text settings file`);
    assert.equal(failure(() => parseSettings('a\0b', file)), `${file}: not a text settings file`);
  });

  it('text that is not UTF-8', () => {
    const latin1 = path.join(dir, 'latin1.ini');
    fs.writeFileSync(latin1, Buffer.concat([Buffer.from(minimal), Buffer.from('Password = caf\xe9\n', 'latin1')]));
    assert.equal(failure(() => loadSettings(latin1)), `${latin1}: not a text settings file (not valid UTF-8)`);
  });

  it('a relative path is reported and used as absolute', () => {
    const relative = path.relative(process.cwd(), path.join(fixtures, 'minimal.ini'));
    assert.equal(loadSettings(relative).file, path.join(fixtures, 'minimal.ini'));
  });
});

describe('resolveSettingsPath', () => {
  const env = { CONTENTMONSTER_CONFIG: '/etc/contentmonster/main.ini' };

  it('prefers -c, then $CONTENTMONSTER_CONFIG, then ./settings.ini', () => {
    assert.equal(resolveSettingsPath('/x/given.ini', env), '/x/given.ini');
    assert.equal(resolveSettingsPath(undefined, env), '/etc/contentmonster/main.ini');
    assert.equal(resolveSettingsPath(undefined, {}), path.resolve('settings.ini'));
  });

  it('makes relative paths absolute against the working folder', () => {
    assert.equal(resolveSettingsPath('conf/s.ini', {}), path.join(process.cwd(), 'conf/s.ini'));
    assert.equal(resolveSettingsPath(undefined, { CONTENTMONSTER_CONFIG: 'rel.ini' }), path.join(process.cwd(), 'rel.ini'));
  });

  it('treats an empty variable as unset and refuses an empty -c', () => {
    assert.equal(resolveSettingsPath(undefined, { CONTENTMONSTER_CONFIG: '' }), path.resolve('settings.ini'));
    assert.match(failure(() => resolveSettingsPath('', env)), /^-c: expected a settings file path/);
  });

  it('reads process.env by default', () => {
    const saved = process.env.CONTENTMONSTER_CONFIG;
    process.env.CONTENTMONSTER_CONFIG = '/from/env.ini';
    try {
      assert.equal(resolveSettingsPath(undefined), '/from/env.ini');
    } finally {
      if (saved === undefined) delete process.env.CONTENTMONSTER_CONFIG;
      else process.env.CONTENTMONSTER_CONFIG = saved;
    }
  });
});

describe('BandwidthLimit and TimeZone', () => {
  it('off by default, in UTC; a rate or a timetable per vessel and in [MONSTER]', () => {
    const plain = parse(minimal);
    assert.deepEqual(plain.monster.bandwidthLimit.entries.map((e) => e.rate), [null]);
    assert.equal(plain.monster.timeZone, 'UTC');
    assert.deepEqual(plain.vessels[0].bandwidthLimit.entries.map((e) => e.rate), [null]);
    const s = parse('[MONSTER]', 'BandwidthLimit = 08:00,4M 18:00,off  # office hours', 'TimeZone = Europe/Berlin', minimal, 'BandwidthLimit = 512k', 'TimeZone = America/New_York');
    assert.equal(s.monster.bandwidthLimit.text, '08:00,4M 18:00,off');
    assert.equal(s.monster.bandwidthLimit.entries.length, 14);
    assert.equal(s.monster.timeZone, 'Europe/Berlin');
    assert.deepEqual(s.vessels[0].bandwidthLimit.entries.map((e) => e.rate), [512 * 1024]);
    assert.equal(s.vessels[0].timeZone, 'America/New_York');
  });

  it('a bad value is one line naming the key, the section and the bad token', () => {
    assert.equal(failureOf(minimal, 'BandwidthLimit = 08:00,512k 25:00,off'),
      '/etc/cm/settings.ini:5: [Vessel v] BandwidthLimit: expected a rate in bytes a second (`512k`, `2M`, `1G`, a whole number of bytes, at least 1k) or `off`, '
      + 'or a timetable of space-separated `HH:MM,RATE` pairs, optionally per weekday (`08:00,512k 18:00,off`, `Mon-08:00,1M`): '
      + '`25:00,off` is not [Mon-]HH:MM,RATE, got `08:00,512k 25:00,off`');
    assert.match(failureOf('[MONSTER]', 'BandwidthLimit = 2 MB', minimal), /^\/etc\/cm\/settings\.ini:2: \[MONSTER\] BandwidthLimit: expected .*, got `2 MB`$/);
    assert.equal(failureOf(minimal, 'TimeZone = Mars/Olympus'),
      '/etc/cm/settings.ini:5: [Vessel v] TimeZone: expected an IANA time zone such as `UTC`, `Europe/Berlin` or `America/New_York`, got `Mars/Olympus`');
  });
});
