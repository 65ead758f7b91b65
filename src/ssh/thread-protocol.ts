/** The messages between the main thread (threaded-connection.ts) and an SSH thread (ssh-thread.ts). */
import type { Endpoint } from './connect.js';
import type { HostKeyVerdict } from './host-key.js';
import type { WireError } from './wire-errors.js';

export type ToThread =
  /** Connect: `id` names the connection from now on. */
  | { t: 'open'; id: number; endpoint: Endpoint }
  /** The main thread's verdict on a host key the thread asked about. */
  | { t: 'verdict'; question: number; verdict: HostKeyVerdict }
  /** A RemoteFs request (or `result` / `ask` of a spawned command or line service): answered by a `reply` with `req`. */
  | { t: 'call'; id: number; req: number; op: string; args: unknown[] }
  | { t: 'proc'; id: number; child: number; op: 'write' | 'end'; text?: string }
  | { t: 'serviceClose'; id: number; child: number }
  /** Tear down (or stop connecting); also how the main thread lets go of a connection that died. */
  | { t: 'disconnect'; id: number; reason?: string };

export type FromThread =
  | { t: 'hostKey'; id: number; question: number; fingerprint: string; host: string }
  | { t: 'opened'; id: number; maxWriteLength: number }
  | { t: 'openFailed'; id: number; error: WireError }
  | { t: 'closed'; id: number; error: WireError }
  /** `returned`: a write's data buffer, moved back for reuse. */
  | { t: 'reply'; req: number; ok: true; value: unknown; service?: ServiceState; returned?: ArrayBuffer }
  | { t: 'reply'; req: number; ok: false; error: WireError; service?: ServiceState; returned?: ArrayBuffer };

/** A line service's state, sent with each answer to `ask`. */
export interface ServiceState {
  answered: boolean;
  ended: boolean;
}
