// A Dropbear vessel for end-to-end tests: `dropbear` on 127.0.0.1 in its own mount namespace,
// added to a farm of sshd vessels (test/helpers/sshd.ts), so that it shares the farm's client
// key and viewPath and farm.stop() stops it with the others.
//
// As in the farm, farm.viewPath is a bind mount of the vessel's own backing directory and /root
// an empty home of its own, which here holds .ssh/authorized_keys (Dropbear has no
// AuthorizedKeysFile setting: it reads ~/.ssh/authorized_keys, and refuses it when the file,
// ~/.ssh or ~ is writable by group or others). /tmp is a private tmpfs.
//
// Its sftp subsystem is OpenSSH's sftp-server: Debian's dropbear runs /usr/lib/sftp-server
// (see `strings /usr/sbin/dropbear | grep sftp`), which openssh-sftp-server installs as a
// symlink to /usr/lib/openssh/sftp-server. Without that package there is no SFTP at all.
import { execFile } from 'node:child_process';
import { access, chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fingerprintOfPublicKeyLine, freePorts, startNamespacedServer, type Vessel, type VesselFarm } from './sshd.js';

const execFileP = promisify(execFile);

const DROPBEAR = '/usr/sbin/dropbear';
/** Where Debian's dropbear looks for the sftp server. */
export const DROPBEAR_SFTP_SERVER = '/usr/lib/sftp-server';

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface DropbearOptions {
  /** Vessel name (default `dropbear<n>`, n counting the farm's vessels). */
  name?: string;
  /** Private tmpfs on /tmp (default true, as in the farm). */
  tmpfsTmp?: boolean;
}

/**
 * Starts a Dropbear vessel logging root in with the farm's client key, and appends it to
 * farm.vessels (so resetFarm() and farm.stop() include it).
 */
export async function startDropbearVessel(farm: VesselFarm, opts: DropbearOptions = {}): Promise<Vessel> {
  const n = farm.vessels.length + 1;
  const name = opts.name ?? `dropbear${n}`;
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`startDropbearVessel: bad name ${name}`);
  await access(DROPBEAR_SFTP_SERVER).catch(() => {
    throw new Error(`startDropbearVessel: ${DROPBEAR_SFTP_SERVER} is missing (apt-get install openssh-sftp-server)`);
  });
  const backing = join(farm.root, `vessel-${name}`);
  const home = join(farm.root, `home-${name}`);
  const hostKey = join(farm.root, 'keys', `host-${name}.dropbear`);
  await mkdir(backing, { recursive: true });
  await mkdir(join(home, '.ssh'), { recursive: true, mode: 0o700 });
  await chmod(home, 0o700);
  await writeFile(join(home, '.ssh', 'authorized_keys'), await readFile(`${farm.clientKey}.pub`, 'utf8'), { mode: 0o600 });
  await execFileP('dropbearkey', ['-t', 'ed25519', '-f', hostKey]);
  const { stdout } = await execFileP('dropbearkey', ['-y', '-f', hostKey]);
  const publicLine = stdout.split('\n').find((l) => l.startsWith('ssh-'));
  if (!publicLine) throw new Error(`dropbearkey -y printed no public key:\n${stdout}`);
  const [port] = await freePorts(1);
  const steps = [
    `mount --bind ${shQuote(backing)} ${shQuote(farm.viewPath)}`,
    `mount --bind ${shQuote(home)} /root`,
    ...(farm.etc ? [`mount --bind ${shQuote(farm.etc)} /etc`] : []),
    ...((opts.tmpfsTmp ?? true) ? ['mount -t tmpfs -o size=2g tmpfs /tmp'] : []),
    // -F foreground, -E log to stderr, -s no password logins, -j -k no port forwarding, -P its
    // pid file here rather than in /var/run (written even in the foreground).
    `exec ${DROPBEAR} -F -E -s -j -k -p 127.0.0.1:${port} -r ${shQuote(hostKey)} -P ${shQuote(join(farm.root, `${name}.pid`))}`,
  ];
  const vessel = await startNamespacedServer({
    name,
    port: port,
    backing,
    hostKeyFingerprint: fingerprintOfPublicKeyLine(publicLine),
    script: steps.join(' && '),
    server: 'dropbear',
  });
  farm.vessels.push(vessel);
  return vessel;
}
