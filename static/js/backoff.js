// @ts-check
/**
 * Reconnect delays: exponential backoff with "full jitter".
 *
 * Full jitter draws the delay uniformly from [0, min(max, base * 2^attempt)].
 * When a server restarts, every client in every call reconnects at once;
 * spreading them over the whole window (rather than adding a little noise to
 * a fixed delay) is what keeps them from arriving together again.
 */

/**
 * @typedef {object} BackoffOptions
 * @property {number} [base] delay ceiling of the first attempt, in ms
 * @property {number} [max] no delay is ever longer than this, in ms
 * @property {() => number} [random] returns a number in [0, 1]
 */

export const DEFAULT_BASE_MS = 500;
export const DEFAULT_MAX_MS = 15_000;

/**
 * Return how long to wait before reconnect attempt number `attempt` (0 for the first).
 *
 * @param {number} attempt
 * @param {BackoffOptions} [options]
 * @returns {number} milliseconds, between 0 and `max`
 */
export function reconnectDelay(
  attempt,
  { base = DEFAULT_BASE_MS, max = DEFAULT_MAX_MS, random = Math.random } = {},
) {
  // Past 2 ** 64 the ceiling is max anyway; bounding the exponent keeps
  // base * 2 ** exponent finite (0 * Infinity would be NaN).
  const exponent = attempt > 0 ? Math.min(64, Math.floor(attempt)) : 0;
  const ceiling = Math.max(0, Math.min(max, base * 2 ** exponent));
  const fraction = Math.min(1, Math.max(0, random()));
  return fraction * ceiling;
}

/** Count consecutive failed attempts and hand out the delay before the next one. */
export class Backoff {
  #attempt = 0;
  #options;

  /** @param {BackoffOptions} [options] */
  constructor(options = {}) {
    this.#options = options;
  }

  /** Return the delay before the next attempt, and count that attempt. */
  next() {
    const delay = reconnectDelay(this.#attempt, this.#options);
    this.#attempt += 1;
    return delay;
  }

  /** Start over after a connection succeeded. */
  reset() {
    this.#attempt = 0;
  }

  get attempt() {
    return this.#attempt;
  }
}
