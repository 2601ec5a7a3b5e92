/**
 * createActivationStore: memory only without REDIS_URL; with it, the memory LRU in front of
 * Redis, which keeps serving this process's prompts while Redis is down. Also the event
 * contract of src/cache/index.ts: exactly one event per get.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import type { CacheEventInfo } from '../../src/cache/events.js';
import { createActivationStore } from '../../src/cache/index.js';
import { cacheKey } from '../../src/cache/key.js';
import type { ActivationKey, CacheEvent, LayerScores } from '../../src/cache/types.js';
import { RedisChild, waitFor } from '../helpers/redis-server.js';

const key = (n: number): ActivationKey => ({ modelHash: 'm', metric: 'gxo', tokens: [n, n] });
const scores = (fill: number): LayerScores => [new Float32Array(8).fill(fill), new Float32Array(8).fill(fill + 1)];

type Seen = Array<[CacheEvent, CacheEventInfo['backend']]>;
const recorder = (): { seen: Seen; onEvent: (e: CacheEvent, info: CacheEventInfo) => void } => {
  const seen: Seen = [];
  return { seen, onEvent: (e, info) => seen.push([e, info.backend]) };
};

t.test('without a Redis URL: the in-process LRU alone', async (t) => {
  const { seen, onEvent } = recorder();
  const store = createActivationStore({ onEvent });
  t.teardown(() => store.close());
  t.equal(store.kind, 'memory');
  t.equal(await store.ready(10), true);
  await store.set(key(1), scores(1));
  t.equal((await store.get(key(1)))?.[0][0], 1);
  t.equal(await store.get(key(2)), null);
  t.same(seen, [
    ['hit', 'memory'],
    ['miss', 'memory'],
  ]);
});

t.test('with Redis: memory in front, Redis shared, Redis outages absorbed', async (t) => {
  const server = await RedisChild.start(t);
  const raw = new Redis(server.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => 100, disconnectTimeout: 10 });
  raw.on('error', () => {});
  t.teardown(() => raw.disconnect());
  const prefix = 'layered-test:';
  const { seen, onEvent } = recorder();
  const options = { redisUrl: server.url, prefix, maxReconnectDelayMs: 300 };
  const store = createActivationStore({ ...options, onEvent, logger: { warn: () => {} } });
  // Another replica sharing the Redis.
  const replica = createActivationStore({ ...options, logger: { warn: () => {} } });
  t.teardown(() => Promise.all([store.close(), replica.close()]));
  t.equal(store.kind, 'redis');
  t.ok(await store.ready(3000));
  t.ok(await replica.ready(3000));

  await t.test('a set goes to both; a get is served from memory without asking Redis', async (t) => {
    seen.length = 0;
    await store.set(key(1), scores(1));
    // The Redis write is not awaited by set (requests do not wait for it); tests do.
    await store.flush();
    t.ok(await waitFor(async () => raw.status === 'ready', 3000, 10));
    t.equal(await raw.exists(cacheKey(prefix, key(1))), 1, 'written to Redis');
    await raw.del(cacheKey(prefix, key(1)));
    t.equal((await store.get(key(1)))?.[0][0], 1, 'still served: memory answered');
    t.same(seen, [['hit', 'memory']]);
  });

  await t.test("a Redis hit (another replica's prompt) fills memory", async (t) => {
    seen.length = 0;
    await replica.set(key(2), scores(2));
    await replica.flush();
    t.equal((await store.get(key(2)))?.[1][0], 3);
    t.equal((await store.get(key(2)))?.[1][0], 3);
    t.same(seen, [
      ['hit', 'redis'],
      ['hit', 'memory'],
    ]);
  });

  await t.test('an unknown prompt is one miss, not a memory miss and a Redis miss', async (t) => {
    seen.length = 0;
    t.equal(await store.get(key(3)), null);
    t.same(seen, [['miss', 'redis']]);
  });

  await t.test('Redis down: prompts seen here still hit; others are one error each; nothing throws', async (t) => {
    await server.stop();
    await waitFor(async () => (await store.get(key(99))) === null && seen[seen.length - 1][0] === 'error', 1000, 10);
    seen.length = 0;
    t.equal((await store.get(key(1)))?.[0][0], 1, 'set earlier in this process');
    t.equal((await store.get(key(2)))?.[0][0], 2, 'fetched from Redis earlier');
    const started = performance.now();
    t.equal(await store.get(key(4)), null, 'never seen: the caller computes');
    t.ok(performance.now() - started < 500, 'and is told quickly');
    await store.set(key(4), scores(4));
    await store.flush();
    t.equal((await store.get(key(4)))?.[0][0], 4, 'what is computed meanwhile is served from memory');
    t.same(seen, [
      ['hit', 'memory'],
      ['hit', 'memory'],
      ['error', 'redis'],
      ['error', 'redis'], // the set's write to Redis
      ['hit', 'memory'],
    ]);
  });

  await t.test('Redis back: shared again without a restart', async (t) => {
    await server.restart();
    const shared = await waitFor(
      async () => {
        await replica.set(key(5), scores(5));
        await replica.flush();
        return (await store.get(key(5))) !== null;
      },
      5000,
      100,
    );
    t.ok(shared, "the other replica's new prompt is a hit here");
  });
});
