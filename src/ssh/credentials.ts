/**
 * How to log in: the private key (IdentityFile, or the default ones of ~/.ssh), the SSH agent,
 * the password (also for keyboard-interactive), in OpenSSH's order. A key file that cannot be
 * used is a settings error, found before any socket is opened.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { AuthenticationType, Client, ConnectConfig } from 'ssh2';
import { ConfigError } from '../errors.js';

/** Who logs in, and how messages name the key setting. */
export interface Credentials {
  /** The endpoint's name: a vessel's name, or the server when mirroring. */
  name: string;
  username: string;
  password?: string;
  /** Passphrase of the private key. */
  passphrase?: string;
  /** Absolute path of the private key. */
  identityFile?: string;
  /** How messages name the key setting: `[Vessel v1] IdentityFile`, `-i`. */
  identitySetting: string;
}

/** Private keys to offer when no IdentityFile is set, in OpenSSH's order. */
const defaultKeyNames = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

function privateKeyFor(vessel: Credentials): Buffer | undefined {
  if (vessel.identityFile) {
    let key: Buffer;
    try {
      key = readFileSync(vessel.identityFile);
    } catch (err) {
      throw new ConfigError(`${vessel.identitySetting}: cannot read ${vessel.identityFile}: ${(err as Error).message}`, { vessel: vessel.name, cause: err });
    }
    // Parsed here so that a wrong or missing Passphrase is a settings error, not a network one.
    const parsed = ssh2.utils.parseKey(key, vessel.passphrase);
    if (parsed instanceof Error) {
      const hint = vessel.passphrase === undefined ? ' (is a passphrase needed?)' : ' (is the passphrase right?)';
      throw new ConfigError(`${vessel.identitySetting}: cannot use ${vessel.identityFile}: ${parsed.message}${hint}`, { vessel: vessel.name });
    }
    return key;
  }
  for (const name of defaultKeyNames) {
    let key: Buffer;
    try {
      key = readFileSync(join(homedir(), '.ssh', name));
    } catch {
      continue;
    }
    // A default key that needs a passphrase we do not have is skipped, as ssh would skip it.
    if (!(ssh2.utils.parseKey(key, vessel.passphrase) instanceof Error)) return key;
  }
  return undefined;
}

/** The methods to try, in OpenSSH's order; `none` last, for a server that lets anyone in. */
function authOrder(key: boolean, password: boolean): AuthenticationType[] {
  return [
    ...(key ? ['publickey' as const] : []),
    ...(process.env.SSH_AUTH_SOCK ? ['agent' as const] : []),
    ...(password ? ['password' as const, 'keyboard-interactive' as const] : []),
    'none',
  ];
}

export type LoginConfig = Pick<ConnectConfig, 'username' | 'password' | 'privateKey' | 'passphrase' | 'agent' | 'tryKeyboard' | 'authHandler'>;

/**
 * The login part of ssh2's connect config. Throws ConfigError when the key file cannot be used:
 * call it before opening a socket, so that a settings error leaks nothing.
 */
export function loginConfig(vessel: Credentials): LoginConfig {
  const privateKey = privateKeyFor(vessel);
  return {
    username: vessel.username,
    password: vessel.password,
    privateKey,
    passphrase: vessel.passphrase,
    agent: process.env.SSH_AUTH_SOCK || undefined,
    tryKeyboard: vessel.password !== undefined,
    // ssh2 starts with the `none` method only to learn which ones the server allows: a round
    // trip (0.6 s on a satellite link) that the first real method learns as well.
    authHandler: authOrder(privateKey !== undefined, vessel.password !== undefined),
  };
}

/** Answers keyboard-interactive prompts with the password, when there is one. */
export function answerPrompts(client: Client, vessel: Credentials): void {
  if (vessel.password === undefined) return;
  client.on('keyboard-interactive', (_name, _instructions, _lang, prompts, finish) => finish(prompts.map(() => vessel.password!)));
}
