/**
 * The option table: every settings.ini key once, with its section, the values it takes, its
 * parser, its default, what it does and, where the form is subtle, an example. It is the single
 * source: the loader refuses keys not in it and takes parsers and defaults from it, and
 * `npm run docs` (scripts/docs.ts) renders the README's settings table and the whole
 * settings.example.ini from it (test/unit/docs.test.ts fails when the committed ones differ).
 *
 * Help texts are Markdown with `code` spans only; settings.example.ini drops the backticks.
 */
import os from 'node:os';
import path from 'node:path';
import { Expected } from '../errors.js';
import { logLevels, type LogLevel } from '../log.js';
import { parseTimetable, type Timetable } from './timetable.js';
import {
  commaList, globList, hostKey, hostName, identityPath, localPath, logLevel, maxTimerMs, maxTimerS, metricsSocket,
  nonEmpty, oneOf, positiveSeconds, remotePath, signedWholeNumber, threads, timeZone, wholeNumber, type Parser, type ValueContext,
} from './values.js';
import { MAX_PRIORITY, ORDERS, type QueueOrderName } from '../state/queue-order.js';

/** Global options, from the optional `[MONSTER]` section. */
export interface MonsterSettings {
  /** Size of the chunks a file is split into, in bytes. */
  chunkSize: number;
  /** Absolute path of the SQLite state file. */
  database: string;
  /** Milliseconds a new file's size and mtime must stay unchanged before it is queued. */
  stableTimeMs: number;
  /** Base-name globs never replicated. */
  ignore: string[];
  /** Seconds between full rescans; 0 = off. */
  rescanIntervalS: number;
  /** Absolute path of the Telegraf unix stream socket; null = no metrics. */
  metricsSocket: string | null;
  logLevel: LogLevel;
  /** SSH threads: `auto` (see sshThreadCount), or how many; 0 = off (every connection on the main thread). */
  threads: 'auto' | number;
  /** The limit on all vessels together: a rate or a timetable (one entry `off` = none). */
  bandwidthLimit: Timetable;
  /** IANA time zone the global timetable is read in. */
  timeZone: string;
}

/** One `[Directory NAME]`: a local folder replicated to the vessels. */
export interface DirectorySettings {
  name: string;
  /** Absolute, normalised local folder, no trailing slash. */
  location: string;
  /** Absolute, normalised POSIX folder on the vessels, no trailing slash. */
  remoteLocation: string;
  /** Its files go before those of Directories with a lower one, to every vessel. */
  priority: number;
  /** Which of its files go first: the smallest, the oldest (mtime), or by relative path. */
  order: QueueOrderName;
}

/** One `[Vessel NAME]`: an SFTP server the files are pushed to. Optional fields are absent when not set. */
export interface VesselSettings {
  name: string;
  address: string;
  port: number;
  username: string;
  password?: string;
  /** Passphrase of the private key. */
  passphrase?: string;
  /** Seconds to wait for the connection and each request. */
  timeoutS: number;
  /** Absolute POSIX folder on the vessel for uploaded chunks. */
  tempDir: string;
  /** Directory names not sent to this vessel. */
  ignoreDirs: string[];
  /** Absolute path of the private key. */
  identityFile?: string;
  /** Pinned fingerprint, `SHA256:` and 43 base64 characters (no padding). */
  hostKey?: string;
  /** Files in flight to this vessel at once. */
  concurrency: number;
  /** The limit on this vessel: a rate or a timetable (one entry `off` = none). */
  bandwidthLimit: Timetable;
  /** IANA time zone this vessel's timetable is read in. */
  timeZone: string;
}

export type Kind = 'MONSTER' | 'Directory' | 'Vessel';

/** One key. `S` is the settings object of its section, for defaults that depend on other keys. */
export interface Option<T, S = never> {
  /** The key in settings.ini (case-sensitive). */
  key: string;
  /** The values it takes, in a few words (Markdown). */
  type: string;
  parse: Parser<T>;
  /**
   * When the key is absent: text parsed as if the file held it, or a function of the context
   * and the keys of the section read before (throwing Expected when there is no default to
   * give). Without one the key is required, or else left out of the settings object.
   */
  default?: string | ((ctx: ValueContext, before: Partial<S>) => T);
  required?: true;
  /** The default as the docs write it (Markdown), when it is not the `default` text itself. */
  shown?: string;
  /** What the key does (Markdown). */
  help: string;
  /** A value settings.example.ini shows instead of the default, where the form is subtle. */
  example?: string;
  /** settings.example.ini sets the key rather than showing it commented out. */
  exampleSet?: true;
  /** The value is never echoed into an error or a log. */
  secret?: true;
}

/** The options of one section, by the settings field each fills, in the docs' order. */
export type SectionOptions<S> = { readonly [K in keyof S]-?: Option<Exclude<S[K], undefined>, S> };

export const monsterOptions: SectionOptions<MonsterSettings> = {
  chunkSize: {
    key: 'ChunkSize', type: 'bytes, at least 1', default: '10485760', exampleSet: true,
    parse: wholeNumber(1, Number.MAX_SAFE_INTEGER, 'expected a whole number of bytes >= 1'),
    help: 'Size of the chunks a file is split into for upload, in bytes (10485760 is 10 MiB).',
  },
  database: {
    key: 'Database', type: 'file path',
    parse: localPath('expected a file path'),
    default: databaseDefault,
    shown: "`database.sqlite3` beside the settings file; under systemd, in the unit's `StateDirectory=` (`$STATE_DIRECTORY`)",
    example: 'database.sqlite3',
    help: "SQLite state file, which keeps the queue and what each vessel has; a relative path is taken from the settings file's folder. "
      + 'For a service, set it to `/var/lib/contentmonster/database.sqlite3` all the same: `contentmonster status` and `check`, '
      + 'run by hand, then find the database the service uses.',
  },
  stableTimeMs: {
    key: 'StableTime', type: `milliseconds, 0 to ${maxTimerMs}`, default: '2000',
    parse: wholeNumber(0, maxTimerMs, `expected a whole number of milliseconds from 0 to ${maxTimerMs}`),
    help: "Milliseconds a new file's size and modification time must stay unchanged before it is queued, "
      + 'so that files still being written are not sent half-done.',
  },
  ignore: {
    key: 'Ignore', type: 'comma-separated globs', default: '.*, *.part, *.tmp, *~, *.swp',
    parse: globList,
    help: "Globs matched against each file's and folder's base name, never replicated: `*` any characters, "
      + '`?` one character, `[abc]` one of them, `[!abc]` none of them. The default leaves out dotfiles, '
      + 'partial downloads, temporary and editor swap files; an empty value ignores nothing.',
  },
  rescanIntervalS: {
    key: 'RescanInterval', type: `seconds, 0 to ${maxTimerS}`, default: '600',
    parse: wholeNumber(0, maxTimerS, `expected a whole number of seconds from 0 (off) to ${maxTimerS}`),
    help: 'Seconds between full rescans of every Directory, which catch file events the watcher missed '
      + 'and retry failures; 0 turns rescans off.',
  },
  metricsSocket: {
    key: 'MetricsSocket', type: 'socket path', default: '', shown: 'off', example: '/run/telegraf/telegraf.sock',
    parse: metricsSocket,
    help: 'Telegraf `socket_listener` unix stream socket for InfluxDB line-protocol metrics (see "Push metrics" in the README); '
      + "empty or absent turns metrics off. A relative path is taken from the settings file's folder, and "
      + '`unix:///run/telegraf/telegraf.sock`, as Telegraf writes it, also works.',
  },
  logLevel: {
    key: 'LogLevel', type: logLevels.map((l) => `\`${l}\``).join(', '), default: 'info',
    parse: logLevel,
    help: 'Log level: lines less severe than it are not written.',
  },
  threads: {
    key: 'Threads', type: '`off`, `auto` or 1 to 64', default: 'off',
    parse: threads,
    help: "Worker threads for the vessels' SSH connections (ssh2 encrypts and frames in JavaScript: one thread feeds "
      + 'about 0.5 GiB/s of vessel traffic in all). `off`: every connection on the main thread. A number: that many SSH '
      + "threads, each vessel's connections in one of them. `auto`: one thread per vessel, at most one per core, and only "
      + 'with at least 2 vessels and 2 cores. Threads cost CPU (each write is copied once more, and each request is a '
      + 'message: 0.8-1 CPU-s per GiB delivered and 60 MiB of memory more, measured) and pay only when the main thread '
      + 'is the limit and the shore has idle cores; see "Performance" in the README.',
  },
  bandwidthLimit: {
    key: 'BandwidthLimit', type: 'rate or timetable', default: 'off', example: '08:00,4M 18:00,off',
    parse: parseTimetable,
    help: 'The most all vessels together may send, in bytes a second (each vessel has its own `BandwidthLimit` too): '
      + 'a rate, `512k`, `2M`, `1G` (binary units: `k` is 1024 bytes a second) or a whole number of bytes (at least 1024), '
      + 'or `off`; or a timetable of space-separated `HH:MM,RATE` pairs in `TimeZone`, optionally per weekday '
      + '(`08:00,4M 18:00,off`, `Mon-08:00,1M Sat-00:00,off`). Before the first time of a day (of the week, with weekdays) '
      + 'the last one goes on. Changes apply live at each time, without dropping transfers (see "Bandwidth limits" in the README).',
  },
  timeZone: {
    key: 'TimeZone', type: 'IANA time zone', default: 'UTC', example: 'Europe/Berlin',
    parse: timeZone,
    help: "Time zone of the `[MONSTER]` `BandwidthLimit` timetable (`Europe/Berlin`, `America/New_York`, `UTC`); daylight saving time is followed.",
  },
};

export const directoryOptions: SectionOptions<Omit<DirectorySettings, 'name'>> = {
  location: {
    key: 'Location', type: 'folder path', required: true, example: '/home/user/replication',
    parse: localPath('expected a folder path'),
    help: "Local folder, watched recursively (`processed/` at its top is left out); a relative path is taken from the settings file's folder.",
  },
  remoteLocation: {
    key: 'RemoteLocation', type: 'absolute path', shown: '`Location`', example: '/home/user/replication',
    parse: remotePath,
    default: (_ctx, before) => before.location!,
    help: "Absolute folder on the vessels where the files land; it must be writable by the vessel's `Username`.",
  },
  priority: {
    key: 'Priority', type: `whole number, -${MAX_PRIORITY} to ${MAX_PRIORITY}`, default: '0', example: '10',
    parse: signedWholeNumber(-MAX_PRIORITY, MAX_PRIORITY, `expected a whole number from -${MAX_PRIORITY} to ${MAX_PRIORITY}`),
    help: "Files of a Directory with a higher Priority start before those of one with a lower, to every vessel "
      + '(a position report before a video); a file whose upload has begun is finished first all the same '
      + '(see "Priority and order" in the README).',
  },
  order: {
    key: 'Order', type: ORDERS.map((o) => `\`${o}\``).join(', '), default: 'size',
    parse: oneOf(ORDERS),
    help: 'Which of the Directory\'s waiting files start first: `size` the smallest, `mtime` the oldest (first come, first served), '
      + '`name` by path relative to `Location` (byte order). Directories of the same Priority and Order share one line.',
  },
};

export const vesselOptions: SectionOptions<Omit<VesselSettings, 'name'>> = {
  address: {
    key: 'Address', type: 'host name or IP address', required: true, example: 'example.com',
    parse: hostName,
    help: 'Host name or IP address of the vessel.',
  },
  port: {
    key: 'Port', type: '1 to 65535', default: '22', exampleSet: true,
    parse: wholeNumber(1, 65535, 'expected a whole number from 1 to 65535'),
    help: 'SSH port of the vessel.',
  },
  username: {
    key: 'Username', type: 'user name', shown: 'the user running contentmonster', example: 'replication', exampleSet: true,
    parse: nonEmpty('expected a user name'),
    default: currentUser,
    help: 'User to log in as on the vessel.',
  },
  password: {
    key: 'Password', type: 'text', shown: 'none', example: 'verysecret', secret: true,
    parse: nonEmpty('expected a password; leave the key out for none (white space then # or ; starts a comment)'),
    help: 'Password to log in with, never logged; leave it out to log in with a key (`IdentityFile`, the SSH agent, then `~/.ssh/id_*`).',
  },
  passphrase: {
    key: 'Passphrase', type: 'text', shown: 'none', example: 'moresecret', secret: true,
    parse: nonEmpty('expected a passphrase; leave the key out for none (white space then # or ; starts a comment)'),
    help: 'Passphrase of the private key, never logged; leave it out for a key without one.',
  },
  identityFile: {
    key: 'IdentityFile', type: 'file path', shown: 'the SSH agent, then `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`', example: '~/.ssh/id_ed25519',
    parse: identityPath,
    help: "Private key file; `~/` is the home folder, and a relative path is taken from the settings file's folder. "
      + "For the systemd service, the service user's key: `/var/lib/contentmonster/.ssh/id_ed25519` "
      + '("Installing and running as a service" in the README shows how to make it).',
  },
  hostKey: {
    key: 'HostKey', type: '`SHA256:` fingerprint', shown: 'trust on first use', example: 'SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU',
    parse: hostKey,
    help: 'Pinned host key fingerprint, `SHA256:` and 43 base64 characters as `ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` '
      + 'prints it on the vessel. Without it, the key seen on the first connection is trusted and then insisted on.',
  },
  timeoutS: {
    key: 'Timeout', type: `seconds, more than 0 and at most ${maxTimerS}, decimals allowed`, default: '10',
    parse: positiveSeconds,
    help: 'Seconds of silence that end a connection: connecting is given up when nothing arrives from the vessel for this long '
      + '(not after a total time, however long the handshake takes on a slow link), and while work is outstanding a link from '
      + 'which nothing arrives for this long counts as stalled: it is torn down and the work resumes on a new connection. '
      + 'A slow link that keeps answering is never cut.',
  },
  tempDir: {
    key: 'TempDir', type: 'absolute path', default: '/tmp/.ContentMonster', exampleSet: true,
    parse: remotePath,
    help: 'Absolute folder on the vessel where chunks are uploaded before they are joined; it must be writable, '
      + 'is created if missing, and may be on another filesystem (e.g. tmpfs) than the destination.',
  },
  ignoreDirs: {
    key: 'IgnoreDirs', type: 'comma-separated names', default: '', shown: 'none', example: 'sampledir, anotherdir',
    parse: commaList,
    help: 'Names of Directory sections *not* replicated to this vessel.',
  },
  concurrency: {
    key: 'Concurrency', type: '1 to 64', default: '2',
    parse: wholeNumber(1, 64, 'expected a whole number from 1 to 64'),
    help: 'Connections to this vessel. Each carries one large file at a time and up to 16 small ones (one chunk, at most 1 MiB; '
      + 'each is mostly waiting on round trips), within 8 MiB of small files per vessel. When one drops, the others take its '
      + 'files over at once from what the vessel already has, so with 2 or more a flaky link keeps moving while the dropped one '
      + 'reconnects (see "Unreliable links" in the README).',
  },
  bandwidthLimit: {
    key: 'BandwidthLimit', type: 'rate or timetable', default: 'off', example: '512k',
    parse: parseTimetable,
    help: 'The most this vessel may be sent, in bytes a second, as for `[MONSTER]` `BandwidthLimit`: a rate (`512k`, `2M`, `off`) '
      + 'or a timetable (`08:00,512k 18:00,off`, `Mon-08:00,1M`) in this vessel\'s `TimeZone`. Small files are not starved: '
      + 'the files in flight share it in turns of 32 KiB.',
  },
  timeZone: {
    key: 'TimeZone', type: 'IANA time zone', default: 'UTC', example: 'Europe/Berlin',
    parse: timeZone,
    help: "Time zone of this vessel's `BandwidthLimit` timetable; daylight saving time is followed.",
  },
};

/** Every key, section by section in file order: what the loader accepts and the docs list. */
export const settingsTable: ReadonlyArray<Option<unknown> & { section: Kind; field: string }> = [
  ...flatten('MONSTER', monsterOptions),
  ...flatten('Directory', directoryOptions),
  ...flatten('Vessel', vesselOptions),
];

function flatten<S>(section: Kind, options: SectionOptions<S>): Array<Option<unknown> & { section: Kind; field: string }> {
  return Object.entries<Option<unknown, S>>(options).map(([field, option]) => ({ section, field, ...(option as Option<unknown>) }));
}

/**
 * `database.sqlite3` in the unit's StateDirectory= under systemd (`$STATE_DIRECTORY`, the first
 * folder if it lists several: the settings file's folder is read-only there), else beside the
 * settings file.
 */
function databaseDefault({ base, env }: ValueContext): string {
  const state = env.STATE_DIRECTORY?.split(':')[0];
  return path.resolve(state || base, 'database.sqlite3');
}

function currentUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    // A uid without a passwd entry (some containers) has no name to log in with.
    throw new Expected('required here, since the user running contentmonster has no name');
  }
}
