// A ProFTPD `mod_sftp` server for end-to-end tests: SFTP without any shell, as many hosting
// providers run it. `proftpd -n` on 127.0.0.1 in its own mount namespace, added to a farm of
// sshd vessels (test/helpers/sshd.ts), so that farm.stop() stops it with the others.
//
// Its one user (vessel.username) exists only in ProFTPD's own AuthUserFile, never in /etc; it
// logs in with the farm's client key (SFTPAuthorizedUserKeys wants RFC 4716 keys, made with
// `ssh-keygen -e`) or with `password`. Its home is farm.viewPath, which is, in the server's
// namespace, a bind mount of the vessel's own backing directory, and `DefaultRoot ~` jails it
// there: what a client sees as `/x` is farm.viewPath + `/x` on the vessel (vessel.remotePath()).
import { execFile, execFileSync } from 'node:child_process';
import { chmod, chown, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fingerprintOfPublicKeyLine, freePorts, startNamespacedServer, TEST_UID_BASE, type Vessel, type VesselFarm } from './sshd.js';

const execFileP = promisify(execFile);

const PROFTPD = '/usr/sbin/proftpd';
const MODULE_PATH = '/usr/lib/proftpd';

export interface ProftpdVessel extends Vessel {
  password: string;
  /** The path a client uses for a path on the vessel under farm.viewPath (DefaultRoot ~). */
  remotePath(vesselPath: string): string;
  /** ProFTPD's own logs (SystemLog and SFTPLog), for failure messages. */
  logs(): Promise<string>;
}

export interface ProftpdOptions {
  /** Vessel name (default `proftpd<n>`, n counting the farm's vessels). */
  name?: string;
  /** Login name (default `cmftp`). */
  username?: string;
  /** Its password (default a fixed test password). */
  password?: string;
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** A directive value in double quotes (ProFTPD's quoting: backslash escapes). */
function q(s: string): string {
  return `"${s.replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

export async function startProftpdVessel(farm: VesselFarm, opts: ProftpdOptions = {}): Promise<ProftpdVessel> {
  const n = farm.vessels.length + 1;
  const name = opts.name ?? `proftpd${n}`;
  const username = opts.username ?? 'cmftp';
  const password = opts.password ?? 'proftpd-test-PASSWORD';
  if (!/^[A-Za-z0-9_-]+$/.test(name)) throw new Error(`startProftpdVessel: bad name ${name}`);
  if (!/^[a-z_][a-z0-9_-]*$/.test(username)) throw new Error(`startProftpdVessel: bad user name ${username}`);
  const uid = TEST_UID_BASE + 900 + n;
  const dir = join(farm.root, name); // its configuration, keys, logs, pid and scoreboard
  const backing = join(farm.root, `vessel-${name}`);
  await mkdir(dir, { recursive: true, mode: 0o755 });
  await mkdir(backing, { recursive: true });
  // The user must get through the farm root to its jail, and write there.
  await chmod(farm.root, 0o711);
  await chown(backing, uid, uid);

  const hostKey = join(dir, 'host_ed25519');
  await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', `cm-e2e-${name}`, '-f', hostKey]);
  const fingerprint = fingerprintOfPublicKeyLine(await readFile(`${hostKey}.pub`, 'utf8'));
  const authorized = join(dir, 'authorized_keys.rfc4716');
  await writeFile(authorized, (await execFileP('ssh-keygen', ['-e', '-f', `${farm.clientKey}.pub`])).stdout, { mode: 0o644 });

  const hash = execFileSync('openssl', ['passwd', '-6', '-stdin'], { input: password, encoding: 'utf8' }).trim();
  const passwd = join(dir, 'passwd');
  const group = join(dir, 'group');
  // ProFTPD refuses an AuthUserFile that others can read or write.
  await writeFile(passwd, `${username}:${hash}:${uid}:${uid}:cm e2e:${farm.viewPath}:/bin/false\n`, { mode: 0o600 });
  await writeFile(group, `${username}:x:${uid}:\n`, { mode: 0o600 });

  const [port] = await freePorts(1);
  const systemLog = join(dir, 'proftpd.log');
  const sftpLog = join(dir, 'sftp.log');
  const conf = join(dir, 'proftpd.conf');
  await writeFile(
    conf,
    [
      `ServerName ${q(`cm-e2e ${name}`)}`,
      'ServerType standalone',
      'DefaultServer on',
      `DefaultAddress 127.0.0.1`,
      'SocketBindTight on',
      'UseIPv6 off',
      `Port ${port}`,
      'User nobody',
      'Group nogroup',
      `PidFile ${q(join(dir, 'proftpd.pid'))}`,
      `ScoreboardFile ${q(join(dir, 'proftpd.scoreboard'))}`,
      `SystemLog ${q(systemLog)}`,
      'WtmpLog off',
      'UseReverseDNS off',
      'TransferLog none',
      'MaxInstances 200',
      'Umask 022',
      'AllowOverwrite on',
      // No artificial delays of logins (mod_delay is compiled in), and no fork of a helper.
      '<IfModule mod_delay.c>',
      '  DelayEngine off',
      '</IfModule>',
      `AuthUserFile ${q(passwd)}`,
      `AuthGroupFile ${q(group)}`,
      'AuthOrder mod_auth_file.c',
      'RequireValidShell off',
      'DefaultRoot ~',
      `ModulePath ${MODULE_PATH}`,
      'LoadModule mod_sftp.c',
      '<IfModule mod_sftp.c>',
      '  SFTPEngine on',
      `  SFTPLog ${q(sftpLog)}`,
      `  SFTPHostKey ${q(hostKey)}`,
      '  SFTPAuthMethods publickey password',
      `  SFTPAuthorizedUserKeys file:${authorized}`,
      '  SFTPCompression delayed',
      '</IfModule>',
      '',
    ].join('\n'),
  );
  await execFileP(PROFTPD, ['-t', '-c', conf]).catch((err: Error & { stderr?: string }) => {
    throw new Error(`proftpd -t rejects ${conf}: ${err.stderr ?? err.message}`);
  });

  const steps = [
    `mount --bind ${shQuote(backing)} ${shQuote(farm.viewPath)}`,
    'mount -t tmpfs -o size=2g tmpfs /tmp',
    // -n: in the foreground (sessions are forked children, in the same namespace), -q: quiet.
    `exec ${PROFTPD} -n -q -c ${shQuote(conf)}`,
  ];
  const vessel = await startNamespacedServer({
    name,
    port: port,
    backing,
    hostKeyFingerprint: fingerprint,
    script: steps.join(' && '),
    username,
    server: 'proftpd',
  });
  farm.vessels.push(vessel);
  const viewPath = farm.viewPath;
  // Delegates to the vessel (pid and hostPath follow a restart), plus ProFTPD's own parts.
  return {
    name: vessel.name,
    port: vessel.port,
    username,
    backing,
    hostKeyFingerprint: fingerprint,
    get pid() {
      return vessel.pid;
    },
    hostPath: (p: string) => vessel.hostPath(p),
    stop: () => vessel.stop(),
    start: () => vessel.start(),
    password,
    remotePath(vesselPath: string): string {
      if (vesselPath !== viewPath && !vesselPath.startsWith(`${viewPath}/`)) throw new Error(`${vesselPath} is outside the jail ${viewPath}`);
      return vesselPath.slice(viewPath.length) || '/';
    },
    async logs(): Promise<string> {
      const read = (f: string): Promise<string> => readFile(f, 'utf8').catch(() => '');
      return `${await read(systemLog)}${await read(sftpLog)}`;
    },
  };
}
