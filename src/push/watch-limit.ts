/**
 * What the operator reads when inotify watches run out (ENOSPC from fs.watch): how many folders
 * got a watch, how many there are, the limit as the kernel reports it, and the value that would
 * do. `fs.inotify.max_user_watches` counts every inotify watch of the user, across all of its
 * processes, so the value needed is what others hold, plus our folders, plus room to grow.
 */
import { readFileSync } from 'node:fs';

export interface WatchLimits {
  /** fs.inotify.max_user_watches, the limit of the initial user namespace. */
  sysctl?: number;
  /**
   * user.max_inotify_watches: in the initial user namespace the same value; inside another
   * user namespace (a container) it is that namespace's own limit, which may be the lower one.
   */
  namespace?: number;
}

export interface RanOut {
  /** Folders with a watch now. */
  watched: number;
  /** Folders found in all, watched or not. */
  folders: number;
  /** Our watches in place when the first one was refused: the rest of the limit is held by others. */
  watchedWhenRefused: number;
  limits: WatchLimits;
}

function readNumber(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isSafeInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined; // not Linux, or a kernel without the file
  }
}

export function readWatchLimits(): WatchLimits {
  return {
    sysctl: readNumber('/proc/sys/fs/inotify/max_user_watches'),
    namespace: readNumber('/proc/sys/user/max_inotify_watches'),
  };
}

const count = (n: number) => n.toLocaleString('en-US');

/**
 * The value to set: the watches other processes of the user hold (the effective limit minus
 * ours when we were refused), our folders, and a tenth more (at least 1,000) for new folders,
 * rounded up to a thousand.
 */
export function watchesNeeded(r: RanOut): number {
  const known = [r.limits.sysctl, r.limits.namespace].filter((n): n is number => n !== undefined);
  const effective = known.length > 0 ? Math.min(...known) : undefined;
  const others = effective === undefined ? 0 : Math.max(0, effective - r.watchedWhenRefused);
  const want = others + r.folders + Math.max(Math.ceil(r.folders / 10), 1000);
  return Math.ceil(want / 1000) * 1000;
}

/** One line, said once per run. */
export function ranOutMessage(r: RanOut): string {
  const need = watchesNeeded(r);
  const { sysctl, namespace } = r.limits;
  // Inside a container's user namespace its own limit may be the lower one: that is the one to
  // raise, and fs.inotify.max_user_watches only when it is below the need too (advice to lower
  // it would hurt every other user of the host).
  const inNamespace = namespace !== undefined && (sysctl === undefined || namespace < sysctl);
  const raiseSysctl = sysctl === undefined || sysctl < need;
  const limits = `fs.inotify.max_user_watches = ${sysctl === undefined ? 'unknown' : count(sysctl)}, shared by every process of this user` +
    (inNamespace ? `; user.max_inotify_watches = ${count(namespace)} in this user namespace` : '');
  const advice = [
    ...(raiseSysctl ? [`set fs.inotify.max_user_watches to at least ${count(need)} (sysctl -w fs.inotify.max_user_watches=${need}, and in /etc/sysctl.d/ to keep it)`] : []),
    ...(inNamespace ? [`set user.max_inotify_watches of this user namespace to at least ${count(need)} (sysctl -w user.max_inotify_watches=${need})`] : []),
  ].join('; ');
  return (
    `inotify watches ran out after ${count(r.watched)} of ${count(r.folders)} folders (${limits}): ` +
    `the ${count(r.folders - r.watched)} folders without a watch are only seen by the periodic rescan (RescanInterval); ${advice}`
  );
}
