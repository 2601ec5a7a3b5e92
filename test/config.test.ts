/** Configuration from environment variables: defaults, parsing, and clear failures. */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import t from 'tap';
import { DEFAULT_MODEL_DIR, loadConfig, readChatTemplateFile } from '../src/config.js';

t.test('defaults', async (t) => {
  t.same(loadConfig({}), {
    port: 8000,
    host: '0.0.0.0',
    modelDirs: [DEFAULT_MODEL_DIR],
    quant: ['none'],
    logLevel: 'info',
    ortIntraOpThreads: undefined,
    ortInterOpThreads: undefined,
    ortSpinning: 'run',
    bodyLimitBytes: 1024 * 1024,
    shutdownTimeoutMs: 10_000,
    maxConcurrentPerModel: 8,
    maxBatchSize: 8,
    prefillChunkTokens: 64,
    maxQueuePerModel: 32,
    rejectDelayMs: 2000,
    poolMemoryBytes: Infinity,
    poolPreload: true,
    redisUrl: undefined,
    cachePrefix: 'sparse-slm:',
    cacheTtlSeconds: 3600,
    cacheTimeoutMs: 25,
    cacheBreakerThreshold: 3,
    cacheBreakerCooldownMs: 5000,
    apiKeys: [],
    authMetrics: false,
    authDocs: false,
    rateLimitPerMinute: 0,
    corsOrigins: [],
    requestTimeoutMs: 120_000,
    receiveTimeoutMs: 10_000,
    maxConnections: 2048,
    maxRequestsPerSocket: 1000,
    maxRequestTokens: 32_768,
    drainDelayMs: 5000,
    tokenizerThreads: 1,
    chatTemplateFile: undefined,
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
    MAX_BATCH_SIZE: '4',
    PREFILL_CHUNK_TOKENS: '16',
    MAX_QUEUE_PER_MODEL: '0',
    REJECT_DELAY_MS: '0',
    REDIS_URL: 'redis://cache.internal:6380/2',
    CACHE_PREFIX: 'team-a:',
    CACHE_TTL_SECONDS: '60',
    CACHE_TIMEOUT_MS: '40',
    CACHE_BREAKER_THRESHOLD: '5',
    CACHE_BREAKER_COOLDOWN_MS: '1000',
    API_KEYS: 'key-aaaaaaaaaaaaaaaa, key-bbbbbbbbbbbbbbbb',
    AUTH_METRICS: 'true',
    AUTH_DOCS: '1',
    RATE_LIMIT_PER_MINUTE: '120',
    CORS_ORIGINS: 'https://a.example, https://b.example',
    REQUEST_TIMEOUT_MS: '30000',
    RECEIVE_TIMEOUT_MS: '2000',
    MAX_CONNECTIONS: '100',
    MAX_REQUESTS_PER_SOCKET: '0',
    MAX_REQUEST_TOKENS: '4096',
    DRAIN_DELAY_MS: '0',
    TOKENIZER_THREADS: '2',
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
  t.equal(config.maxBatchSize, 4);
  t.equal(config.prefillChunkTokens, 16);
  t.equal(config.maxQueuePerModel, 0, 'a queue of 0: requests beyond the running ones are refused');
  t.equal(config.rejectDelayMs, 0);
  t.equal(config.redisUrl, 'redis://cache.internal:6380/2');
  t.equal(config.cachePrefix, 'team-a:');
  t.equal(config.cacheTtlSeconds, 60);
  t.equal(config.cacheTimeoutMs, 40);
  t.equal(config.cacheBreakerThreshold, 5);
  t.equal(config.cacheBreakerCooldownMs, 1000);
  t.same(config.apiKeys, ['key-aaaaaaaaaaaaaaaa', 'key-bbbbbbbbbbbbbbbb']);
  t.equal(config.authMetrics, true);
  t.equal(config.authDocs, true);
  t.equal(config.rateLimitPerMinute, 120);
  t.same(config.corsOrigins, ['https://a.example', 'https://b.example']);
  t.equal(config.requestTimeoutMs, 30_000);
  t.equal(config.receiveTimeoutMs, 2000);
  t.equal(config.maxConnections, 100);
  t.equal(config.maxRequestsPerSocket, 0);
  t.equal(config.maxRequestTokens, 4096);
  t.equal(config.drainDelayMs, 0);
  t.equal(config.tokenizerThreads, 2);
});

t.test('CHAT_TEMPLATE names a file, relative to the cwd, read and parsed at start-up', async (t) => {
  t.equal(loadConfig({ CHAT_TEMPLATE: 'templates/chat.jinja' }).chatTemplateFile, resolve('templates/chat.jinja'));
  const dir = t.testdir();
  const good = join(dir, 'good.jinja');
  writeFileSync(good, '{% for m in messages %}{{ m.content }}{% endfor %}');
  t.equal(readChatTemplateFile(good), '{% for m in messages %}{{ m.content }}{% endfor %}');
  t.throws(() => readChatTemplateFile(join(dir, 'missing.jinja')), { name: 'ConfigError', message: /CHAT_TEMPLATE=.*missing\.jinja.*cannot read/ });
  const empty = join(dir, 'empty.jinja');
  writeFileSync(empty, ' \n');
  t.throws(() => readChatTemplateFile(empty), { name: 'ConfigError', message: /CHAT_TEMPLATE=.*empty/ });
  const broken = join(dir, 'broken.jinja');
  writeFileSync(broken, '{% for m in messages %}{{ m.content }}');
  t.throws(() => readChatTemplateFile(broken), { name: 'ConfigError', message: /CHAT_TEMPLATE=.*not a valid Jinja template/ });
});

t.test('QUANT: one choice for every model, or one per MODEL_DIR entry', async (t) => {
  t.same(loadConfig({ MODEL_DIR: 'a,b', QUANT: 'int8' }).quant, ['int8', 'int8']);
  t.same(loadConfig({ MODEL_DIR: 'a,b', QUANT: 'INT4, none' }).quant, ['int4', 'none']);
  t.match((t.throws(() => loadConfig({ QUANT: 'q8_0' })) as Error).message, /QUANT="q8_0": expected one of none, int8, int4/);
  t.match((t.throws(() => loadConfig({ MODEL_DIR: 'a,b,c', QUANT: 'int8,int4' })) as Error).message, /QUANT="int8,int4": 2 values for 3 model directories/);
});

t.test('API keys are checked without being echoed', async (t) => {
  const err = t.throws(() => loadConfig({ API_KEYS: 'short-secret' })) as Error;
  t.match(err.message, /API_KEYS: expected comma-separated keys of at least 16 characters/);
  t.notMatch(err.message, /short-secret/);
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
  ['MAX_BATCH_SIZE', '0'],
  ['PREFILL_CHUNK_TOKENS', '-1'],
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
