/**
 * What the activation stores report, for the cache's Prometheus counters and logs.
 *
 * The event itself is the contract's CacheEvent ('hit' | 'miss' | 'error'); the second
 * argument says which operation and which backend produced it, so a counter can be labelled
 * (or a get-only hit ratio computed) without the stores knowing about Prometheus.
 */
import type { CacheEvent } from './types.js';

/**
 * Why an 'error' happened, for a labelled counter:
 * - 'timeout': Redis was asked and did not answer within the operation's budget;
 * - 'unavailable': not connected (reconnecting, or never connected), so Redis was not asked;
 * - 'breaker_open': the circuit breaker is open (Redis failed repeatedly), so it was not asked;
 * - 'failed': Redis answered with an error, or the connection broke under the command;
 * - 'invalid': the key could not be built or the value does not encode or decode.
 */
export type CacheErrorReason = 'timeout' | 'unavailable' | 'breaker_open' | 'failed' | 'invalid';

export interface CacheEventInfo {
  op: 'get' | 'set';
  /** The backend that answered (or failed): the memory LRU or Redis. */
  backend: 'memory' | 'redis';
  /** Set on 'error' events only. */
  reason?: CacheErrorReason;
}

export type CacheEventListener = (event: CacheEvent, info: CacheEventInfo) => void;

/** The logger shape the stores need; a pino or Fastify logger fits it. */
export interface CacheLogger {
  warn(obj: object, msg: string): void;
  info?(obj: object, msg: string): void;
}

/**
 * Calls the listener, never letting it throw into a request: a buggy metrics callback must
 * not turn a cache hit into a failed completion.
 */
export function emit(listener: CacheEventListener | undefined, event: CacheEvent, info: CacheEventInfo): void {
  if (listener === undefined) return;
  try {
    listener(event, info);
  } catch {
    // Deliberately ignored: see above.
  }
}

/**
 * Fan-out of a store's events to whoever subscribes (a metrics registry), so that the store can
 * be created before its subscribers exist. One failing subscriber neither fails the request nor
 * starves the others.
 */
export class CacheEventHub {
  private readonly listeners = new Set<CacheEventListener>();

  constructor(private readonly onListenerError: (err: unknown) => void = () => {}) {}

  subscribe(listener: CacheEventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** The listener to give the store. */
  readonly emit: CacheEventListener = (event, info) => {
    for (const listener of this.listeners) {
      try {
        listener(event, info);
      } catch (err) {
        this.onListenerError(err);
      }
    }
  };
}
