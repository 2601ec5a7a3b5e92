/**
 * Admission: a bounded queue per model. At most `maxConcurrent` requests run on a model and at
 * most `maxQueue` more wait; beyond that a request is refused with 429 and Retry-After.
 *
 * A request takes its place in two steps, so that the refusal costs nothing:
 * - `reserve(model)` right after routing, before the body is validated or tokenized: the
 *   request now counts against the queue, and a full queue refuses it at once;
 * - `ticket.acquire(signal)` when it is ready to run: it waits for a slot in FIFO order.
 * A reserved request that fails validation gives its place back (`ticket.cancel()`).
 *
 * Retry-After comes from the queue's measured drain rate: the mean interval between two slots
 * given back while requests were waiting, and never less than the time since the last one, so
 * that a slot held for a long time raises it at once instead of when it is finally released.
 */
import { clientClosed, queueFull } from '../openai/errors.js';

/** Gives the slot back; calling it again does nothing. */
export type Release = () => void;

/** A reserved place in a model's queue. */
export interface Ticket {
  /** Resolves once the request may run (rejects with 499 when `signal` aborts first). */
  acquire(signal: AbortSignal): Promise<Release>;
  /** Gives the place back if it was never acquired; otherwise does nothing. */
  cancel(): void;
}

interface Waiter {
  grant(): void;
}

interface ModelQueue {
  running: number;
  waiting: Waiter[];
  /** Reserved and not yet waiting: their bodies are still being checked. */
  reserved: number;
  /** Mean interval between slots given back under load, in ms: the queue's drain rate. */
  drainIntervalMs: number;
  /** When a slot was last given back (or the queue became busy). */
  lastDrainAt: number;
}

/** The first Retry-After guess, before any drain was measured. */
const INITIAL_DRAIN_INTERVAL_MS = 1000;
const MAX_RETRY_AFTER_S = 600;

export class Admission {
  private readonly queues = new Map<string, ModelQueue>();

  constructor(
    readonly maxConcurrent: number,
    readonly maxQueue: number,
    /** Told the number waiting on a model whenever it changes (the queue-depth gauge). */
    private readonly onDepth: (model: string, depth: number) => void = () => {},
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(Number.isInteger(maxConcurrent) && maxConcurrent >= 1)) throw new RangeError(`maxConcurrentPerModel must be an integer >= 1, got ${maxConcurrent}`);
    if (!(Number.isInteger(maxQueue) && maxQueue >= 0)) throw new RangeError(`maxQueuePerModel must be an integer >= 0, got ${maxQueue}`);
  }

  /** Whether a new request on `model` would be refused now. */
  full(model: string): boolean {
    const queue = this.queues.get(model);
    if (queue === undefined) return false;
    return queue.running + queue.waiting.length + queue.reserved >= this.maxConcurrent + this.maxQueue;
  }

  /** Takes a place in `model`'s queue; throws a 429 ApiError (with Retry-After) when it is full. */
  reserve(model: string): Ticket {
    const queue = this.queue(model);
    if (this.full(model)) throw queueFull(model, queue.waiting.length + queue.reserved, this.retryAfterSeconds(model));
    queue.reserved++;
    let state: 'reserved' | 'acquiring' | 'cancelled' = 'reserved';
    return {
      acquire: (signal) => {
        if (state !== 'reserved') return Promise.reject(new Error('a ticket is acquired once'));
        state = 'acquiring';
        queue.reserved--;
        return this.enqueue(model, queue, signal);
      },
      cancel: () => {
        if (state !== 'reserved') return;
        state = 'cancelled';
        queue.reserved--;
        // A place given back may be the one a waiter needs no more, but nobody waits on
        // reservations: only the count changes.
      },
    };
  }

  /** `reserve` and `acquire` at once, for callers that have nothing to check in between. */
  acquire(model: string, signal: AbortSignal): Promise<Release> {
    try {
      return this.reserve(model).acquire(signal);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Requests running, waiting and reserved on `model`. */
  load(model: string): { running: number; waiting: number; reserved: number } {
    const queue = this.queues.get(model);
    return { running: queue?.running ?? 0, waiting: queue?.waiting.length ?? 0, reserved: queue?.reserved ?? 0 };
  }

  /** Seconds until a slot is likely free for one more request: everything ahead of it, at the drain rate. */
  retryAfterSeconds(model: string): number {
    const queue = this.queue(model);
    const interval = Math.max(queue.drainIntervalMs, queue.running > 0 ? this.now() - queue.lastDrainAt : 0);
    const ahead = queue.waiting.length + queue.reserved + 1;
    const seconds = Math.ceil((interval * ahead) / 1000);
    return Math.min(MAX_RETRY_AFTER_S, Math.max(1, seconds));
  }

  private enqueue(model: string, queue: ModelQueue, signal: AbortSignal): Promise<Release> {
    if (signal.aborted) return Promise.reject(clientClosed());
    if (queue.running < this.maxConcurrent && queue.waiting.length === 0) {
      if (queue.running === 0) queue.lastDrainAt = this.now();
      queue.running++;
      return Promise.resolve(this.releaser(model, queue));
    }
    return new Promise<Release>((resolve, reject) => {
      const onAbort = (): void => {
        const at = queue.waiting.indexOf(waiter);
        if (at >= 0) queue.waiting.splice(at, 1);
        this.onDepth(model, queue.waiting.length);
        reject(clientClosed());
      };
      const waiter: Waiter = {
        grant: () => {
          signal.removeEventListener('abort', onAbort);
          resolve(this.releaser(model, queue));
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      queue.waiting.push(waiter);
      this.onDepth(model, queue.waiting.length);
    });
  }

  private queue(model: string): ModelQueue {
    let queue = this.queues.get(model);
    if (queue === undefined) {
      queue = { running: 0, waiting: [], reserved: 0, drainIntervalMs: INITIAL_DRAIN_INTERVAL_MS, lastDrainAt: this.now() };
      this.queues.set(model, queue);
    }
    return queue;
  }

  private releaser(model: string, queue: ModelQueue): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = this.now();
      // Only a release with others waiting measures how fast the queue drains; one into an
      // idle queue would count idle time as service time.
      if (queue.waiting.length > 0) queue.drainIntervalMs = 0.8 * queue.drainIntervalMs + 0.2 * (now - queue.lastDrainAt);
      queue.lastDrainAt = now;
      queue.running--;
      this.dispatch(model, queue);
    };
  }

  private dispatch(model: string, queue: ModelQueue): void {
    let granted = false;
    while (queue.running < this.maxConcurrent && queue.waiting.length > 0) {
      const next = queue.waiting.shift() as Waiter;
      queue.running++;
      granted = true;
      next.grant();
    }
    if (granted) this.onDepth(model, queue.waiting.length);
  }
}
