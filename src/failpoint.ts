/**
 * Test-only pauses at named points of the delivery path, so that an end-to-end test can
 * `kill -9` the daemon exactly between two steps that follow each other too fast to catch from
 * outside (say, the remote rename and the state update). Off unless the environment variable
 * CONTENTMONSTER_FAILPOINT names the point; costs one string comparison otherwise.
 */
export type FailpointName = 'after-remote-rename' | 'processed-move' | 'small-file-written';

export async function failpoint(name: FailpointName): Promise<void> {
  if (process.env.CONTENTMONSTER_FAILPOINT !== name) return;
  process.stdout.write(`failpoint ${name} reached; waiting to be killed\n`);
  await new Promise(() => {});
}
