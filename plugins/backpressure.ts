/**
 * Backpressure: a bounded queue per model. At most `maxConcurrentPerModel` generating requests
 * run on a model (default 1: generations on one model share the same CPU cores anyway) and at
 * most `maxQueuePerModel` wait (default 32); beyond that a request gets 429 with Retry-After
 * at once, so memory never grows with the load. A waiting request whose client hangs up leaves
 * the queue and never runs.
 *
 * Routes call `fastify.admission.acquire(modelId, signal)` before generating and the returned
 * release function when done (in `finally`; a streamed answer releases when its stream ends).
 */
import fp from 'fastify-plugin';
import type { FastifyPluginAsync } from 'fastify';
import { clientClosed, queueFull } from '../src/openai/errors.js';

export interface BackpressureOptions {
  /** Requests generating at once on one model; default 1. */
  maxConcurrentPerModel?: number;
  /** Requests waiting per model beyond those; default 32 (0: none wait, all beyond get 429). */
  maxQueuePerModel?: number;
}

export const DEFAULT_MAX_CONCURRENT_PER_MODEL = 1;
export const DEFAULT_MAX_QUEUE_PER_MODEL = 32;

/** Gives the slot back; calling it again does nothing. */
export type Release = () => void;

declare module 'fastify' {
  interface FastifyInstance {
    admission: Admission;
  }
}

interface Waiter {
  grant(): void;
}

interface ModelQueue {
  running: number;
  waiting: Waiter[];
  /** Moving average of how long a request holds its slot, for Retry-After. */
  holdMs: number;
}

/** The first requests' Retry-After guess before any hold time was measured. */
const INITIAL_HOLD_MS = 1000;
const MAX_RETRY_AFTER_S = 600;

export class Admission {
  private readonly queues = new Map<string, ModelQueue>();

  constructor(
    readonly maxConcurrent: number,
    readonly maxQueue: number,
    /** Told the number waiting on a model whenever it changes (the queue-depth gauge). */
    private readonly onDepth: (model: string, depth: number) => void = () => {},
  ) {
    if (!(Number.isInteger(maxConcurrent) && maxConcurrent >= 1)) throw new RangeError(`maxConcurrentPerModel must be an integer >= 1, got ${maxConcurrent}`);
    if (!(Number.isInteger(maxQueue) && maxQueue >= 0)) throw new RangeError(`maxQueuePerModel must be an integer >= 0, got ${maxQueue}`);
  }

  /**
   * Resolves with a release function once the request may run on `model`. Rejects at once with
   * a 429 ApiError (Retry-After in its headers) when the queue is full, and with a 499 when
   * `signal` aborts first (the request is then out of the queue).
   */
  acquire(model: string, signal: AbortSignal): Promise<Release> {
    if (signal.aborted) return Promise.reject(clientClosed());
    const queue = this.queue(model);
    if (queue.running < this.maxConcurrent) {
      queue.running++;
      return Promise.resolve(this.releaser(model, queue));
    }
    if (queue.waiting.length >= this.maxQueue) return Promise.reject(queueFull(model, queue.waiting.length, this.retryAfterSeconds(queue)));
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

  /** Requests running and waiting on `model`. */
  load(model: string): { running: number; waiting: number } {
    const queue = this.queues.get(model);
    return { running: queue?.running ?? 0, waiting: queue?.waiting.length ?? 0 };
  }

  private queue(model: string): ModelQueue {
    let queue = this.queues.get(model);
    if (queue === undefined) {
      queue = { running: 0, waiting: [], holdMs: INITIAL_HOLD_MS };
      this.queues.set(model, queue);
    }
    return queue;
  }

  private releaser(model: string, queue: ModelQueue): Release {
    const started = performance.now();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      queue.holdMs = 0.8 * queue.holdMs + 0.2 * (performance.now() - started);
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

  /** Seconds until a slot is likely free for one more request: everything ahead of it, at the average hold time. */
  private retryAfterSeconds(queue: ModelQueue): number {
    const ahead = queue.waiting.length + queue.running;
    const seconds = Math.ceil((queue.holdMs * ahead) / this.maxConcurrent / 1000);
    return Math.min(MAX_RETRY_AFTER_S, Math.max(1, seconds));
  }
}

const backpressurePlugin: FastifyPluginAsync<BackpressureOptions> = async (fastify, opts) => {
  const admission = new Admission(
    opts.maxConcurrentPerModel ?? DEFAULT_MAX_CONCURRENT_PER_MODEL,
    opts.maxQueuePerModel ?? DEFAULT_MAX_QUEUE_PER_MODEL,
    (model, depth) => fastify.metrics.setQueueDepth(model, depth),
  );
  // Every served model shows in slm_queue_depth from the start, at 0.
  for (const id of fastify.models.keys()) fastify.metrics.setQueueDepth(id, 0);
  fastify.decorate('admission', admission);
};

export default fp(backpressurePlugin, { name: 'backpressure', fastify: '5.x', dependencies: ['models', 'metrics'] });
