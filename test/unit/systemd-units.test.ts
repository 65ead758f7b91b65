/**
 * Every file in systemd/ and systemd/user/: unit files (.service, .timer) and drop-in examples
 * (X.service.d-NAME.conf.example, installed as X.service.d/NAME.conf). systemd/user/ holds the
 * user-manager versions of units whose system-wide version runs as its own user in a sandbox.
 *
 * Always: a small parser reads each file the way systemd does (sections, Key=Value, comments, line
 * continuations); every directive must be on the allow-list for its section, and the units must keep
 * their contract (schedule, stop mechanism, restart policy, hardening, log identifier, the README
 * headings they cite).
 * When systemd-analyze can run here: `systemd-analyze verify` on every unit, templates as an instance,
 * drop-in examples placed next to a copy of their unit, each in the manager(s) it is meant for; and
 * `systemd-analyze security --offline=yes` on every system service that runs node (≤ 2.0).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, test, type TestContext } from 'node:test';
import { shebangFlags } from '../helpers/process.js';

const unitDir = fileURLToPath(new URL('../../systemd', import.meta.url));
/** The Node flags of the CLI's first line (`#!/usr/bin/env -S node FLAGS`), which the units pass too. */
const nodeFlagList = shebangFlags(fileURLToPath(new URL('../../src/main.ts', import.meta.url)));
const nodeFlag = nodeFlagList.join(' ');

// ---------------------------------------------------------------------------------------------
// The parser (systemd.syntax(7)), test-only.

interface Directive {
  section: string;
  key: string;
  value: string;
  line: number;
}

interface UnitFile {
  name: string;
  sections: string[];
  directives: Directive[];
}

/**
 * Parses unit-file text. Empty lines and lines starting with # or ; are ignored, also between the lines
 * of a continuation; a line ending in a backslash continues on the next one (the backslash becomes a
 * space). Throws on anything systemd would not read as a section header or an assignment.
 */
function parseUnitFile(text: string, name: string): UnitFile {
  const sections: string[] = [];
  const directives: Directive[] = [];
  let section: string | undefined;
  let pending: { key: string; value: string; line: number } | undefined;
  const lines = text.split('\n');
  lines.forEach((raw, i) => {
    const where = `${name}:${i + 1}`;
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return;
    let body = line;
    if (pending) {
      body = `${pending.value} ${line}`;
    } else if (line.startsWith('[')) {
      const m = /^\[([^[\]]+)\]$/.exec(line);
      if (!m) throw new Error(`${where}: bad section header: ${line}`);
      section = m[1]!;
      if (sections.includes(section)) throw new Error(`${where}: section [${section}] appears twice`);
      sections.push(section);
      return;
    } else {
      const eq = line.indexOf('=');
      if (eq < 0) throw new Error(`${where}: neither a section header nor Key=Value: ${line}`);
      const key = line.slice(0, eq).trim();
      if (!/^[A-Za-z][A-Za-z0-9-]*$/.test(key)) throw new Error(`${where}: bad key: ${key}`);
      if (!section) throw new Error(`${where}: ${key}= before any section header`);
      pending = { key, value: '', line: i + 1 };
      body = line.slice(eq + 1).trim();
    }
    if (body.endsWith('\\')) {
      pending.value = body.slice(0, -1).trimEnd();
      return;
    }
    directives.push({ section: section!, key: pending.key, value: body.trim(), line: pending.line });
    pending = undefined;
  });
  if (pending) throw new Error(`${name}:${pending.line}: continuation runs past the end of the file`);
  return { name, sections, directives };
}

/** The values of a list setting, as systemd builds it: an empty assignment clears what came before. */
function values(unit: UnitFile, section: string, key: string): string[] {
  const out: string[] = [];
  for (const d of unit.directives) {
    if (d.section !== section || d.key !== key) continue;
    if (d.value === '') out.length = 0;
    else out.push(d.value);
  }
  return out;
}

/** A single-valued setting: the last assignment wins. */
function value(unit: UnitFile, section: string, key: string): string | undefined {
  const all = unit.directives.filter((d) => d.section === section && d.key === key);
  return all.at(-1)?.value;
}

/** Space-separated lists (Conflicts=, RestartPreventExitStatus=, ...), all assignments together. */
function words(unit: UnitFile, section: string, key: string): string[] {
  return values(unit, section, key).flatMap((v) => v.split(/\s+/).filter(Boolean));
}

const timeUnits: Record<string, number> = {
  us: 1e-6, usec: 1e-6, ms: 1e-3, msec: 1e-3,
  s: 1, sec: 1, second: 1, seconds: 1,
  m: 60, min: 60, minute: 60, minutes: 60,
  h: 3600, hr: 3600, hour: 3600, hours: 3600,
  d: 86400, day: 86400, days: 86400,
  w: 604800, week: 604800, weeks: 604800,
};

/** A systemd time span ("15", "30s", "1min 30s", "10h", "infinity") in seconds. */
function seconds(span: string): number {
  if (span.trim() === 'infinity') return Infinity;
  const parts = [...span.matchAll(/\s*(\d+(?:\.\d+)?)\s*([a-z]*)/gy)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== span) throw new Error(`not a time span: ${span}`);
  return parts.reduce((sum, p) => {
    const unit = p[2] ? timeUnits[p[2]] : 1;
    if (unit === undefined) throw new Error(`unknown time unit in ${span}`);
    return sum + Number(p[1]) * unit;
  }, 0);
}

const booleans = new Set(['yes', 'no', 'true', 'false', 'on', 'off', '1', '0']);
const isTrue = (v: string | undefined) => v !== undefined && ['yes', 'true', 'on', '1'].includes(v);

describe('the unit-file parser', () => {
  it('reads sections, assignments, comments and continuations', () => {
    const unit = parseUnitFile(
      [
        '# comment',
        '[Unit]',
        'Description = spaced out ',
        '; also a comment',
        '[Service]',
        'ExecStart=/bin/echo a \\',
        '# a comment inside a continuation is skipped',
        '  b \\',
        '  c',
        'Environment=A=1',
        'Environment=',
        'Environment=B=2',
      ].join('\n'),
      't.service',
    );
    assert.deepEqual(unit.sections, ['Unit', 'Service']);
    assert.equal(value(unit, 'Unit', 'Description'), 'spaced out');
    assert.equal(value(unit, 'Service', 'ExecStart'), '/bin/echo a b c');
    assert.equal(unit.directives.find((d) => d.key === 'ExecStart')?.line, 6);
    assert.deepEqual(values(unit, 'Service', 'Environment'), ['B=2']);
  });

  it('rejects what systemd would not read as intended', () => {
    assert.throws(() => parseUnitFile('Description=x', 'a'), /before any section/);
    assert.throws(() => parseUnitFile('[Unit]\nDescription', 'b'), /neither a section header/);
    assert.throws(() => parseUnitFile('[Unit\n', 'c'), /bad section header/);
    assert.throws(() => parseUnitFile('[Unit]\nDescription=x \\', 'd'), /past the end/);
    assert.throws(() => parseUnitFile('[Unit]\n[Unit]', 'e'), /twice/);
  });

  it('reads time spans', () => {
    assert.equal(seconds('15'), 15);
    assert.equal(seconds('30s'), 30);
    assert.equal(seconds('1min 30s'), 90);
    assert.equal(seconds('15min'), 900);
    assert.equal(seconds('10h'), 36000);
    assert.equal(seconds('0'), 0);
    assert.throws(() => seconds('soon'));
    assert.throws(() => seconds('5 lightyears'));
  });
});

// ---------------------------------------------------------------------------------------------
// The files.

type Kind = 'service' | 'timer';

/** Which service manager a file is meant for: system-wide, per user, or both unchanged. */
type Manager = 'system' | 'user' | 'both';

interface Entry {
  /** Path in systemd/: `NAME` or `user/NAME`. */
  file: string;
  kind: Kind;
  manager: Manager;
  /** The unit name (for a drop-in: the unit it belongs to). */
  unit: string;
  /** Drop-in file name inside UNIT.d/, for .example files. */
  dropIn?: string;
  text: string;
  parsed: UnitFile;
}

/**
 * systemd/user/X: user manager only. systemd/X: system-wide for the push daemon and the two mirror
 * services (they switch to their own user and set up a sandbox, which a user manager cannot);
 * every other sftp-mirror file (timers, the stop service, the drop-in example) works unchanged in both.
 */
function managerOf(file: string): Manager {
  if (file.startsWith('user/')) return 'user';
  if (/^(contentmonster(@)?|sftp-mirror(@)?)\.service$/.test(file)) return 'system';
  if (file.startsWith('sftp-mirror')) return 'both';
  return 'system';
}

function classify(file: string): Omit<Entry, 'text' | 'parsed'> {
  const base = file.replace(/^user\//, '');
  const manager = managerOf(file);
  const dropIn = /^(.+\.(service|timer))\.d-(.+\.conf)\.example$/.exec(base);
  if (dropIn) return { file, kind: dropIn[2] as Kind, manager, unit: dropIn[1], dropIn: dropIn[3] };
  const unit = /\.(service|timer)$/.exec(base);
  if (unit) return { file, kind: unit[1] as Kind, manager, unit: base };
  throw new Error(
    `systemd/${file}: not a .service, .timer or UNIT.d-NAME.conf.example drop-in; teach test/unit/systemd-units.test.ts about it`,
  );
}

const unitFiles = [
  ...readdirSync(unitDir).filter((f) => f !== 'user'),
  ...readdirSync(join(unitDir, 'user')).map((f) => `user/${f}`),
].sort();
const entries: Entry[] = unitFiles.map((file) => {
  assert.ok(statSync(join(unitDir, file)).isFile(), `systemd/${file} is not a regular file`);
  const text = readFileSync(join(unitDir, file), 'utf8');
  return { ...classify(file), text, parsed: parseUnitFile(text, `systemd/${file}`) };
});
const units = entries.filter((e) => !e.dropIn);
const dropIns = entries.filter((e) => e.dropIn);
const inManager = (e: Entry, m: 'system' | 'user') => e.manager === m || e.manager === 'both';
/** The units one manager sees once installed, by unit name. */
const unitsOf = (m: 'system' | 'user') => new Map(units.filter((e) => inManager(e, m)).map((e) => [e.unit, e]));
const systemUnits = unitsOf('system');
const userUnits = unitsOf('user');
const byName = systemUnits;

/** Template file for a unit name: foo@bar.service -> foo@.service. */
const templateOf = (unitName: string) => unitName.replace(/@[^.]*\./, '@.');
const isTemplate = (unitName: string) => /@\./.test(unitName);
const instanceOf = (unitName: string) => unitName.replace('@.', '@example.');

// Every directive these files use, per section. A typo or a directive nobody looked up fails here,
// even where systemd-analyze is missing. Adding one: check systemd.unit(5), .service(5), .exec(5),
// .kill(5), .timer(5) first, and whether it works in a user manager.
const allowed: Record<string, ReadonlySet<string>> = {
  Unit: new Set([
    'Description', 'Documentation', 'Wants', 'Requires', 'After', 'Before', 'Conflicts',
    'StartLimitIntervalSec', 'StartLimitBurst',
  ]),
  Service: new Set([
    'Type', 'NotifyAccess', 'WatchdogSec', 'User', 'Group', 'ExecStart', 'ExecReload', 'Environment', 'EnvironmentFile', 'WorkingDirectory',
    'StateDirectory', 'StateDirectoryMode', 'SyslogIdentifier',
    'Restart', 'RestartSec', 'RestartPreventExitStatus', 'KillMode', 'TimeoutStopSec',
    'NoNewPrivileges', 'ProtectSystem', 'ProtectHome', 'ReadWritePaths', 'PrivateTmp',
    'PrivateDevices', 'PrivateMounts', 'CapabilityBoundingSet', 'AmbientCapabilities',
    'ProtectControlGroups', 'ProtectKernelModules', 'ProtectKernelTunables', 'ProtectKernelLogs',
    'ProtectClock', 'ProtectHostname', 'ProtectProc', 'ProcSubset', 'RestrictNamespaces',
    'RestrictSUIDSGID', 'RestrictRealtime', 'RemoveIPC', 'LockPersonality', 'RestrictAddressFamilies',
    'SystemCallArchitectures', 'SystemCallFilter', 'SystemCallErrorNumber', 'UMask',
  ]),
  Timer: new Set(['OnCalendar', 'RandomizedDelaySec', 'AccuracySec', 'Persistent', 'Unit']),
  Install: new Set(['WantedBy']),
};
const sectionsFor: Record<Kind, readonly string[]> = {
  service: ['Unit', 'Service', 'Install'],
  timer: ['Unit', 'Timer', 'Install'],
};
const booleanKeys = new Set([
  'Persistent', 'NoNewPrivileges', 'PrivateTmp', 'PrivateDevices', 'PrivateMounts', 'RestrictSUIDSGID',
  'RestrictRealtime', 'RestrictNamespaces', 'RemoveIPC', 'LockPersonality', 'ProtectControlGroups',
  'ProtectKernelModules', 'ProtectKernelTunables', 'ProtectKernelLogs', 'ProtectClock', 'ProtectHostname',
]);
const timeSpanKeys = new Set([
  'RestartSec', 'TimeoutStopSec', 'StartLimitIntervalSec', 'AccuracySec', 'RandomizedDelaySec', 'WatchdogSec',
]);
const choices: Record<string, ReadonlySet<string>> = {
  Type: new Set(['simple', 'exec', 'notify', 'oneshot', 'forking']),
  NotifyAccess: new Set(['none', 'main', 'exec', 'all']),
  Restart: new Set(['no', 'on-success', 'on-failure', 'on-abnormal', 'on-watchdog', 'on-abort', 'always']),
  KillMode: new Set(['control-group', 'mixed', 'process', 'none']),
  ProtectSystem: new Set(['yes', 'no', 'true', 'false', 'full', 'strict']),
  ProtectHome: new Set(['yes', 'no', 'true', 'false', 'read-only', 'tmpfs']),
  ProtectProc: new Set(['noaccess', 'invisible', 'ptraceable', 'default']),
  ProcSubset: new Set(['all', 'pid']),
  SystemCallArchitectures: new Set(['native']),
};
// Need privileges (User=) or mount namespaces, which a user manager cannot set up without
// PrivateUsers= and unprivileged user namespaces: never in a file that must work in both managers.
const systemManagerOnly = new Set([
  'User', 'Group', 'DynamicUser', 'ProtectSystem', 'ProtectHome', 'ReadWritePaths', 'ReadOnlyPaths',
  'InaccessiblePaths', 'PrivateTmp', 'PrivateDevices', 'PrivateNetwork', 'PrivateMounts',
  'ProtectControlGroups', 'ProtectKernelModules', 'ProtectKernelTunables', 'ProtectKernelLogs',
  'ProtectClock', 'ProtectHostname', 'ProtectProc', 'ProcSubset', 'CapabilityBoundingSet',
  'AmbientCapabilities', 'RemoveIPC',
]);

/** A drop-in example with its commented-out directive lines ("#Key=...") switched on. */
function uncommented(text: string): string {
  return text.replace(/^#([A-Z][A-Za-z]*=.*)$/gm, '$1');
}

describe('every file in systemd/', () => {
  it('has the files the README documents', () => {
    const files = entries.map((e) => e.file);
    for (const f of [
      'contentmonster.service',
      'contentmonster@.service',
      'user/sftp-mirror.service',
      'user/sftp-mirror@.service',
      'sftp-mirror.service',
      'sftp-mirror.timer',
      'sftp-mirror-stop.service',
      'sftp-mirror-stop.timer',
      'sftp-mirror@.service',
      'sftp-mirror.service.d-override.conf.example',
    ]) {
      assert.ok(files.includes(f), `systemd/${f} is missing`);
    }
  });

  for (const e of entries) {
    describe(e.file, () => {
      const checkDirectives = (parsed: UnitFile) => {
        const sections = e.dropIn ? sectionsFor[e.kind].filter((s) => s !== 'Install') : sectionsFor[e.kind];
        for (const s of parsed.sections) {
          assert.ok(sections.includes(s), `${parsed.name}: section [${s}] does not belong in a ${e.dropIn ? 'drop-in for a ' : ''}.${e.kind}`);
        }
        for (const d of parsed.directives) {
          const where = `${parsed.name}:${d.line} ${d.key}=`;
          assert.ok(allowed[d.section]?.has(d.key), `${where} is not on the allow-list for [${d.section}]`);
          if (d.value === '') continue; // a reset
          if (booleanKeys.has(d.key)) assert.ok(booleans.has(d.value), `${where} takes a boolean, not ${d.value}`);
          if (timeSpanKeys.has(d.key)) assert.doesNotThrow(() => seconds(d.value), `${where}${d.value}`);
          const c = choices[d.key];
          if (c) assert.ok(c.has(d.value), `${where} ${d.value} is not one of ${[...c].join(', ')}`);
          if (d.key === 'StartLimitBurst') assert.match(d.value, /^\d+$/, where);
          if (d.key === 'RestartPreventExitStatus') assert.match(d.value, /^\d+( \d+)*$/, where);
          if (d.key === 'ExecStart') assert.match(d.value, /^[-@:+!]*\//, `${where} needs an absolute path`);
          if (d.key === 'MemoryDenyWriteExecute') assert.fail(`${where}: V8 needs writable+executable memory`);
          if (d.key === 'UMask') assert.match(d.value, /^0?[0-7]{3}$/, where);
          if (d.key === 'SystemCallFilter' && d.value.split(/\s+/).includes('@system-service')) {
            assert.ok(d.value.split(/\s+/).includes('@pkey'), `${where}: without @pkey, systemd 252 kills node with SIGSYS (pkey_alloc)`);
          }
          if (d.key === 'ReadWritePaths') {
            for (const path of d.value.split(/\s+/)) {
              assert.match(path, /^-\//, `${where}${path}: without "-" a missing folder fails the start (226/NAMESPACE)`);
            }
          }
        }
      };

      it('parses, with only known sections and allow-listed directives', () => {
        checkDirectives(e.parsed);
      });

      if (e.dropIn) {
        it('is drop-in content for a unit in systemd/', () => {
          for (const m of ['system', 'user'] as const) {
            if (inManager(e, m)) assert.ok(unitsOf(m).has(e.unit), `${e.file} belongs to ${e.unit}, which is not in systemd/ for the ${m} manager`);
          }
          assert.ok(e.parsed.sections.length > 0, 'no section at all');
        });
        it('its commented-out directive lines are valid too, once switched on', () => {
          checkDirectives(parseUnitFile(uncommented(e.text), `${e.file} (uncommented)`));
        });
      }

      if (e.manager !== 'system' && !e.dropIn) {
        it('uses nothing a user manager cannot do', () => {
          for (const d of e.parsed.directives) {
            assert.ok(!systemManagerOnly.has(d.key), `${e.file}:${d.line} ${d.key}= needs the system manager`);
          }
        });
      }
    });
  }
});

describe('timers', () => {
  const timers = units.filter((e) => e.kind === 'timer');
  const expected: Record<string, string> = {
    'sftp-mirror.timer': '*-*-* 14:30:00 UTC',
    'sftp-mirror@.timer': '*-*-* 14:30:00 UTC',
    'sftp-mirror-stop.timer': '*-*-* 23:30:00 UTC',
  };

  for (const e of timers) {
    it(`${e.file}: exact time, no randomization, no catch-up, starts a unit that exists`, () => {
      const p = e.parsed;
      const want = expected[e.file];
      if (want) assert.deepEqual(values(p, 'Timer', 'OnCalendar'), [want]);
      else assert.ok(values(p, 'Timer', 'OnCalendar').length > 0, 'no OnCalendar=');
      const delay = value(p, 'Timer', 'RandomizedDelaySec');
      assert.ok(delay !== undefined && seconds(delay) === 0, 'RandomizedDelaySec=0 must be explicit');
      const accuracy = value(p, 'Timer', 'AccuracySec');
      assert.ok(accuracy !== undefined && seconds(accuracy) <= 1, `AccuracySec=${accuracy} (default 1min) is too coarse`);
      if (e.file.startsWith('sftp-mirror')) {
        // A machine booting at 23:45 must not start the missed 14:30 run after the window closed.
        assert.ok(!isTrue(value(p, 'Timer', 'Persistent')), 'Persistent= would start a missed run at boot');
      }
      const target = (value(p, 'Timer', 'Unit') ?? e.unit.replace(/\.timer$/, '.service')).replace('%i', '');
      for (const m of ['system', 'user'] as const) {
        if (!inManager(e, m)) continue;
        const there = unitsOf(m);
        assert.ok(there.has(templateOf(target)) || there.has(target), `${e.file} starts ${target}, not in systemd/ for the ${m} manager`);
      }
      assert.deepEqual(words(p, 'Install', 'WantedBy'), ['timers.target']);
    });
  }

  it('sftp-mirror-stop.timer starts the stop service, sftp-mirror.timer the mirror', () => {
    assert.equal(value(byName.get('sftp-mirror-stop.timer')!.parsed, 'Timer', 'Unit') ?? 'sftp-mirror-stop.service', 'sftp-mirror-stop.service');
    assert.equal(value(byName.get('sftp-mirror.timer')!.parsed, 'Timer', 'Unit') ?? 'sftp-mirror.service', 'sftp-mirror.service');
  });
});

describe('the pull mirror units', () => {
  const mirrors = units.filter((e) => e.kind === 'service' && /^sftp-mirror(@)?\.service$/.test(e.unit));
  const stop = byName.get('sftp-mirror-stop.service')!;

  it('there is a plain unit and a template, system-wide and per user', () => {
    assert.deepEqual(mirrors.map((e) => e.file).sort(), [
      'sftp-mirror.service', 'sftp-mirror@.service', 'user/sftp-mirror.service', 'user/sftp-mirror@.service',
    ]);
  });

  // The per-user file is the system-wide one without what a user manager cannot do (its own user,
  // the sandbox, the umask of a shared LOCAL_PATH, network-online.target): both must run the same.
  for (const user of mirrors.filter((e) => e.manager === 'user')) {
    it(`${user.file} is ${user.unit} minus the system-wide-only settings`, () => {
      const system = systemUnits.get(user.unit)!;
      const skip = (d: Directive) =>
        systemManagerOnly.has(d.key) || d.key === 'UMask' || (['Wants', 'After'].includes(d.key) && d.value === 'network-online.target');
      const common = (u: UnitFile) => u.directives.filter((d) => !skip(d)).map((d) => `[${d.section}] ${d.key}=${d.value}`).sort();
      assert.deepEqual(common(user.parsed), common(system.parsed));
    });
  }

  for (const e of mirrors) {
    describe(e.file, () => {
      const p = e.parsed;
      it('runs `node FLAGS /opt/contentmonster/dist/main.js mirror SERVER REMOTE_PATH LOCAL_PATH`, FLAGS as in the CLI\'s first line', () => {
        const exec = values(p, 'Service', 'ExecStart');
        assert.equal(exec.length, 1);
        const argv = exec[0].split(/\s+/);
        const n = nodeFlagList.length;
        assert.deepEqual(argv.slice(0, n + 3), ['/usr/bin/node', ...nodeFlagList, '/opt/contentmonster/dist/main.js', 'mirror']);
        assert.deepEqual(argv.slice(n + 3, n + 6), ['${SFTP_SERVER}', '${SFTP_REMOTE_PATH}', '${SFTP_LOCAL_PATH}']);
        assert.ok(argv.includes('${SFTP_JOBS}'), '-j ${SFTP_JOBS}');
        assert.ok(values(p, 'Service', 'Environment').includes('SFTP_JOBS=3'), 'a default for SFTP_JOBS');
      });

      it('logs as sftp-mirror (journalctl -t sftp-mirror)', () => {
        assert.equal(value(p, 'Service', 'SyslogIdentifier'), 'sftp-mirror');
      });

      it('stops cleanly: SIGTERM to node, time to finish, SIGKILL after', () => {
        const timeout = value(p, 'Service', 'TimeoutStopSec');
        assert.ok(timeout !== undefined && seconds(timeout) >= 10, `TimeoutStopSec=${timeout}: the mirror needs ~10 s`);
        assert.equal(value(p, 'Service', 'KillMode'), 'mixed');
      });

      it('retries failures but never a usage error, and not in a tight loop', () => {
        const restart = value(p, 'Service', 'Restart') ?? 'no';
        assert.ok(['no', 'on-failure'].includes(restart), `Restart=${restart}: the 23:30 stop must stay stopped`);
        if (restart !== 'no') {
          assert.ok(words(p, 'Service', 'RestartPreventExitStatus').includes('2'), 'exit 2 = usage error');
          assert.ok(seconds(value(p, 'Service', 'RestartSec') ?? '0.1') >= 60, 'RestartSec= at least a minute');
          assert.ok(value(p, 'Unit', 'StartLimitBurst') !== undefined, 'a StartLimitBurst= caps retries per window');
        }
      });

      it('is started by its timer only (no [Install])', () => {
        assert.ok(!p.sections.includes('Install'), 'an enabled mirror would start at boot, outside its window');
      });

      it('keeps its state (first-use host keys) in its own StateDirectory=', () => {
        const dirs = words(p, 'Service', 'StateDirectory');
        assert.deepEqual(dirs, [isTemplate(e.unit) ? 'sftp-mirror/%i' : 'sftp-mirror']);
      });

      it('is stopped by sftp-mirror-stop.service', () => {
        const stopped =
          words(stop.parsed, 'Unit', 'Conflicts').includes(e.unit) ||
          words(p, 'Unit', 'Conflicts').includes('sftp-mirror-stop.service');
        assert.ok(stopped, `neither ${e.unit} nor sftp-mirror-stop.service declares Conflicts= on the other`);
      });
    });
  }

  it('the template reads each job from %E/sftp-mirror/%i.env, optional so a drop-in can do it instead', () => {
    for (const units of [systemUnits, userUnits]) {
      const p = units.get('sftp-mirror@.service')!.parsed;
      assert.deepEqual(values(p, 'Service', 'EnvironmentFile'), ['-%E/sftp-mirror/%i.env']);
    }
  });

  it('system-wide, the mirror runs as its own user (not root) and can write its LOCAL_PATH', () => {
    for (const e of mirrors.filter((m) => m.manager === 'system')) {
      assert.equal(value(e.parsed, 'Service', 'User'), 'sftp-mirror', e.file);
      assert.equal(value(e.parsed, 'Service', 'Group'), 'sftp-mirror', e.file);
      const local = isTemplate(e.unit) ? '-/srv/mirror/%i' : '-/srv/mirror';
      assert.deepEqual(words(e.parsed, 'Service', 'ReadWritePaths'), [local], e.file);
    }
    // The drop-in example mirrors into the folder the unit lets it write, and shows how to add another.
    const example = dropIns.find((d) => d.file === 'sftp-mirror.service.d-override.conf.example')!;
    assert.ok(values(example.parsed, 'Service', 'Environment').includes('SFTP_LOCAL_PATH=/srv/mirror'));
    assert.ok(values(parseUnitFile(uncommented(example.text), 'example'), 'Service', 'ReadWritePaths').length > 0);
    assert.match(example.text, /install -d -o sftp-mirror -g sftp-mirror/);
  });

  it('the stop service stops the mirror in whichever manager runs it, and can run again tomorrow', () => {
    const p = stop.parsed;
    assert.ok(words(p, 'Unit', 'Conflicts').includes('sftp-mirror.service'));
    assert.equal(value(p, 'Service', 'Type'), 'oneshot');
    assert.ok(!isTrue(value(p, 'Service', 'RemainAfterExit')), 'an active stop unit would not start again');
    for (const cmd of values(p, 'Service', 'ExecStart')) {
      assert.doesNotMatch(cmd, /systemctl/, 'systemctl would pick one manager (--user or system) for both installs');
    }
  });

  it('the override example sets every variable the mirror command line uses, and shows the ExecStart= override', () => {
    const example = dropIns.find((e) => e.file === 'sftp-mirror.service.d-override.conf.example')!;
    assert.deepEqual(example.parsed.sections, ['Service']);
    const set = new Set(
      [...values(example.parsed, 'Service', 'Environment'), ...values(byName.get('sftp-mirror.service')!.parsed, 'Service', 'Environment')]
        .map((v) => v.replace(/^"/, '').split('=')[0]),
    );
    for (const name of ['SFTP_SERVER', 'SFTP_REMOTE_PATH', 'SFTP_LOCAL_PATH', 'SFTP_JOBS', 'SFTP_USERNAME', 'SFTP_PASSWORD']) {
      assert.ok(set.has(name), `${name} is not set`);
    }
    const on = parseUnitFile(uncommented(example.text), 'example (uncommented)');
    const exec = on.directives.filter((d) => d.key === 'ExecStart').map((d) => d.value);
    assert.equal(exec[0], '', 'an empty ExecStart= must clear the unit\'s first');
    assert.ok((exec[1] ?? '').startsWith(`/usr/bin/node ${nodeFlag} /opt/contentmonster/dist/main.js mirror `), exec[1]);
  });
});

describe('the push daemon units', () => {
  const push = units.filter((e) => /^contentmonster(@)?\.service$/.test(e.file));

  it('contentmonster.service is there', () => {
    assert.ok(push.some((e) => e.file === 'contentmonster.service'));
  });

  it('the CLI\'s first line passes Node its memory flags', () => {
    assert.deepEqual(nodeFlagList, ['--max-semi-space-size=4', '--expose-gc']);
  });

  for (const e of push) {
    it(`${e.file}: restarts on failure except on bad settings, stops in time, logs as contentmonster`, () => {
      const p = e.parsed;
      assert.equal(value(p, 'Service', 'Restart'), 'on-failure');
      assert.ok(words(p, 'Service', 'RestartPreventExitStatus').includes('2'), 'RestartPreventExitStatus=2');
      assert.equal(value(p, 'Service', 'User'), 'contentmonster');
      const timeout = value(p, 'Service', 'TimeoutStopSec');
      assert.ok(timeout !== undefined && seconds(timeout) >= 10, `TimeoutStopSec=${timeout}`);
      assert.ok((values(p, 'Service', 'ExecStart')[0] ?? '').startsWith(`/usr/bin/node ${nodeFlag} /opt/contentmonster/dist/main.js run `));
      assert.equal(value(p, 'Service', 'SyslogIdentifier'), 'contentmonster', 'without it the journal says node[PID]');
    });

    it(`${e.file}: systemctl reload sends SIGHUP to the daemon (it reads its settings again)`, () => {
      assert.deepEqual(values(e.parsed, 'Service', 'ExecReload'), ['/bin/kill -HUP $MAINPID']);
    });

    it(`${e.file}: Type=notify with NotifyAccess=all (systemd-notify sends) and a watchdog a failure restarts`, () => {
      const p = e.parsed;
      assert.equal(value(p, 'Service', 'Type'), 'notify');
      // The messages come from a systemd-notify child, never from the main PID (src/systemd-notify.ts).
      assert.equal(value(p, 'Service', 'NotifyAccess'), 'all');
      const watchdog = seconds(value(p, 'Service', 'WatchdogSec') ?? '0');
      // Pings every half of it, each a process: not below 20 s; a stuck loop found within minutes.
      assert.ok(watchdog >= 20 && watchdog <= 300, `WatchdogSec=${watchdog}`);
      assert.ok(['on-failure', 'on-watchdog', 'on-abnormal', 'always'].includes(value(p, 'Service', 'Restart') ?? 'no'), 'a watchdog timeout restarts');
      assert.match(e.text, /systemd-notify/, 'the comments say how the messages are sent');
      assert.doesNotMatch(e.text, /Not notify/, 'the old reason against Type=notify is gone');
    });

    it(`${e.file}: the state database defaults to its StateDirectory= (the daemon reads $STATE_DIRECTORY)`, () => {
      const p = e.parsed;
      const state = isTemplate(e.unit) ? 'contentmonster/%i' : 'contentmonster';
      assert.deepEqual(words(p, 'Service', 'StateDirectory'), [state]);
      assert.equal(value(p, 'Service', 'WorkingDirectory'), `/var/lib/${state}`);
      assert.match(e.text, /\$STATE_DIRECTORY/, 'the comments say where the database goes');
    });
  }
});

// The hardening systemd-analyze security scores at 1.6 on systemd 252 (1.7 for the push daemon,
// whose Type=notify needs NotifyAccess=all; target: ≤ 2.0), tried with
// the daemon replicating and stopping cleanly. Without @pkey V8 dies of SIGSYS; MemoryDenyWriteExecute=
// breaks V8 (refused for every file above).
const hardening: Record<string, string> = {
  NoNewPrivileges: 'yes',
  ProtectSystem: 'strict',
  ProtectHome: 'read-only',
  PrivateTmp: 'yes',
  PrivateDevices: 'yes',
  CapabilityBoundingSet: '',
  ProtectKernelTunables: 'yes',
  ProtectKernelModules: 'yes',
  ProtectKernelLogs: 'yes',
  ProtectControlGroups: 'yes',
  ProtectClock: 'yes',
  ProtectHostname: 'yes',
  ProtectProc: 'invisible',
  ProcSubset: 'pid',
  RestrictNamespaces: 'yes',
  RestrictRealtime: 'yes',
  RestrictSUIDSGID: 'yes',
  LockPersonality: 'yes',
  RestrictAddressFamilies: 'AF_UNIX AF_INET AF_INET6',
  SystemCallArchitectures: 'native',
  SystemCallFilter: '@system-service @pkey',
};
/** The same, minus what needs the system manager: what a per-user mirror unit keeps. */
const userHardening = Object.fromEntries(Object.entries(hardening).filter(([k]) => !systemManagerOnly.has(k)));
const nodeServices = units.filter((e) => e.kind === 'service' && /dist\/main\.js /.test(value(e.parsed, 'Service', 'ExecStart') ?? ''));

describe('hardening of every service that runs node', () => {
  it('covers the push daemon and the mirror, system-wide and per user', () => {
    assert.deepEqual(nodeServices.map((e) => e.file).sort(), [
      'contentmonster.service', 'contentmonster@.service', 'sftp-mirror.service', 'sftp-mirror@.service',
      'user/sftp-mirror.service', 'user/sftp-mirror@.service',
    ]);
  });

  for (const e of nodeServices) {
    it(`${e.file}: ${e.manager === 'user' ? 'what a user manager can do' : 'the full set'}`, () => {
      const want = e.manager === 'user' ? userHardening : hardening;
      for (const [key, expected] of Object.entries(want)) {
        assert.ok(e.parsed.directives.some((d) => d.section === 'Service' && d.key === key), `${key}= is missing`);
        assert.equal(value(e.parsed, 'Service', key), expected, `${key}=`);
      }
      if (e.manager === 'user') return;
      const user = value(e.parsed, 'Service', 'User');
      assert.ok(user && user !== 'root', `User=${user}: a dedicated user`);
      assert.ok(words(e.parsed, 'Service', 'StateDirectory').length > 0, 'StateDirectory=');
      assert.ok(words(e.parsed, 'Service', 'ReadWritePaths').length > 0, 'ReadWritePaths=');
      const umask = parseInt(value(e.parsed, 'Service', 'UMask') ?? '0022', 8);
      assert.equal(umask & 0o007, 0o007, `UMask=${umask.toString(8)}: new files must not be readable by everyone`);
    });
  }
});

describe('the comments and the README agree', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const headings = new Set([...readme.matchAll(/^#+ (.+)$/gm)].map((m) => m[1].trim()));
  for (const e of entries) {
    // README "Heading" or README ... "Heading", within one comment line.
    const cited = [...e.text.matchAll(/README\b[^"\n]*"([^"\n]+)"/g)].map((m) => m[1]);
    if (cited.length === 0) continue;
    it(`${e.file} cites README headings that exist`, () => {
      for (const heading of cited) assert.ok(headings.has(heading), `README has no heading "${heading}"`);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// systemd-analyze verify

interface Run {
  status: number | null;
  stderr: string;
  error?: Error;
}

function analyze(args: string[], cwd: string, env: NodeJS.ProcessEnv): Run {
  const r = spawnSync('systemd-analyze', args, {
    cwd,
    env: { ...env, SYSTEMD_COLORS: '0', SYSTEMD_PAGER: 'cat', SYSTEMD_LOG_COLOR: '0' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  return { status: r.status, stderr: `${r.stdout ?? ''}${r.stderr ?? ''}`, ...(r.error ? { error: r.error } : {}) };
}

/**
 * Copies the units one manager sees into dir; /usr/bin/node becomes this node where it is missing
 * (verify checks ExecStart paths).
 */
function copyUnits(dir: string, manager: 'system' | 'user'): void {
  mkdirSync(dir, { recursive: true });
  const node = existsSync('/usr/bin/node') ? undefined : process.execPath;
  for (const e of unitsOf(manager).values()) {
    writeFileSync(join(dir, e.unit), node ? e.text.replaceAll('/usr/bin/node ', `${node} `) : e.text);
  }
}

test('systemd-analyze verify accepts every unit and drop-in', async (t: TestContext) => {
  const version = analyze(['--version'], tmpdir(), process.env);
  if (version.error || version.status !== 0) {
    t.skip(`systemd-analyze is not usable here (${version.error?.message ?? version.stderr.trim()})`);
    return;
  }
  const work = mkdtempSync(join(tmpdir(), 'cm-systemd-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  if (!existsSync('/usr/bin/node')) t.diagnostic(`/usr/bin/node is missing: verifying with ${process.execPath} in its place`);

  // Environments: the system manager, and a user manager (needs a runtime dir; HOME is a temp one so
  // nothing from the real ~/.config/systemd/user gets in).
  const home = join(work, 'home');
  const runtime = join(work, 'runtime');
  mkdirSync(home);
  mkdirSync(runtime, { mode: 0o700 });
  const userEnv: NodeJS.ProcessEnv = { ...process.env, HOME: home, XDG_RUNTIME_DIR: runtime };
  for (const k of ['XDG_CONFIG_HOME', 'XDG_STATE_HOME', 'XDG_DATA_HOME', 'XDG_CACHE_HOME', 'SYSTEMD_UNIT_PATH']) delete userEnv[k];
  const systemEnv: NodeJS.ProcessEnv = { ...process.env };
  delete systemEnv.SYSTEMD_UNIT_PATH;
  const modes = { system: { flags: [] as string[], env: systemEnv }, user: { flags: ['--user'], env: userEnv } };

  // A trivial unit tells "systemd-analyze cannot run here" apart from "our unit is wrong".
  const probeDir = join(work, 'probe');
  mkdirSync(probeDir);
  writeFileSync(join(probeDir, 'cm-probe.service'), '[Unit]\nDescription=probe\n\n[Service]\nType=oneshot\nExecStart=/bin/true\n');
  const works: Partial<Record<keyof typeof modes, boolean>> = {};
  for (const [mode, { flags, env }] of Object.entries(modes) as [keyof typeof modes, (typeof modes)['system']][]) {
    const r = analyze([...flags, '--man=no', 'verify', './cm-probe.service'], probeDir, env);
    works[mode] = r.status === 0;
    if (!works[mode]) t.diagnostic(`systemd-analyze ${mode} mode cannot run here: ${r.stderr.trim() || r.error?.message}`);
  }
  if (!works.system) {
    t.skip('systemd-analyze verify fails even on a trivial unit here');
    return;
  }

  // Lines about our files: anything naming the work dir, a unit file, or a template instance.
  const names = [work, ...entries.map((e) => e.unit), ...units.filter((e) => isTemplate(e.unit)).map((e) => e.unit.split('@')[0] + '@')];
  const verify = async (label: string, dir: string, unitName: string, mode: keyof typeof modes) => {
    if (!works[mode]) return;
    await t.test(`${mode}: ${label}`, () => {
      const r = analyze([...modes[mode].flags, '--man=no', 'verify', `./${unitName}`], dir, modes[mode].env);
      const ours = r.stderr.split('\n').filter((l) => l.trim() && names.some((n) => l.includes(n)));
      const other = r.stderr.split('\n').filter((l) => l.trim() && !ours.includes(l));
      if (other.length) t.diagnostic(`${label}: ${other.join(' | ')}`);
      assert.equal(r.status, 0, `systemd-analyze ${mode} verify ${unitName} exited ${r.status}:\n${r.stderr}`);
      assert.deepEqual(ours, [], `systemd-analyze warned about ${unitName}`);
    });
  };

  for (const mode of ['system', 'user'] as const) {
    const all = join(work, `units-${mode}`);
    copyUnits(all, mode);
    for (const e of units.filter((u) => inManager(u, mode))) {
      const target = isTemplate(e.unit) ? instanceOf(e.unit) : e.unit;
      await verify(`${e.file} as ${target}`, all, target, mode);
    }
  }

  let n = 0;
  for (const e of dropIns) {
    const target = isTemplate(e.unit) ? instanceOf(e.unit) : e.unit;
    const variants: [string, string, (keyof typeof modes)[]][] = [
      ['as shipped', e.text, (['system', 'user'] as const).filter((m) => inManager(e, m))],
      // The commented-out lines include system-wide-only ones (User=, ReadWritePaths=).
      ['with its commented-out lines switched on', uncommented(e.text), ['system']],
    ];
    for (const [how, text, inModes] of variants) {
      for (const mode of inModes) {
        const dir = join(work, `drop-in-${n++}`);
        copyUnits(dir, mode);
        mkdirSync(join(dir, `${e.unit}.d`));
        const content = existsSync('/usr/bin/node') ? text : text.replaceAll('/usr/bin/node ', `${process.execPath} `);
        writeFileSync(join(dir, `${e.unit}.d`, e.dropIn!), content);
        await verify(`${e.file} ${how}, as ${e.unit}.d/${e.dropIn}`, dir, target, mode);
      }
    }
  }
});

// ---------------------------------------------------------------------------------------------
// systemd-analyze security

/** The exposure level `systemd-analyze security` prints last ("Overall exposure level for X: 1.6 OK"). */
function exposure(output: string): number | undefined {
  const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(output);
  return m ? Number(m[1]) : undefined;
}

test('systemd-analyze security --offline=yes scores every system service that runs node at 2.0 or less', async (t: TestContext) => {
  const work = mkdtempSync(join(tmpdir(), 'cm-security-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const probe = join(work, 'cm-probe.service');
  writeFileSync(probe, '[Service]\nExecStart=/bin/true\n');
  const r = analyze(['security', '--offline=yes', '--no-pager', probe], work, process.env);
  if (r.error || exposure(r.stderr) === undefined) {
    t.skip(`systemd-analyze security --offline=yes is not usable here (systemd >= 250 has it): ${r.error?.message ?? r.stderr.trim().split('\n').at(-1)}`);
    return;
  }
  for (const e of nodeServices.filter((u) => u.manager === 'system')) {
    await t.test(e.file, () => {
      const file = join(work, e.unit);
      writeFileSync(file, e.text);
      const out = analyze(['security', '--offline=yes', '--no-pager', file], work, process.env);
      const score = exposure(out.stderr);
      t.diagnostic(`${e.file}: ${score}`);
      assert.ok(score !== undefined && score <= 2.0, `${e.file}: exposure ${score}, want <= 2.0:\n${out.stderr}`);
    });
  }
});
