/**
 * Makes the per-prompt activation-score cache available to every route as
 * `fastify.activationStore` (src/cache): Redis behind an in-process LRU when REDIS_URL is
 * set, the LRU alone otherwise.
 *
 * Start-up waits briefly for Redis so that the first requests can use it, but never fails on
 * it: Redis is a cache, and the store reconnects by itself (logging once when it goes and once
 * when it comes back). A Redis that stops answering costs a few lookups their 25 ms deadline,
 * then the store's circuit breaker skips it until a background trial gets an answer
 * (src/cache/redis.ts); writes never make a request wait. Cache events go to `fastify.activationCacheEvents` subscribers, which
 * is where a metrics plugin counts them.
 *
 * The server opens the store itself (src/server.ts), because the models it serves are built
 * with it, and passes it in with its events; its creator closes it. Without one (an app built
 * from `cache` settings, as some tests do) this plugin opens it and closes it with the app;
 * models use a store only when they are built with it.
 */
import fp from 'fastify-plugin';
import type { FastifyPluginAsync } from 'fastify';
import { CacheEventHub, type CacheEventListener, openActivationStore } from '../src/cache/index.js';
import type { ActivationStore } from '../src/cache/types.js';

/**
 * The cache part of the configuration (src/config.ts: REDIS_URL, CACHE_PREFIX, CACHE_TTL_SECONDS).
 * The Redis budgets and the circuit breaker default to src/cache's constants (get 25 ms, set
 * 250 ms, open after 3 consecutive failures, for 5 s); tests set them shorter.
 */
export interface ActivationCacheSettings {
  redisUrl?: string;
  prefix?: string;
  ttlSeconds?: number;
  /** Deadline of a Redis get, in ms (the most a lookup can add to a request holding a slot). */
  timeoutMs?: number;
  /** Deadline of a Redis set, in ms (no request waits for it). */
  writeTimeoutMs?: number;
  /** Consecutive Redis failures or timeouts that open the circuit breaker. */
  breakerThreshold?: number;
  /** How long the open breaker skips Redis before a trial, in ms. */
  breakerCooldownMs?: number;
}

export interface ActivationCachePluginOptions {
  /** Settings for the store this plugin creates; without them, an in-process LRU with defaults. */
  cache?: ActivationCacheSettings;
  /** A ready-made store to use instead (the server's, which its models were built with); not closed by the app. */
  activationStore?: ActivationStore;
  /** The events of that store, for the metrics. */
  activationCacheEvents?: ActivationCacheEvents;
}

/** Fan-out of cache events to whoever subscribes (a metrics plugin); returns an unsubscribe. */
export interface ActivationCacheEvents {
  subscribe(listener: CacheEventListener): () => void;
}

declare module 'fastify' {
  interface FastifyInstance {
    activationStore: ActivationStore;
    activationCacheEvents: ActivationCacheEvents;
  }
}

const activationCachePlugin: FastifyPluginAsync<ActivationCachePluginOptions> = async (fastify, opts) => {
  if (opts.activationStore !== undefined) {
    // The server's own store (the models it serves were built with it), or a test's.
    fastify.decorate('activationStore', opts.activationStore);
    fastify.decorate('activationCacheEvents', opts.activationCacheEvents ?? new CacheEventHub());
    return;
  }
  const { store, events } = await openActivationStore(opts.cache ?? {}, fastify.log.child({ component: 'activation-cache' }));
  fastify.decorate('activationStore', store);
  fastify.decorate('activationCacheEvents', events);
  fastify.addHook('onClose', async () => {
    await store.close();
  });
};

export default fp(activationCachePlugin, { name: 'activation-cache', fastify: '5.x' });
