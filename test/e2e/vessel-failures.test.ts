// Vessel-side failures (issue 3, item 6): one vessel is broken in one way, injected into its
// own mount namespace with nsenter. The run must name that vessel and the file, keep the file
// on the shore (queued, nothing lost), and the other vessels must get it. Once the fault is
// gone, the next run delivers it there too.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { runCli } from '../helpers/process.js';
import { exists, writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, writeSettings, resetFarm, onVessel } from '../helpers/push.js';

let farm: VesselFarm;

before(async () => {
  farm = await startVesselFarm({ count: 3 });
});
after(async () => {
  await farm?.stop();
});


const onV1 = (script: string) => onVessel(farm.vessels[0], script);

/** A stand-in for a vessel command that fails the way a broken or missing one does. */
async function failingCommand(name: string, message: string, code: number): Promise<string> {
  const path = join(farm.root, `fake-${name}`);
  await writeFile(path, `#!/bin/sh\necho "${message}" >&2\nexit ${code}\n`);
  await chmod(path, 0o755);
  return path;
}

interface Fault {
  name: string;
  /** What the failure line must say (besides vessel and file). */
  reason: RegExp;
  inject(): Promise<void> | void;
  heal(): Promise<void> | void;
  tempDir?: string;
}

const faults: Fault[] = [
  {
    name: 'TempDir not writable',
    reason: /TempDir \/tmp\/ro\/chunks on vessel v1 is not writable: .*Read-only file system/,
    tempDir: '/tmp/ro/chunks',
    inject: () => onV1('mkdir -p /tmp/ro && mount --bind /tmp/ro /tmp/ro && mount -o remount,bind,ro /tmp/ro'),
    heal: () => onV1('umount /tmp/ro'),
  },
  {
    name: 'destination not writable',
    reason: /Read-only file system/,
    inject: () => onV1(`mount --bind '${farm.viewPath}' '${farm.viewPath}' && mount -o remount,bind,ro '${farm.viewPath}'`),
    heal: () => onV1(`umount '${farm.viewPath}'`),
  },
  {
    name: 'disk full',
    reason: /TempDir \/tmp\/.ContentMonster on vessel v1 is full/,
    inject: () => onV1('mkdir -p /tmp/.ContentMonster && mount -t tmpfs -o size=256k tmpfs /tmp/.ContentMonster'),
    heal: () => onV1('umount /tmp/.ContentMonster'),
  },
  {
    // openssl is the faster hasher and sha256sum the fallback: with both broken, nothing can verify.
    name: 'openssl and sha256sum missing',
    reason: /hashing \(openssl or sha256sum\) failed.*sha256sum: not found/,
    inject: async () => {
      onV1(`mount --bind '${await failingCommand('openssl', 'sh: 1: openssl: not found', 127)}' /usr/bin/openssl`);
      onV1(`mount --bind '${await failingCommand('sha256sum', 'sh: 1: sha256sum: not found', 127)}' /usr/bin/sha256sum`);
    },
    heal: () => onV1('umount /usr/bin/sha256sum; umount /usr/bin/openssl'),
  },
  {
    name: 'cat failing',
    reason: /joining chunks \(cat\) failed.*cat: Input\/output error/,
    inject: async () => onV1(`mount --bind '${await failingCommand('cat', 'cat: Input/output error', 1)}' /usr/bin/cat`),
    heal: () => onV1('umount /usr/bin/cat'),
  },
];

describe('a broken vessel', () => {
  beforeEach(() => resetFarm(farm));

  for (const fault of faults) {
    it(`${fault.name}: a clear error for that vessel and file, the others proceed, nothing lost`, async () => {
      const files = new Map([['payload.bin', await writeRandomFile(join(farm.viewPath, 'payload.bin'), 1024 * 1024, 21)]]);
      const settings = await writeSettings(farm, { chunkSize: 512 * 1024, vesselExtra: () => (fault.tempDir ? `TempDir = ${fault.tempDir}` : '') });
      await fault.inject();
      let healed = false;
      try {
        const r = await runCli(['run', '-c', settings, '--once', '--give-up-after', '4'], { cwd: farm.root });
        assert.equal(r.code, 1, r.stdout + r.stderr);
        const failure = r.stdout.split('\n').filter((l) => /not replicated/.test(l));
        assert.equal(failure.length, 1, r.stdout);
        assert.match(failure[0], /vessel=v1 file=\S*payload\.bin/);
        // A vessel given up (a full disk is transient, so it is retried until --give-up-after)
        // says why once, in its give-up line; the file's line points there.
        const why = /reason is logged above/.test(failure[0])
          ? r.stdout.split('\n').filter((l) => /ERROR vessel given up for this run vessel=v1/.test(l))
          : [failure[0]];
        assert.equal(why.length, 1, r.stdout);
        assert.match(why[0], fault.reason);
        if (process.env.SHOW_FAILURE_LINES) console.log(`${fault.name}: ${failure[0]}`);
        await assertOnVessel(farm.vessels[1], farm.viewPath, files);
        await assertOnVessel(farm.vessels[2], farm.viewPath, files);
        assert.ok(await exists(join(farm.viewPath, 'payload.bin')), 'stays on the shore, queued for v1');
        assert.ok(!(await exists(farm.vessels[0].hostPath(join(farm.viewPath, 'payload.bin')))), 'nothing at the destination on v1');

        await fault.heal();
        healed = true;
        const again = await runCli(['run', '-c', settings, '--once'], { cwd: farm.root });
        assert.equal(again.code, 0, again.stdout + again.stderr);
        for (const v of farm.vessels) await assertOnVessel(v, farm.viewPath, files);
        assert.ok(await exists(join(farm.viewPath, 'processed', 'payload.bin')));
      } finally {
        if (!healed) await Promise.resolve(fault.heal()).catch(() => {});
      }
    });
  }
});
