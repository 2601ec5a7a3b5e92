/**
 * Redis down, and Redis hung, against real sockets: lookups fail open within the get deadline,
 * a hung Redis opens the circuit breaker after three timeouts so that later lookups never touch
 * the socket, a background trial closes it once Redis answers again, and `status()` (what
 * slm_cache_up shows) follows.
 *
 * Time bounds here are deliberately loose (a loaded CI machine); what proves the breaker works
 * is what the server saw: how many GETs reached it.
 */
import t, { type Test } from 'tap';
import { LayeredStore, MemoryStore, RedisStore } from '../../src/cache/index.js';
import type { CacheEventInfo } from '../../src/cache/events.js';
import type { ActivationKey, CacheEvent, LayerScores } from '../../src/cache/types.js';
import { freePort, SHARED_REDIS_URL, uniquePrefix, waitFor } from '../helpers/redis-server.js';
import { StallingRedis } from '../helpers/stalling-redis.js';

const scores: LayerScores = [Float32Array.from([1, 2, 3])];
let serial = 0;
/** A key never used before, so that every lookup is a real question to Redis. */
const fresh = (): ActivationKey => ({ modelHash: 'hung-test', metric: 'gxo', tokens: [serial++] });

interface Recorder {
  events: Array<[CacheEvent, CacheEventInfo]>;
  log: string[];
  /** Errors as "op:reason". */
  errors(): string[];
  clear(): void;
}

function recorder(): Recorder {
  const r: Recorder = {
    events: [],
    log: [],
    errors: () => r.events.filter(([e]) => e === 'error').map(([, i]) => `${i.op}:${i.reason}`),
    clear: () => {
      r.events.length = 0;
      r.log.length = 0;
    },
  };
  return r;
}

function storeFor(t: Test, url: string, rec: Recorder, extra: Partial<ConstructorParameters<typeof RedisStore>[0]> = {}): RedisStore {
  const store = new RedisStore({
    url,
    maxReconnectDelayMs: 200,
    onEvent: (e, info) => rec.events.push([e, info]),
    logger: { warn: (_o, msg) => rec.log.push(`warn: ${msg}`), info: (_o, msg) => rec.log.push(`info: ${msg}`) },
    ...extra,
  });
  t.teardown(() => store.close());
  return store;
}

async function elapsed(f: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await f();
  return performance.now() - started;
}

t.test('Redis down (nothing listens on the port): every lookup a fast miss, counted as unavailable', async (t) => {
  const rec = recorder();
  const store = storeFor(t, `redis://127.0.0.1:${await freePort()}`, rec);
  t.equal(await store.ready(300), false);
  const ms = await elapsed(async () => {
    for (let i = 0; i < 20; i++) {
      t.equal(await store.get(fresh()), null);
      await store.set(fresh(), scores);
    }
  });
  t.ok(ms < 20 * store.timeoutMs, `20 gets and 20 sets took ${ms.toFixed(1)} ms: none waited for a deadline`);
  t.same(rec.errors(), Array(20).fill(['get:unavailable', 'set:unavailable']).flat(), 'each counted once, by operation and reason');
  t.match(store.status(), { backend: 'redis', connected: false, breaker: 'closed', up: false }, 'down, with the breaker untouched: nothing was sent');
  t.equal(rec.log.filter((l) => l.startsWith('warn')).length, 1, 'one warning, not one per lookup');
});

t.test('Redis hung from the first byte (never answers, not even the handshake): nothing reaches it but the handshake', async (t) => {
  const hung = await StallingRedis.start(t);
  const rec = recorder();
  const store = storeFor(t, hung.url, rec);
  // Let the client reach it and send its handshake, so that what follows happens while the
  // handshake is pending, not before the connection exists.
  t.ok(await waitFor(async () => hung.count('HELLO') > 0, 2000, 10), 'the client connected and sent HELLO');
  const ms = await elapsed(async () => {
    for (let i = 0; i < 20; i++) {
      t.equal(await store.get(fresh()), null);
      await store.set(fresh(), scores);
    }
  });
  t.ok(ms < 20 * store.timeoutMs, `20 gets and 20 sets took ${ms.toFixed(1)} ms`);
  t.equal(hung.count('GET'), 0, 'no GET was sent to it');
  t.equal(hung.count('SET'), 0, 'no SET either');
  t.same(new Set(rec.errors()), new Set(['get:unavailable', 'set:unavailable']));
  t.match(store.status(), { connected: false, up: false });
});

t.test('Redis hung after connecting: three timeouts open the breaker, then lookups skip the socket; a trial closes it when Redis is back', async (t) => {
  const proxy = await StallingRedis.start(t, SHARED_REDIS_URL);
  const rec = recorder();
  const cooldown = 300;
  // A 100 ms deadline rather than the default 25: the breaker's trial PING has it too, and under the
  // full suite's load (ONNX Runtime sessions in the neighbouring test processes) every trial once
  // missed 25 ms for the whole 12 s wait below. What is checked scales with the deadline.
  const store = storeFor(t, proxy.url, rec, { prefix: uniquePrefix(t), breakerCooldownMs: cooldown, timeoutMs: 100 });
  t.ok(await store.ready(3000));
  t.equal(await store.get(fresh()), null, 'a miss from a healthy Redis');
  t.match(store.status(), { connected: true, breaker: 'closed', up: true });
  rec.clear();

  proxy.stall();
  const getsBefore = proxy.count('GET');
  const n = 20;
  const ms = await elapsed(async () => {
    for (let i = 0; i < n; i++) t.equal(await store.get(fresh()), null);
  });
  t.equal(proxy.count('GET') - getsBefore, 3, 'only the three lookups that opened the breaker reached the socket');
  t.same(rec.errors(), [...Array(3).fill('get:timeout'), ...Array(n - 3).fill('get:breaker_open')]);
  // Without the breaker this is n deadlines.
  t.ok(ms < n * store.timeoutMs, `${n} lookups took ${ms.toFixed(0)} ms, about 3 deadlines, not ${n}`);
  t.match(store.status(), { connected: true, breaker: 'open', up: false, breakerOpens: 1 }, 'connected, but not up');
  t.equal(rec.log.length, 1);
  t.match(rec.log[0], /^warn: Redis unavailable/);

  const setsBefore = proxy.count('SET');
  for (let i = 0; i < 5; i++) await store.set(fresh(), scores);
  t.equal(proxy.count('SET'), setsBefore, 'writes are dropped while open, not sent');
  t.same(rec.errors().slice(-5), Array(5).fill('set:breaker_open'));

  // After the cool-down the store tries on its own, with a PING, which times out: open again.
  t.ok(await waitFor(async () => store.status().breakerOpens === 2, 10 * cooldown, 10), 'the trial failed and reopened the breaker');
  t.equal(proxy.count('PING'), 1, 'the trial was one PING');
  t.equal(proxy.count('GET') - getsBefore, 3, 'and no request paid for it');
  t.equal(rec.log.length, 1, 'a failed trial logs nothing new');

  proxy.resume();
  // Each trial's PING has the lookup deadline: on a loaded machine (the suite runs files side by
  // side) a few trials may miss it before one gets its answer, so the wait spans many trials.
  t.ok(await waitFor(async () => store.status().up, 40 * cooldown, 10), 'the next trial gets an answer: up again');
  t.match(store.status(), { connected: true, breaker: 'closed' });
  t.match(rec.log, [/^warn: Redis unavailable/, /^info: Redis available again/], 'one warning and one recovery line');
  const key = fresh();
  await store.set(key, scores);
  t.same(await store.get(key), scores, 'reads and writes go to Redis again');
});

t.test('a reply that arrived while the event loop was busy is a hit, not a timeout', async (t) => {
  const rec = recorder();
  const store = storeFor(t, SHARED_REDIS_URL, rec, { prefix: uniquePrefix(t) });
  t.ok(await store.ready(3000));
  const key = fresh();
  await store.set(key, scores);
  const pending = store.get(key);
  // Blocks for four deadlines: the reply lands in the socket buffer meanwhile, and the timer
  // is due before the loop gets to read it.
  const until = performance.now() + 4 * store.timeoutMs;
  while (performance.now() < until);
  t.same(await pending, scores);
  t.same(rec.errors(), []);
  t.equal(store.status().breaker, 'closed');
});

t.test('the layered store does not wait for Redis writes', async (t) => {
  const proxy = await StallingRedis.start(t, SHARED_REDIS_URL);
  const rec = recorder();
  const redis = storeFor(t, proxy.url, rec, { prefix: uniquePrefix(t) });
  t.ok(await redis.ready(3000));
  const layered = new LayeredStore(new MemoryStore(), redis, undefined);
  proxy.stall();
  const key = fresh();
  const ms = await elapsed(() => layered.set(key, scores));
  t.ok(ms < redis.timeoutMs, `set returned in ${ms.toFixed(1)} ms while the write hangs`);
  t.same(await layered.get(key), scores, 'served from memory meanwhile');
  await layered.flush();
  t.same(rec.errors(), ['set:timeout'], 'the background write timed out and was counted');
  t.ok(await waitFor(async () => proxy.count('SET') === 1, 1000, 10), 'it had been sent');
});
