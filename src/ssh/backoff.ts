/**
 * Pure delay maths for reconnecting to a vessel: capped exponential growth with jitter, so many
 * shores hitting one vessel do not retry in lockstep.
 */
export const minDelayMs = 1_000;
export const maxDelayMs = 60_000;
/** After authentication or host-key refusals, which an operator must fix: retry slowly. */
export const refusedDelayMs = 300_000;
export const growth = 2;
/** After a link that was moving drops: reconnect soon, the next stretch may well get through. */
export const quickRetryMs = 250;
/** The jitter takes off at most this share of a delay. Kept below 1 - 1/growth so that the
 * delay grows even when the jitter comes up low every time (the jittered delay is fed back). */
export const jitterShare = 0.25;

/**
 * The next wait after a failed attempt that waited `previousMs` (0 for the first failure).
 * `madeProgress`: the attempt moved data before it failed, so the link works at times and the
 * wait starts over short.
 */
export function nextDelay(previousMs: number, random: () => number = Math.random, madeProgress = false): number {
  if (madeProgress) return Math.round(quickRetryMs * (1 - jitterShare * random()));
  const base = previousMs <= 0 ? minDelayMs : Math.min(maxDelayMs, previousMs * growth);
  return Math.round(base * (1 - jitterShare * random()));
}
