/**
 * `contentmonster mirror SERVER REMOTE_PATH LOCAL_PATH`: the pull mirror (seed 000, without
 * lftp). Exit 0 when everything is mirrored or a signal stopped the run (partials are kept for
 * the next one); 1 when a file failed or the server could not be used; 2 for bad usage.
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { ConfigError, ExitCode } from '../errors.js';
import { secondsFlag, wholeNumberFlag } from './flags.js';
import { stopOnSignals } from './signals.js';
import { createLogger, resolveFormat, type LogFormat, type LogLevel, type TextSink } from '../log.js';
import { MetricsSink } from '../metrics/sink.js';
import { HostKeyFile, defaultHostKeyFile } from '../mirror/host-key-file.js';
import { Mirror } from '../mirror/mirror.js';
import { formatBytes } from './format.js';
import { TerminalProgress } from '../mirror/progress.js';
import type { Endpoint } from '../ssh/connect.js';
import { fingerprintExpected, parseFingerprint } from '../ssh/host-key.js';



export interface MirrorFlags {
  jobs: string;
  all?: boolean;
  port: string;
  identityFile?: string;
  metricsSocket: string;
  /** The operator named the socket (else it is the default, which may well not exist). */
  metricsSocketChosen?: boolean;
  hostKey?: string;
  hostKeyFile?: string;
  timeout: string;
  giveUpAfter: string;
  logFormat: LogFormat;
  logLevel: LogLevel;
}

/** Some way to log in must exist before we connect, as the seed insists (exit 1, not 2). */
function credentialsProblem(env: NodeJS.ProcessEnv, identityFile: string | undefined): string | undefined {
  if (!env.SFTP_USERNAME) return 'SFTP_USERNAME is not set: export SFTP_USERNAME (and SFTP_PASSWORD, or pass -i KEY, or run an ssh agent)';
  if (env.SFTP_PASSWORD !== undefined || identityFile || env.SSH_AUTH_SOCK) return undefined;
  if (['id_ed25519', 'id_ecdsa', 'id_rsa'].some((k) => existsSync(join(homedir(), '.ssh', k)))) return undefined;
  return 'no credentials: set SFTP_PASSWORD, or pass -i KEY, or run an ssh agent (SSH_AUTH_SOCK)';
}

export async function mirror(server: string, remotePath: string, localPath: string, flags: MirrorFlags): Promise<number> {
  const jobs = wholeNumberFlag('-j/--jobs', flags.jobs, 1, 64);
  const port = wholeNumberFlag('-p/--port', flags.port, 1, 65535);
  const timeoutS = secondsFlag('--timeout', flags.timeout);
  const giveUpAfterS = secondsFlag('--give-up-after', flags.giveUpAfter);
  const pinned = flags.hostKey === undefined ? undefined : parseFingerprint(flags.hostKey.trim());
  if (flags.hostKey !== undefined && pinned === undefined) throw new ConfigError(`--host-key: ${fingerprintExpected}`);
  // An unset variable in a unit's ExecStart arrives as '': resolve('') would mirror into the
  // working directory (/ for a system service).
  for (const [name, value] of [['SERVER', server], ['REMOTE_PATH', remotePath], ['LOCAL_PATH', localPath]] as const) {
    if (value.trim() === '') throw new ConfigError(`${name} is empty`);
  }

  // On a terminal, log lines scroll above a progress display; under journald, plain lines.
  let progress: TerminalProgress | undefined;
  const format = resolveFormat(flags.logFormat);
  const sink: TextSink | undefined = format === 'text' && process.stdout.isTTY
    ? { write: (text) => (progress ? progress.writeAbove(text) : process.stdout.write(text)) }
    : undefined;
  const log = createLogger(flags.logLevel, format, sink);

  const problem = credentialsProblem(process.env, flags.identityFile);
  if (problem) {
    log.error(problem);
    return ExitCode.failure;
  }
  const endpoint: Endpoint = {
    name: server,
    label: `server ${server}`,
    address: server,
    port,
    username: process.env.SFTP_USERNAME!,
    password: process.env.SFTP_PASSWORD,
    passphrase: process.env.SFTP_PASSPHRASE,
    identityFile: flags.identityFile === undefined ? undefined : resolve(flags.identityFile),
    hostKey: pinned,
    timeoutS,
    identitySetting: '-i/--identity-file',
    hostKeySetting: '--host-key',
  };
  const hostKeys = new HostKeyFile(flags.hostKeyFile ? resolve(flags.hostKeyFile) : defaultHostKeyFile(), (msg) => log.warn(msg));
  const metrics = new MetricsSink(flags.metricsSocket, log, { quietOutage: !flags.metricsSocketChosen });

  const stopping = stopOnSignals(log, {
    stopping: 'signal received; stopping (partial files are kept for the next run)',
    tooLong: 'stop took too long; exiting now (the next run resumes)',
  });

  log.info({ server, port, remotePath, localPath, jobs, all: Boolean(flags.all) }, 'mirror starting');
  const run = new Mirror({ endpoint, hostKeys, log, metrics }, {
    remotePath, localPath: resolve(localPath), jobs, all: Boolean(flags.all), giveUpAfterMs: giveUpAfterS * 1000, signal: stopping,
  });
  if (sink) {
    progress = new TerminalProgress(process.stdout, () => run.snapshot());
    progress.start();
  }
  let result;
  try {
    result = await run.run();
  } finally {
    progress?.stop();
    progress = undefined;
  }
  await metrics.close();

  // Items are what REMOTE_PATH lists (a folder counts once); the display counts files.
  const summary = {
    itemsDownloaded: result.downloaded, itemsSkipped: result.skipped, filesFailed: result.failed.length,
    bytes: result.bytes, seconds: +result.durationS.toFixed(3),
  };
  const fetched = `${formatBytes(result.bytes)} in ${result.durationS.toFixed(1)} s`;
  if (result.fatal) {
    log.error(summary, `mirror failed: ${result.fatal}`);
    return ExitCode.failure;
  }
  if (result.stopped) {
    log.info(summary, `mirror stopped: ${fetched}; partial files are kept for the next run`);
    return ExitCode.ok;
  }
  if (result.failed.length > 0) {
    for (const f of result.failed) log.error({ item: f.item, file: f.path, reason: f.reason }, 'not mirrored');
    log.error(summary, `mirror finished with ${result.failed.length} failed file(s): ${fetched}`);
    return ExitCode.failure;
  }
  log.info(summary, `mirror finished: ${fetched}`);
  return ExitCode.ok;
}
