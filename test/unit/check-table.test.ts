import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkSteps, vesselReady, type CheckStep, type StepResult, type VesselCheck } from '../../src/check/check.js';
import { renderCheckTable } from '../../src/cli/check.js';

const ok = (...notes: string[]): StepResult => ({ state: 'ok', problems: [], notes });
const fail = (...problems: string[]): StepResult => ({ state: 'fail', problems, notes: [] });
const skipped: StepResult = { state: 'skipped', problems: [], notes: [] };

function vessel(name: string, address: string, steps: Partial<Record<CheckStep, StepResult>> = {}): VesselCheck {
  const all = Object.fromEntries(checkSteps.map((s) => [s, steps[s] ?? ok()])) as Record<CheckStep, StepResult>;
  return { vessel: name, address, steps: all };
}

const fp = 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';

describe('renderCheckTable', () => {
  it('all ready: aligned columns, ok cells, a summary', () => {
    const out = renderCheckTable([vessel('v1', '127.0.0.1:22'), vessel('backup-two', '10.0.0.2:2222')]);
    assert.equal(out, [
      'VESSEL      ADDRESS        CONNECT  HOST KEY  AUTH  COMMANDS  TEMPDIR  CAT/SHA256SUM  REMOTELOCATIONS',
      'v1          127.0.0.1:22   ok       ok        ok    ok        ok       ok             ok',
      'backup-two  10.0.0.2:2222  ok       ok        ok    ok        ok       ok             ok',
      '',
      'all 2 vessels ready',
      '',
    ].join('\n'));
  });

  it('FAIL and not reached (-) cells, one line per problem naming the vessel, then notes, then the summary', () => {
    const results = [
      vessel('v1', 'h1:22', {
        hostKey: { state: 'new', problems: [], notes: [`host key ${fp} is new: it will be recorded on the first run`] },
        tempDir: fail('TempDir /tmp/ro/chunks is not writable: Read-only file system'),
        remoteLocations: ok('RemoteLocation /srv/x of [Directory d] does not exist yet; it will be created (/srv is writable)'),
      }),
      vessel('v2', 'h2:22', {
        hostKey: fail(`host key changed: recorded ${fp}, now offered SHA256:B`),
        auth: skipped, commands: skipped, tempDir: skipped, tools: skipped, remoteLocations: skipped,
      }),
      vessel('v3', 'h3:22', {
        connect: fail('cannot connect to h3:22: connect ECONNREFUSED'),
        hostKey: skipped, auth: skipped, commands: skipped, tempDir: skipped, tools: skipped, remoteLocations: skipped,
      }),
      vessel('v4', 'h4:22', { tools: fail('cat does not work: exited with 1', 'sha256sum not found on the vessel') }),
      vessel('v5', 'h5:22', {
        commands: fail('cannot run commands: the server refuses them'),
        tempDir: skipped, tools: skipped, remoteLocations: skipped,
      }),
    ];
    const lines = renderCheckTable(results).split('\n');
    assert.deepEqual(lines, [
      'VESSEL  ADDRESS  CONNECT  HOST KEY  AUTH  COMMANDS  TEMPDIR  CAT/SHA256SUM  REMOTELOCATIONS',
      'v1      h1:22    ok       new       ok    ok        FAIL     ok             ok',
      'v2      h2:22    ok       FAIL      -     -         -        -              -',
      'v3      h3:22    FAIL     -         -     -         -        -              -',
      'v4      h4:22    ok       ok        ok    ok        ok       FAIL           ok',
      'v5      h5:22    ok       ok        ok    FAIL      -        -              -',
      '',
      'v1: TempDir /tmp/ro/chunks is not writable: Read-only file system',
      `v2: host key changed: recorded ${fp}, now offered SHA256:B`,
      'v3: cannot connect to h3:22: connect ECONNREFUSED',
      'v4: cat does not work: exited with 1',
      'v4: sha256sum not found on the vessel',
      'v5: cannot run commands: the server refuses them',
      '',
      `v1: host key ${fp} is new: it will be recorded on the first run`,
      'v1: RemoteLocation /srv/x of [Directory d] does not exist yet; it will be created (/srv is writable)',
      '',
      '5 of 5 vessels not ready',
      '',
    ]);
  });

  it('a new host key alone is ready; one vessel', () => {
    const r = vessel('v1', 'h:22', { hostKey: { state: 'new', problems: [], notes: ['new key'] } });
    assert.equal(vesselReady(r), true);
    assert.match(renderCheckTable([r]), /\n\nv1: new key\n\nall 1 vessel ready\n$/);
  });

  it('a skipped step is not ready', () => {
    assert.equal(vesselReady(vessel('v1', 'h:22', { remoteLocations: skipped })), false);
  });
});
