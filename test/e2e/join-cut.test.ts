// The batched join across a cut (issue 19): with 10 MiB chunks the vessel appends them 4 to a
// `cat` while the rest of the file goes up. Here that `cat` is stopped on the vessel after 2 of
// its 4 chunks, mid-upload, and then the link is cut (or the daemon killed). The next connection
// must place exactly the shore's file (SHA-256 checked) from the chunks left in TempDir, with
// nothing of the half-joined file reused, doubled or left behind.
import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { chmod, copyFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startVesselFarm, type VesselFarm } from '../helpers/sshd.js';
import { startLink, type Link } from '../helpers/link.js';
import { runCli, startDaemon, waitFor } from '../helpers/process.js';
import { exists, sha256File, writeRandomFile } from '../helpers/tree.js';
import { assertOnVessel, assertVesselClean, onVessel, resetFarm, writeSettings } from '../helpers/push.js';

const MiB = 1024 * 1024;
const CHUNK = 10 * MiB; // the default: 4 chunks to a `cat`

let farm: VesselFarm;
let link: Link;

before(async () => {
  farm = await startVesselFarm({ count: 1 });
  link = await startLink(farm.vessels[0].port);
});
after(async () => {
  await link?.stop();
  await farm?.stop();
});

/**
 * The vessel's `cat`, for the first batch only: appends its first 2 chunks, says so, and waits
 * (bounded) for the gate before the other 2. Any other `cat` is the real one.
 */
async function halfwayCat(): Promise<{ started: () => Promise<boolean>; heal: () => void }> {
  const real = join(farm.root, 'cat.real');
  const wrapper = join(farm.root, 'cat.halfway');
  const gate = join(farm.root, 'cat.gate');
  const started = join(farm.root, 'cat.started');
  await copyFile('/usr/bin/cat', real);
  await rm(gate, { force: true });
  await rm(started, { force: true });
  await writeFile(wrapper, [
    '#!/bin/sh',
    `if [ "$1" != -- ] || [ $# -lt 5 ] || [ -e '${started}' ]; then exec '${real}' "$@"; fi`,
    'shift',
    `'${real}' -- "$1" "$2" || exit 1`,
    `: > '${started}'`,
    `i=0; while [ ! -e '${gate}' ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i+1)); done`,
    'shift 2',
    `exec '${real}' -- "$@"`,
  ].join('\n'));
  await chmod(wrapper, 0o755);
  onVessel(farm.vessels[0], `mount --bind '${wrapper}' /usr/bin/cat`);
  return {
    started: () => exists(started),
    heal: () => {
      execFileSync('touch', [gate]);
      onVessel(farm.vessels[0], 'umount -l /usr/bin/cat'); // lazy: the wrapper may still be running
    },
  };
}

/** Sizes of the half-joined files beside the destination on the vessel. */
function halfJoined(): number[] {
  const dir = farm.vessels[0].hostPath(farm.viewPath);
  return readdirSync(dir).filter((n) => /^\.cm-[0-9a-f]+\.\d+\.tmp$/.test(n)).map((n) => statSync(join(dir, n)).size);
}

describe('the batched join, cut halfway through a batch', () => {
  beforeEach(async () => {
    link.setRateLimit(0);
    await resetFarm(farm);
  });

  for (const cut of ['the link cut', 'the daemon killed'] as const) {
    it(`${cut} while a cat has 2 of its 4 chunks in, mid-upload: the next connection places the exact file`, async () => {
      // 5 chunks: the first 4 make a batch; the last is still going up when the cut comes.
      const size = 4 * CHUNK + CHUNK - 12345;
      const sha = await writeRandomFile(join(farm.viewPath, 'big.bin'), size, 19);
      const settings = await writeSettings(farm, { chunkSize: CHUNK, portFor: () => link.port });
      const slow = await halfwayCat();
      let healed = false;
      try {
        link.setRateLimit(8 * MiB); // the last chunk takes over a second after the batch starts
        const daemon = startDaemon(['run', '-c', settings, '--once', '--log-level', 'debug'], { cwd: farm.root });
        await waitFor(slow.started, 'the first batch\'s cat halfway', 60_000, 20);
        assert.ok(!daemon.events().some((e) => e.type === 'joining'), 'the premise: the upload is not over');
        assert.deepEqual(halfJoined(), [2 * CHUNK], 'the premise: half a batch is joined');
        if (cut === 'the link cut') link.cutAll();
        else daemon.kill('SIGKILL');
        link.setRateLimit(0);
        slow.heal();
        healed = true;
        if (cut === 'the link cut') {
          const exit = await daemon.waitForExit(120_000);
          assert.equal(exit.code, 0, daemon.output());
          assert.ok(link.counts().connections > 1, 'it reconnected');
        } else {
          await daemon.waitForExit();
          const r = await runCli(['run', '-c', settings, '--once'], { cwd: farm.root });
          assert.equal(r.code, 0, r.stdout + r.stderr);
        }
        await assertOnVessel(farm.vessels[0], farm.viewPath, new Map([['big.bin', sha]]));
        await assertVesselClean(farm.vessels[0], farm.viewPath);
        assert.equal(await sha256File(join(farm.viewPath, 'processed', 'big.bin')), sha);
      } finally {
        if (!healed) slow.heal();
      }
    });
  }
});
