/** Configuration from environment variables: defaults, parsing, and clear failures. */
import { resolve } from 'node:path';
import t from 'tap';
import { DEFAULT_MODEL_DIR, loadConfig } from '../src/config.js';

t.test('defaults', async (t) => {
  t.same(loadConfig({}), {
    port: 8000,
    host: '0.0.0.0',
    modelDirs: [DEFAULT_MODEL_DIR],
    logLevel: 'info',
    ortIntraOpThreads: undefined,
    ortInterOpThreads: undefined,
    ortSpinning: 'run',
    bodyLimitBytes: 1024 * 1024,
    shutdownTimeoutMs: 10_000,
    maxConcurrentPerModel: 1,
    maxQueuePerModel: 32,
    poolMemoryBytes: Infinity,
    poolPreload: true,
    redisUrl: undefined,
    cachePrefix: 'sparse-slm:',
    cacheTtlSeconds: 3600,
  });
  t.match(DEFAULT_MODEL_DIR, /models[/\\]default$/);
});

t.test('values from the environment', async (t) => {
  const config = loadConfig({
    PORT: '9000',
    HOST: '127.0.0.1',
    MODEL_DIR: '/models/a, relative/b',
    LOG_LEVEL: 'DEBUG',
    ORT_INTRA_OP_THREADS: '2',
    ORT_INTER_OP_THREADS: '1',
    ORT_SPINNING: 'Never',
    BODY_LIMIT_BYTES: '2048',
    SHUTDOWN_TIMEOUT_MS: '500',
    MAX_CONCURRENT_PER_MODEL: '2',
    MAX_QUEUE_PER_MODEL: '0',
    REDIS_URL: 'redis://cache.internal:6380/2',
    CACHE_PREFIX: 'team-a:',
    CACHE_TTL_SECONDS: '60',
  });
  t.equal(config.port, 9000);
  t.equal(config.host, '127.0.0.1');
  t.same(config.modelDirs, ['/models/a', resolve('relative/b')], 'several directories; relative ones from the cwd');
  t.equal(config.logLevel, 'debug');
  t.equal(config.ortIntraOpThreads, 2);
  t.equal(config.ortInterOpThreads, 1);
  t.equal(config.ortSpinning, 'never');
  t.equal(config.bodyLimitBytes, 2048);
  t.equal(config.shutdownTimeoutMs, 500);
  t.equal(config.maxConcurrentPerModel, 2);
  t.equal(config.maxQueuePerModel, 0, 'a queue of 0: requests beyond the running ones are refused');
  t.equal(config.redisUrl, 'redis://cache.internal:6380/2');
  t.equal(config.cachePrefix, 'team-a:');
  t.equal(config.cacheTtlSeconds, 60);
});

t.test('REDIS_URL accepts TLS and passwords', async (t) => {
  t.equal(loadConfig({ REDIS_URL: 'rediss://:secret@cache:6379' }).redisUrl, 'rediss://:secret@cache:6379');
});

t.test('a bad REDIS_URL is named without echoing it (it may hold a password)', async (t) => {
  for (const url of ['http://:hunter2@cache:6379', 'redis://', 'hunter2']) {
    const err = t.throws(() => loadConfig({ REDIS_URL: url }), { name: 'ConfigError', message: /REDIS_URL/ }, url);
    t.notMatch(String((err as Error).message), /hunter2/, `${url}: the value is not in the message`);
  }
});

t.test('empty variables count as unset', async (t) => {
  t.equal(loadConfig({ PORT: '', MODEL_DIR: ' ' }).port, 8000);
});

const bad: Array<[string, string]> = [
  ['PORT', 'eighty'],
  ['PORT', '70000'],
  ['PORT', '-1'],
  ['MODEL_DIR', 'a,,b'],
  ['LOG_LEVEL', 'loud'],
  ['ORT_SPINNING', 'true'],
  ['ORT_INTRA_OP_THREADS', '1.5'],
  ['ORT_INTER_OP_THREADS', 'many'],
  ['BODY_LIMIT_BYTES', '0'],
  ['SHUTDOWN_TIMEOUT_MS', 'soon'],
  ['MAX_CONCURRENT_PER_MODEL', '0'],
  ['MAX_CONCURRENT_PER_MODEL', 'two'],
  ['MAX_QUEUE_PER_MODEL', '-1'],
  ['MAX_QUEUE_PER_MODEL', '1e3'],
  ['CACHE_PREFIX', 'has space:'],
  ['CACHE_TTL_SECONDS', '0'],
  ['CACHE_TTL_SECONDS', '1.5'],
  ['CACHE_TTL_SECONDS', 'an hour'],
];
for (const [name, value] of bad) {
  t.test(`${name}=${value} fails with a message naming ${name}`, async (t) => {
    t.throws(() => loadConfig({ [name]: value }), { name: 'ConfigError', message: new RegExp(`${name}=`) });
  });
}

t.test('every bad variable is reported at once', async (t) => {
  t.throws(() => loadConfig({ PORT: 'x', LOG_LEVEL: 'y' }), /PORT[\s\S]*LOG_LEVEL/);
});
