// Running the built CLI (or any program) with some folders read-only, as `ProtectSystem=strict`
// without `ReadWritePaths=` or a read-only mount would leave them: in a private mount namespace
// (`unshare -m`), each folder is bind-mounted onto itself and remounted read-only. Root gets
// EROFS there like anyone else. Nothing outside the child's namespace changes.
import { spawn } from 'node:child_process';
import { DEFAULT_CLI, outcome, shebangFlags, tracked, type RunResult } from './process.js';

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The sh commands that make each path a read-only view of itself. */
export function readOnlyMounts(paths: readonly string[]): string {
  return paths.map((p) => `mount --bind ${quote(p)} ${quote(p)} && mount -o remount,ro,bind ${quote(p)}`).join(' && ');
}

/** Runs `command args` with `paths` read-only; resolves with its exit status and output. */
export function runReadOnly(paths: readonly string[], command: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<RunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env };
  delete env.NODE_TEST_CONTEXT; // the child is not a test file of our runner
  const script = `${readOnlyMounts(paths) || 'true'} && exec "$@"`;
  const child = spawn('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script, 'sh', command, ...args], {
    cwd: opts.cwd, env, stdio: ['ignore', 'pipe', 'pipe'],
  });
  return outcome(tracked(child), `${command} ${args.join(' ')}`, opts.timeoutMs);
}

/** The built CLI with `paths` read-only. */
export function runCliReadOnly(paths: readonly string[], args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return runReadOnly(paths, process.execPath, [...shebangFlags(DEFAULT_CLI), DEFAULT_CLI, ...args], opts);
}
