/**
 * Authentication, the per-key rate limit and CORS (plugins/auth.ts), against the real app and
 * a real model, through app.inject and, for the OpenAI client, a listening server.
 */
import { Writable } from 'node:stream';
import OpenAI from 'openai';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { ApiKeys, isLoopbackHost, LOG_REDACT, needsKey } from '../../src/openai/auth.js';
import type { ApiErrorBody } from '../../src/openai/errors.js';
import type { App, AppOptions } from '../../src/app.js';
import { listen, testApp } from '../helpers/app.js';
import { gatedModel } from '../helpers/models.js';
import { testServedModel } from '../helpers/served-model.js';

const model = await testServedModel();
t.teardown(() => model.close());

// Of different lengths, so a comparison that leaked length or matched prefixes would show.
const KEY_A = 'sk-test-aaaaaaaaaaaaaaaa';
const KEY_B = 'sk-test-bbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
const WRONG = 'sk-test-cccccccccccccccc';

const bearer = (key: string): Record<string, string> => ({ authorization: `Bearer ${key}` });

function keyed(t: Test, options: Partial<AppOptions> = {}): Promise<App> {
  return testApp(t, { models: [model], auth: { apiKeys: [KEY_A, KEY_B] }, ...options });
}
function expectUnauthorized(t: Test, res: { statusCode: number; headers: Record<string, unknown>; json: <T>() => T }, presented: boolean): void {
  t.equal(res.statusCode, 401);
  const body = res.json<ApiErrorBody>();
  t.same(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type']);
  t.equal(body.error.type, 'invalid_request_error');
  t.equal(body.error.code, 'invalid_api_key');
  t.equal(body.error.param, null);
  t.type(body.error.message, 'string');
  t.equal(res.headers['www-authenticate'], presented ? 'Bearer error="invalid_token"' : 'Bearer');
}

t.test('without keys every route is open', async (t) => {
  const app = await testApp(t, { models: [model] });
  t.equal((await app.inject({ method: 'GET', url: '/v1/models' })).statusCode, 200);
  t.equal((await app.inject({ method: 'POST', url: '/tokenize', payload: { prompt: 'hi' } })).statusCode, 200);
});

t.test('with keys, /v1 routes need one', async (t) => {
  const app = await keyed(t);
  expectUnauthorized(t, await app.inject({ method: 'GET', url: '/v1/models' }), false);
  expectUnauthorized(t, await app.inject({ method: 'GET', url: '/v1/models', headers: bearer(WRONG) }), true);
  for (const key of [KEY_A, KEY_B]) {
    const res = await app.inject({ method: 'GET', url: '/v1/models', headers: bearer(key) });
    t.equal(res.statusCode, 200, 'each configured key is accepted');
  }
  const completion = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    headers: bearer(KEY_B),
    payload: { model: model.id, prompt: 'Hi', max_tokens: 2 },
  });
  t.equal(completion.statusCode, 200);
  expectUnauthorized(t, await app.inject({ method: 'POST', url: '/v1/completions', payload: { model: model.id, prompt: 'Hi' } }), false);
  expectUnauthorized(t, await app.inject({ method: 'POST', url: '/v1/score', payload: {} }), false);
});

t.test('a key must be exactly a configured one, sent as a Bearer token', async (t) => {
  const app = await keyed(t);
  const refused = [
    `Basic ${KEY_A}`,
    'Bearer',
    'Bearer ',
    KEY_A,
    `Bearer ${KEY_A.slice(0, -1)}`,
    `Bearer ${KEY_A}x`,
    `Bearer ${KEY_A} ${KEY_B}`,
    `Bearer ${KEY_A.toUpperCase()}`,
    `Bearer ${KEY_A},${KEY_B}`,
  ];
  for (const authorization of refused) {
    const res = await app.inject({ method: 'GET', url: '/v1/models', headers: { authorization } });
    t.equal(res.statusCode, 401, JSON.stringify(authorization));
  }
  // RFC 7235: the scheme is case-insensitive, and whitespace around the token is no part of it.
  for (const authorization of [`bearer ${KEY_A}`, `BEARER  ${KEY_A}`, `Bearer ${KEY_A} `]) {
    const res = await app.inject({ method: 'GET', url: '/v1/models', headers: { authorization } });
    t.equal(res.statusCode, 200, JSON.stringify(authorization));
  }
});

t.test('authentication runs before the body is read', async (t) => {
  const app = await keyed(t, { bodyLimit: 1024 });
  const invalid = await app.inject({ method: 'POST', url: '/v1/completions', headers: { 'content-type': 'application/json' }, payload: '{not json' });
  expectUnauthorized(t, invalid, false);
  const huge = await app.inject({ method: 'POST', url: '/v1/completions', payload: { model: model.id, prompt: 'x'.repeat(10_000) } });
  t.equal(huge.statusCode, 401, 'an oversized body is refused for its missing key, not its size');
  const keyedHuge = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    headers: bearer(KEY_A),
    payload: { model: model.id, prompt: 'x'.repeat(10_000) },
  });
  t.equal(keyedHuge.statusCode, 413, 'with the key, the body is read and its size refused');
});

t.test('the tokenizer routes need a key', async (t) => {
  const app = await keyed(t);
  const calls = [
    { method: 'GET' as const, url: '/tokenizer_info' },
    { method: 'POST' as const, url: '/tokenize', payload: { prompt: 'hello' } },
    { method: 'POST' as const, url: '/detokenize', payload: { tokens: [1, 2] } },
  ];
  for (const call of calls) {
    expectUnauthorized(t, await app.inject(call), false);
    const res = await app.inject({ ...call, headers: bearer(KEY_A) });
    t.equal(res.statusCode, 200, `${call.url} with a key: ${res.body}`);
  }
});

t.test('/health and /ready stay open', async (t) => {
  const app = await keyed(t, { auth: { apiKeys: [KEY_A], metrics: true, docs: true } });
  for (const url of ['/health', '/ready']) {
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url);
    t.equal((await app.inject({ method: 'GET', url, headers: bearer(WRONG) })).statusCode, 200, `${url} ignores a wrong key`);
  }
});

t.test('/metrics and the docs are open by default, keyed when configured', async (t) => {
  const urls = ['/metrics', '/docs', '/docs/json', '/openapi.json'];
  const open = await keyed(t);
  for (const url of urls) t.equal((await open.inject({ method: 'GET', url })).statusCode, 200, `${url} open`);

  const closed = await keyed(t, { auth: { apiKeys: [KEY_A, KEY_B], metrics: true, docs: true } });
  for (const url of urls) {
    expectUnauthorized(t, await closed.inject({ method: 'GET', url }), false);
    t.equal((await closed.inject({ method: 'GET', url, headers: bearer(KEY_B) })).statusCode, 200, `${url} with a key`);
  }

  const metricsOnly = await keyed(t, { auth: { apiKeys: [KEY_A], metrics: true } });
  t.equal((await metricsOnly.inject({ method: 'GET', url: '/metrics' })).statusCode, 401);
  t.equal((await metricsOnly.inject({ method: 'GET', url: '/openapi.json' })).statusCode, 200);
});

t.test('unknown URLs answer 401 without a key and 404 with one', async (t) => {
  const app = await keyed(t);
  expectUnauthorized(t, await app.inject({ method: 'GET', url: '/v2/whatever' }), false);
  expectUnauthorized(t, await app.inject({ method: 'GET', url: '/v1/nothing-here' }), false);
  const found = await app.inject({ method: 'GET', url: '/v2/whatever', headers: bearer(KEY_A) });
  t.equal(found.statusCode, 404);
  t.equal(found.json<ApiErrorBody>().error.code, 'unknown_url');
});

t.test('no key, right or wrong, reaches the logs', async (t) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString());
      done();
    },
  });
  const app = await keyed(t, { loggerInstance: pino({ level: 'trace', redact: LOG_REDACT }, sink) });
  await app.inject({ method: 'GET', url: '/v1/models', headers: bearer(KEY_A) });
  await app.inject({ method: 'GET', url: '/v1/models', headers: bearer(WRONG) });
  await app.inject({ method: 'GET', url: '/v1/models', headers: { authorization: `Basic ${WRONG}` } });
  await app.inject({ method: 'GET', url: '/nowhere', headers: bearer(KEY_B) });
  await app.inject({ method: 'POST', url: '/v1/completions', headers: bearer(KEY_B), payload: { model: model.id, prompt: 'Hi', temperature: 99 } });
  await app.inject({ method: 'POST', url: '/v1/completions', headers: { ...bearer(KEY_A), 'content-type': 'application/json' }, payload: '{bad' });
  // Whatever logs a request's headers in future goes through the same redaction.
  app.log.info({ req: { headers: bearer(KEY_A) }, headers: bearer(KEY_B) }, 'headers');

  const log = lines.join('');
  t.match(log, /"status(Code)?":401/, 'the log did capture the requests');
  t.match(log, /"status(Code)?":400/);
  t.match(log, /\[redacted\]/);
  for (const key of [KEY_A, KEY_B, WRONG]) t.notOk(log.includes(key), 'a key is in the log');
  // A part of a key is a leak too.
  for (const key of [KEY_A, KEY_B, WRONG]) t.notOk(log.includes(key.slice(-12)), 'part of a key is in the log');
});

t.test('the rate limit answers 429 per key, in OpenAI shape, with Retry-After', async (t) => {
  const app = await keyed(t, { rateLimitPerMinute: 3 });
  const models = (key: string) => app.inject({ method: 'GET', url: '/v1/models', headers: bearer(key) });
  for (let i = 0; i < 3; i++) {
    const res = await models(KEY_A);
    t.equal(res.statusCode, 200);
    t.equal(res.headers['x-ratelimit-limit'], '3');
    t.equal(res.headers['x-ratelimit-remaining'], String(2 - i));
  }
  const limited = await models(KEY_A);
  t.equal(limited.statusCode, 429);
  t.same(Object.keys(limited.json<ApiErrorBody>().error).sort(), ['code', 'message', 'param', 'type']);
  t.equal(limited.json<ApiErrorBody>().error.code, 'rate_limit_exceeded');
  t.equal(limited.json<ApiErrorBody>().error.type, 'rate_limit_error');
  const retryAfter = Number(limited.headers['retry-after']);
  t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After ${limited.headers['retry-after']}`);
  t.equal(
    (await app.inject({ method: 'POST', url: '/tokenize', headers: bearer(KEY_A), payload: { prompt: 'x' } })).statusCode,
    429,
    'the limit covers every keyed route',
  );

  for (let i = 0; i < 3; i++) t.equal((await models(KEY_B)).statusCode, 200, 'the other key has its own budget');
  t.equal((await models(KEY_B)).statusCode, 429);

  for (let i = 0; i < 10; i++) {
    t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200);
    t.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 200);
  }
  // Refused requests do not spend a key's budget: an attacker without a key cannot exhaust it.
  const fresh = await keyed(t, { rateLimitPerMinute: 1 });
  for (let i = 0; i < 5; i++) await fresh.inject({ method: 'GET', url: '/v1/models', headers: bearer(WRONG) });
  t.equal((await fresh.inject({ method: 'GET', url: '/v1/models', headers: bearer(KEY_A) })).statusCode, 200);
});

t.test('without keys the rate limit is per client address', async (t) => {
  const app = await testApp(t, { models: [model], rateLimitPerMinute: 2 });
  const from = (remoteAddress: string) => app.inject({ method: 'GET', url: '/v1/models', remoteAddress });
  t.equal((await from('10.0.0.1')).statusCode, 200);
  t.equal((await from('10.0.0.1')).statusCode, 200);
  t.equal((await from('10.0.0.1')).statusCode, 429);
  t.equal((await from('10.0.0.2')).statusCode, 200, 'another address has its own budget');
});

t.test('without a rate limit, nothing is limited or labelled', async (t) => {
  const app = await keyed(t);
  for (let i = 0; i < 20; i++) {
    const res = await app.inject({ method: 'GET', url: '/v1/models', headers: bearer(KEY_A) });
    t.equal(res.statusCode, 200);
    t.equal(res.headers['x-ratelimit-limit'], undefined);
  }
});

t.test('a busy model still answers 401 and the rate limit before its queue does', async (t) => {
  const gated = gatedModel(model);
  const app = await testApp(t, { models: [gated], auth: { apiKeys: [KEY_A] }, rateLimitPerMinute: 2, maxConcurrentPerModel: 1, maxQueuePerModel: 0 });
  const complete = (headers: Record<string, string>) =>
    app.inject({ method: 'POST', url: '/v1/completions', headers, payload: { model: gated.id, prompt: 'Hi', max_tokens: 1 } });
  const running = complete(bearer(KEY_A));
  await gated.waiting;
  const code = async (headers: Record<string, string>) => (await complete(headers)).json<ApiErrorBody>().error.code;
  t.equal(await code({}), 'invalid_api_key', 'no key: refused for that, not for the full queue');
  t.equal(await code(bearer(KEY_A)), 'queue_full', 'the second request of the minute meets the full queue');
  t.equal(await code(bearer(KEY_A)), 'rate_limit_exceeded', 'the third is over the limit, whatever the queue');
  gated.open();
  t.equal((await running).statusCode, 200);
});

const ALLOWED = 'https://app.example';
const preflight = (app: App, origin: string) =>
  app.inject({
    method: 'OPTIONS',
    url: '/v1/completions',
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' },
  });

t.test('CORS: an allowed origin gets a preflight without a key, and CORS headers on answers', async (t) => {
  const app = await keyed(t, { corsOrigins: [ALLOWED, 'http://localhost:3000'] });
  const pre = await preflight(app, ALLOWED);
  t.equal(pre.statusCode, 204);
  t.equal(pre.headers['access-control-allow-origin'], ALLOWED);
  t.match(String(pre.headers['access-control-allow-methods']), /POST/);
  t.match(String(pre.headers['access-control-allow-headers']), /authorization/);

  const ok = await app.inject({ method: 'GET', url: '/v1/models', headers: { origin: ALLOWED, ...bearer(KEY_A) } });
  t.equal(ok.statusCode, 200);
  t.equal(ok.headers['access-control-allow-origin'], ALLOWED);
  t.match(String(ok.headers['access-control-expose-headers']), /x-request-id/);
  const refused = await app.inject({ method: 'GET', url: '/v1/models', headers: { origin: ALLOWED } });
  t.equal(refused.statusCode, 401);
  t.equal(refused.headers['access-control-allow-origin'], ALLOWED, 'a browser page can read the 401');

  const other = await preflight(app, 'https://evil.example');
  t.equal(other.headers['access-control-allow-origin'], undefined, 'another origin gets no grant');
  const otherGet = await app.inject({ method: 'GET', url: '/v1/models', headers: { origin: 'https://evil.example', ...bearer(KEY_A) } });
  t.equal(otherGet.headers['access-control-allow-origin'], undefined);
});

t.test("CORS: '*' allows any origin", async (t) => {
  const app = await keyed(t, { corsOrigins: ['*'] });
  const pre = await preflight(app, 'https://anything.example');
  t.equal(pre.statusCode, 204);
  t.equal(pre.headers['access-control-allow-origin'], '*');
});

t.test('CORS: off by default', async (t) => {
  const app = await keyed(t);
  const pre = await preflight(app, ALLOWED);
  t.equal(pre.statusCode, 401, 'no preflight route: an OPTIONS request is like any unknown URL');
  t.equal(pre.headers['access-control-allow-origin'], undefined);
  const res = await app.inject({ method: 'GET', url: '/v1/models', headers: { origin: ALLOWED, ...bearer(KEY_A) } });
  t.equal(res.headers['access-control-allow-origin'], undefined);
});

t.test('the openai client authenticates with apiKey, and gets AuthenticationError without the right one', async (t) => {
  const app = await keyed(t, { rateLimitPerMinute: 4 });
  const baseURL = `${await listen(app)}/v1`;
  const client = new OpenAI({ baseURL, apiKey: KEY_A, maxRetries: 0 });
  t.same(
    (await client.models.list()).data.map((m) => m.id),
    [model.id],
  );
  const completion = await client.completions.create({ model: model.id, prompt: 'the cat', max_tokens: 3, temperature: 0 });
  t.equal(completion.object, 'text_completion');

  const wrong = new OpenAI({ baseURL, apiKey: WRONG, maxRetries: 0 });
  const err = await wrong.models.list().then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof OpenAI.AuthenticationError, `AuthenticationError, got ${String(err)}`);
  if (err instanceof OpenAI.AuthenticationError) {
    t.equal(err.status, 401);
    t.equal(err.code, 'invalid_api_key');
  }

  await client.models.list();
  await client.models.list();
  const limited = await client.models.list().then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(limited instanceof OpenAI.RateLimitError, `RateLimitError, got ${String(limited)}`);
});

t.test('ApiKeys matches whole keys only, and gives duplicates one index', async (t) => {
  const keys = new ApiKeys([KEY_A, KEY_B, KEY_A]);
  t.equal(keys.size, 2);
  t.same(keys.check(`Bearer ${KEY_A}`), { ok: true, index: 0 });
  t.same(keys.check(`Bearer ${KEY_B}`), { ok: true, index: 1 });
  t.same(keys.check(undefined), { ok: false, reason: 'missing' });
  t.same(keys.check(''), { ok: false, reason: 'missing' });
  t.same(keys.check(`Token ${KEY_A}`), { ok: false, reason: 'malformed' });
  t.same(keys.check(`Bearer ${KEY_A.slice(1)}`), { ok: false, reason: 'unknown' });
  t.throws(() => new ApiKeys([]));
});

t.test('needsKey: everything but the probes, and /metrics and docs by setting', async (t) => {
  const none = { metrics: false, docs: false };
  const all = { metrics: true, docs: true };
  for (const url of ['/health', '/ready']) t.notOk(needsKey(url, all), url);
  for (const url of ['/metrics', '/docs', '/docs/static/index.html', '/openapi.json']) {
    t.notOk(needsKey(url, none), url);
    t.ok(needsKey(url, all), url);
  }
  for (const url of ['/v1/models', '/tokenize', '/documents', '/healthz', undefined]) t.ok(needsKey(url, none), String(url));
});

t.test('isLoopbackHost', async (t) => {
  for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']) t.ok(isLoopbackHost(host), host);
  for (const host of ['0.0.0.0', '::', '10.0.0.1', 'example.com', '128.0.0.1', '::2']) t.notOk(isLoopbackHost(host), host);
});
