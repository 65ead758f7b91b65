#!/usr/bin/env -S node --max-semi-space-size=4 --expose-gc
/**
 * The V8 flags above (the systemd units pass the same). `--expose-gc` lets ssh/young-gc.ts pace
 * cheap young-generation collections by the bytes moved, instead of V8 running full ones; a
 * semi-space of 4 MiB keeps the peak RSS lower under a stream of small files to several
 * vessels. Neither can be set once Node has started.
 *
 * argv → command. The only place that turns errors into exit codes and calls process.exit:
 * 0 success, 1 runtime failure, 2 usage or configuration. An error is one line on stderr;
 * the stack trace only with `--log-level debug` (or LogLevel = debug, or CONTENTMONSTER_DEBUG=1).
 * Under journald whatever goes to stderr carries the error priority `<3>` (see withPriority), so
 * `journalctl -p err` says why a unit stopped.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import type { CheckFlags } from './cli/check.js';
import type { MirrorFlags } from './cli/mirror.js';
import type { RunFlags } from './cli/run.js';
import type { StatusFlags } from './cli/status.js';
import { ConfigError, ExitCode, describe } from './errors.js';
import { logLevels, priority, withPriority } from './log.js';

const DEFAULT_METRICS_SOCKET = '/run/telegraf/telegraf.sock';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** Help lines are wrapped at the terminal's width, at most this wide (80 when not a terminal). */
const MAX_HELP_WIDTH = 100;

/** What a usage error says after its message: the help of the command it happened in. */
const helpHint = (command?: string) => `(run 'contentmonster ${command ? `${command} ` : ''}--help' for usage)`;

/**
 * An option with a number as its default. Help shows `default: 60` (a string default would be
 * shown as `default: "60"`); the action still receives a string, checked by flags.ts.
 */
function numberOption(flags: string, description: string, value: number): Option {
  return new Option(flags, description).default(String(value), String(value));
}

function buildProgram(): Command {
  // Set before the subcommands are added: each copies them (output, help layout, exitOverride).
  const program = new Command('contentmonster')
    .description('Replicate new files from this host ("shore") to several SFTP servers ("vessels") over unreliable links (run, status, check), and mirror a folder of an SFTP server here (mirror).')
    .addHelpText('after', '\nExit codes: 0 success, 1 runtime failure, 2 bad usage or settings.\nEach command has its own --help; README.md has the operator guide.')
    .version(pkg.version, '-V, --version')
    .configureOutput({ writeErr: (text) => process.stderr.write(withPriority(text, priority.error)) })
    .configureHelp({
      helpWidth: Math.min(process.stdout.isTTY ? process.stdout.columns : 80, MAX_HELP_WIDTH),
      // The list of commands shows names only (each command's --help has its arguments): with
      // `mirror [options] <server> <remote_path> <local_path>` as a term, nothing could wrap.
      subcommandTerm: (cmd) => cmd.name() + (cmd.name() === 'help' ? ' [command]' : ''),
    })
    .exitOverride()
    .showHelpAfterError(helpHint());

  program
    .command('run')
    .summary('replicate the files of every Directory to every Vessel, then move them to processed/ (the push daemon)')
    .description('replicate every file in the configured Directories to every Vessel, then move it to processed/')
    .showHelpAfterError(helpHint('run'))
    .addHelpText('after', '\nSignals: SIGHUP (systemctl reload) reads the settings again and applies what\nchanged (README: Reloading settings); SIGTERM/SIGINT stop cleanly.')
    .option('-c, --config <file>', 'settings file (default: $CONTENTMONSTER_CONFIG, else ./settings.ini)')
    .option('--once', 'replicate what is there now and exit: 0 when all of it is processed, 1 if anything failed')
    .addOption(numberOption('--give-up-after <seconds>', 'with --once: give up a vessel that made no progress for this long', 60))
    .addOption(new Option('--log-format <format>', 'log lines: text, journal (text with syslog priority prefixes), json; auto = journal under systemd, else text').choices(['auto', 'text', 'journal', 'json']).default('auto'))
    .addOption(new Option('--log-level <level>', 'overrides LogLevel from the settings').choices([...logLevels]))
    .action(async (flags: RunFlags) => {
      const { run } = await import('./cli/run.js');
      process.exitCode = await run(flags);
    });

  program
    .command('mirror')
    .summary('mirror REMOTE_PATH of an SFTP server into LOCAL_PATH (the pull mirror)')
    .showHelpAfterError(helpHint('mirror'))
    .description('mirror REMOTE_PATH on an SFTP server into LOCAL_PATH (newest sub-directories first; complete items skipped; interrupted files resume). Credentials: SFTP_USERNAME and SFTP_PASSWORD, or a key (-i, SFTP_PASSPHRASE), or the ssh agent')
    .argument('<server>', 'SFTP server: host name or IP address')
    .argument('<remote_path>', 'folder on the server to mirror')
    .argument('<local_path>', 'local folder to mirror into (created if missing)')
    .addOption(numberOption('-j, --jobs <n>', 'files downloaded in parallel', 3))
    .option('-a, --all', 'download every file again, without comparing sizes')
    .addOption(numberOption('-p, --port <port>', 'SSH port', 22))
    .option('-i, --identity-file <key>', 'private key to log in with (its passphrase from SFTP_PASSPHRASE)')
    .option('--metrics-socket <path>', 'Telegraf unix socket for InfluxDB line protocol metrics; empty = off', DEFAULT_METRICS_SOCKET)
    .option('--host-key <fingerprint>', 'accept only this host key (SHA256:… as ssh-keygen -lf prints it)')
    .option('--host-key-file <file>', 'where host keys seen on first use are kept (default: $STATE_DIRECTORY/mirror-host-keys, else ~/.local/state/contentmonster/mirror-host-keys)')
    .addOption(numberOption('--timeout <seconds>', 'seconds of silence that end a connection: connecting is given up, and a busy link is cut and the transfer resumes on a new connection', 10))
    .addOption(numberOption('--give-up-after <seconds>', 'end with exit 1 when the server cannot be reached and no data moved for this long', 300))
    .addOption(new Option('--log-format <format>', 'log lines: text, journal (text with syslog priority prefixes), json; auto = journal under systemd, else text').choices(['auto', 'text', 'journal', 'json']).default('auto'))
    .addOption(new Option('--log-level <level>', 'log level').choices([...logLevels]).default('info'))
    .action(async (server: string, remotePath: string, localPath: string, flags: Omit<MirrorFlags, 'metricsSocketChosen'>, command: Command) => {
      const { mirror } = await import('./cli/mirror.js');
      // The default socket is there only where Telegraf runs: its absence is no news.
      const metricsSocketChosen = command.getOptionValueSource('metricsSocket') !== 'default';
      process.exitCode = await mirror(server, remotePath, localPath, { ...flags, metricsSocketChosen });
    });

  program
    .command('status')
    .summary('what the push daemon is doing: per vessel waiting, in flight, done, last error; failed files')
    .showHelpAfterError(helpHint('status'))
    .description('what the push daemon is doing (read-only; safe while it runs): per vessel waiting, in flight with %, done, last error and success; the oldest waiting file; failed files with their reasons')
    .option('-c, --config <file>', 'settings file (default: $CONTENTMONSTER_CONFIG, else ./settings.ini)')
    .option('--json', 'the same report as JSON: ISO 8601 times, sizes in bytes')
    .action(async (flags: StatusFlags) => {
      const { status } = await import('./cli/status.js');
      process.exitCode = status(flags);
    });

  program
    .command('check')
    .summary('validate the settings, check the shore and try every vessel the way the daemon will; exit 0 when all are ready')
    .showHelpAfterError(helpHint('check'))
    .description('validate the settings; on the shore: every Location a readable, writable folder, the state database folder writable; then per vessel: connect, host key, authentication, commands allowed, TempDir writable, cat and sha256sum working, each RemoteLocation writable and not the shore\'s own storage (records nothing, leaves nothing behind); exit 0 when the shore and every vessel are ready, else 1')
    .option('-c, --config <file>', 'settings file (default: $CONTENTMONSTER_CONFIG, else ./settings.ini)')
    .addOption(new Option('--log-level <level>', 'log on stderr at this level (default: no log lines, only the report)').choices([...logLevels]))
    .action(async (flags: CheckFlags) => {
      const { check } = await import('./cli/check.js');
      process.exitCode = await check(flags);
    });
  return program;
}

/** `--log-level debug|trace` (either spelling) or CONTENTMONSTER_DEBUG=1. */
function wantsStack(argv: string[]): boolean {
  const i = argv.indexOf('--log-level');
  const level = i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith('--log-level='))?.slice('--log-level='.length);
  return level === 'debug' || level === 'trace' || process.env.CONTENTMONSTER_DEBUG === '1';
}

/** stderr, with the error priority under journald. */
function writeError(text: string): void {
  process.stderr.write(withPriority(text, priority.error));
}

async function main(argv: string[]): Promise<void> {
  // A bug nothing caught: the stack (it is what a report needs) and exit 1, as Node itself
  // would, but with the priority prefix so that the journal keeps it as an error.
  process.on('uncaughtException', (err) => {
    writeError(`contentmonster: unexpected error: ${describe(err)}\n${err instanceof Error && err.stack ? `${err.stack}\n` : ''}`);
    process.exit(ExitCode.failure);
  });
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed its message; --help and --version exit 0.
      process.exit(err.exitCode === 0 ? ExitCode.ok : ExitCode.usage);
    }
    writeError(`contentmonster: ${describe(err)}\n`);
    if (wantsStack(argv) && err instanceof Error && err.stack) writeError(`${err.stack}\n`);
    process.exit(err instanceof ConfigError ? ExitCode.usage : ExitCode.failure);
  }
  // A clean return: let pending writes flush, then leave even if a handle lingers.
  process.exit(process.exitCode ?? ExitCode.ok);
}

void main(process.argv);
