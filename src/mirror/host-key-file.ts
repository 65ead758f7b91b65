/**
 * Host keys for the mirror, which has no settings file or database: one line per server,
 * `host:port SHA256:…`, in a file of its own (under systemd, in the unit's StateDirectory).
 * The file is read once and appended to when a new server is first seen.
 */
import { appendFileSync, mkdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { ConfigError } from '../errors.js';
import type { HostKeyRecords } from '../ssh/host-key.js';

/** `$STATE_DIRECTORY` (systemd's StateDirectory=), else the XDG state folder. */
export function defaultHostKeyFile(env: NodeJS.ProcessEnv = process.env): string {
  // systemd may pass several directories separated by colons; the first is this unit's own.
  const state = env.STATE_DIRECTORY?.split(':')[0];
  if (state) return join(state, 'mirror-host-keys');
  const xdg = env.XDG_STATE_HOME || join(homedir(), '.local', 'state');
  return join(xdg, 'contentmonster', 'mirror-host-keys');
}

export class HostKeyFile implements HostKeyRecords {
  readonly path: string;
  readonly #keys = new Map<string, string>();
  readonly #onWriteError: (message: string) => void;
  /** A hand-edited file may lack its last newline: the next record must not run on from it. */
  #needsNewline = false;

  /** `onWriteError`: the key could not be saved; this run goes on (the key was checked). */
  constructor(path: string, onWriteError: (message: string) => void) {
    this.path = path;
    this.#onWriteError = onWriteError;
    let text = '';
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new ConfigError(`--host-key-file: cannot read ${path}: ${(err as Error).message}`, { cause: err });
      }
    }
    this.#needsNewline = text.length > 0 && !text.endsWith('\n');
    for (const [n, line] of text.split('\n').entries()) {
      const trimmed = line.trim();
      if (trimmed === '' || trimmed.startsWith('#')) continue;
      const [host, fp, ...rest] = trimmed.split(/\s+/);
      if (!host || !fp?.startsWith('SHA256:') || rest.length > 0) {
        throw new ConfigError(`${path}:${n + 1}: expected \`host:port SHA256:…\`, got \`${trimmed}\``);
      }
      this.#keys.set(host, fp);
    }
  }

  hostKey(host: string): string | undefined {
    return this.#keys.get(host);
  }

  recordHostKey(host: string, fingerprint: string): void {
    this.#keys.set(host, fingerprint);
    try {
      mkdirSync(dirname(this.path), { recursive: true, mode: 0o700 });
      appendFileSync(this.path, `${this.#needsNewline ? '\n' : ''}${host} ${fingerprint}\n`, { mode: 0o600 });
      this.#needsNewline = false;
    } catch (err) {
      // Called from inside the SSH handshake: report, never throw. The next run trusts anew.
      this.#onWriteError(`cannot record the host key in ${this.path}: ${(err as Error).message} (set --host-key-file to a writable place, or pin with --host-key)`);
    }
  }
}
