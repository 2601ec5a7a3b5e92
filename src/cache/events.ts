/**
 * What the activation stores report, for the cache's Prometheus counters and logs.
 *
 * The event itself is the contract's CacheEvent ('hit' | 'miss' | 'error'); the second
 * argument says which operation and which backend produced it, so a counter can be labelled
 * (or a get-only hit ratio computed) without the stores knowing about Prometheus.
 */
import type { CacheEvent } from './types.js';

export interface CacheEventInfo {
  op: 'get' | 'set';
  /** The backend that answered (or failed): the memory LRU or Redis. */
  backend: 'memory' | 'redis';
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
