/**
 * The activation-score cache the server uses: `createActivationStore(options)`.
 *
 * - Without `redisUrl`: a MemoryStore (in-process LRU), kind 'memory'.
 * - With `redisUrl`: a LayeredStore, kind 'redis': the memory LRU in front of Redis. A get
 *   asks memory first and Redis only on a memory miss; a Redis hit is copied into memory; a
 *   set writes both. So a prompt this process has seen keeps being served while Redis is
 *   down, and Redis shares everything else between replicas.
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
 *   the Redis write fails; the memory copy is still kept. So a get that failed on a Redis
 *   outage is usually followed by a set that fails too: two errors, one per operation, which
 *   the `op` label tells apart.
 * - The memory LRU evicting or expiring an entry reports nothing; it shows as a later miss.
 */
import type { CacheEventListener, CacheLogger } from './events.js';
import { emit } from './events.js';
import { MemoryStore } from './memory.js';
import { RedisStore } from './redis.js';
import type { ActivationKey, ActivationStore, LayerScores } from './types.js';

export type { CacheEventInfo, CacheEventListener, CacheLogger } from './events.js';
export { DEFAULT_MEMORY_BYTES, DEFAULT_TTL_SECONDS, MemoryStore } from './memory.js';
export { DEFAULT_PREFIX, DEFAULT_TIMEOUT_MS, RedisStore } from './redis.js';
export type { ActivationKey, ActivationStore, CacheEvent, LayerScores } from './types.js';

export interface ActivationStoreOptions {
  /** Redis to share scores through; without it the cache is in-process only. */
  redisUrl?: string;
  /** Redis key namespace (default 'sparse-slm:'). */
  prefix?: string;
  /** Lifetime of a cached value, in Redis and in memory (default 3600 s). */
  ttlSeconds?: number;
  /** Deadline of each Redis command (default 50 ms). */
  timeoutMs?: number;
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
}

/** Memory LRU in front of Redis; see the file header for what it counts. */
export class LayeredStore implements ManagedActivationStore {
  readonly kind = 'redis';

  constructor(
    readonly memory: MemoryStore,
    readonly redis: RedisStore,
    private readonly onEvent: CacheEventListener | undefined,
  ) {}

  ready(timeoutMs: number): Promise<boolean> {
    return this.redis.ready(timeoutMs);
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
    await this.redis.set(key, scores);
  }

  async close(): Promise<void> {
    await Promise.all([this.memory.close(), this.redis.close()]);
  }
}

class ManagedMemoryStore extends MemoryStore implements ManagedActivationStore {
  async ready(): Promise<boolean> {
    return true;
  }
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
    maxReconnectDelayMs: options.maxReconnectDelayMs,
    onEvent: options.onEvent,
    logger: options.logger,
  });
  return new LayeredStore(memory, redis, options.onEvent);
}
