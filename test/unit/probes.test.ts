import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { probeSha256 } from '../../src/push/upload/hasher.js';
import { checkProbeScript, parseCheckProbe } from '../../src/push/upload/probes.js';
import { assertNoMarker, caseDir, markerName, removeScratch, root } from '../helpers/sh-scripts.js';

after(removeScratch);

describe('checkProbeScript / parseCheckProbe', () => {
  /** Runs the probe with `PATH` limited to `bin` when given (to hide or fake cat and sha256sum). */
  function probe(tempDir: string, locations: string[], bin?: string) {
    const env = bin ? { ...process.env, PATH: bin } : process.env;
    const r = spawnSync('/bin/sh', ['-c', checkProbeScript(tempDir, locations)], { cwd: root, env, encoding: 'utf8', timeout: 30_000 });
    if (r.error) throw r.error;
    assert.equal(r.status, 0, r.stderr);
    return { stdout: r.stdout, parsed: parseCheckProbe(r.stdout, locations.length) };
  }

  /** A PATH folder holding `rm` (the probe removes its file) and the given fake tools. */
  function fakeBin(tools: Record<string, string>): string {
    const bin = caseDir('bin');
    symlinkSync(execFileSync('/bin/sh', ['-c', 'command -v rm'], { encoding: 'utf8' }).trim(), join(bin, 'rm'));
    for (const [name, body] of Object.entries(tools)) {
      writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    }
    return bin;
  }

  it('existing writable folders and working tools: all ok, and nothing is left behind', () => {
    const dir = caseDir('probe-ok');
    mkdirSync(join(dir, 'temp'));
    mkdirSync(join(dir, 'loc'));
    const { parsed, stdout } = probe(join(dir, 'temp'), [join(dir, 'loc'), dir]);
    assert.deepEqual(parsed, {
      tempDir: { state: 'ok', missingLevels: 0 },
      locations: [{ state: 'ok', missingLevels: 0 }, { state: 'ok', missingLevels: 0 }],
      cat: { state: 'ok' },
      sha256sum: { state: 'ok' },
    }, stdout);
    assert.deepEqual(readdirSync(dir).sort(), ['loc', 'temp']);
    assert.deepEqual(readdirSync(join(dir, 'temp')), []);
  });

  it('a missing folder is judged by its nearest existing ancestor, and not created', () => {
    const dir = caseDir('probe-missing');
    const { parsed } = probe(join(dir, 'a', 'b', 'c'), [join(dir, 'x')]);
    assert.deepEqual(parsed?.tempDir, { state: 'ok', missingLevels: 3 });
    assert.deepEqual(parsed?.locations, [{ state: 'ok', missingLevels: 1 }]);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('a file where a folder is expected, itself or as an ancestor: notdir', () => {
    const dir = caseDir('probe-notdir');
    writeFileSync(join(dir, 'file'), 'x');
    const { parsed } = probe(join(dir, 'file'), [join(dir, 'file', 'deeper', 'still')]);
    assert.deepEqual(parsed?.tempDir, { state: 'notdir', missingLevels: 0 });
    assert.deepEqual(parsed?.locations, [{ state: 'notdir', missingLevels: 2 }]);
    assert.equal(readFileSync(join(dir, 'file'), 'utf8'), 'x');
  });

  it('a folder where no file can be created: unwritable, with the reason and without the path', () => {
    // /proc refuses new files even to root, where permission bits would not.
    const { parsed, stdout } = probe('/proc/cm-check-nothing-here/sub', ['/proc']);
    assert.equal(parsed?.tempDir.state, 'unwritable', stdout);
    assert.equal(parsed?.tempDir.missingLevels, 2);
    assert.equal(parsed?.locations[0]?.state, 'unwritable');
    const reason = parsed?.tempDir.state === 'unwritable' ? parsed.tempDir.reason : '';
    assert.ok(reason.length > 0 && !reason.includes('/proc'), `reason: ${reason}`);
  });

  it('hostile folder names: inert, one line per finding, no path bytes in the output, nothing created', () => {
    const dir = caseDir('probe-hostile');
    const nasty = `sp ace 'q' "dq" $(touch ${markerName}) \`touch ${markerName}\` ; & | * ? [x] ~ \\ \n nl\ttab\nloc:0 notdir 0\nend 😀`;
    const existing = join(dir, `-d ${nasty}`);
    mkdirSync(existing);
    const missing = join(dir, `m ${nasty}`, `$(touch ${markerName})`, `;touch ${markerName};`);
    const { parsed, stdout } = probe(missing, [existing, join(existing, `'`), `${existing}/`]);
    assert.deepEqual(parsed, {
      tempDir: { state: 'ok', missingLevels: 3 },
      locations: [{ state: 'ok', missingLevels: 0 }, { state: 'ok', missingLevels: 1 }, { state: 'ok', missingLevels: 0 }],
      cat: { state: 'ok' },
      sha256sum: { state: 'ok' },
    }, stdout);
    assert.deepEqual(stdout.split('\n'), ['tempdir ok 3', 'loc:0 ok 0', 'loc:1 ok 1', 'loc:2 ok 0', 'cat ok', 'sha256sum ok', 'end', '']);
    assert.deepEqual(readdirSync(dir), [`-d ${nasty}`]);
    assert.deepEqual(readdirSync(existing), []);
    assertNoMarker();
  });

  it('cat and sha256sum not installed: missing', () => {
    const { parsed } = probe(root, [], fakeBin({}));
    assert.deepEqual([parsed?.cat, parsed?.sha256sum], [{ state: 'missing' }, { state: 'missing' }]);
  });

  it('no tee on the vessel: ready (the join no longer uses it, so it is not asked about)', () => {
    const real = (tool: string) => `exec '${execFileSync('/bin/sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim()}' "$@"`;
    const { parsed, stdout } = probe(root, [], fakeBin({ cat: real('cat'), sha256sum: real('sha256sum') }));
    assert.deepEqual([parsed?.cat, parsed?.sha256sum], [{ state: 'ok' }, { state: 'ok' }], stdout);
    assert.ok(!/tee/.test(checkProbeScript(root, [])), 'the probe never runs tee');
  });

  it('a failing command: its exit code and its output on one line; a wrong answer: what it printed', () => {
    const bin = fakeBin({
      cat: 'echo "cat: read error:" >&2; echo "Input/output error" >&2; exit 1',
      sha256sum: 'echo "0000  -"',
    });
    const { parsed } = probe(root, [], bin);
    assert.deepEqual(parsed?.cat, { state: 'exit', code: 1, output: 'cat: read error: Input/output error' });
    assert.deepEqual(parsed?.sha256sum, { state: 'wrong', output: '0000 -' });
  });

  it('sha256sum must print the SHA-256 of abc; cat must print abc exactly', () => {
    const bin = fakeBin({ cat: 'printf "abc\\n"; printf more', sha256sum: `echo "${probeSha256}  -"` });
    const { parsed } = probe(root, [], bin);
    assert.deepEqual(parsed?.cat, { state: 'wrong', output: 'abc more' });
    assert.deepEqual(parsed?.sha256sum, { state: 'ok' });
  });

  it('output that stops before `end`, or lacks a line, is not a result; unrelated lines (a tee line among them) are ignored', () => {
    const full = 'motd noise\ntempdir ok 0\nloc:0 unwritable 1 Read-only file system\ncat ok\ntee missing\nsha256sum exit 126 Permission denied\nend\n';
    assert.deepEqual(parseCheckProbe(full, 1), {
      tempDir: { state: 'ok', missingLevels: 0 },
      locations: [{ state: 'unwritable', missingLevels: 1, reason: 'Read-only file system' }],
      cat: { state: 'ok' },
      sha256sum: { state: 'exit', code: 126, output: 'Permission denied' },
    });
    assert.equal(parseCheckProbe(full.replace('end\n', ''), 1), undefined);
    assert.equal(parseCheckProbe(full.replace('cat ok\n', ''), 1), undefined);
    assert.notEqual(parseCheckProbe(full.replace('tee missing\n', ''), 1), undefined);
    assert.equal(parseCheckProbe(full, 2), undefined);
    assert.equal(parseCheckProbe('This account is currently not available.\n', 0), undefined);
  });
});
