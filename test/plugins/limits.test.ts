/**
 * Limits on every request: a cap on the tokens one request may ask for, a server-side deadline
 * that ends a generation (a 504, or a stream's last error event), and error messages that
 * quote at most an excerpt of what the client sent. Over real HTTP.
 */
import { connect } from 'node:net';
import t from 'tap';
import type { ApiErrorBody } from '../../src/openai/errors.js';
import { listen, parseSse, testApp } from '../helpers/app.js';
import { endlessModel } from '../helpers/models.js';
import { testServedModel } from '../helpers/served-model.js';

const base = await testServedModel();
t.teardown(() => base.close());

const post = (url: string, body: unknown, path = '/v1/completions'): Promise<Response> =>
  fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

t.test('prompts x n x max_tokens beyond MAX_REQUEST_TOKENS is a 400 naming max_tokens, before anything runs', async (t) => {
  const app = await testApp(t, { models: [base], limits: { maxRequestTokens: 1000 } });
  const url = await listen(app);
  // The issue's 538-byte body: 40 prompts x n=16 x 200 tokens.
  const res = await post(url, { model: base.id, prompt: Array.from({ length: 40 }, () => [1, 2, 3]), n: 16, max_tokens: 200 });
  t.equal(res.status, 400);
  const { error } = (await res.json()) as ApiErrorBody;
  t.equal(error.param, 'max_tokens');
  t.equal(error.code, 'request_too_large');
  t.match(error.message, /128000 generated tokens \(40 prompts × n=16 × max_tokens=200\); the server allows 1000/);
  t.equal(app.admission.load(base.id).reserved, 0, 'its reserved place was given back');

  const fits = await post(url, {
    model: base.id,
    prompt: [
      [1, 2],
      [3, 4],
    ],
    n: 2,
    max_tokens: 250,
  });
  t.equal(fits.status, 200, 'exactly at the cap (2 x 2 x 250) is allowed');
});

t.test('REQUEST_TIMEOUT_MS ends a generation: 504 for a plain answer, an error event then [DONE] for a stream', async (t) => {
  const model = endlessModel(base);
  const app = await testApp(t, { models: [model], limits: { requestTimeoutMs: 300 } });
  const url = await listen(app);
  const plain = await post(url, { model: model.id, prompt: [1], max_tokens: 10 });
  t.equal(plain.status, 504);
  const { error } = (await plain.json()) as ApiErrorBody;
  t.equal(error.code, 'request_timeout');
  t.match(error.message, /deadline of 300 ms/);

  const streamed = await post(url, { model: model.id, prompt: [1], max_tokens: 10, stream: true });
  t.equal(streamed.status, 200, 'the stream had started');
  const sse = parseSse(await streamed.text());
  t.ok(sse.done, 'it still ends with [DONE]');
  const last = sse.events[sse.events.length - 1] as ApiErrorBody;
  t.equal(last.error.code, 'request_timeout', 'after an error event naming the deadline');
  t.same(app.admission.load(model.id), { running: 0, waiting: 0, reserved: 0 }, 'the slot is free again');
});

t.test('a request that waits in the queue past its deadline gets 504 and never runs', async (t) => {
  const model = endlessModel(base);
  const app = await testApp(t, { models: [model], limits: { requestTimeoutMs: 400 } });
  const url = await listen(app);
  const first = post(url, { model: model.id, prompt: [1], max_tokens: 10 });
  await model.started;
  const second = await post(url, { model: model.id, prompt: [2], max_tokens: 10 });
  t.equal(second.status, 504, 'the queued one times out too');
  t.equal(((await second.json()) as ApiErrorBody).error.code, 'request_timeout');
  t.equal((await first).status, 504);
});

t.test('error messages quote at most an excerpt of the input', async (t) => {
  const app = await testApp(t, { models: [base] });
  const url = await listen(app);
  const name = 'm'.repeat(200_000);
  const res = await post(url, { model: name, prompt: 'hi' });
  t.equal(res.status, 404);
  const text = await res.text();
  t.ok(text.length < 400, `a 200,000-character model name comes back in a short answer (${text.length} bytes)`);
  t.match(text, /m{64}… \(200000 characters\)/);

  const key = 'k'.repeat(50_000);
  const nested = await post(url, { model: base.id, prompt: 'hi', logit_bias: { [key]: 'x' } });
  t.equal(nested.status, 400);
  t.ok((await nested.text()).length < 1200, 'a violation deep inside a long key is quoted short too');
});

/** A raw TCP client: what it receives, and when the server closes it. */
function rawClient(port: number, send: string): Promise<{ received: string; closedAfterMs: number }> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = connect(port, '127.0.0.1', () => socket.write(send));
    let received = '';
    socket.on('data', (data) => (received += data.toString()));
    socket.on('error', () => {});
    socket.on('close', () => resolve({ received, closedAfterMs: Date.now() - started }));
    setTimeout(() => {
      socket.destroy();
      reject(new Error('the server never closed the connection'));
    }, 10_000).unref();
  });
}

t.test('a stalled body is cut after RECEIVE_TIMEOUT_MS, and connections beyond MAX_CONNECTIONS are closed at once', async (t) => {
  const app = await testApp(t, { models: [base], connections: { receiveTimeoutMs: 500, maxConnections: 3 } });
  const url = await listen(app);
  const port = Number(new URL(url).port);
  const stalled = await rawClient(port, 'POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"model"');
  t.match(stalled.received, /^HTTP\/1\.1 408/, 'the server answers 408 Request Timeout');
  t.match(
    stalled.received,
    /\r\n\r\n\{"error":\{"message":"[^"]+","type":"invalid_request_error","param":null,"code":"request_timeout"\}\}$/,
    "in OpenAI's error shape",
  );
  t.ok(stalled.closedAfterMs < 3000, `and closes it (after ${stalled.closedAfterMs} ms)`);

  const stall = 'POST /tokenize HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 10\r\n\r\n{';
  const held = [rawClient(port, stall), rawClient(port, stall), rawClient(port, stall)];
  await new Promise((resolve) => setTimeout(resolve, 100));
  const beyond = await rawClient(port, 'GET /health HTTP/1.1\r\nhost: x\r\n\r\n');
  t.equal(beyond.received, '', 'a fourth connection gets nothing and is closed');
  t.ok(beyond.closedAfterMs < 1000, 'at once');
  for (const client of await Promise.all(held)) t.match(client.received, /^HTTP\/1\.1 408/, 'the three stalled ones are cut by the receive timeout');
  t.equal((await fetch(`${url}/health`)).status, 200, 'then the server serves again');
});
