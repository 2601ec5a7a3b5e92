/**
 * A circuit breaker for a backend that is only a cache (Redis here): once it has failed a few
 * times in a row, stop asking it for a while, so that a hung backend costs a handful of timeouts
 * instead of one per request.
 *
 * - closed: every call is allowed; `failureThreshold` consecutive failures open it (a success
 *   in between starts the count again).
 * - open: no call is allowed, so callers fail open at once (a miss, a dropped write), until
 *   `cooldownMs` has passed since it opened.
 * - half-open: the first call after the cool-down is the trial, and the only one allowed; its
 *   success closes the breaker, its failure opens it for another cool-down.
 *
 * The breaker keeps no timers: time is read from `now` when a call asks, so a test drives it
 * with a fake clock, and an idle service does no work. A trial that never reports (a caller
 * bug) would leave it half-open forever; after another cool-down a new trial is allowed.
 */

export type BreakerState = 'closed' | 'open' | 'half-open';

export const DEFAULT_FAILURE_THRESHOLD = 3;
export const DEFAULT_COOLDOWN_MS = 5000;

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the breaker (default 3). */
  failureThreshold?: number;
  /** How long it stays open before a trial call is allowed, in ms (default 5000). */
  cooldownMs?: number;
  /** The clock, in ms; tests pass a fake one. */
  now?: () => number;
  /** Told every change of state, after it happened; never allowed to throw into the caller. */
  onStateChange?: (to: BreakerState, from: BreakerState) => void;
}

export class CircuitBreaker {
  readonly failureThreshold: number;
  readonly cooldownMs: number;
  private readonly now: () => number;
  private readonly onStateChange: ((to: BreakerState, from: BreakerState) => void) | undefined;
  private current: BreakerState = 'closed';
  private failures = 0;
  /** When it last opened (open), or when the trial was allowed (half-open). */
  private since = 0;
  private openCount = 0;

  constructor(options: CircuitBreakerOptions = {}) {
    this.failureThreshold = options.failureThreshold ?? DEFAULT_FAILURE_THRESHOLD;
    this.cooldownMs = options.cooldownMs ?? DEFAULT_COOLDOWN_MS;
    if (!(Number.isInteger(this.failureThreshold) && this.failureThreshold >= 1)) {
      throw new RangeError(`failureThreshold must be an integer >= 1, got ${options.failureThreshold}`);
    }
    if (!(this.cooldownMs >= 0 && Number.isFinite(this.cooldownMs))) throw new RangeError(`cooldownMs must be >= 0, got ${options.cooldownMs}`);
    this.now = options.now ?? Date.now;
    this.onStateChange = options.onStateChange;
  }

  /** The state as of the last call; an open breaker whose cool-down passed turns half-open on the next `allow`. */
  get state(): BreakerState {
    return this.current;
  }

  /** How many times it has opened (a failed trial reopening it included). */
  get opens(): number {
    return this.openCount;
  }

  /**
   * Whether a call may go to the backend now. A call that was allowed must report `success()`
   * or `failure()` once it is over; one that was refused must not.
   */
  allow(): boolean {
    if (this.current === 'closed') return true;
    if (this.now() - this.since < this.cooldownMs) return false;
    // Open and cooled down, or half-open with a trial that never reported: allow one trial.
    this.since = this.now();
    this.move('half-open');
    return true;
  }

  success(): void {
    this.failures = 0;
    // A success reported while open came from a call allowed before it opened; the trial decides.
    if (this.current === 'half-open') this.move('closed');
  }

  failure(): void {
    if (this.current === 'open') return;
    this.failures++;
    if (this.current === 'half-open' || this.failures >= this.failureThreshold) {
      this.failures = 0;
      this.since = this.now();
      this.openCount++;
      this.move('open');
    }
  }

  private move(to: BreakerState): void {
    const from = this.current;
    if (from === to) return;
    this.current = to;
    try {
      this.onStateChange?.(to, from);
    } catch {
      // A logging or metrics callback must not turn a cache call into a failed request.
    }
  }
}
