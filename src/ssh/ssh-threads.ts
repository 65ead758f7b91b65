/**
 * Where vessel connections live: on the main thread (SftpConnection), or in SSH threads
 * (`[MONSTER] Threads`, issue 19 point 3). ssh2 encrypts and frames in JavaScript, so one
 * thread feeds at most about 0.5 GiB/s of vessel traffic in all; with several vessels and idle
 * cores, SSH threads let each vessel's encryption run on a core of its own while the upload
 * logic, the shore reads, the hash and the state database stay on the main thread.
 *
 * The push code sees a VesselConnection either way (ThreadedConnection is the stand-in for one
 * in a thread: threaded-connection.ts). A vessel's connections all go to one thread; vessels
 * beyond the thread count share the thread with the fewest.
 */
import { availableParallelism } from 'node:os';
import type { ConnectOptions } from './connect.js';
import { SftpConnection } from './connection.js';
import type { VesselConnection } from './remote-fs.js';
import { SshThread } from './threaded-connection.js';

export type OpenVesselConnection = (options: ConnectOptions) => Promise<VesselConnection>;

/**
 * The SSH threads for `[MONSTER] Threads` (`auto`, or a count; 0 = off) and this many vessels.
 * `auto`: one per vessel, at most one per core, and none with fewer than 2 vessels or 2 cores
 * (one vessel's encryption on another thread only adds the messages' cost).
 */
export function sshThreadCount(setting: 'auto' | number, vessels: number, cores = availableParallelism()): number {
  if (setting !== 'auto') return setting;
  return vessels >= 2 && cores >= 2 ? Math.min(vessels, cores) : 0;
}

/** How vessel connections are opened with `threads` SSH threads (0: on this thread, as always). */
export function vesselConnections(threads: number): OpenVesselConnection {
  if (threads === 0) return (options) => SftpConnection.open(options);
  const pool = new SshThreads(threads);
  return (options) => pool.threadFor(options.endpoint.name).open(options);
}

class SshThreads {
  readonly #threads: SshThread[] = [];
  readonly #ofVessel = new Map<string, SshThread>();

  constructor(private readonly max: number) {}

  /** The vessel's thread; a new one in place of one that died (its connections failed with it). */
  threadFor(vessel: string): SshThread {
    const mine = this.#ofVessel.get(vessel);
    if (mine && !mine.dead) return mine;
    for (let i = this.#threads.length - 1; i >= 0; i--) if (this.#threads[i].dead) this.#threads.splice(i, 1);
    const vesselsOf = (t: SshThread) => [...this.#ofVessel.values()].filter((x) => x === t).length;
    let thread: SshThread;
    if (this.#threads.length < this.max) this.#threads.push(thread = new SshThread());
    else thread = this.#threads.reduce((a, b) => (vesselsOf(b) < vesselsOf(a) ? b : a));
    this.#ofVessel.set(vessel, thread);
    return thread;
  }
}
