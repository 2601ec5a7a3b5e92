/** plugins/activation-cache.ts: `fastify.activationStore` from the app's options, closed with the app. */
import t from 'tap';
import { Redis } from 'ioredis';
import { buildApp } from '../../src/app.js';
import type { CacheEventInfo } from '../../src/cache/events.js';
import type { ActivationKey, ActivationStore, CacheEvent } from '../../src/cache/types.js';
import { RedisChild } from '../helpers/redis-server.js';

const key: ActivationKey = { modelHash: 'm', metric: 'gxo', tokens: [1, 2] };

t.test('without cache settings: an in-process store, usable at once', async (t) => {
  const app = await buildApp({ models: [] });
  t.teardown(() => app.close());
  await app.ready();
  t.equal(app.activationStore.kind, 'memory');
  await app.activationStore.set(key, [Float32Array.from([1, 2])]);
  t.same(Array.from((await app.activationStore.get(key))?.[0] ?? []), [1, 2]);
});

t.test('an injected store is used as it is, and left to its owner to close', async (t) => {
  let closed = 0;
  const injected: ActivationStore = {
    kind: 'fake',
    get: async () => null,
    set: async () => {},
    close: async () => {
      closed++;
    },
  };
  const app = await buildApp({ models: [], activationStore: injected });
  await app.ready();
  t.equal(app.activationStore, injected);
  await app.close();
  t.equal(closed, 0);
});

t.test('with a Redis URL: a Redis-backed store, events to subscribers, connection closed with the app', async (t) => {
  const server = await RedisChild.start(t);
  const probe = new Redis(server.url, { disconnectTimeout: 10 });
  t.teardown(() => probe.disconnect());
  const clients = async (): Promise<number> => Number(/connected_clients:(\d+)/.exec(await probe.info('clients'))?.[1]);
  t.equal(await clients(), 1, 'only the probe before the app starts');

  const app = await buildApp({ models: [], cache: { redisUrl: server.url, prefix: 'plugin-test:', ttlSeconds: 30 } });
  await app.ready();
  t.equal(app.activationStore.kind, 'redis');
  t.equal(await clients(), 2, 'start-up waited for the connection');

  const seen: Array<[CacheEvent, CacheEventInfo]> = [];
  const unsubscribe = app.activationCacheEvents.subscribe((e, info) => seen.push([e, info]));
  t.equal(await app.activationStore.get(key), null);
  await app.activationStore.set(key, [Float32Array.from([3])]);
  const keys = await probe.keys('*');
  t.equal(keys.length, 1);
  t.match(keys[0], /^plugin-test:v1:m:gxo:[0-9a-f]{64}$/, 'written under the configured prefix');
  const ttl = await probe.ttl(keys[0]);
  t.ok(ttl > 0 && ttl <= 30, `with the configured TTL (${ttl} s)`);
  unsubscribe();
  await app.activationStore.get({ ...key, tokens: [9] });
  t.same(seen, [['miss', { op: 'get', backend: 'redis' }]], 'subscribers see events until they unsubscribe');

  await app.close();
  t.equal(await clients(), 1, "the app's connection is gone after close");
});

t.test('Redis unreachable at start-up does not stop the app', async (t) => {
  const started = Date.now();
  const app = await buildApp({ models: [], cache: { redisUrl: 'redis://127.0.0.1:1' } });
  t.teardown(() => app.close());
  await app.ready();
  t.ok(Date.now() - started < 3000, 'start-up waited a bounded time');
  t.equal(await app.activationStore.get(key), null);
});
