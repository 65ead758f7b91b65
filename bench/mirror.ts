// The pull mirror's part of `npm run bench`: `contentmonster mirror` against OpenSSH `sftp`
// (`get -r`, default cipher and aes128-gcm) from the same sshd in the same run, alternating.
// Cases: one large file (1 GiB) and many small files (2000 × 64 KiB).
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startVesselFarm } from '../test/helpers/sshd.js';
import { sha256File, writeRandomFile } from '../test/helpers/tree.js';
import { printCase, summarize, time, type Sample, type Summary } from './lib.js';

export interface MirrorBenchOptions {
  quick: boolean;
  rounds: number;
}

interface Case {
  name: string;
  files: number;
  size: number;
}

export async function benchMirror(options: MirrorBenchOptions): Promise<Record<string, Summary[]>> {
  const cases: Case[] = options.quick
    ? [{ name: 'one 256 MiB file', files: 1, size: 256 * 1024 * 1024 }, { name: '500 files of 64 KiB', files: 500, size: 64 * 1024 }]
    : [{ name: 'one 1 GiB file', files: 1, size: 1024 * 1024 * 1024 }, { name: '2000 files of 64 KiB', files: 2000, size: 64 * 1024 }];
  const farm = await startVesselFarm({ count: 1, tmpfsTmp: false });
  const results: Record<string, Summary[]> = {};
  try {
    const server = farm.vessels[0];
    // An empty home for every client: no ~/.ssh/config, agent or default key takes part.
    const home = await mkdtemp(join(farm.root, 'bench-home-'));
    const dest = join(farm.root, 'bench-dest');
    const sshOptions = ['-i', farm.clientKey, '-P', String(server.port), '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'BatchMode=yes', '-q'];
    for (const [i, c] of cases.entries()) {
      const remote = join(farm.viewPath, `mirror-case-${i}`);
      const hashes = new Map<string, string>();
      for (let f = 0; f < c.files; f++) {
        const name = c.files === 1 ? 'big.bin' : `f${String(f).padStart(5, '0')}.bin`;
        hashes.set(name, await writeRandomFile(server.hostPath(join(remote, 'item', name)), c.size, 1000 + f));
      }
      const batch = join(home, `get-${i}.batch`);
      await writeFile(batch, `get -r ${remote}/item ${dest}/item\n`);
      const tools: [string, () => Promise<Sample>][] = [
        ['contentmonster mirror -j 3', () => time({
          ours: true,
          command: ['mirror', '127.0.0.1', remote, dest, '-p', String(server.port), '-i', farm.clientKey, '-j', '3',
            '--host-key-file', join(home, 'host-keys'), '--metrics-socket', '', '--log-level', 'warn'],
          env: { HOME: home, SSH_AUTH_SOCK: '', SFTP_USERNAME: 'root' },
        })],
        ['sftp get -r (default cipher)', () => time({ command: ['sftp', ...sshOptions, '-b', batch, 'root@127.0.0.1'], env: { HOME: home } })],
        ['sftp get -r (aes128-gcm)', () => time({ command: ['sftp', ...sshOptions, '-c', 'aes128-gcm@openssh.com', '-b', batch, 'root@127.0.0.1'], env: { HOME: home } })],
      ];
      const samples = new Map<string, Sample[]>(tools.map(([name]) => [name, []]));
      for (let round = 0; round < options.rounds; round++) {
        for (const [name, run] of tools) {
          await rm(dest, { recursive: true, force: true });
          await mkdir(dest);
          execFileSync('sync');
          samples.get(name)!.push(await run());
          if (name.startsWith('contentmonster')) await verify(join(dest, 'item'), hashes);
        }
      }
      const amount = c.files === 1 ? c.size : c.files;
      const rows = tools.map(([name]) => summarize(name, samples.get(name)!, amount, c.files === 1 ? 'MB/s' : 'files/s'));
      printCase(`mirror: ${c.name}, ${options.rounds} round(s)`, rows, 'contentmonster mirror -j 3');
      results[`mirror: ${c.name}`] = rows;
      await rm(server.hostPath(remote), { recursive: true, force: true });
    }
    await rm(dest, { recursive: true, force: true });
  } finally {
    await farm.stop();
  }
  return results;
}

/** A benchmark of a wrong copy is worthless: check what our mirror wrote. */
async function verify(dir: string, hashes: Map<string, string>): Promise<void> {
  const names = (await readdir(dir)).sort();
  if (names.length !== hashes.size) throw new Error(`mirror benchmark: ${names.length} files in ${dir}, expected ${hashes.size}`);
  // Hash a sample: the large file always, a few of the small ones.
  for (const name of names.filter((_, i) => names.length === 1 || i % 250 === 0)) {
    if ((await sha256File(join(dir, name))) !== hashes.get(name)) throw new Error(`mirror benchmark: ${name} differs from the server's`);
  }
}
