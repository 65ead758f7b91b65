/**
 * Opening an SSH connection with its SFTP session: the TCP socket (ours, so that SftpConnection
 * can see every byte that arrives), the handshake with the host-key verdict, the login (see
 * credentials.ts) and the SFTP channel, watched by the bytes that arrive rather than by a total
 * time. What failed is said as the operator needs it: a refused host key or login is a
 * VesselRefusedError, a key file that cannot be used a ConfigError, anything else a TransientError.
 */
import { connect as tcpConnect, type Socket } from 'node:net';
import ssh2 from 'ssh2';
import type { Client, ConnectConfig, SFTPWrapper } from 'ssh2';
import { TransientError, VesselRefusedError, classify } from '../errors.js';
import { answerPrompts, loginConfig, type Credentials } from './credentials.js';
import { fingerprint, judgeHostKey, type HostKeyRecords, type HostKeyVerdict } from './host-key.js';

// aes128-gcm first: AES-NI makes it the cheapest cipher per byte on the shore and on the vessel.
const ciphers = [
  'aes128-gcm@openssh.com', 'aes256-gcm@openssh.com', 'aes128-ctr', 'aes192-ctr', 'aes256-ctr',
  'chacha20-poly1305@openssh.com',
] as ConnectConfig['algorithms'] extends infer A ? A extends { cipher?: infer C } ? C : never : never;

/** Where to connect and how to log in: a vessel when pushing, the server when mirroring. */
export interface Endpoint extends Credentials {
  address: string;
  port: number;
  /** Pinned fingerprint, `SHA256:` and 43 base64 characters (no padding). */
  hostKey?: string;
  /** Seconds without a byte from the peer, while waiting for it, before the link counts as stalled. */
  timeoutS: number;
  /** How messages name the peer: `vessel v1`, `server example.com`. */
  label: string;
  /** How the operator pins a host key: `HostKey =`, `--host-key`. */
  hostKeySetting: string;
}

export interface ConnectOptions {
  endpoint: Endpoint;
  hostKeys: HostKeyRecords;
  /**
   * Called with every key the peer offers and the verdict on it, before the connection goes on
   * or is refused: `check` learns known / new / changed without connecting twice.
   */
  onHostKey?: (fingerprint: string, verdict: HostKeyVerdict) => void;
  /**
   * Judges the offered key instead of judgeHostKey with `hostKeys`: an SSH thread asks the main
   * thread, which holds the state database (see threaded-connection.ts).
   */
  verifyHostKey?: (fingerprint: string, host: string) => Promise<HostKeyVerdict>;
  signal?: AbortSignal;
}

/** A connection that is up and logged in, with its SFTP session. */
export interface Connected {
  client: Client;
  sftp: SFTPWrapper;
  socket: Socket;
}

export async function connect(options: ConnectOptions): Promise<Connected> {
  const { endpoint: vessel, hostKeys } = options;
  const client = new ssh2.Client();
  const timeoutMs = vessel.timeoutS * 1000;
  const login = loginConfig(vessel); // before any socket: a settings error leaks nothing
  // Our own socket, so that the connection can see every byte that arrives (see connection.ts).
  // No Nagle: pipelined requests are small packets that must go out at once, not wait for an ACK.
  const socket = tcpConnect({ host: vessel.address, port: vessel.port, noDelay: true });
  socket.on('error', () => {}); // ssh2 reports it; this only keeps it from being unhandled
  const host = `${vessel.address}:${vessel.port}`;
  let refusal: string | undefined;
  const config: ConnectConfig = {
    host: vessel.address,
    port: vessel.port,
    ...login,
    // The handshake is watched by the bytes that arrive (below), not by a total time.
    readyTimeout: 0,
    // Only keeps idle connections (and NAT mappings) alive; stalls under load are found by
    // the byte-level watch of SftpConnection, which does not mistake a slow link for a dead one.
    keepaliveInterval: 30_000,
    keepaliveCountMax: 4,
    sock: socket,
    algorithms: { cipher: ciphers },
    hostVerifier: ((key: Buffer, verify: (ok: boolean) => void) => {
      const seen = fingerprint(key);
      const decide = (verdict: HostKeyVerdict) => {
        options.onHostKey?.(seen, verdict);
        if (!verdict.ok) refusal = verdict.reason;
        return verdict.ok;
      };
      if (!options.verifyHostKey) return decide(judgeHostKey(vessel.label, host, seen, vessel.hostKey, hostKeys, vessel.hostKeySetting));
      // Asked elsewhere: ssh2 waits for `verify`.
      options.verifyHostKey(seen, host).then(
        (verdict) => verify(decide(verdict)),
        (err: unknown) => verify(decide({ ok: false, reason: `host key of ${vessel.label} (${host}) could not be checked: ${(err as Error).message}` })),
      );
      return undefined;
    }),
  };
  answerPrompts(client, vessel);
  const abort = () => client.destroy();
  options.signal?.addEventListener('abort', abort, { once: true });
  // Connecting takes about ten round trips (TCP, key exchange, authentication, the SFTP
  // channel): 6 s at a 600 ms round trip, 12 s on GPRS. It is given up when nothing arrives
  // for Timeout, as an established connection is, not after a fixed total.
  let heardAt = Date.now();
  const heard = () => {
    heardAt = Date.now();
  };
  socket.on('data', heard);
  let silent: TransientError | undefined;
  const watch = setInterval(() => {
    if (Date.now() - heardAt < timeoutMs) return;
    silent = new TransientError(`cannot connect to ${vessel.label} (${host}): nothing received for ${timeoutMs / 1000} s`, { vessel: vessel.name });
    client.destroy();
  }, Math.min(1000, timeoutMs / 4));
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('ready', resolve);
      // `on`, not `once`: ssh2 can emit several errors for one failed handshake, and an
      // 'error' with no listener would crash the daemon.
      client.on('error', reject);
      client.once('close', () => reject(new TransientError(`connection to ${vessel.label} closed during handshake`, { vessel: vessel.name })));
      client.connect(config);
    });
    const sftp = await new Promise<SFTPWrapper>((resolve, reject) => client.sftp((err, s) => (err ? reject(err) : resolve(s))));
    return { client, sftp, socket };
  } catch (err) {
    client.destroy();
    socket.destroy();
    if (refusal) throw new VesselRefusedError(refusal, { vessel: vessel.name });
    if (options.signal?.aborted) throw new TransientError(`connecting to ${vessel.label} aborted`, { vessel: vessel.name });
    if (silent) throw silent;
    const classified = classify(err, { vessel: vessel.name });
    if (classified instanceof VesselRefusedError) {
      throw new VesselRefusedError(`${vessel.label}: authentication as ${vessel.username} failed (${(err as Error).message})`, { vessel: vessel.name, cause: err });
    }
    throw new TransientError(`cannot connect to ${vessel.label} (${host}): ${(err as Error).message}`, { vessel: vessel.name, cause: err });
  } finally {
    clearInterval(watch);
    socket.off('data', heard);
    options.signal?.removeEventListener('abort', abort);
  }
}
