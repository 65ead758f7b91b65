// Real OpenSSH vessels for end-to-end tests.
//
// Each vessel is an `sshd` on 127.0.0.1 running in its own mount namespace, in which:
//   - farm.viewPath is a bind mount of the vessel's own backing directory, so "the same path on
//     every vessel" is a different directory per vessel (and on the host it is the shore's);
//   - /root is an empty directory: root's real ~/.bashrc runs `pyenv init` (0.4 s per remote
//     command), which would make every remote `cat`/`sha256sum` look slow for no product reason;
//   - /tmp is (by default) a private tmpfs, so the default TempDir lives on another filesystem
//     than the destination, as on many real hosts; the product must cope with that;
//   - /etc is, when the farm needs users or a root password, a bind mount of a private copy of
//     the whole /etc (farm root/etc). Test users exist only there and the host's /etc is never
//     written. A copy of the whole folder, not of single files: tools that add or remove users
//     replace /etc/shadow by rename, which silently detaches a bind mount of that one file.
// The farm root is under /var/tmp, not /tmp, because the tmpfs over /tmp would hide it.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readlinkSync, rmSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { onTestExit } from './cleanup.js';

const execFileP = promisify(execFile);

export interface Vessel {
  name: string;
  port: number;
  /** The user the product logs in as: root, or the vessel's test user. */
  readonly username: string;
  /** pid of the sshd listener (changes after stop()/start()). */
  readonly pid: number;
  backing: string;
  /** Path on the host through which any vessel path can be read: `/proc/<pid>/root` + vesselPath */
  hostPath(vesselPath: string): string;
  hostKeyFingerprint: string;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export interface VesselFarm {
  root: string;
  /** The private copy of /etc the vessels see as /etc (only when users or rootPassword). */
  etc?: string;
  viewPath: string;
  clientKey: string;
  vessels: Vessel[];
  stop(): Promise<void>;
}

export interface FarmOptions {
  count: number;
  /** Private tmpfs on /tmp in each vessel (default true). */
  tmpfsTmp?: boolean;
  /** Size of that tmpfs (default '2g'). */
  tmpfsSize?: string;
  /**
   * Lets root log in with this password too. The vessels see a private copy of /etc in which
   * root has it (see the top of this file), so the host's own root password is never touched.
   */
  rootPassword?: string;
  /** Options of single vessels, by index: [0] is v1. */
  perVessel?: (VesselOptions | undefined)[];
}

/** A user that exists only in the farm's private /etc (see the top of this file). */
export interface TestUser {
  name: string;
  /** Login shell, absolute path (e.g. /bin/dash). sshd runs every command through it. */
  shell: string;
  /** Lets it log in with this password too (default: key only). */
  password?: string;
}

export interface VesselOptions {
  /**
   * The product logs in as this user instead of root (vessel.username). It exists only in the
   * farm's private /etc (uid and gid 61000 + vessel number), its home is farm root/home/NAME,
   * the farm's client key lets it in, and the vessel's backing directory belongs to it.
   */
  user?: TestUser;
  /** sshd_config `ForceCommand` (e.g. `internal-sftp`, or a wrapper script's path). */
  forceCommand?: string;
  /**
   * A cgroup v2 directory the vessel's sshd starts in (its pid written to cgroup.procs before
   * its mounts and its exec, so before any connection): every process of every connection, an
   * orphaned sftp-server too, is then counted in that group's cpu.stat (bench/lib.ts CpuGroup).
   */
  cgroup?: string;
}

/** First uid (and gid) of test users: far from Debian's system and regular ranges. */
export const TEST_UID_BASE = 61000;

const SSHD = '/usr/sbin/sshd';
const SFTP_SERVER = '/usr/lib/openssh/sftp-server'; // what real Debian vessels run
const READY_TIMEOUT_MS = 10_000; // safety net only: sshd normally answers in ~50 ms
const STOP_GRACE_MS = 2_000; // SIGTERM, then SIGKILL after this
const STDERR_KEEP = 64 * 1024; // keep only the tail of sshd's stderr for error messages

// ---------------------------------------------------------------------------------------------
// Cleanup on abnormal exit. Vessels are detached (own process group) and unref'd, so nothing
// else would ever kill them if a test crashes or forgets farm.stop().

const liveVessels = new Set<VesselImpl>();
const liveFarmRoots = new Set<string>();

/** Our own mount namespace: never mass-kill processes that share it (that would be the host). */
const HOST_MNT_NS = readlinkSync('/proc/self/ns/mnt');

function killAllSync(): void {
  for (const v of liveVessels) v.killSync('SIGKILL');
  for (const root of liveFarmRoots) {
    try {
      rmSync(root, { recursive: true, force: true });
    } catch {
      // best effort on the way out
    }
  }
}

onTestExit(killAllSync);

// ---------------------------------------------------------------------------------------------
// Small utilities

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Free TCP ports on 127.0.0.1, distinct from each other: all listeners are held open until every
 * port is picked, so the kernel cannot hand out the same one twice.
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () =>
      new Promise<import('node:net').Server>((resolve, reject) => {
        const s = createServer();
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve(s));
      }),
    ),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Fingerprint as `ssh-keygen -lf` prints it: SHA256 of the key blob, base64 without padding. */
export function fingerprintOfPublicKeyLine(line: string): string {
  const blob = Buffer.from(line.trim().split(/\s+/)[1] ?? '', 'base64');
  if (blob.length === 0) throw new Error(`not an OpenSSH public key line: ${line}`);
  return 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
}

/** Generates an ed25519 key pair without passphrase at `path` / `path.pub`. */
async function keygen(path: string, comment: string): Promise<void> {
  await execFileP('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
}

/**
 * One attempt: connect to the port and read the server's identification line. A TCP accept alone
 * is not enough (the socket can be bound before sshd is ready to serve).
 */
function readBanner(port: number, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (v: string | null): void => {
      clearTimeout(timer);
      sock.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(null), timeoutMs);
    sock.on('error', () => done(null));
    sock.on('close', () => done(null));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl >= 0) done(buf.startsWith('SSH-') ? buf.slice(0, nl).trim() : null);
    });
  });
}

/** pids of all processes in the mount namespace `ns` (e.g. 'mnt:[4026532xxx]'). */
function pidsInNamespace(ns: string): number[] {
  if (ns === HOST_MNT_NS) return []; // refuse: that would be every process on the host
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readlinkSync(`/proc/${name}/ns/mnt`) === ns) pids.push(Number(name));
    } catch {
      // process gone meanwhile, or a kernel thread: not ours
    }
  }
  return pids;
}

function trySignal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

// ---------------------------------------------------------------------------------------------

class VesselImpl implements Vessel {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private stderr = '';
  /** Mount namespace id of the running vessel, read once sshd answers (then it is surely set). */
  private ns: string | null = null;
  private currentPid = 0;

  constructor(
    readonly name: string,
    readonly port: number,
    readonly backing: string,
    readonly hostKeyFingerprint: string,
    private readonly script: string,
    readonly username = 'root',
    /** What runs there, for error messages. */
    private readonly server = 'sshd',
  ) {}

  get pid(): number {
    return this.currentPid;
  }

  hostPath(vesselPath: string): string {
    if (!vesselPath.startsWith('/')) throw new Error(`hostPath needs an absolute path, got ${vesselPath}`);
    if (!this.child) throw new Error(`vessel ${this.name} is not running`);
    return `/proc/${this.currentPid}/root${vesselPath}`;
  }

  /** Launches the server in a fresh mount namespace and waits until it serves SSH. */
  async start(): Promise<void> {
    if (this.child) return;
    // Privilege separation directory; /run is shared with the host namespace.
    await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
    this.stderr = '';
    // `unshare` without --fork execs, and `sh -c '... && exec sshd'` execs: the pid is sshd's.
    const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', this.script], {
      detached: true, // own process group, and a Ctrl-C of the test run does not reach it
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    this.currentPid = child.pid ?? 0;
    this.ns = null;
    liveVessels.add(this);
    let hasExited = false;
    this.exited = new Promise((resolve) => {
      child.once('exit', () => {
        hasExited = true;
        resolve();
      });
      // A failed spawn (no `unshare`?) emits 'error' and no 'exit'.
      child.once('error', (err) => {
        this.stderr += `spawn error: ${err.message}\n`;
        hasExited = true;
        resolve();
      });
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      this.stderr = (this.stderr + d).slice(-STDERR_KEEP);
    });
    // A forgotten stop() must not keep the test process alive; the exit hook kills it.
    child.unref();
    (child.stderr as unknown as { unref?: () => void }).unref?.();

    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (hasExited) break;
      const banner = await readBanner(this.port, 1000);
      if (banner && !hasExited) {
        const ns = readlinkSync(`/proc/${this.currentPid}/ns/mnt`);
        if (ns === HOST_MNT_NS) throw new Error(`vessel ${this.name}: ${this.server} is not in its own mount namespace`);
        this.ns = ns;
        return;
      }
      await sleep(50);
    }
    await sleep(100); // let the last stderr lines arrive
    const why = hasExited ? `${this.server} exited (code ${child.exitCode}, signal ${child.signalCode})` : 'timed out';
    const stderr = this.stderr;
    await this.stop();
    throw new Error(`vessel ${this.name} on port ${this.port}: ${why} before serving SSH.\nstderr:\n${stderr}`);
  }

  /**
   * Stops the vessel like a power cut with a short grace: SIGTERM to the listener's process
   * group and to every process in the vessel's namespace, SIGKILL after 2 s, then waits until
   * all are gone. The namespace scan matters: sshd puts each connection's process into a new
   * session (setsid), so killing the process group alone would leave open connections alive.
   * When the last process is gone the namespace (and its tmpfs /tmp) disappear, as in a reboot.
   */
  async stop(): Promise<void> {
    if (!this.child) return;
    this.signalAll('SIGTERM');
    if (!(await this.waitAllGone(STOP_GRACE_MS))) {
      this.signalAll('SIGKILL');
      if (!(await this.waitAllGone(10_000))) {
        throw new Error(`vessel ${this.name}: processes survive SIGKILL: ${this.ns ? pidsInNamespace(this.ns).join(' ') : this.currentPid}`);
      }
    }
    this.child = null;
    liveVessels.delete(this);
  }

  /** Sends `sig` to the listener's group and to every process in the namespace. */
  private signalAll(sig: NodeJS.Signals): void {
    if (this.currentPid > 0) trySignal(-this.currentPid, sig);
    if (this.ns) for (const pid of pidsInNamespace(this.ns)) trySignal(pid, sig);
  }

  private async waitAllGone(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const listenerGone = this.exited.then(() => true);
    for (;;) {
      const gone =
        (await Promise.race([listenerGone, sleep(20).then(() => false)])) &&
        (!this.ns || pidsInNamespace(this.ns).length === 0);
      if (gone) return true;
      if (Date.now() >= deadline) return false;
      await sleep(30);
    }
  }

  /** Synchronous SIGKILL for the process-exit hook (no awaiting possible there). */
  killSync(sig: NodeJS.Signals): void {
    if (!this.child) return;
    this.signalAll(sig);
  }
}

/** The sshd_config of one vessel. Absolute paths everywhere: sshd -f does not resolve relatives. */
function sshdConfig(port: number, hostKey: string, authorizedKeys: string, passwords: boolean, forceCommand?: string): string {
  return [
    'ListenAddress 127.0.0.1',
    `Port ${port}`,
    `HostKey ${hostKey}`,
    'PidFile none',
    'PermitRootLogin yes',
    'PubkeyAuthentication yes',
    `PasswordAuthentication ${passwords ? 'yes' : 'no'}`,
    'KbdInteractiveAuthentication no',
    `AuthorizedKeysFile ${authorizedKeys}`,
    'StrictModes no',
    'UsePAM no',
    `Subsystem sftp ${SFTP_SERVER}`,
    'MaxStartups 100',
    'MaxSessions 32',
    'LogLevel ERROR',
    'UseDNS no',
    ...(forceCommand === undefined ? [] : [`ForceCommand ${forceCommand}`]),
    '',
  ].join('\n');
}

/** SHA-512 crypt of a password, for /etc/shadow. */
function cryptPassword(password: string): string {
  return execFileSync('openssl', ['passwd', '-6', '-stdin'], { input: password, encoding: 'utf8' }).trim();
}

export interface PrivateUser extends TestUser {
  uid: number;
  home: string;
}

/**
 * Makes `dir` a copy of the whole /etc (`cp -a`), with root's password set to `rootPassword`
 * and `users` added to passwd, group, shadow and shells. Only the copy is written: a vessel
 * bind-mounts it on /etc in its own namespace, so the host's users and passwords never change,
 * and a rename of the host's /etc/shadow (useradd, passwd) cannot detach anything.
 */
export async function makePrivateEtc(dir: string, o: { rootPassword?: string; users?: PrivateUser[] } = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  await execFileP('cp', ['-a', '--', '/etc/.', dir]);
  const users = o.users ?? [];
  const edit = async (file: string, fn: (lines: string[]) => string[]): Promise<void> => {
    const lines = (await readFile(join(dir, file), 'utf8')).split('\n').filter((l) => l !== '');
    await writeFile(join(dir, file), `${fn(lines).join('\n')}\n`);
  };
  const taken = (lines: string[], name: string): boolean => lines.some((l) => l.split(':')[0] === name);
  for (const u of users) {
    if (!/^[a-z_][a-z0-9_-]*$/.test(u.name)) throw new Error(`makePrivateEtc: bad user name ${u.name}`);
  }
  await edit('passwd', (lines) => {
    for (const u of users) if (taken(lines, u.name)) throw new Error(`makePrivateEtc: user ${u.name} exists on the host`);
    return [...lines, ...users.map((u) => `${u.name}:x:${u.uid}:${u.uid}:cm e2e:${u.home}:${u.shell}`)];
  });
  await edit('group', (lines) => [...lines, ...users.filter((u) => !taken(lines, u.name)).map((u) => `${u.name}:x:${u.uid}:`)]);
  const rootHash = o.rootPassword === undefined ? undefined : cryptPassword(o.rootPassword);
  await edit('shadow', (lines) => [
    ...lines.map((l) => (rootHash !== undefined && l.startsWith('root:') ? ['root', rootHash, ...l.split(':').slice(2)].join(':') : l)),
    // '*': no password login, keys only (not '!', which sshd treats as a locked account).
    ...users.map((u) => [u.name, u.password === undefined ? '*' : cryptPassword(u.password), '', '', '', '', '', '', ''].join(':')),
  ]);
  await edit('shells', (lines) => [...lines, ...users.map((u) => u.shell).filter((sh) => !lines.includes(sh))]);
  return dir;
}

export interface NamespacedServer {
  name: string;
  port: number;
  backing: string;
  hostKeyFingerprint: string;
  /** sh script run by `unshare -m`: its mounts, then `exec` of the server (in the foreground). */
  script: string;
  username?: string;
  /** What runs, for error messages (default 'sshd'). */
  server?: string;
}

/**
 * Starts any SSH server the way the farm starts sshd: in its own mount namespace, stopped like
 * a power cut by stop(), killed on every exit path of the test process. Resolves once it
 * sends an SSH identification line.
 */
export async function startNamespacedServer(o: NamespacedServer): Promise<Vessel> {
  const v = new VesselImpl(o.name, o.port, o.backing, o.hostKeyFingerprint, o.script, o.username, o.server);
  await v.start();
  return v;
}

/** Starts `count` vessels (named v1..vN) sharing one client key. */
export async function startVesselFarm(opts: FarmOptions): Promise<VesselFarm> {
  const { count, tmpfsTmp = true, tmpfsSize = '2g', rootPassword, perVessel = [] } = opts;
  if (!Number.isInteger(count) || count < 1) throw new Error(`startVesselFarm: bad count ${count}`);
  if (!/^[0-9]+[kmgKMG%]?$/.test(tmpfsSize)) throw new Error(`startVesselFarm: bad tmpfsSize ${tmpfsSize}`);

  await mkdir('/var/tmp', { recursive: true });
  const root = await mkdtemp('/var/tmp/cm-e2e-');
  liveFarmRoots.add(root);
  const vessels: Vessel[] = [];
  let stopped = false;
  const farm: VesselFarm = {
    root,
    viewPath: join(root, 'data'),
    clientKey: join(root, 'keys', 'client'),
    vessels,
    async stop() {
      if (stopped) return;
      stopped = true;
      // allSettled: one vessel failing to die must not leave the others running.
      const results = await Promise.allSettled(vessels.map((v) => v.stop()));
      await rm(root, { recursive: true, force: true });
      liveFarmRoots.delete(root);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed) throw failed.reason;
    },
  };

  try {
    const keys = join(root, 'keys');
    await mkdir(keys, { recursive: true });
    await mkdir(farm.viewPath, { recursive: true });
    await keygen(farm.clientKey, 'cm-e2e-client');
    const authorizedKeys = join(keys, 'authorized_keys');
    await writeFile(authorizedKeys, await readFile(`${farm.clientKey}.pub`, 'utf8'));

    const users: PrivateUser[] = [];
    for (let i = 1; i <= count; i++) {
      const u = perVessel[i - 1]?.user;
      if (u) users.push({ ...u, uid: TEST_UID_BASE + i, home: join(root, 'home', u.name) });
    }
    if (new Set(users.map((u) => u.name)).size !== users.length) throw new Error('startVesselFarm: a user name is given twice');
    if (users.length > 0) {
      // sshd reads authorized_keys as the user, and users write under the farm root: let them
      // through it (the client's private key stays 0600).
      await chmod(root, 0o711);
      await chmod(keys, 0o711);
      await chmod(authorizedKeys, 0o644);
      for (const u of users) {
        await mkdir(u.home, { recursive: true, mode: 0o755 });
        await chown(u.home, u.uid, u.uid);
      }
    }
    if (rootPassword !== undefined || users.length > 0) farm.etc = await makePrivateEtc(join(root, 'etc'), { rootPassword, users });
    const ports = await freePorts(count);
    for (let i = 1; i <= count; i++) {
      const backing = join(root, `vessel-${i}`);
      const home = join(root, `home-${i}`);
      const hostKey = join(keys, `host-${i}`);
      const conf = join(root, `sshd-${i}.conf`);
      await mkdir(backing, { recursive: true });
      await mkdir(home, { recursive: true, mode: 0o700 });
      await keygen(hostKey, `cm-e2e-v${i}`);
      const fingerprint = fingerprintOfPublicKeyLine(await readFile(`${hostKey}.pub`, 'utf8'));
      const o = perVessel[i - 1] ?? {};
      const user = users.find((u) => u.name === o.user?.name);
      if (user) await chown(backing, user.uid, user.uid);
      const passwords = rootPassword !== undefined || users.some((u) => u.password !== undefined);
      await writeFile(conf, sshdConfig(ports[i - 1], hostKey, authorizedKeys, passwords, o.forceCommand));
      const steps = [
        // `unshare` execs this sh and the sh execs sshd: $$ is the listener's pid.
        ...(o.cgroup ? [`echo $$ > ${shQuote(join(o.cgroup, 'cgroup.procs'))}`] : []),
        `mount --bind ${shQuote(backing)} ${shQuote(farm.viewPath)}`,
        `mount --bind ${shQuote(home)} /root`,
        ...(farm.etc ? [`mount --bind ${shQuote(farm.etc)} /etc`] : []),
        ...(tmpfsTmp ? [`mount -t tmpfs -o size=${tmpfsSize} tmpfs /tmp`] : []),
        `exec ${SSHD} -D -e -f ${shQuote(conf)}`,
      ];
      vessels.push(new VesselImpl(`v${i}`, ports[i - 1], backing, fingerprint, steps.join(' && '), user?.name ?? 'root'));
    }
    await Promise.all(vessels.map((v) => v.start()));
  } catch (err) {
    await farm.stop().catch(() => undefined);
    throw err;
  }
  return farm;
}
