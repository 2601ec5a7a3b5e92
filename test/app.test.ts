/** The assembled app: request ids, the OpenAPI document and UI, errors outside routes. */
import { connect } from 'node:net';
import t from 'tap';
import { buildApp } from '../src/app.js';
import { testApp } from './helpers/app.js';
import { gatedModel } from './helpers/models.js';
import { testServedModel } from './helpers/served-model.js';

const model = await testServedModel();
t.teardown(() => model.close());
const app = await testApp(t, { models: [model] });

t.test('each response carries a request id, generated when not given', async (t) => {
  const a = await app.inject({ method: 'GET', url: '/health' });
  const b = await app.inject({ method: 'GET', url: '/health' });
  t.match(a.headers['x-request-id'], /^[0-9a-f-]{36}$/);
  t.not(a.headers['x-request-id'], b.headers['x-request-id']);
});

t.test('an incoming x-request-id is reused, unless it is unreasonable', async (t) => {
  const given = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'abc-123' } });
  t.equal(given.headers['x-request-id'], 'abc-123');
  const odd = await app.inject({ method: 'GET', url: '/health', headers: { 'x-request-id': 'a b\tc'.repeat(50) } });
  t.match(odd.headers['x-request-id'], /^[0-9a-f-]{36}$/, 'replaced by a fresh id');
});

t.test('the OpenAPI document is served at /openapi.json', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/openapi.json' });
  t.equal(res.statusCode, 200);
  const doc = res.json();
  t.match(doc.openapi, /^3\./);
  for (const path of ['/v1/completions', '/v1/score', '/v1/models', '/tokenizer_info', '/tokenize', '/detokenize', '/metrics', '/health', '/ready']) {
    t.ok(doc.paths[path], `documents ${path}`);
  }
  const body = doc.paths['/v1/completions'].post.requestBody.content['application/json'].schema;
  t.same(body.required.sort(), ['model', 'prompt']);
});

t.test('a browsable API UI is served at /docs', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/docs' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /text\/html/);
});

t.test('unknown routes get 404 in OpenAI error shape', async (t) => {
  const res = await app.inject({ method: 'GET', url: '/v2/whatever' });
  t.equal(res.statusCode, 404);
  t.same(res.json(), { error: { message: 'Invalid URL (GET /v2/whatever).', type: 'invalid_request_error', param: null, code: 'unknown_url' } });
});

t.test('two models under one id are refused at start', async (t) => {
  await t.rejects(
    buildApp({ models: [model, model] }).then((a) => a.ready()),
    /same id/,
  );
});

t.test('while closing, in-flight requests finish and new ones get 503 in OpenAI shape', async (t) => {
  const gated = gatedModel(model);
  const closing = await buildApp({ models: [gated] });
  const base = new URL(await closing.listen({ port: 0, host: '127.0.0.1' }));
  // Two pipelined requests on one connection: the second arrives while the app is closing.
  const socket = connect(Number(base.port), base.hostname);
  let received = '';
  socket.on('data', (data: Buffer) => (received += data.toString()));
  // Listened for from the start: the socket may close before app.close() resolves.
  const socketClosed = new Promise((resolve) => socket.once('close', resolve));
  const body = JSON.stringify({ model: gated.id, prompt: 'Hi', max_tokens: 1 });
  socket.write(`POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
  await gated.waiting;
  const closed = closing.close();
  while (closing.readiness.ready) await new Promise((resolve) => setTimeout(resolve, 1));
  t.notOk(closing.readiness.ready, '/ready reports not ready as soon as closing starts');
  socket.write('GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n');
  gated.open();
  await closed;
  await socketClosed;

  const [first, second] = received.split(/(?=HTTP\/1\.1 )/);
  t.match(first, /^HTTP\/1\.1 200 /, 'the in-flight request completed');
  t.match(first, /"text":"x"/);
  t.match(second, /^HTTP\/1\.1 503 /, 'the request that came during the close was refused');
  t.match(second, /"code":"shutting_down"/);
});
