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
 * A store passed in (`activationStore`, for tests) is used as it is: its creator wired its
 * events and closes it. A store this plugin creates is closed when the app closes.
 */
import fp from 'fastify-plugin';
import type { FastifyPluginAsync } from 'fastify';
import { createActivationStore, type CacheEventListener } from '../src/cache/index.js';
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
  /** A ready-made store to use instead (tests); not closed by the app. */
  activationStore?: ActivationStore;
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

/** Long enough for a reachable Redis to connect, short enough not to hold up a start-up without one. */
const STARTUP_WAIT_MS = 1000;

const activationCachePlugin: FastifyPluginAsync<ActivationCachePluginOptions> = async (fastify, opts) => {
  const listeners = new Set<CacheEventListener>();
  fastify.decorate('activationCacheEvents', {
    subscribe(listener: CacheEventListener): () => void {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  });

  if (opts.activationStore !== undefined) {
    fastify.decorate('activationStore', opts.activationStore);
    return;
  }

  const log = fastify.log.child({ component: 'activation-cache' });
  const store = createActivationStore({
    ...opts.cache,
    logger: log,
    onEvent: (event, info) => {
      for (const listener of listeners) {
        try {
          listener(event, info);
        } catch (err) {
          // One broken subscriber must neither fail the request nor starve the others.
          log.error({ err }, 'activation-cache event listener failed');
        }
      }
    },
  });
  fastify.decorate('activationStore', store);
  fastify.addHook('onClose', async () => {
    await store.close();
  });
  if (store.kind === 'redis' && !(await store.ready(STARTUP_WAIT_MS))) {
    // The store has already warned if Redis refused; this only says start-up did not wait longer.
    log.info({ waitedMs: STARTUP_WAIT_MS }, 'starting without Redis: the activation cache connects in the background');
  }
};

export default fp(activationCachePlugin, { name: 'activation-cache', fastify: '5.x' });
