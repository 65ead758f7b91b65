/**
 * Test-only pauses at named points of the delivery path, so that an end-to-end test can
 * `kill -9` the daemon exactly between two steps that follow each other too fast to catch from
 * outside (say, the remote rename and the state update). Off unless the environment variable
 * CONTENTMONSTER_FAILPOINT names the point; costs one string comparison otherwise. With
 * `:throw` after the name, the point throws an error nothing expects instead, as a bug would.
 * `ssh-thread-write` (an SSH thread that dies mid-transfer) lives in ssh/ssh-thread.ts.
 */
export type FailpointName = 'after-remote-rename' | 'processed-move' | 'small-file-written' | 'scan-folder';

export async function failpoint(name: FailpointName): Promise<void> {
  const wanted = process.env.CONTENTMONSTER_FAILPOINT;
  if (wanted === undefined || !wanted.startsWith(name)) return;
  if (wanted === `${name}:throw`) throw new TypeError(`failpoint ${name}: a bug stands in here`);
  if (wanted !== name) return;
  process.stdout.write(`failpoint ${name} reached; waiting to be killed\n`);
  await new Promise(() => {});
}
