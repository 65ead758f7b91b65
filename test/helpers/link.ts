// A link emulator in userspace (this kernel has no netem): a TCP proxy on 127.0.0.1 between a
// client (the daemon, a benchmark's rsync) and a server (a vessel's sshd) that behaves like one
// physical link to that server:
//
// - one-way latency in each direction;
// - a bandwidth cap per direction shared by every connection through it, served round-robin;
// - faults, after a random number of bytes on the link: a cut (of the connection that carried
//   the last byte, or of every connection), a stall (nothing moves for a while; then the link
//   resumes, or everything on it is cut), a time during which new connections are refused;
// - byte counters, counted when bytes enter the link: bytes that were in transit when a cut
//   came are counted (they crossed the link) but never arrive, as on a real link.
//
// Faults are placed by bytes, not by time, and drawn from a seeded generator, so a run can be
// replayed and a test asserts on bytes and files, never on seconds.
//
// Backpressure: what a connection has sent that the link has not taken yet waits in a small
// per-connection queue; above HIGH_WATER its socket is paused, so the kernel's TCP window
// throttles the sender as a slow link would.
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface LinkProfile {
  /** One-way delay in ms, each direction (the round trip is twice this). */
  latencyMs?: number;
  /** Bytes per second in each direction, shared by all connections; 0 or absent: unlimited. */
  bytesPerSecond?: number;
  /** A fault after a uniformly random number of link bytes (both directions) in [min, max]. */
  faultEvery?: [number, number];
  /** What a cut takes down: the connection that carried the last byte (default), or all of them. */
  cutScope?: 'connection' | 'link';
  /** Every Nth fault is a stall of `stallMs` (uniform in the range) instead of a plain cut. */
  stallEvery?: number;
  stallMs?: [number, number];
  /** After a stall: the link carries on (default), or every connection on it is cut. */
  stallThen?: 'resume' | 'cut';
  /** Every Nth fault also refuses new connections for `refuseMs` after it. */
  refuseEvery?: number;
  refuseMs?: number;
  /** Seed of the fault generator (default 1). */
  seed?: number;
}

const MB = 1_000_000;

/**
 * The profiles of issue 14. Stall and refusal times are short next to a real link's, but longer
 * than the Timeout the tests give vessels where they are meant to be noticed.
 */
export const profiles = {
  /** No latency, no cap; a cut every 1 to 8 MB, now and then a stall. */
  flakyLan: { faultEvery: [1 * MB, 8 * MB], stallEvery: 5, stallMs: [1000, 3000] },
  /** 300 ms each way, 1 MB/s, a cut every 4 to 12 MB, stalls of seconds. */
  satellite: { latencyMs: 300, bytesPerSecond: 1 * MB, faultEvery: [4 * MB, 12 * MB], stallEvery: 3, stallMs: [1000, 4000] },
  /** 600 ms each way, 40 KB/s, a cut every 200 KB to 1 MB. */
  gprs: { latencyMs: 600, bytesPerSecond: 40_000, faultEvery: [200_000, 1 * MB] },
} satisfies Record<string, LinkProfile>;

export interface LinkCounts {
  /** Client → server bytes that entered the link, all connections. */
  bytesUp: number;
  /** Server → client. */
  bytesDown: number;
  /** Accepted so far, refused ones included. */
  connections: number;
  refused: number;
  /** Connections cut by the link (faults, cutAll, cutAfter). */
  cuts: number;
  stalls: number;
}

export interface Link extends Readonly<LinkCounts> {
  port: number;
  counts(): LinkCounts;
  /** Caps one direction (default up, client → server; a mirror downloads, so it caps down). 0: no cap. */
  setRateLimit(bytesPerSecond: number, direction?: 'up' | 'down'): void;
  setLatency(ms: number): void;
  /** Starts (or replaces) the random faults of a profile, counted from now. */
  setFaults(profile: LinkProfile): void;
  /** Cuts every connection now. */
  cutAll(): void;
  /** New connections are accepted and reset at once while on. */
  setRefusing(on: boolean): void;
  /** Nothing moves in either direction while on; connections stay open. */
  setStalled(on: boolean): void;
  /** One-shot: the connection that carries the link's `bytes`-th byte from now is cut. 0 disarms. */
  cutAfter(bytes: number): void;
  resetCounters(): void;
  stop(): Promise<void>;
}

/** A small linear congruential generator: deterministic pseudo-random numbers in [0, 1). */
export function lcg(seed: number): () => number {
  let x = seed;
  return () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return x / 2 ** 31;
  };
}

const HIGH_WATER = 256 * 1024;
/** How late a capped link's timer may fire and still be made up for (see Pipe.#serialize). */
const CATCH_UP_MS = 50;
/** When capped, the link takes at most this share of a second's bytes from one connection in a turn. */
const SLICES_PER_SECOND = 100;
/** After a clean close of one side, the other gets this long to finish before it is destroyed. */
const CLOSE_GRACE_MS = 2_000;
/** After a cut, when the server's side of the connection ends (see #cut). */
const SERVER_NOTICES_MS = 3_000;

interface Half {
  conn: Conn;
  up: boolean;
  src: Socket;
  dst: Socket;
  queue: Buffer[];
  queued: number;
  /** Items of this half in transit. */
  transit: number;
  srcEnded: boolean;
  paused: boolean;
}

interface Conn {
  /** Client → server bytes that entered the link on this connection. */
  sent: number;
  client: Socket;
  target: Socket;
  up: Half;
  down: Half;
  closed: boolean;
}

interface InTransit {
  half: Half;
  buf: Buffer;
  /** performance.now() at which it arrives. */
  at: number;
}

/** One direction of the link: serializes the connections' bytes at its rate, delivers them `latency` later. */
class Pipe {
  rate = 0;
  latencyMs = 0;
  readonly #ready: Half[] = [];
  readonly #transit: InTransit[] = [];
  #freeAt = 0;
  #serializeTimer: NodeJS.Timeout | undefined;
  #deliverTimer: NodeJS.Timeout | undefined;

  constructor(private readonly link: LinkImpl) {}

  offer(half: Half): void {
    if (!this.#ready.includes(half)) this.#ready.push(half);
    this.pump();
  }

  forget(conn: Conn): void {
    for (let i = this.#ready.length - 1; i >= 0; i--) if (this.#ready[i].conn === conn) this.#ready.splice(i, 1);
  }

  pump(): void {
    clearTimeout(this.#serializeTimer);
    this.#serializeTimer = undefined;
    this.#serialize();
    this.#deliver();
  }

  #serialize(): void {
    while (this.#ready.length > 0 && !this.link.stalled) {
      const now = performance.now();
      if (this.rate > 0 && this.#freeAt > now + 1) {
        this.#serializeTimer = setTimeout(() => this.pump(), Math.ceil(this.#freeAt - now));
        return;
      }
      const half = this.#ready.shift()!;
      if (half.conn.closed || half.queue.length === 0) continue;
      const head = half.queue[0];
      const slice = this.rate > 0 ? Math.max(1024, Math.floor(this.rate / SLICES_PER_SECOND)) : head.length;
      const { take, fault } = this.link.admit(Math.min(slice, head.length));
      const buf = head.subarray(0, take);
      if (take === head.length) half.queue.shift();
      else half.queue[0] = head.subarray(take);
      half.queued -= take;
      this.link.count(half.up, take);
      if (half.up) half.conn.sent += take;
      // A timer that fires late must not slow the link down: up to CATCH_UP_MS of lateness is
      // made up by sending at once what should have gone meanwhile.
      this.#freeAt = this.rate > 0 ? Math.max(this.#freeAt, now - CATCH_UP_MS) + (take * 1000) / this.rate : now;
      this.#transit.push({ half, buf, at: this.#freeAt + this.latencyMs });
      half.transit++;
      if (half.queue.length > 0) this.#ready.push(half);
      if (half.paused && half.queued < HIGH_WATER / 2 && !this.link.stalled) {
        half.paused = false;
        half.src.resume();
      }
      if (fault) this.link.fault(half.conn);
    }
  }

  #deliver(): void {
    clearTimeout(this.#deliverTimer);
    this.#deliverTimer = undefined;
    const now = performance.now();
    while (this.#transit.length > 0 && !this.link.stalled) {
      const item = this.#transit[0];
      if (item.at > now + 0.5) {
        this.#deliverTimer = setTimeout(() => this.#deliver(), Math.max(1, Math.ceil(item.at - now)));
        return;
      }
      this.#transit.shift();
      const half = item.half;
      half.transit--;
      if (half.conn.closed) continue;
      half.dst.write(item.buf);
      this.link.maybeEnd(half);
    }
  }

  /** After a stall: what would have arrived meanwhile arrives now; the link is free again. */
  resume(): void {
    this.#freeAt = Math.min(this.#freeAt, performance.now());
    this.pump();
  }

  stop(): void {
    clearTimeout(this.#serializeTimer);
    clearTimeout(this.#deliverTimer);
    this.#ready.length = 0;
    this.#transit.length = 0;
  }
}

class LinkImpl implements Link {
  port = 0;
  bytesUp = 0;
  bytesDown = 0;
  connections = 0;
  refused = 0;
  cuts = 0;
  stalls = 0;
  stalled = false;
  readonly #conns = new Set<Conn>();
  readonly #upPipe = new Pipe(this);
  readonly #downPipe = new Pipe(this);
  #server: Server | undefined;
  #refusing = false;
  #refuseUntil = 0;
  /** Bytes counted for faults (both directions), and where the next fault comes. */
  #counted = 0;
  #nextFaultAt = Infinity;
  #oneShot = false;
  #profile: LinkProfile = {};
  #random: () => number = lcg(1);
  #faultNumber = 0;
  readonly #timers = new Set<NodeJS.Timeout>();
  #stopped = false;

  async listen(targetPort: number): Promise<void> {
    const server = createServer({ allowHalfOpen: true }, (client) => this.#accept(client, targetPort));
    server.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    server.unref(); // a forgotten stop() must not keep the test process alive
    this.#server = server;
    const address = server.address();
    if (!address || typeof address === 'string') throw new Error('link: no address');
    this.port = address.port;
  }

  counts(): LinkCounts {
    const { bytesUp, bytesDown, connections, refused, cuts, stalls } = this;
    return { bytesUp, bytesDown, connections, refused, cuts, stalls };
  }

  setRateLimit(bytesPerSecond: number, direction: 'up' | 'down' = 'up'): void {
    if (!(bytesPerSecond >= 0) || !Number.isFinite(bytesPerSecond)) throw new Error(`bad rate ${bytesPerSecond}`);
    const pipe = direction === 'up' ? this.#upPipe : this.#downPipe;
    pipe.rate = bytesPerSecond;
    pipe.resume();
  }

  setLatency(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) throw new Error(`bad latency ${ms}`);
    this.#upPipe.latencyMs = ms;
    this.#downPipe.latencyMs = ms;
  }

  setFaults(profile: LinkProfile): void {
    this.#profile = profile;
    this.#random = lcg(profile.seed ?? 1);
    this.#faultNumber = 0;
    this.#oneShot = false;
    this.#armNext();
  }

  #armNext(): void {
    const range = this.#profile.faultEvery;
    this.#nextFaultAt = range ? this.#counted + Math.floor(range[0] + (range[1] - range[0]) * this.#random()) : Infinity;
  }

  cutAfter(bytes: number): void {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new Error(`bad cutAfter ${bytes}`);
    this.#profile = {};
    this.#oneShot = bytes > 0;
    this.#nextFaultAt = bytes > 0 ? this.#counted + bytes : Infinity;
  }

  /** How much of `bytes` may enter the link before the next fault, and whether it comes with them. */
  admit(bytes: number): { take: number; fault: boolean } {
    const left = this.#nextFaultAt - this.#counted;
    if (bytes < left) return { take: bytes, fault: false };
    return { take: Math.max(0, left), fault: true };
  }

  count(up: boolean, bytes: number): void {
    this.#counted += bytes;
    if (up) this.bytesUp += bytes;
    else this.bytesDown += bytes;
  }

  /** The byte budget ran out on `conn`: the next fault of the plan (or the one-shot cut). */
  fault(conn: Conn): void {
    if (this.#oneShot) {
      this.#oneShot = false;
      this.#nextFaultAt = Infinity;
      this.#cut([conn]);
      return;
    }
    const p = this.#profile;
    const n = ++this.#faultNumber;
    this.#armNext();
    const victims = p.cutScope === 'link' ? [...this.#conns] : [conn];
    if (p.refuseEvery && n % p.refuseEvery === 0) this.#refuseUntil = performance.now() + (p.refuseMs ?? 10_000);
    if (p.stallEvery && n % p.stallEvery === 0) {
      const [min, max] = p.stallMs ?? [3000, 3000];
      this.stalls++;
      this.setStalled(true);
      this.#later(min + (max - min) * this.#random(), () => {
        if (p.stallThen === 'cut') this.#cut([...this.#conns]);
        this.setStalled(false);
      });
      return;
    }
    this.#cut(victims);
  }

  #later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      if (!this.#stopped) fn();
    }, ms);
    this.#timers.add(t);
  }

  /**
   * The link dies under `conns`: what is in transit never arrives. The client learns at once (a
   * real one would only after its Timeout: the tests would wait for nothing). The server, as a
   * real one, hears nothing: it goes on with what reached it and sees its connection end only
   * SERVER_NOTICES_MS later. (Closing its side at once is not what a cut does: sshd exits on
   * the end of its input and drops what it had read but not passed on yet, half a megabyte a
   * cut here, which would count as bytes the link lost.)
   */
  #cut(conns: Conn[]): void {
    for (const c of conns) {
      if (c.closed) continue;
      this.cuts++;
      this.#destroy(c, true);
    }
  }

  cutAll(): void {
    this.#cut([...this.#conns]);
  }

  setRefusing(on: boolean): void {
    this.#refusing = on;
  }

  setStalled(on: boolean): void {
    this.stalled = on;
    for (const c of this.#conns) {
      for (const h of [c.up, c.down]) {
        if (on) {
          h.src.pause();
        } else if (!h.paused) {
          h.src.resume();
        }
      }
    }
    if (!on) {
      this.#upPipe.resume();
      this.#downPipe.resume();
    }
  }

  resetCounters(): void {
    this.bytesUp = 0;
    this.bytesDown = 0;
    this.connections = 0;
    this.refused = 0;
    this.cuts = 0;
    this.stalls = 0;
  }

  /** A half whose source has ended and whose bytes have all arrived: pass the end on. */
  maybeEnd(half: Half): void {
    if (half.srcEnded && half.queued === 0 && half.transit === 0 && !half.dst.writableEnded) half.dst.end();
  }

  #destroy(c: Conn, gently = false): void {
    if (c.closed) return;
    c.closed = true;
    for (const h of [c.up, c.down]) {
      h.queue = [];
      h.queued = 0;
    }
    this.#upPipe.forget(c);
    this.#downPipe.forget(c);
    c.client.destroy();
    if (gently) {
      setTimeout(() => {
        c.target.end();
        setTimeout(() => c.target.destroy(), CLOSE_GRACE_MS).unref();
      }, SERVER_NOTICES_MS).unref();
    } else {
      c.target.destroy();
    }
    this.#conns.delete(c);
  }

  #accept(client: Socket, targetPort: number): void {
    this.connections++;
    client.on('error', () => undefined);
    if (this.#refusing || performance.now() < this.#refuseUntil || this.#stopped) {
      this.refused++;
      client.resetAndDestroy();
      return;
    }
    const target = connect({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true });
    target.on('error', () => undefined);
    client.setNoDelay(true);
    target.setNoDelay(true);
    const c = { client, target, closed: false, sent: 0 } as Conn;
    c.up = { conn: c, up: true, src: client, dst: target, queue: [], queued: 0, transit: 0, srcEnded: false, paused: false };
    c.down = { conn: c, up: false, src: target, dst: client, queue: [], queued: 0, transit: 0, srcEnded: false, paused: false };
    this.#conns.add(c);
    this.#wire(c.up, this.#upPipe);
    this.#wire(c.down, this.#downPipe);
    if (this.stalled) {
      client.pause();
      target.pause();
    }
  }

  #wire(h: Half, pipe: Pipe): void {
    const c = h.conn;
    h.src.on('data', (buf: Buffer) => {
      if (c.closed) return;
      h.queue.push(buf);
      h.queued += buf.length;
      if (h.queued >= HIGH_WATER && !h.paused) {
        h.paused = true;
        h.src.pause();
      }
      pipe.offer(h);
    });
    h.src.on('end', () => {
      h.srcEnded = true;
      this.maybeEnd(h);
    });
    h.src.on('error', () => this.#destroy(c));
    h.src.on('close', (hadError: boolean) => {
      if (c.closed) return;
      if (hadError) {
        this.#destroy(c);
        return;
      }
      // The other side gets a moment to finish what it already accepted.
      this.#later(CLOSE_GRACE_MS, () => this.#destroy(c));
    });
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.#upPipe.stop();
    this.#downPipe.stop();
    const closed = new Promise<void>((resolve) => (this.#server ? this.#server.close(() => resolve()) : resolve()));
    for (const c of [...this.#conns]) this.#destroy(c);
    await closed;
  }
}

/** Starts a link to `targetPort` on 127.0.0.1; with a profile, its latency, cap and faults apply from the start. */
export async function startLink(targetPort: number, profile: LinkProfile = {}): Promise<Link> {
  const link = new LinkImpl();
  await link.listen(targetPort);
  if (profile.latencyMs) link.setLatency(profile.latencyMs);
  if (profile.bytesPerSecond) {
    link.setRateLimit(profile.bytesPerSecond, 'up');
    link.setRateLimit(profile.bytesPerSecond, 'down');
  }
  if (profile.faultEvery) link.setFaults(profile);
  return link;
}
