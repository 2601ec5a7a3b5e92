/**
 * The activation-score cache the server uses: `createActivationStore(options)`.
 *
 * - Without `redisUrl`: a MemoryStore (in-process LRU), kind 'memory'.
 * - With `redisUrl`: a LayeredStore, kind 'redis': the memory LRU in front of Redis. A get
 *   asks memory first and Redis only on a memory miss; a Redis hit is copied into memory; a
 *   set writes both. So a prompt this process has seen keeps being served while Redis is
 *   down, and Redis shares everything else between replicas. A set returns once the memory
 *   copy is kept: the Redis write goes on in the background (fire-and-forget, with its own
 *   deadline), because the caller holds the model's only slot and nothing it does depends on
 *   Redis having the value. `flush()` waits for the writes in flight (tests, close).
 *
 * What `onEvent(event, { op, backend })` reports, and when (a Prometheus counter is fed from it,
 * so this is the contract):
 *
 * - Every get reports exactly one event, so hits + misses + errors{op="get"} = gets:
 *   - 'hit'   scores were returned. backend 'memory' when the LRU had them (Redis is not
 *             asked), 'redis' when Redis had them.
 *   - 'miss'  every backend asked answered, and none had the prompt (backend: the last one
 *             asked, 'redis' for the layered store). The caller computes the scores.
 *   - 'error' the last backend asked failed to answer: Redis timed out, is disconnected, or
 *             holds a value that does not decode (or the key was invalid). get returns null,
 *             exactly as on a miss, and the caller computes; the event is 'error', not
 *             'miss' as well. A memory miss before it is not reported separately.
 * - A set reports nothing when it succeeds, and one 'error' (op 'set', backend 'redis') when
 *   the Redis write fails or is not attempted; the memory copy is still kept. So a get that
 *   failed on a Redis outage is usually followed by a set that fails too: two errors, one per
 *   operation, which the `op` label tells apart.
 * - Every 'error' carries a `reason` (events.ts): 'timeout', 'unavailable' (not connected),
 *   'breaker_open' (Redis skipped after repeated failures, see redis.ts), 'failed', 'invalid'.
 * - The memory LRU evicting or expiring an entry reports nothing; it shows as a later miss.
 */
import type { CacheEventListener, CacheLogger } from './events.js';
import { CacheEventHub, emit } from './events.js';
import { MemoryStore } from './memory.js';
import { RedisStore } from './redis.js';
import type { ActivationKey, ActivationStore, CacheBackendStatus, LayerScores } from './types.js';

export { CacheEventHub, type CacheEventInfo, type CacheEventListener, type CacheLogger } from './events.js';
export { DEFAULT_MEMORY_BYTES, DEFAULT_TTL_SECONDS, MemoryStore } from './memory.js';
export { DEFAULT_PREFIX, DEFAULT_TIMEOUT_MS, DEFAULT_WRITE_TIMEOUT_MS, RedisStore } from './redis.js';
export { CircuitBreaker, DEFAULT_COOLDOWN_MS, DEFAULT_FAILURE_THRESHOLD, type BreakerState } from './breaker.js';
export type { CacheErrorReason } from './events.js';
export type { ActivationKey, ActivationStore, CacheBackendStatus, CacheEvent, LayerScores } from './types.js';

export interface ActivationStoreOptions {
  /** Redis to share scores through; without it the cache is in-process only. */
  redisUrl?: string;
  /** Redis key namespace (default 'sparse-slm:'). */
  prefix?: string;
  /** Lifetime of a cached value, in Redis and in memory (default 3600 s). */
  ttlSeconds?: number;
  /** Deadline of a Redis get (default 25 ms). */
  timeoutMs?: number;
  /** Deadline of a Redis set, which no request waits for (default 250 ms). */
  writeTimeoutMs?: number;
  /** Consecutive Redis failures or timeouts that open the circuit breaker (default 3). */
  breakerThreshold?: number;
  /** How long the open breaker skips Redis before a trial, in ms (default 5000). */
  breakerCooldownMs?: number;
  /** Budget of the in-process LRU (default 64 MiB). */
  memoryBytes?: number;
  /** Longest wait between Redis reconnection attempts (default 2000 ms). */
  maxReconnectDelayMs?: number;
  onEvent?: CacheEventListener;
  logger?: CacheLogger;
}

/** What createActivationStore returns: the contract, plus a bounded wait for the backend. */
export interface ManagedActivationStore extends ActivationStore {
  /** True once the backend is usable (at once for memory); false after timeoutMs. Never rejects. */
  ready(timeoutMs: number): Promise<boolean>;
  /** Resolves once the background writes started so far are over (at once for memory). */
  flush(): Promise<void>;
}

/** Memory LRU in front of Redis; see the file header for what it counts. */
export class LayeredStore implements ManagedActivationStore {
  readonly kind = 'redis';

  /** Redis writes in flight; each ends within the write deadline, so this stays small. */
  private readonly writes = new Set<Promise<void>>();

  constructor(
    readonly memory: MemoryStore,
    readonly redis: RedisStore,
    private readonly onEvent: CacheEventListener | undefined,
  ) {}

  ready(timeoutMs: number): Promise<boolean> {
    return this.redis.ready(timeoutMs);
  }

  status(): CacheBackendStatus {
    return this.redis.status();
  }

  async flush(): Promise<void> {
    await Promise.all([...this.writes]);
  }

  async get(key: ActivationKey): Promise<LayerScores | null> {
    // lookup(..., false): a memory miss is not an event of its own, Redis's answer is.
    const local = this.memory.lookup(key, false);
    if (local !== null) {
      emit(this.onEvent, 'hit', { op: 'get', backend: 'memory' });
      return local;
    }
    // The RedisStore was built with this store's onEvent: it reports hit, miss or error.
    const remote = await this.redis.get(key);
    if (remote !== null) this.memory.store(key, remote, false);
    return remote;
  }

  async set(key: ActivationKey, scores: LayerScores): Promise<void> {
    this.memory.store(key, scores, false);
    // Not awaited (see the file header). RedisStore.set encodes the scores before its first
    // wait and never rejects, so the caller may reuse the arrays and nothing goes unhandled.
    const write = this.redis.set(key, scores).finally(() => this.writes.delete(write));
    this.writes.add(write);
  }

  async close(): Promise<void> {
    await this.flush();
    await Promise.all([this.memory.close(), this.redis.close()]);
  }
}

class ManagedMemoryStore extends MemoryStore implements ManagedActivationStore {
  async ready(): Promise<boolean> {
    return true;
  }

  async flush(): Promise<void> {}
}

export function createActivationStore(options: ActivationStoreOptions = {}): ManagedActivationStore {
  if (options.redisUrl === undefined || options.redisUrl === '') {
    return new ManagedMemoryStore({ maxBytes: options.memoryBytes, ttlSeconds: options.ttlSeconds, onEvent: options.onEvent });
  }
  const memory = new MemoryStore({ maxBytes: options.memoryBytes, ttlSeconds: options.ttlSeconds });
  const redis = new RedisStore({
    url: options.redisUrl,
    prefix: options.prefix,
    ttlSeconds: options.ttlSeconds,
    timeoutMs: options.timeoutMs,
    writeTimeoutMs: options.writeTimeoutMs,
    breakerThreshold: options.breakerThreshold,
    breakerCooldownMs: options.breakerCooldownMs,
    maxReconnectDelayMs: options.maxReconnectDelayMs,
    onEvent: options.onEvent,
    logger: options.logger,
  });
  return new LayeredStore(memory, redis, options.onEvent);
}

/** Long enough for a reachable Redis to connect, short enough not to hold up a start-up without one. */
export const STARTUP_WAIT_MS = 1000;

export interface OpenedActivationStore {
  store: ManagedActivationStore;
  /** Its events, for subscribers that come later (a metrics registry). */
  events: CacheEventHub;
}

/**
 * The activation store the server runs with, and its event hub. Start-up waits briefly for
 * Redis so that the first requests can use it, but never fails on it: Redis is a cache, and the
 * store reconnects by itself.
 */
export async function openActivationStore(
  options: Omit<ActivationStoreOptions, 'onEvent'>,
  logger: CacheLogger & { error(obj: object, msg: string): void },
): Promise<OpenedActivationStore> {
  const events = new CacheEventHub((err) => logger.error({ err }, 'activation-cache event listener failed'));
  const store = createActivationStore({ ...options, logger, onEvent: events.emit });
  if (store.kind === 'redis' && !(await store.ready(STARTUP_WAIT_MS))) {
    // The store has already warned if Redis refused; this only says start-up did not wait longer.
    logger.info?.({ waitedMs: STARTUP_WAIT_MS }, 'starting without Redis: the activation cache connects in the background');
  }
  return { store, events };
}
