// Smoke test of the end-to-end harness itself: real sshd vessels in their own mount namespaces,
// the TCP proxy, and the file helpers. If this fails, every other e2e failure is suspect.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, type ConnectConfig, type SFTPWrapper } from 'ssh2';
import { startLink, type Link } from '../helpers/link.js';
import { startVesselFarm, type Vessel, type VesselFarm } from '../helpers/sshd.js';
import { exists, listFiles, sha256File, writeRandomFile } from '../helpers/tree.js';
import { runCli, startDaemon, waitFor } from '../helpers/process.js';

/** Fingerprint of a raw host key blob, as ssh-keygen prints it. */
function fingerprint(key: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(key).digest('base64').replace(/=+$/, '');
}

interface Conn {
  client: Client;
  seenHostKey: string;
}

/** Connects as root with the farm's client key, recording the host key ssh2 was shown. */
function sshConnect(farm: VesselFarm, port: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let seenHostKey = '';
    const config: ConnectConfig = {
      host: '127.0.0.1',
      port,
      username: 'root',
      privateKey: readFileSync(farm.clientKey),
      readyTimeout: 10_000,
      hostVerifier: (key: Buffer) => {
        seenHostKey = fingerprint(key);
        return true;
      },
    };
    client.once('ready', () => resolve({ client, seenHostKey }));
    client.once('error', reject);
    client.connect(config);
  });
}

function sftpOf(client: Client): Promise<SFTPWrapper> {
  return new Promise((resolve, reject) => client.sftp((err, sftp) => (err ? reject(err) : resolve(sftp))));
}

/** Runs a remote command; resolves with its stdout and exit code (read on 'close'). */
function exec(client: Client, command: string): Promise<{ stdout: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    client.exec(command, (err, stream) => {
      if (err) return reject(err);
      let stdout = '';
      stream.on('data', (d: Buffer) => (stdout += d.toString()));
      stream.stderr.on('data', () => undefined);
      stream.on('close', (code: number | null) => resolve({ stdout, code }));
    });
  });
}

function readdirNames(sftp: SFTPWrapper, path: string): Promise<string[]> {
  return new Promise((resolve, reject) =>
    sftp.readdir(path, (err, list) => (err ? reject(err) : resolve(list.map((e) => e.filename).sort()))),
  );
}

function sftpWriteFile(sftp: SFTPWrapper, path: string, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => sftp.writeFile(path, data, (err) => (err ? reject(err) : resolve())));
}

describe('e2e harness', () => {
  let farm: VesselFarm;
  const clients: Client[] = [];
  const proxies: Link[] = [];

  before(async () => {
    farm = await startVesselFarm({ count: 3 });
    // Each vessel gets its own file, written on the host through its backing directory.
    for (const v of farm.vessels) await writeFile(join(v.backing, `only-on-${v.name}.txt`), `${v.name}\n`);
  });

  after(async () => {
    for (const c of clients) c.end();
    for (const p of proxies) await p.stop();
    await farm?.stop();
  });

  async function connectTo(v: Vessel, port = v.port): Promise<Conn> {
    const conn = await sshConnect(farm, port);
    clients.push(conn.client);
    return conn;
  }

  it('lays out the farm as documented', async () => {
    assert.match(farm.root, /^\/var\/tmp\/cm-e2e-/);
    assert.equal(farm.viewPath, `${farm.root}/data`);
    assert.deepEqual(await listFiles(farm.viewPath), [], 'the shore view stays empty');
    assert.deepEqual(farm.vessels.map((v) => v.name), ['v1', 'v2', 'v3']);
    assert.equal(new Set(farm.vessels.map((v) => v.port)).size, 3);
    assert.equal(new Set(farm.vessels.map((v) => v.hostKeyFingerprint)).size, 3, 'distinct host keys');
  });

  it('gives each vessel its own view, empty home, tmpfs /tmp and host key', async () => {
    for (const v of farm.vessels) {
      const { client, seenHostKey } = await connectTo(v);
      // (c) the key ssh2 sees is the one the farm reports
      assert.equal(seenHostKey, v.hostKeyFingerprint);
      // (a) the mount namespaces work: same path, this vessel's own file only
      const sftp = await sftpOf(client);
      assert.deepEqual(await readdirNames(sftp, farm.viewPath), [`only-on-${v.name}.txt`]);
      // (b) empty home (no slow .bashrc) and a tmpfs on /tmp
      const r = await exec(client, 'echo $HOME; ls -A /root | wc -l; df -P /tmp | tail -1');
      assert.equal(r.code, 0);
      const [home, count, df] = r.stdout.trim().split('\n');
      assert.equal(home, '/root');
      assert.equal(count?.trim(), '0');
      assert.match(df ?? '', /^tmpfs\s.*\s\/tmp$/);
    }
  });

  it('exposes vessel paths on the host through hostPath (f)', async () => {
    const v = farm.vessels[1];
    const { client } = await connectTo(v);
    const name = `cm-e2e-probe-${process.pid}`;
    assert.equal((await exec(client, `echo hello-${v.name} > /tmp/${name}`)).code, 0);
    assert.equal(await readFile(v.hostPath(`/tmp/${name}`), 'utf8'), `hello-${v.name}\n`);
    assert.equal(await exists(`/tmp/${name}`), false, "the vessel's /tmp is not the host's");
    assert.deepEqual(await listFiles(v.hostPath(farm.viewPath)), [`only-on-${v.name}.txt`]);
  });

  it('counts bytes through the proxy and cuts connections (d)', async () => {
    const v = farm.vessels[0];
    const proxy = await startLink(v.port);
    proxies.push(proxy);
    const { client, seenHostKey } = await connectTo(v, proxy.port);
    assert.equal(seenHostKey, v.hostKeyFingerprint);
    assert.equal(proxy.connections, 1);
    const sftp = await sftpOf(client);
    const data = Buffer.alloc(1 << 20, 7);
    await sftpWriteFile(sftp, `${farm.viewPath}/through-proxy.bin`, data);
    assert.ok(proxy.bytesUp >= 1 << 20, `bytesUp ${proxy.bytesUp}`);
    assert.ok(proxy.bytesDown > 0);
    assert.deepEqual(await readFile(join(v.backing, 'through-proxy.bin')), data);

    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    client.on('error', () => undefined); // a cut may surface as ECONNRESET first
    proxy.cutAll();
    await closed;
    assert.equal(proxy.cuts, 1);
  });

  it('rate-limits, stalls, refuses and cuts after N bytes', async () => {
    const v = farm.vessels[2];
    const proxy = await startLink(v.port);
    proxies.push(proxy);

    // cutAfter: the connection dies after about this many client bytes, one-shot.
    proxy.cutAfter(300 * 1024);
    const a = await connectTo(v, proxy.port);
    a.client.on('error', () => undefined);
    const aClosed = new Promise<void>((resolve) => a.client.once('close', () => resolve()));
    const sftpA = await sftpOf(a.client);
    // ssh2 may never call back a request pending on a dead link, so wait for 'close' instead.
    sftpWriteFile(sftpA, `${farm.viewPath}/cut.bin`, Buffer.alloc(1 << 20)).catch(() => undefined);
    await aClosed;
    assert.equal(proxy.cuts, 1);
    assert.ok(proxy.bytesUp <= 300 * 1024, `bytesUp ${proxy.bytesUp}`);

    // The trigger was one-shot: the next connection carries 1 MiB fine, and rate limiting lets
    // data through (slowly) instead of blocking it. No timing asserted: that is for benchmarks.
    proxy.setRateLimit(4 << 20);
    const b = await connectTo(v, proxy.port);
    const sftpB = await sftpOf(b.client);
    await sftpWriteFile(sftpB, `${farm.viewPath}/slow.bin`, Buffer.alloc(1 << 20, 1));
    proxy.setRateLimit(0);

    // Stall: a request gets no answer until the stall ends.
    proxy.setStalled(true);
    let answered = false;
    const pending = readdirNames(sftpB, farm.viewPath).then((names) => {
      answered = true;
      return names;
    });
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(answered, false, 'no answer while stalled');
    proxy.setStalled(false);
    assert.ok((await pending).includes('slow.bin'));

    // Refusing: the TCP accept happens, the SSH handshake cannot.
    proxy.setRefusing(true);
    const before = proxy.connections;
    await assert.rejects(sshConnect(farm, proxy.port));
    assert.equal(proxy.connections, before + 1);
    proxy.setRefusing(false);
  });

  it('stops and restarts a vessel (e)', async () => {
    const v = farm.vessels[2];
    const { client } = await connectTo(v);
    client.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    const oldPid = v.pid;
    await v.stop();
    await closed; // open sessions die with the vessel, like a reboot
    await assert.rejects(sshConnect(farm, v.port));
    await v.start();
    assert.notEqual(v.pid, oldPid);
    const again = await connectTo(v);
    assert.equal(again.seenHostKey, v.hostKeyFingerprint, 'same host key after restart');
    const names = await readdirNames(await sftpOf(again.client), farm.viewPath);
    assert.ok(names.includes(`only-on-${v.name}.txt`), 'backing survives a restart');
  });
});

describe('tree and process helpers', () => {
  let farm: VesselFarm;
  before(async () => {
    // A farm is only used here as a scratch root under /var/tmp that is cleaned up.
    farm = await startVesselFarm({ count: 1, tmpfsTmp: false });
  });
  after(async () => farm?.stop());

  it('writes deterministic random files and hashes them', async () => {
    const a = join(farm.root, 'scratch/a/b/one.bin');
    const b = join(farm.root, 'scratch/two.bin');
    const size = 3 * (1 << 20) + 17;
    const ha = await writeRandomFile(a, size, 42);
    const hb = await writeRandomFile(b, size, 42);
    assert.equal(ha, hb, 'same seed, same bytes');
    assert.equal(await sha256File(a), ha);
    assert.notEqual(await writeRandomFile(b, size, 43), ha);
    const empty = await writeRandomFile(join(farm.root, 'scratch/empty'), 0);
    assert.equal(empty, createHash('sha256').digest('hex'));
    assert.deepEqual(await listFiles(join(farm.root, 'scratch')), ['a/b/one.bin', 'empty', 'two.bin']);
    assert.deepEqual(await listFiles(join(farm.root, 'missing')), []);
  });

  it('runs node children and waits on their output', async () => {
    const script = join(farm.root, 'fake-cli.mjs');
    // Handler before 'ready': printing first would let the test's SIGTERM win the race.
    await writeFile(
      script,
      `console.log('args', process.argv.slice(2).join(','), process.env.CM_TEST_X);
       console.error('to stderr');
       if (process.argv[2] === 'serve') { process.on('SIGTERM', () => { console.log('bye'); process.exit(0); }); console.log('ready'); setInterval(() => {}, 1000); }
       else process.exit(3);`,
    );
    const r = await runCli(['a', 'b'], { cli: script, env: { CM_TEST_X: 'x1' } });
    assert.deepEqual([r.code, r.signal], [3, null]);
    assert.equal(r.stdout, 'args a,b x1\n');
    assert.equal(r.stderr, 'to stderr\n');

    const d = startDaemon(['serve'], { cli: script });
    await d.waitForOutput(/ready/);
    d.kill();
    assert.deepEqual(await d.waitForExit(), { code: 0, signal: null });
    assert.match(d.output(), /bye/);

    // Events: JSON lines on the descriptor CONTENTMONSTER_EVENTS_FD names (3), in order, each
    // after the log line that tells of it (the daemon logs, then emits).
    const emitter = join(farm.root, 'fake-events.mjs');
    await writeFile(
      emitter,
      `import { writeSync } from 'node:fs';
       const fd = Number(process.env.CONTENTMONSTER_EVENTS_FD);
       const emit = (e) => writeSync(fd, JSON.stringify(e) + '\\n');
       const log = (s) => writeSync(1, s + '\\n');
       log('watching for new files'); emit({ type: 'ready' });
       for (const v of ['v1', 'v2']) { log('connected vessel=' + v); emit({ type: 'connected', vessel: v }); }
       setTimeout(() => {
         log('replicated vessel=v2');
         // One event written in two pieces: a line is whole before it counts.
         const line = JSON.stringify({ type: 'delivered', vessel: 'v2', file: '/shore/a.bin', bytes: 5, alreadyThere: false }) + '\\n';
         writeSync(fd, line.slice(0, 10)); setTimeout(() => { writeSync(fd, line.slice(10)); process.exit(0); }, 50);
       }, 200);`,
    );
    const e = startDaemon([], { cli: emitter });
    assert.deepEqual(await e.waitForEvent('ready'), { type: 'ready' });
    assert.match(e.output(), /watching for new files/);
    const v2 = await e.waitForEvent('connected', (c) => c.vessel === 'v2');
    assert.equal(v2.vessel, 'v2');
    assert.match(e.output(), /connected vessel=v2/);
    const delivered = await e.waitForEvent('delivered');
    assert.equal(delivered.file, '/shore/a.bin');
    assert.match(e.output(), /replicated vessel=v2/);
    assert.deepEqual(e.events().map((x) => x.type), ['ready', 'connected', 'connected', 'delivered']);
    // An event that never comes: the wait ends when the process does, with what it saw.
    await assert.rejects(e.waitForEvent('refused'), (err: Error) => /exited \(code 0.*before the event refused/s.test(err.message) && err.message.includes('"type":"delivered"'));
    // Without the variable, nothing is written there.
    const quiet = startDaemon([], { cli: emitter, env: { CONTENTMONSTER_EVENTS_FD: undefined } });
    assert.notEqual((await quiet.waitForExit()).code, 0, 'writeSync(NaN) throws: the variable was taken away');
    assert.deepEqual(quiet.events(), []);

    let n = 0;
    assert.equal(await waitFor(() => ++n >= 3 && n, 'three polls', 5000, 10), 3);
    await assert.rejects(waitFor(() => false, 'never', 200, 20), /never/);
  });
});
