#!/usr/bin/env node
/**
 * argv → command. The only place that turns errors into exit codes and calls process.exit:
 * 0 success, 1 runtime failure, 2 usage or configuration. An error is one line on stderr;
 * the stack trace only with `--log-level debug` (or LogLevel = debug, or CONTENTMONSTER_DEBUG=1).
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { ConfigError, ExitCode, describe } from './errors.js';
import { logLevels } from './log.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

function buildProgram(): Command {
  const program = new Command('contentmonster')
    .description('Replicate new files from this host ("shore") to several SFTP servers ("vessels") over unreliable links.')
    .version(pkg.version, '-V, --version')
    .exitOverride()
    .showHelpAfterError('(run contentmonster --help for usage)');

  program
    .command('run')
    .description('replicate every file in the configured Directories to every Vessel, then move it to processed/')
    .option('-c, --config <file>', 'settings file (default: $CONTENTMONSTER_CONFIG, else ./settings.ini)')
    .option('--once', 'replicate what is there now and exit: 0 when all of it is processed, 1 if anything failed')
    .option('--give-up-after <seconds>', 'with --once: give up a vessel that made no progress for this long', '60')
    .addOption(new Option('--log-format <format>', 'log lines: text, journal (text with syslog priority prefixes), json; auto = journal under systemd, else text').choices(['auto', 'text', 'journal', 'json']).default('auto'))
    .addOption(new Option('--log-level <level>', 'overrides LogLevel from the settings').choices([...logLevels]))
    .action(async (flags) => {
      const { run } = await import('./cli/run.js');
      process.exitCode = await run(flags);
    });
  return program;
}

/** `--log-level debug|trace` (either spelling) or CONTENTMONSTER_DEBUG=1. */
function wantsStack(argv: string[]): boolean {
  const i = argv.indexOf('--log-level');
  const level = i >= 0 ? argv[i + 1] : argv.find((a) => a.startsWith('--log-level='))?.slice('--log-level='.length);
  return level === 'debug' || level === 'trace' || process.env.CONTENTMONSTER_DEBUG === '1';
}

async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // commander already printed its message; --help and --version exit 0.
      process.exit(err.exitCode === 0 ? ExitCode.ok : ExitCode.usage);
    }
    process.stderr.write(`contentmonster: ${describe(err)}\n`);
    if (wantsStack(argv) && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    process.exit(err instanceof ConfigError ? ExitCode.usage : ExitCode.failure);
  }
  // A clean return: let pending writes flush, then leave even if a handle lingers.
  process.exit(process.exitCode ?? ExitCode.ok);
}

void main(process.argv);
