/**
 * Backpressure: a bounded queue per model. Beyond it, 429 with Retry-After in OpenAI's error
 * shape; a queued client that hangs up leaves the queue and never runs; the server keeps
 * serving. Over HTTP against models whose generations the test holds and finishes.
 */
import { request as httpRequest } from 'node:http';
import t from 'tap';
import { wrap } from '../helpers/models.js';
import { Admission } from '../../src/http/admission.js';
import { ApiError, type ApiErrorBody } from '../../src/openai/errors.js';
import type { GenerationDelta, GenerationResult, ServedModel } from '../../src/runtime/types.js';
import { listen, testApp } from '../helpers/app.js';
import { testServedModel } from '../helpers/served-model.js';

const base = await testServedModel();
t.teardown(() => base.close());

interface HeldModel extends ServedModel {
  /** The first prompt token of every generation that started, in order. */
  started: number[];
  /** Lets the running generation whose prompt starts with `first` finish. */
  finish(first: number): void;
}

/**
 * Each generation yields a token every few milliseconds until the test finishes it (or its
 * signal aborts, or 10 s pass). Prompts are told apart by their first token id.
 */
function heldModel(id: string): HeldModel {
  const started: number[] = [];
  const finishing = new Set<number>();
  async function* generate(ids: number[], _params: unknown, signal?: AbortSignal): AsyncGenerator<GenerationDelta, GenerationResult> {
    started.push(ids[0]);
    let count = 0;
    // Never forever: after a failed assertion, the app's teardown waits for its requests.
    const giveUp = Date.now() + 10_000;
    while (!finishing.has(ids[0]) && signal?.aborted !== true && Date.now() < giveUp) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      count++;
      yield { text: 'x', tokens: [{ id: 0, text: 'x', logprob: -1, top: null }] };
    }
    finishing.delete(ids[0]);
    return { finishReason: 'length', promptTokens: ids.length, completionTokens: count };
  }
  return { ...wrap(base, id, generate), started, finish: (first: number) => finishing.add(first) };
}

async function until(what: string, condition: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

const completionBody = (model: string, first: number, extra: Record<string, unknown> = {}): string =>
  JSON.stringify({ model, prompt: [first], max_tokens: 100, ...extra });

async function postCompletion(url: string, model: string, first: number, extra: Record<string, unknown> = {}, signal?: AbortSignal): Promise<Response> {
  return fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: completionBody(model, first, extra), signal });
}

t.test('a full queue answers 429 with Retry-After, in OpenAI error shape; then the server serves again', async (t) => {
  const model = heldModel('held');
  const app = await testApp(t, { models: [model], maxConcurrentPerModel: 1, maxQueuePerModel: 1, rejectDelayMs: 0 });
  const url = await listen(app);
  const running = postCompletion(url, model.id, 1);
  await until('the first request runs', () => model.started.length === 1);
  const queued = postCompletion(url, model.id, 2);
  await until('the second request waits', () => app.admission.load(model.id).waiting === 1);
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(metrics, /^slm_queue_depth\{model="held"\} 1$/m, 'the queue depth gauge shows it');

  for (const path of ['/v1/completions', '/v1/score']) {
    const body = path === '/v1/score' ? JSON.stringify({ model: model.id, prompt: [3], continuations: [[4]] }) : completionBody(model.id, 3);
    const refused = await fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    t.equal(refused.status, 429, `${path}: 429`);
    const retryAfter = refused.headers.get('retry-after');
    t.match(retryAfter, /^\d+$/, 'Retry-After in whole seconds');
    t.ok(Number(retryAfter) >= 1);
    const error = ((await refused.json()) as ApiErrorBody).error;
    t.same(Object.keys(error).sort(), ['code', 'message', 'param', 'type']);
    t.equal(error.type, 'rate_limit_error');
    t.equal(error.code, 'queue_full');
    t.equal(error.param, null, 'no parameter is at fault');
    t.match(error.message, /held/);
  }
  t.same(model.started, [1], 'the refused requests never ran');

  model.finish(1);
  t.equal((await running).status, 200);
  await until('the queued request runs', () => model.started.length === 2);
  model.finish(2);
  t.equal((await queued).status, 200);
  t.equal(app.admission.load(model.id).waiting, 0);

  const after = postCompletion(url, model.id, 5);
  await until('a new request runs', () => model.started.includes(5));
  model.finish(5);
  t.equal((await after).status, 200, 'the server keeps serving');
  const counted = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(counted, /^slm_requests_total\{[^}]*status="429"[^}]*\} 1$/m, 'the 429s are counted');
});

t.test('a queued client that hangs up leaves the queue and never runs; the next one does', async (t) => {
  const model = heldModel('held');
  const app = await testApp(t, { models: [model], maxConcurrentPerModel: 1, maxQueuePerModel: 4, rejectDelayMs: 0 });
  const url = await listen(app);
  const running = postCompletion(url, model.id, 1);
  await until('the first request runs', () => model.started.length === 1);

  const gone = httpRequest(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' } });
  gone.on('error', () => {}); // destroyed on purpose
  gone.end(completionBody(model.id, 2));
  await until('the second request waits', () => app.admission.load(model.id).waiting === 1);
  const next = postCompletion(url, model.id, 3);
  await until('the third request waits', () => app.admission.load(model.id).waiting === 2);
  gone.destroy();
  await until('the hung-up request leaves the queue', () => app.admission.load(model.id).waiting === 1);

  model.finish(1);
  t.equal((await running).status, 200);
  await until('the third request runs', () => model.started.length === 2);
  t.same(model.started, [1, 3], 'the hung-up request never ran');
  model.finish(3);
  t.equal((await next).status, 200);
  t.same(app.admission.load(model.id), { running: 0, waiting: 0, reserved: 0 });
});

t.test('a stream holds its slot until it ends, and a client hanging up mid-stream frees it', async (t) => {
  const model = heldModel('held');
  const app = await testApp(t, { models: [model], maxConcurrentPerModel: 1, maxQueuePerModel: 4, rejectDelayMs: 0 });
  const url = await listen(app);
  const client = new AbortController();
  const stream = await postCompletion(url, model.id, 1, { stream: true }, client.signal);
  t.equal(stream.status, 200);
  const reader = stream.body?.getReader();
  if (reader === undefined) throw new Error('no body');
  t.notOk((await reader.read()).done, 'tokens arrive');
  const queued = postCompletion(url, model.id, 2);
  await until('the second request waits', () => app.admission.load(model.id).waiting === 1);
  await new Promise((resolve) => setTimeout(resolve, 30));
  t.same(model.started, [1], 'nothing else runs while the stream is open');
  client.abort();
  await until('the queued request runs', () => model.started.length === 2);
  model.finish(2);
  t.equal((await queued).status, 200);
});

t.test('models have separate queues; MAX_CONCURRENT_PER_MODEL lets several run at once', async (t) => {
  const a = heldModel('a');
  const b = heldModel('b');
  const app = await testApp(t, { models: [a, b], maxConcurrentPerModel: 2, maxQueuePerModel: 0, rejectDelayMs: 0 });
  const url = await listen(app);
  const runs = [postCompletion(url, 'a', 1), postCompletion(url, 'a', 2), postCompletion(url, 'b', 1)];
  await until('two run on a, one on b', () => a.started.length === 2 && b.started.length === 1);
  const refused = await postCompletion(url, 'a', 3);
  t.equal(refused.status, 429, 'a third on a has no room (no queue)');
  await refused.arrayBuffer();
  a.finish(1);
  a.finish(2);
  b.finish(1);
  for (const run of runs) t.equal((await run).status, 200);
});

t.test('Admission: FIFO, idempotent release, aborts before and while waiting', async (t) => {
  const depths: number[] = [];
  const admission = new Admission(1, 2, (_model, depth) => depths.push(depth));
  const never = new AbortController().signal;
  const first = await admission.acquire('m', never);
  const order: string[] = [];
  const second = admission.acquire('m', never).then((release) => {
    order.push('second');
    return release;
  });
  const leaving = new AbortController();
  const third = admission.acquire('m', leaving.signal);
  await t.rejects(admission.acquire('m', never), { statusCode: 429, code: 'queue_full' }, 'the queue holds 2');
  leaving.abort();
  await t.rejects(third, { statusCode: 499, code: 'client_closed_request' }, 'an abort while waiting rejects and leaves the queue');
  t.same(admission.load('m'), { running: 1, waiting: 1, reserved: 0 });
  first();
  first();
  const releaseSecond = await second;
  t.same(order, ['second']);
  t.same(admission.load('m'), { running: 1, waiting: 0, reserved: 0 }, 'a second release of the same slot does nothing');
  releaseSecond();
  const aborted = new AbortController();
  aborted.abort();
  await t.rejects(admission.acquire('m', aborted.signal), ApiError, 'an already aborted request is not admitted');
  t.same(admission.load('m'), { running: 0, waiting: 0, reserved: 0 });
  t.same(depths, [1, 2, 1, 0]);
  t.throws(() => new Admission(0, 1), RangeError);
  t.throws(() => new Admission(1, -1), RangeError);
});

t.test('a full queue refuses before the body is parsed or validated, and a refused or invalid request gives its place back', async (t) => {
  const model = heldModel('held');
  const app = await testApp(t, { models: [model], maxConcurrentPerModel: 1, maxQueuePerModel: 1, rejectDelayMs: 0 });
  const url = await listen(app);
  const running = postCompletion(url, model.id, 1);
  await until('the first request runs', () => model.started.length === 1);

  const invalid = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: model.id, prompt: [2], max_tokens: 'many' }),
  });
  t.equal(invalid.status, 400, 'with room in the queue, an invalid body is a 400');
  await invalid.arrayBuffer();
  t.same(app.admission.load(model.id), { running: 1, waiting: 0, reserved: 0 }, 'and its reserved place is given back');

  const queued = postCompletion(url, model.id, 2);
  await until('the second request waits', () => app.admission.load(model.id).waiting === 1);
  const notJson = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"model": "held", "prompt": [3',
  });
  t.equal(notJson.status, 429, 'with the queue full, even a body that is not JSON gets 429: it was never parsed');
  t.match(notJson.headers.get('retry-after'), /^\d+$/);
  const schemaViolation = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: model.id, prompt: [3], max_tokens: 'many' }),
  });
  t.equal(schemaViolation.status, 429, 'and so does a schema violation: it was never validated');
  await schemaViolation.arrayBuffer();
  t.equal((await fetch(`${url}/health`)).status, 200, 'probes are not admission-controlled');

  model.finish(1);
  t.equal((await running).status, 200);
  await until('the queued request runs', () => model.started.length === 2);
  model.finish(2);
  t.equal((await queued).status, 200);
  t.same(app.admission.load(model.id), { running: 0, waiting: 0, reserved: 0 });
});

t.test('Retry-After follows the drain rate, and a slot held long raises it before it is released', async (t) => {
  let now = 0;
  const admission = new Admission(
    1,
    3,
    () => {},
    () => now,
  );
  const never = new AbortController().signal;
  t.equal(admission.retryAfterSeconds('m'), 1, 'before anything was measured: the initial guess of 1 s for one request');
  const first = await admission.acquire('m', never);
  const waiting = [admission.acquire('m', never), admission.acquire('m', never)];
  now = 30_000;
  t.equal(admission.retryAfterSeconds('m'), 90, 'held for 30 s with 2 waiting: (2 + 1) x 30 s');
  first();
  const second = await waiting[0];
  now = 32_000;
  second();
  const third = await waiting[1];
  // Intervals of 30 s and 2 s under load: 0.8 x (0.8 x 1 + 0.2 x 30) + 0.2 x 2 = 5.84 s.
  t.equal(admission.retryAfterSeconds('m'), 6, 'the measured drain interval, rounded up');
  now = 40_000;
  t.equal(admission.retryAfterSeconds('m'), 8, 'never less than the time since the last release');
  third();
  const ticket = admission.reserve('m');
  t.same(admission.load('m'), { running: 0, waiting: 0, reserved: 1 }, 'a reservation counts against the queue');
  ticket.cancel();
  ticket.cancel();
  t.same(admission.load('m'), { running: 0, waiting: 0, reserved: 0 }, 'and cancelling it twice gives it back once');
  await t.rejects(ticket.acquire(never), Error, 'a cancelled ticket cannot be used');
  const tickets = [admission.reserve('m'), admission.reserve('m'), admission.reserve('m'), admission.reserve('m')];
  t.ok(admission.full('m'));
  t.throws(() => admission.reserve('m'), { statusCode: 429, code: 'queue_full' }, 'reservations fill the queue like waiters');
  for (const reserved of tickets) reserved.cancel();
});

t.test('a refusal is held for REJECT_DELAY_MS before its 429, so clients that do not back off cannot flood the server', async (t) => {
  const model = heldModel('held');
  const app = await testApp(t, { models: [model], maxConcurrentPerModel: 1, maxQueuePerModel: 0, rejectDelayMs: 300 });
  const url = await listen(app);
  const running = postCompletion(url, model.id, 1);
  await until('the first request runs', () => model.started.length === 1);
  for (const body of [completionBody(model.id, 2), 'not json']) {
    const started = performance.now();
    const refused = await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const waited = performance.now() - started;
    t.equal(refused.status, 429);
    await refused.arrayBuffer();
    t.ok(waited >= 290, `answered after ${waited.toFixed(0)} ms, not at once`);
  }
  const health = performance.now();
  t.equal((await fetch(`${url}/health`)).status, 200);
  t.ok(performance.now() - health < 290, 'other routes are not held');
  model.finish(1);
  t.equal((await running).status, 200);
});
