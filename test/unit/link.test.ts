// The link emulator of the test harness, against a plain TCP echo server: what the unstable-link
// tests rely on. Times are only ever lower bounds (a slow machine makes them longer, never
// shorter), so nothing here can fail because the machine is busy.
import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startLink, type Link } from '../helpers/link.js';

let server: Server;
let port = 0;
const links: Link[] = [];

before(async () => {
  server = createServer((s) => s.pipe(s)); // echo
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as { port: number }).port;
});
after(async () => {
  for (const l of links) await l.stop();
  server.close();
});

async function link(profile: Parameters<typeof startLink>[1] = {}): Promise<Link> {
  const l = await startLink(port, profile);
  links.push(l);
  return l;
}

function open(l: Link): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(l.port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
}

/** Sends `bytes` and resolves when as many came back, or with what came back when the socket closes. */
function echo(s: Socket, bytes: number): Promise<number> {
  return new Promise((resolve) => {
    let got = 0;
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got >= bytes) resolve(got);
    });
    s.on('close', () => resolve(got));
    s.on('error', () => undefined);
    s.write(Buffer.alloc(bytes, 7));
  });
}

describe('link emulator', () => {
  it('delays each direction by its latency', async () => {
    const l = await link({ latencyMs: 150 });
    const s = await open(l);
    const t = performance.now();
    assert.equal(await echo(s, 1000), 1000);
    assert.ok(performance.now() - t >= 300, 'a round trip takes at least twice the latency');
    s.destroy();
  });

  it('caps the rate of all connections together, and counts the bytes that entered the link', async () => {
    const l = await link({ bytesPerSecond: 1_000_000 });
    const [a, b] = await Promise.all([open(l), open(l)]);
    const t = performance.now();
    const got = await Promise.all([echo(a, 300_000), echo(b, 300_000)]);
    assert.deepEqual(got, [300_000, 300_000]);
    // 600 kB each way through one 1 MB/s link (less the ~50 ms it may catch up on).
    assert.ok(performance.now() - t >= 500, `took ${performance.now() - t} ms`);
    assert.equal(l.bytesUp, 600_000);
    assert.equal(l.bytesDown, 600_000);
    a.destroy();
    b.destroy();
  });

  it('cuts the connection that carries the byte at the fault budget; the bytes after it never arrive', async () => {
    const l = await link({ faultEvery: [100_000, 100_000] });
    const s = await open(l);
    const got = await echo(s, 500_000);
    assert.equal(l.cuts, 1);
    assert.ok(got < 100_000, `echoed ${got} bytes`);
    assert.equal(l.bytesUp + l.bytesDown, 100_000, 'exactly the budget crossed the link');
    // The next connection works, until the next budget is spent.
    const s2 = await open(l);
    assert.equal(await echo(s2, 20_000), 20_000);
    s2.destroy();
  });

  it('a link-wide cut takes down every connection', async () => {
    const l = await link({ faultEvery: [50_000, 50_000], cutScope: 'link' });
    const idle = await open(l);
    const closed = new Promise((r) => idle.on('close', r));
    idle.on('error', () => undefined);
    const busy = await open(l);
    await echo(busy, 200_000);
    await closed;
    assert.equal(l.cuts, 2);
  });

  it('stalls: nothing moves for the stall, then the link goes on', async () => {
    const l = await link({ faultEvery: [10_000, 10_000], stallEvery: 1, stallMs: [400, 400] });
    const s = await open(l);
    const t = performance.now();
    assert.equal(await echo(s, 30_000), 30_000, 'no cut: every byte came back');
    assert.ok(performance.now() - t >= 400);
    assert.ok(l.stalls >= 1);
    assert.equal(l.cuts, 0);
    s.destroy();
  });

  it('refuses new connections for a while after a fault', async () => {
    const l = await link({ faultEvery: [10_000, 10_000], refuseEvery: 1, refuseMs: 60_000 });
    const s = await open(l);
    await echo(s, 50_000);
    const refused = await new Promise<boolean>((resolve) => {
      const c = connect(l.port, '127.0.0.1');
      c.on('error', () => resolve(true));
      c.on('close', () => resolve(true));
      c.on('data', () => resolve(false));
      c.write('x');
    });
    assert.ok(refused);
    assert.equal(l.refused, 1);
  });
});
