/**
 * POST /v1/completions with the sparse-serving fields: `sparsity`, `latency_budget_ms`,
 * `activation`, `sparse_prefill` reach the engine, the response reports what ran in its
 * `sparsity` object and usage FLOPs, and what the model cannot honour is a 400 naming the field.
 * Runs the real engine on a generated model with calibrated tiers (dense, s50, s80).
 */
import t from 'tap';
import { wrap } from '../../helpers/models.js';
import { MemoryStore } from '../../../src/cache/memory.js';
import type { ApiErrorBody } from '../../../src/openai/errors.js';
import type { Completion, CompletionChunk } from '../../../src/openai/schemas.js';
import { loadServedModel } from '../../../src/serve/engine.js';
import { ParameterError, type GenerationDelta, type GenerationResult, type ServedModel } from '../../../src/runtime/types.js';
import { parseSse, testApp } from '../../helpers/app.js';
import { calibratedModelDir } from '../../helpers/calibrated-model.js';
import { testServedModel } from '../../helpers/served-model.js';

const model = await loadServedModel(await calibratedModelDir(), { intraOpThreads: 1, store: new MemoryStore() });
t.teardown(() => model.close());
const app = await testApp(t, { models: [model] });

async function post(body: Record<string, unknown>): Promise<{ status: number; body: string }> {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    payload: { model: model.id, prompt: 'the cat sat on', max_tokens: 4, temperature: 0, ...body },
  });
  return { status: res.statusCode, body: res.body };
}

async function complete(body: Record<string, unknown>): Promise<Completion> {
  const res = await post(body);
  if (res.status !== 200) throw new Error(`expected 200, got ${res.status}: ${res.body}`);
  return JSON.parse(res.body) as Completion;
}

async function refused(body: Record<string, unknown>): Promise<ApiErrorBody['error']> {
  const res = await post(body);
  t.equal(res.status, 400, `400 for ${JSON.stringify(body)}`);
  return (JSON.parse(res.body) as ApiErrorBody).error;
}

t.test('a dense request reports the dense tier and equal FLOPs', async (t) => {
  const res = await complete({});
  t.same(res.sparsity, { tier: 'dense', sparsity: 0, activation_source: 'dense', flop_ratio: 1, sparse_prefill: false });
  t.ok(res.usage.flops_dense !== undefined && res.usage.flops_dense > 0, 'usage.flops_dense');
  t.equal(res.usage.flops_executed, res.usage.flops_dense);
  t.same(Object.keys(res).sort(), ['choices', 'created', 'id', 'model', 'object', 'sparsity', 'usage'], 'only the sparsity object is added');
});

t.test('sparsity as a number runs the nearest tier at or below it, with fewer FLOPs', async (t) => {
  const dense = await complete({});
  const s80 = await complete({ sparsity: 0.8 });
  t.match(s80.sparsity, { tier: 's80', sparsity: 0.8, activation_source: 'static', sparse_prefill: false });
  t.equal(s80.usage.flops_dense, dense.usage.flops_dense, 'the same work asked for');
  t.ok((s80.usage.flops_executed ?? Infinity) < (dense.usage.flops_executed ?? 0), 'less work done');
  t.equal(s80.sparsity?.flop_ratio, (s80.usage.flops_executed ?? 0) / (s80.usage.flops_dense ?? 1));
  t.equal((await complete({ sparsity: 0.79 })).sparsity?.tier, 's50');
  t.equal((await complete({ sparsity: 0.95 })).sparsity?.tier, 's80');
});

t.test('sparsity as a tier name selects that tier', async (t) => {
  t.equal((await complete({ sparsity: 's50' })).sparsity?.tier, 's50');
  t.equal((await complete({ sparsity: 'dense' })).sparsity?.tier, 'dense');
});

t.test('sparse_prefill runs the prompt sparse too, saving more FLOPs', async (t) => {
  // Fresh prompts: a repeated prompt reuses its last pass, which costs no FLOPs.
  const decodeOnly = await complete({ prompt: 'a prompt for the decode-only run', sparsity: 0.8 });
  const both = await complete({ prompt: 'a prompt for the sparse prefill run', sparsity: 0.8, sparse_prefill: true });
  t.equal(both.sparsity?.sparse_prefill, true);
  t.ok((both.usage.flops_executed ?? Infinity) < (decodeOnly.usage.flops_executed ?? 0));
});

t.test('activation "prompt" computes a per-prompt set, then serves it from the cache', async (t) => {
  const prompt = 'a dog ran in the park and';
  const first = await complete({ prompt, sparsity: 0.8, activation: 'prompt' });
  t.match(first.sparsity, { tier: 's80', activation_source: 'computed' });
  const again = await complete({ prompt, sparsity: 0.8, activation: 'prompt' });
  t.match(again.sparsity, { tier: 's80', activation_source: 'cache' });
  t.equal(again.choices[0].text, first.choices[0].text, 'the same neurons, the same greedy text');
});

t.test('latency_budget_ms reports the budget, the prediction and whether it fits', async (t) => {
  const loose = await complete({ latency_budget_ms: 1e7 });
  t.match(loose.sparsity, { tier: 'dense', budget_ms: 1e7, budget_met: true });
  t.type(loose.sparsity?.predicted_ms, 'number');
  const impossible = await complete({ latency_budget_ms: 1e-6 });
  t.match(impossible.sparsity, { tier: 's80', budget_met: false }, 'no tier fits: the sparsest runs, flagged');
});

t.test("n choices: the first choice's sparsity, the FLOPs of all of them", async (t) => {
  const one = await complete({ sparsity: 0.5, max_tokens: 3 });
  const three = await complete({ sparsity: 0.5, max_tokens: 3, n: 3 });
  t.equal(three.sparsity?.tier, 's50');
  t.equal(three.usage.flops_dense, 3 * (one.usage.flops_dense ?? 0), 'greedy choices of one prompt do the same work');
});

t.test('streaming: each finish chunk carries its sparsity, the usage chunk the FLOPs', async (t) => {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    payload: { model: model.id, prompt: 'the cat', max_tokens: 3, stream: true, sparsity: 0.8, n: 2, stream_options: { include_usage: true } },
  });
  t.equal(res.statusCode, 200);
  const { events, done } = parseSse(res.body);
  t.ok(done);
  const chunks = events as CompletionChunk[];
  const finishes = chunks.filter((c) => c.choices.some((ch) => ch.finish_reason !== null));
  t.equal(finishes.length, 2);
  for (const chunk of finishes) t.match(chunk.sparsity, { tier: 's80', activation_source: 'static' });
  const text = chunks.filter((c) => c.choices.some((ch) => ch.finish_reason === null));
  t.ok(
    text.every((c) => c.sparsity === undefined),
    'text chunks carry no sparsity object',
  );
  const last = chunks[chunks.length - 1];
  t.same(last.choices, []);
  t.match(last.sparsity, { tier: 's80' });
  t.ok(last.usage != null && (last.usage.flops_executed ?? Infinity) < (last.usage.flops_dense ?? 0));
});

t.test('activation "token": each token selects its own neurons; reported, counted, and listed', async (t) => {
  const res = await complete({ prompt: 'a prompt for per-token activation', sparsity: 0.8, activation: 'token', max_tokens: 6 });
  t.match(res.sparsity, { tier: 's80', sparsity: 0.8, activation_source: 'token', selector: 'gate-rerank', block: 1, sparse_prefill: false });
  t.ok(res.usage.flops_executed! < res.usage.flops_dense!, 'fewer FLOPs than dense, the selector counted');
  const byName = await complete({ sparsity: 's50', activation: 'token', sparse_prefill: true, logprobs: 2, echo: true });
  t.match(byName.sparsity, { tier: 's50', activation_source: 'token', sparse_prefill: true });
  t.ok(byName.choices[0].logprobs!.token_logprobs.length > 4, 'echo and logprobs work unchanged');
  const metrics = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  t.match(
    metrics,
    new RegExp(`slm_flops_executed_total\\{model="${model.id}",tier="s80:token"\\} ${res.usage.flops_executed}`),
    '/metrics labels per-token runs apart',
  );
  const res2 = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    payload: {
      model: model.id,
      prompt: 'the cat',
      max_tokens: 3,
      stream: true,
      sparsity: 0.8,
      activation: 'token',
      n: 2,
      stream_options: { include_usage: true },
    },
  });
  const chunks = parseSse(res2.body).events as CompletionChunk[];
  t.equal(chunks.filter((c) => c.choices.some((ch) => ch.finish_reason !== null && ch.index === 1)).length, 1, 'streaming with n works unchanged');
  t.match(chunks[chunks.length - 1].sparsity, { tier: 's80', activation_source: 'token' });
  const greedyPair = await complete({ prompt: 'the cat', max_tokens: 3, sparsity: 0.8, activation: 'token', n: 2 });
  t.equal(greedyPair.choices[0].text, greedyPair.choices[1].text, 'n greedy choices select alike');
  const card = JSON.parse((await app.inject({ method: 'GET', url: '/v1/models' })).body).data[0];
  t.match(card.per_token, {
    selector: 'gate-rerank',
    selectors: ['gate', 'gate-rerank'],
    block: 1,
    tiers: [
      { name: 's50', neurons_per_layer: 50 },
      { name: 's80', neurons_per_layer: 20 },
    ],
  });
});

t.test('what the model cannot honour is a 400 naming the request field', async (t) => {
  const unknown = await refused({ sparsity: 's99' });
  t.equal(unknown.param, 'sparsity');
  t.match(unknown.message, /no tier 's99'.*dense, s50, s80/);
  const both = await refused({ sparsity: 0.5, latency_budget_ms: 100 });
  t.equal(both.param, 'latency_budget_ms');
  t.equal(both.type, 'invalid_request_error');
});

t.test('schema violations of the new fields name them', async (t) => {
  t.equal((await refused({ sparsity: 0.99 })).param, 'sparsity');
  t.equal((await refused({ sparsity: -0.1 })).param, 'sparsity');
  t.equal((await refused({ sparsity: true })).param, 'sparsity');
  t.equal((await refused({ latency_budget_ms: 0 })).param, 'latency_budget_ms');
  t.equal((await refused({ activation: 'dynamic' })).param, 'activation');
  t.equal((await refused({ sparse_prefill: 'yes' })).param, 'sparse_prefill');
});

t.test('null means not given for the new fields too', async (t) => {
  const res = await complete({ sparsity: null, latency_budget_ms: null, activation: null, sparse_prefill: null });
  t.equal(res.sparsity?.tier, 'dense');
});

t.test('a model without calibrated tiers refuses a sparsity, but accepts "dense"', async (t) => {
  const plain = await testServedModel();
  t.teardown(() => plain.close());
  const plainApp = await testApp(t, { models: [plain] });
  const res = await plainApp.inject({ method: 'POST', url: '/v1/completions', payload: { model: plain.id, prompt: 'Hi', max_tokens: 1, sparsity: 0.5 } });
  t.equal(res.statusCode, 400);
  t.match(res.json(), { error: { param: 'sparsity', code: 'no_tiers' } });
  const dense = await plainApp.inject({ method: 'POST', url: '/v1/completions', payload: { model: plain.id, prompt: 'Hi', max_tokens: 1, sparsity: 'dense' } });
  t.equal(dense.statusCode, 200);
});

t.test('a ParameterError from the engine, up front or while generating, is a 400 naming the snake_case field', async (t) => {
  const refusing = (id: string, when: 'check' | 'generate'): ServedModel =>
    wrap(
      model,
      id,
      // biome-ignore lint/correctness/useYield: the error must come from the first next(), as an engine's would, not from the generate() call
      async function* (): AsyncGenerator<GenerationDelta, GenerationResult> {
        throw new ParameterError('sparsePrefill', 'Not with this tier.');
      },
      {
        checkExecution: () => {
          if (when === 'check') throw new ParameterError('latencyBudgetMs', 'No profile to route by.', 'no_profile');
        },
      },
    );
  const wrapped = await testApp(t, { models: [refusing('check', 'check'), refusing('late', 'generate')] });
  for (const [id, param, code, stream] of [
    ['check', 'latency_budget_ms', 'no_profile', false],
    ['late', 'sparse_prefill', 'invalid_value', false],
    ['late', 'sparse_prefill', 'invalid_value', true],
  ] as const) {
    const res = await wrapped.inject({ method: 'POST', url: '/v1/completions', payload: { model: id, prompt: 'Hi', max_tokens: 2, stream } });
    t.equal(res.statusCode, 400, `${id}${stream ? ', streamed' : ''}: 400`);
    t.match(res.json(), { error: { type: 'invalid_request_error', param, code } });
  }
});
