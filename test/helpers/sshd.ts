// Real OpenSSH vessels for end-to-end tests.
//
// Each vessel is an `sshd` on 127.0.0.1 running in its own mount namespace, in which:
//   - farm.viewPath is a bind mount of the vessel's own backing directory, so "the same path on
//     every vessel" is a different directory per vessel (and on the host it is the shore's);
//   - /root is an empty directory: root's real ~/.bashrc runs `pyenv init` (0.4 s per remote
//     command), which would make every remote `cat`/`sha256sum` look slow for no product reason;
//   - /tmp is (by default) a private tmpfs, so the default TempDir lives on another filesystem
//     than the destination, as on many real hosts; the product must cope with that.
// The farm root is under /var/tmp, not /tmp, because the tmpfs over /tmp would hide it.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readlinkSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { onTestExit } from './cleanup.js';

const execFileP = promisify(execFile);

export interface Vessel {
  name: string;
  port: number;
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
   * Lets root log in with this password too. Each vessel gets its own /etc/shadow (a bind
   * mount in its namespace), so the host's own root password is never touched.
   */
  rootPassword?: string;
}

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
  ) {}

  get pid(): number {
    return this.currentPid;
  }

  hostPath(vesselPath: string): string {
    if (!vesselPath.startsWith('/')) throw new Error(`hostPath needs an absolute path, got ${vesselPath}`);
    if (!this.child) throw new Error(`vessel ${this.name} is not running`);
    return `/proc/${this.currentPid}/root${vesselPath}`;
  }

  /** Launches sshd in a fresh mount namespace and waits until it serves SSH. */
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
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (d: string) => {
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
        if (ns === HOST_MNT_NS) throw new Error(`vessel ${this.name}: sshd is not in its own mount namespace`);
        this.ns = ns;
        return;
      }
      await sleep(50);
    }
    await sleep(100); // let the last stderr lines arrive
    const why = hasExited ? `sshd exited (code ${child.exitCode}, signal ${child.signalCode})` : 'timed out';
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
function sshdConfig(port: number, hostKey: string, authorizedKeys: string, passwords: boolean): string {
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
    '',
  ].join('\n');
}

/** A copy of /etc/shadow in which root's password is `password` (SHA-512 crypt). */
async function shadowWithRootPassword(path: string, password: string): Promise<string> {
  const hash = execFileSync('openssl', ['passwd', '-6', '-stdin'], { input: password, encoding: 'utf8' }).trim();
  const lines = (await readFile('/etc/shadow', 'utf8')).split('\n');
  const patched = lines.map((l) => (l.startsWith('root:') ? ['root', hash, ...l.split(':').slice(2)].join(':') : l));
  await writeFile(path, patched.join('\n'), { mode: 0o640 });
  return path;
}

/** Starts `count` vessels (named v1..vN) sharing one client key. */
export async function startVesselFarm(opts: FarmOptions): Promise<VesselFarm> {
  const { count, tmpfsTmp = true, tmpfsSize = '2g', rootPassword } = opts;
  if (!Number.isInteger(count) || count < 1) throw new Error(`startVesselFarm: bad count ${count}`);
  if (!/^[0-9]+[kmgKMG%]?$/.test(tmpfsSize)) throw new Error(`startVesselFarm: bad tmpfsSize ${tmpfsSize}`);

  await mkdir('/var/tmp', { recursive: true });
  const root = await mkdtemp('/var/tmp/cm-e2e-');
  liveFarmRoots.add(root);
  const vessels: VesselImpl[] = [];
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

    const shadow = rootPassword === undefined ? undefined : await shadowWithRootPassword(join(keys, 'shadow'), rootPassword);
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
      await writeFile(conf, sshdConfig(ports[i - 1]!, hostKey, authorizedKeys, shadow !== undefined));
      const steps = [
        `mount --bind ${shQuote(backing)} ${shQuote(farm.viewPath)}`,
        `mount --bind ${shQuote(home)} /root`,
        ...(shadow ? [`mount --bind ${shQuote(shadow)} /etc/shadow`] : []),
        ...(tmpfsTmp ? [`mount -t tmpfs -o size=${tmpfsSize} tmpfs /tmp`] : []),
        `exec ${SSHD} -D -e -f ${shQuote(conf)}`,
      ];
      vessels.push(new VesselImpl(`v${i}`, ports[i - 1]!, backing, fingerprint, steps.join(' && ')));
    }
    await Promise.all(vessels.map((v) => v.start()));
  } catch (err) {
    await farm.stop().catch(() => undefined);
    throw err;
  }
  return farm;
}
