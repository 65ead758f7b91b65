// A TCP proxy on 127.0.0.1 between the daemon and a vessel's sshd: counts bytes and connections,
// and injects the faults of a bad link (slow, cut, refused, stalled, dropping after N bytes).
//
// Each connection has two directions (up: client -> target, down: target -> client). Incoming
// data goes into a per-direction queue and a pump moves it on as far as the rate limit, a stall
// and the destination's backpressure allow; while anything is queued the source socket is
// paused, so the kernel's TCP window throttles the sender (no unbounded buffering, no busy loop).
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface Proxy {
  port: number;
  /** client -> target, total so far (all connections) */
  readonly bytesUp: number;
  /** target -> client */
  readonly bytesDown: number;
  /** accepted so far (refused ones included) */
  readonly connections: number;
  /** connections the proxy itself cut (cutAll, cutAfter); an extra for tests */
  readonly cuts: number;
  /** Limits one direction (default up, shore → vessel; a mirror downloads, so it limits down). */
  setRateLimit(bytesPerSecond: number, direction?: 'up' | 'down'): void;
  cutAll(): void;
  setRefusing(on: boolean): void;
  setStalled(on: boolean): void;
  cutAfter(bytes: number): void;
  resetCounters(): void;
  stop(): Promise<void>;
}

const MIN_TIMER_MS = 10; // do not wake more often than this when rate limiting
const CLOSE_GRACE_MS = 2_000; // after a clean close of one side, the other gets this to finish

interface Direction {
  up: boolean;
  src: Socket;
  dst: Socket;
  queue: Buffer[];
  waitingDrain: boolean;
  srcEnded: boolean; // src sent FIN: forward it once the queue is empty
  timer: NodeJS.Timeout | null;
  // token bucket for the rate limit (up direction only)
  tokens: number;
  lastRefill: number;
}

interface Conn {
  client: Socket;
  target: Socket;
  up: Direction;
  down: Direction;
  /** bytes still allowed up before a cutAfter() trigger fires on this connection; null = none */
  cutRemaining: number | null;
  closed: boolean;
}

export async function startProxy(targetPort: number): Promise<Proxy> {
  let bytesUp = 0;
  let bytesDown = 0;
  let connections = 0;
  let cuts = 0;
  let rate = 0;
  let rateDown = 0;
  let refusing = false;
  let stalled = false;
  /** Armed cutAfter threshold (null = off); handed to every open and new connection. */
  let cutArmed: number | null = null;
  const conns = new Set<Conn>();

  /** Bucket size: about 100 ms of traffic, so the limit is smooth yet timers stay rare. */
  const bucketSize = (r: number): number => Math.max(1024, Math.floor(r / 10));

  function destroyConn(c: Conn): void {
    if (c.closed) return;
    c.closed = true;
    for (const d of [c.up, c.down]) {
      if (d.timer) clearTimeout(d.timer);
      d.timer = null;
      d.queue = [];
    }
    c.client.destroy();
    c.target.destroy();
    conns.delete(c);
  }

  /** Moves queued data of one direction on, as far as stall, rate and backpressure allow. */
  function pump(c: Conn, d: Direction): void {
    if (c.closed) return;
    if (d.timer) {
      clearTimeout(d.timer);
      d.timer = null;
    }
    while (d.queue.length > 0) {
      if (stalled || d.waitingDrain) break;
      let chunk = d.queue[0]!;
      const r = d.up ? rate : rateDown;
      if (r > 0) {
        const now = Date.now();
        d.tokens = Math.min(bucketSize(r), d.tokens + ((now - d.lastRefill) * r) / 1000);
        d.lastRefill = now;
        // Send in slices of up to one bucket; wait for a whole slice's worth of tokens rather
        // than dribbling out a few bytes per timer tick.
        const want = Math.min(chunk.length, bucketSize(r));
        if (d.tokens < want) {
          const ms = Math.max(MIN_TIMER_MS, Math.ceil(((want - d.tokens) * 1000) / r));
          d.timer = setTimeout(() => pump(c, d), ms);
          break;
        }
        chunk = chunk.subarray(0, want);
        d.tokens -= chunk.length;
      }
      let cutNow = false;
      if (d.up && c.cutRemaining !== null) {
        if (chunk.length >= c.cutRemaining) {
          chunk = chunk.subarray(0, c.cutRemaining);
          cutNow = true;
        } else {
          c.cutRemaining -= chunk.length;
        }
      }
      // Take what we send off the head of the queue.
      if (chunk.length === d.queue[0]!.length) d.queue.shift();
      else d.queue[0] = d.queue[0]!.subarray(chunk.length);
      if (d.up) bytesUp += chunk.length;
      else bytesDown += chunk.length;
      if (cutNow) {
        beginCut(c, d, chunk);
        return;
      }
      if (!d.dst.write(chunk)) {
        d.waitingDrain = true;
        d.dst.once('drain', () => {
          d.waitingDrain = false;
          pump(c, d);
        });
      }
    }
    if (d.queue.length > 0 || stalled) {
      d.src.pause();
    } else {
      if (d.srcEnded) {
        if (!d.dst.writableEnded) d.dst.end();
      } else {
        d.src.resume();
      }
    }
  }

  /**
   * cutAfter fired on `c`: disarm the (one-shot) trigger everywhere, let nothing more pass on
   * `c`, forward the last allowed bytes and destroy the connection once they have been written.
   */
  function beginCut(c: Conn, d: Direction, last: Buffer): void {
    cutArmed = null;
    for (const other of conns) other.cutRemaining = null;
    c.cutRemaining = 0; // marks c as being cut: its data handlers drop everything now
    cuts++;
    c.up.queue = [];
    c.down.queue = [];
    c.client.pause();
    c.target.pause();
    if (last.length === 0) {
      destroyConn(c);
      return;
    }
    d.dst.write(last, () => destroyConn(c));
    // Safety net in case that write never completes (destination stuck).
    setTimeout(() => destroyConn(c), CLOSE_GRACE_MS).unref();
  }

  function newDirection(up: boolean, src: Socket, dst: Socket): Direction {
    return { up, src, dst, queue: [], waitingDrain: false, srcEnded: false, timer: null, tokens: 0, lastRefill: Date.now() };
  }

  function wire(c: Conn, d: Direction): void {
    d.src.on('data', (buf: Buffer) => {
      if (c.closed || c.cutRemaining === 0) return; // closed, or being cut
      d.queue.push(buf);
      pump(c, d);
    });
    d.src.on('end', () => {
      d.srcEnded = true;
      pump(c, d);
    });
    d.src.on('error', () => destroyConn(c));
    d.src.on('close', (hadError: boolean) => {
      if (c.closed) return;
      if (hadError || d.queue.length === 0) {
        // Nothing left to deliver from this side: give the other side a moment to flush what
        // it already accepted, then make sure the connection is gone.
        if (!d.dst.writableEnded) d.dst.end();
        setTimeout(() => destroyConn(c), hadError ? 0 : CLOSE_GRACE_MS).unref();
      }
      // Otherwise the pump still owes data and will end dst when the queue is empty.
    });
  }

  function onConnection(client: Socket): void {
    connections++;
    client.on('error', () => undefined); // never let an error event crash the test process
    if (refusing) {
      client.destroy();
      return;
    }
    const target = connect({ host: '127.0.0.1', port: targetPort, allowHalfOpen: true });
    target.on('error', () => undefined);
    client.setNoDelay(true);
    target.setNoDelay(true);
    const c: Conn = {
      client,
      target,
      up: newDirection(true, client, target),
      down: newDirection(false, target, client),
      cutRemaining: cutArmed,
      closed: false,
    };
    conns.add(c);
    wire(c, c.up);
    wire(c, c.down);
    // Data from a stalled or rate-limited start must wait like any other.
    if (stalled) {
      client.pause();
      target.pause();
    }
  }

  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, onConnection);
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  // A forgotten stop() must not keep the test process alive.
  server.unref();
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('proxy: no address');

  const pumpAll = (): void => {
    for (const c of conns) {
      pump(c, c.up);
      pump(c, c.down);
    }
  };

  return {
    port: address.port,
    get bytesUp() {
      return bytesUp;
    },
    get bytesDown() {
      return bytesDown;
    },
    get connections() {
      return connections;
    },
    get cuts() {
      return cuts;
    },
    setRateLimit(bytesPerSecond: number, direction: 'up' | 'down' = 'up') {
      if (!(bytesPerSecond >= 0) || !Number.isFinite(bytesPerSecond)) throw new Error(`bad rate ${bytesPerSecond}`);
      if (direction === 'up') rate = bytesPerSecond;
      else rateDown = bytesPerSecond;
      // Start from an empty bucket so a new low limit bites at once.
      for (const c of conns) {
        const d = direction === 'up' ? c.up : c.down;
        d.tokens = 0;
        d.lastRefill = Date.now();
      }
      pumpAll();
    },
    cutAll() {
      for (const c of [...conns]) {
        cuts++;
        destroyConn(c);
      }
    },
    setRefusing(on: boolean) {
      refusing = on;
    },
    setStalled(on: boolean) {
      stalled = on;
      if (on) {
        for (const c of conns) {
          c.client.pause();
          c.target.pause();
        }
      } else {
        pumpAll();
      }
    },
    cutAfter(bytes: number) {
      if (!Number.isSafeInteger(bytes) || bytes < 0) throw new Error(`bad cutAfter ${bytes}`);
      cutArmed = bytes === 0 ? null : bytes;
      for (const c of conns) if (c.cutRemaining !== 0) c.cutRemaining = cutArmed; // not those being cut
    },
    resetCounters() {
      bytesUp = 0;
      bytesDown = 0;
      connections = 0;
      cuts = 0;
    },
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of [...conns]) destroyConn(c);
      await closed;
    },
  };
}
