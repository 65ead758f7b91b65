// Mistakes on the shore's side (issue 16, items 5, 6 and 11): a Location that does not exist, is
// a file or is read-only (what ProtectSystem=strict gives without ReadWritePaths=), a state
// database folder that cannot be written, a corrupt database. `check` names each in one line and
// exits 1; `run --once` counts a Location it cannot use as a failure and sends nothing from it; a
// read-only filesystem is called read-only; a Location made after the daemon started is taken up
// at once, not at the next rescan. Read-only views are made in a private mount namespace.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { runCli, startDaemon, waitFor } from '../helpers/process.js';
import { runCliReadOnly } from '../helpers/read-only.js';
import { exists, listFiles, sha256File, writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, databasePath, resetFarm, writeSettings } from '../helpers/push.js';

let farm: VesselFarm;

before(async () => {
  farm = await startVesselFarm({ count: 1 });
});
after(async () => {
  await farm?.stop();
});

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Shore folders of one test, outside the vessel's view: each lands under the view on the vessel. */
function shorePath(name: string): string {
  return join(farm.root, 'shore', name);
}

const directory = (name: string, location: string) => ({ name, location, extra: `RemoteLocation = ${join(farm.viewPath, name)}` });

/** Points the settings at another state database than the farm's. */
async function useDatabase(settings: string, database: string): Promise<void> {
  await writeFile(settings, (await readFile(settings, 'utf8')).replace(`Database = ${databasePath(farm)}\n`, `Database = ${database}\n`));
}

/** The `shore: ` lines of a check report. */
const shoreLines = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('shore: '));

describe('shore problems', () => {
  beforeEach(async () => {
    await resetFarm(farm);
    await rm(join(farm.root, 'shore'), { recursive: true, force: true });
    await mkdir(join(farm.root, 'shore'), { recursive: true });
  });

  it('check: a missing, a file, a read-only Location and a read-only database folder are one line each, exit 1; the vessels are still checked', async () => {
    const missing = shorePath('missing');
    const file = shorePath('a-file');
    const readOnly = shorePath('read-only');
    const state = shorePath('state');
    await writeFile(file, 'not a folder');
    await mkdir(readOnly);
    await mkdir(state);
    const settings = await writeSettings(farm, {
      directories: [
        { name: 'data', location: farm.viewPath },
        directory('gone', missing),
        directory('flat', file),
        directory('locked', readOnly),
      ],
    });
    await useDatabase(settings, join(state, 'db.sqlite3'));
    const r = await runCliReadOnly([readOnly, state], ['check', '-c', settings], { cwd: farm.root });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.equal(r.stderr, '');
    assert.deepEqual(shoreLines(r.stdout), [
      `shore: Location ${missing} of [Directory gone] does not exist`,
      `shore: Location ${file} of [Directory flat] is not a folder`,
      `shore: Location ${readOnly} of [Directory locked] is not writable (read-only file system): replicated files could not be moved to processed/`,
      `shore: state database folder ${state} is not writable: read-only file system`,
    ]);
    assert.match(r.stdout, /^v1 +127\.0\.0\.1:\d+ +ok +new +ok/m, 'the vessel is checked all the same');
    assert.match(r.stdout, /all 1 vessel ready\nthe shore is not ready: 4 problems \(the shore: lines above\)\n$/);
    assert.ok(!(await exists(join(readOnly, 'processed'))), 'check creates nothing');

    // All fixed: one ok line; a database folder still to be made is a note, not a problem.
    await rm(file);
    await mkdir(missing);
    await mkdir(file);
    await rm(state, { recursive: true });
    const fixed = await runCli(['check', '-c', settings], { cwd: farm.root });
    assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
    assert.deepEqual(shoreLines(fixed.stdout), [
      'shore: ok (4 Locations and the state database folder)',
      `shore: state database folder ${state} does not exist yet; it will be created (${join(farm.root, 'shore')} is writable)`,
    ]);
    assert.ok(!(await exists(state)), 'not created by check');
  });

  it('run --once: a missing Location and a read-only one are failures (exit 1): nothing is sent from them, the other Directory is replicated', async () => {
    const missing = shorePath('missing');
    const readOnly = shorePath('read-only');
    await mkdir(readOnly);
    const held = await writeRandomFile(join(readOnly, 'held.bin'), 50_000, 1);
    const sent = await writeRandomFile(join(farm.viewPath, 'sent.bin'), 50_000, 2);
    const settings = await writeSettings(farm, {
      directories: [{ name: 'data', location: farm.viewPath }, directory('gone', missing), directory('locked', readOnly)],
    });
    const r = await runCliReadOnly([readOnly], ['run', '-c', settings, '--once'], { cwd: farm.root });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    const out = r.stdout;
    assert.match(out, new RegExp(`ERROR +Location ${escape(missing)} of \\[Directory gone\\] does not exist; nothing is sent from it directory=gone`));
    assert.match(out, new RegExp(`ERROR +Location ${escape(readOnly)} of \\[Directory locked\\] is not writable \\(read-only file system\\): replicated files could not be moved to processed/; nothing is sent from it directory=locked`));
    assert.match(out, /ERROR +finished with failures failures=0 locations=2/);
    assert.doesNotMatch(out, /everything processed/);
    await assertOnVessel(farm.vessels[0], farm.viewPath, new Map([['sent.bin', sent]]));
    assert.deepEqual(await listFiles(farm.vessels[0].hostPath(join(farm.viewPath, 'locked'))), [], 'nothing of the read-only Location on the vessel');
    assert.equal(await sha256File(join(readOnly, 'held.bin')), held, 'its file stays where it is');
  });

  it('run: a database folder that cannot be written exits 2 saying read-only, also where folders are still to be made', async () => {
    const state = shorePath('state');
    await mkdir(state);
    for (const database of [join(state, 'db.sqlite3'), join(state, 'new', 'deeper', 'db.sqlite3')]) {
      const settings = await writeSettings(farm);
      await useDatabase(settings, database);
      const r = await runCliReadOnly([state], ['run', '-c', settings, '--once'], { cwd: farm.root });
      assert.equal(r.code, 2, r.stdout + r.stderr);
      const expected = database.includes('deeper')
        ? `its folder ${join(state, 'new', 'deeper')} cannot be created: read-only file system`
        : `its folder ${state} is not writable: read-only file system`;
      assert.equal(r.stderr, `contentmonster: ${settings}: [MONSTER] Database: cannot open ${database}: ${expected}\n`);
      assert.equal(r.stdout, '');
    }
  });

  it('a corrupt database: run, check and status all name it and exit 2', async () => {
    const settings = await writeSettings(farm);
    await mkdir(join(farm.root, 'state'), { recursive: true });
    await writeFile(databasePath(farm), 'not a database; '.repeat(300));
    for (const command of [['run', '--once'], ['check'], ['status'], ['status', '--json']]) {
      const r = await runCli([command[0], '-c', settings, ...command.slice(1)], { cwd: farm.root });
      assert.equal(r.code, 2, `${command.join(' ')}: ${r.stdout}${r.stderr}`);
      assert.equal(r.stderr, `contentmonster: ${settings}: [MONSTER] Database: cannot open ${databasePath(farm)}: file is not a database\n`, command.join(' '));
      assert.equal(r.stdout, '', command.join(' '));
    }
  });

  it('daemon: a Location made after the start is watched as soon as it exists, not at the next rescan', async () => {
    const late = shorePath('late');
    const settings = await writeSettings(farm, {
      directories: [{ name: 'data', location: farm.viewPath }, directory('late', late)],
      monsterExtra: 'RescanInterval = 86400',
    });
    const daemon = startDaemon(['run', '-c', settings], { cwd: farm.root });
    try {
      await daemon.waitForEvent('ready');
      assert.match(daemon.output(), new RegExp(`WARN +Location ${escape(late)} of \\[Directory late\\] does not exist; it is taken up as soon as it appears directory=late`));
      await mkdir(join(late, 'sub'), { recursive: true });
      const first = await writeRandomFile(join(late, 'sub', 'first.bin'), 40_000, 1);
      await daemon.waitForEvent('locationUsable', (e) => e.directory === 'late');
      assert.match(daemon.output(), new RegExp(`INFO +Location ${escape(late)} of \\[Directory late\\] is usable now; watching it`));
      const remote = join(farm.viewPath, 'late');
      await waitFor(async () => (await sha256File(farm.vessels[0].hostPath(join(remote, 'sub', 'first.bin'))).catch(() => '')) === first, 'first.bin on v1');
      // Watched from now on: a file written later goes out too (no rescan for a day).
      const second = await writeRandomFile(join(late, 'second.bin'), 30_000, 2);
      await waitFor(async () => (await sha256File(farm.vessels[0].hostPath(join(remote, 'second.bin'))).catch(() => '')) === second, 'second.bin on v1');
      await waitFor(() => exists(join(late, 'processed', 'second.bin')), 'second.bin moved to processed/');
      assert.deepEqual((await readdir(late)).sort(), ['processed', 'sub']);
    } finally {
      daemon.kill('SIGTERM');
      await daemon.waitForExit().catch(() => daemon.kill('SIGKILL'));
    }
  });
});
