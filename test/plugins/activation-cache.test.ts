/**
 * plugins/activation-cache.ts: `fastify.activationStore` from the app's options, closed with the
 * app; and, through HTTP, completions that keep succeeding while Redis hangs, with the cache's
 * metrics (slm_cache_up, errors by operation and reason) saying so.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { buildApp } from '../../src/app.js';
import type { ManagedActivationStore } from '../../src/cache/index.js';
import type { CacheEventInfo } from '../../src/cache/events.js';
import type { ActivationKey, ActivationStore, CacheEvent } from '../../src/cache/types.js';
import { loadServedModel } from '../../src/serve/engine.js';
import { testApp, testStore } from '../helpers/app.js';
import { calibratedModelDir } from '../helpers/calibrated-model.js';
import { RedisChild, SHARED_REDIS_URL, uniquePrefix, waitFor } from '../helpers/redis-server.js';
import { StallingRedis } from '../helpers/stalling-redis.js';
import { metricSample } from '../helpers/metrics.js';

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
  // Requests do not wait for the Redis write; the test does.
  await (app.activationStore as ManagedActivationStore).flush();
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

t.test('slm_cache_up is absent without Redis, 1 with a Redis that answers, 0 with one that is down', async (t) => {
  const memoryOnly = await testApp(t, { models: [] });
  const text = (await memoryOnly.inject({ method: 'GET', url: '/metrics' })).body;
  t.equal(metricSample(text, 'slm_cache_up'), undefined, 'no Redis configured: no gauge to alert on');
  t.equal(metricSample(text, 'slm_cache_breaker_opens_total'), undefined);

  const healthy = await testApp(t, { models: [], cache: { redisUrl: SHARED_REDIS_URL, prefix: uniquePrefix(t) } });
  t.equal(metricSample((await healthy.inject({ method: 'GET', url: '/metrics' })).body, 'slm_cache_up'), 1);

  const down = await testApp(t, { models: [], cache: { redisUrl: 'redis://127.0.0.1:1' } });
  await down.activationStore.get(key);
  const downText = (await down.inject({ method: 'GET', url: '/metrics' })).body;
  t.equal(metricSample(downText, 'slm_cache_up'), 0);
  t.equal(metricSample(downText, 'slm_activation_cache_events_total', { event: 'error', op: 'get' }), 1);
  t.equal(metricSample(downText, 'slm_activation_cache_errors_total', { op: 'get', reason: 'unavailable' }), 1);
});

t.test('completions through HTTP while Redis hangs: all succeed, the breaker opens, slm_cache_up goes 0 then 1', async (t) => {
  const proxy = await StallingRedis.start(t, SHARED_REDIS_URL);
  const cooldown = 300;
  const { store, events } = await testStore(t, { redisUrl: proxy.url, prefix: uniquePrefix(t), breakerCooldownMs: cooldown });
  const model = await loadServedModel(await calibratedModelDir(), { intraOpThreads: 1, store });
  t.teardown(() => model.close());
  const app = await testApp(t, { models: [model], activationStore: store, activationCacheEvents: events });
  const metrics = async (): Promise<string> => (await app.inject({ method: 'GET', url: '/metrics' })).body;
  const complete = async (prompt: string) =>
    app.inject({
      method: 'POST',
      url: '/v1/completions',
      payload: { model: model.id, prompt, max_tokens: 4, temperature: 0, sparsity: 0.8, activation: 'prompt' },
    });

  t.equal(metricSample(await metrics(), 'slm_cache_up'), 1, 'up while Redis answers');
  proxy.stall();
  const getsBefore = proxy.count('GET');
  const n = 12;
  for (let i = 0; i < n; i++) {
    const res = await complete(`a prompt never seen before number ${i}`);
    t.equal(res.statusCode, 200, res.body);
    t.equal(res.json<{ sparsity: { activation_source: string } }>().sparsity.activation_source, 'computed', 'its scores computed, as on a miss');
  }
  const hung = await metrics();
  t.equal(metricSample(hung, 'slm_cache_up'), 0, 'Redis hung: down');
  t.ok((metricSample(hung, 'slm_cache_breaker_opens_total') ?? 0) >= 1, 'the breaker opened');
  const sent = proxy.count('GET') - getsBefore;
  t.ok(sent <= 3, `${sent} of ${n} lookups reached the hung Redis (at most the breaker's threshold)`);
  t.equal(metricSample(hung, 'slm_activation_cache_events_total', { event: 'error', op: 'get' }), n, 'every lookup an error, by operation');
  t.equal(metricSample(hung, 'slm_activation_cache_errors_total', { op: 'get', reason: 'timeout' }), sent, 'those that were sent timed out');
  t.equal(metricSample(hung, 'slm_activation_cache_errors_total', { op: 'get', reason: 'breaker_open' }), n - sent, 'the rest skipped Redis');
  t.ok((metricSample(hung, 'slm_activation_cache_errors_total', { op: 'set', reason: 'breaker_open' }) ?? 0) >= n - 3, 'and their writes were dropped');

  proxy.resume();
  // Each trial is a PING with the 25 ms get deadline; on a busy machine (the suite runs two
  // files at once) a trial can miss it and the breaker waits another cooldown, so allow many.
  t.ok(await waitFor(async () => metricSample(await metrics(), 'slm_cache_up') === 1, 60 * cooldown, 20), 'up again once Redis answers a trial');
  const res = await complete('a prompt never seen before number 0');
  t.equal(res.statusCode, 200);
  t.equal(res.json<{ sparsity: { activation_source: string } }>().sparsity.activation_source, 'cache', 'seen while Redis hung: served from memory');
});
