/**
 * POST /v1/score: per-token logprobs, their sum and perplexity of continuations after a
 * prompt, consistent with what completions report for the same tokens, at any tier.
 */
import t from 'tap';
import type { ApiErrorBody } from '../../../src/openai/errors.js';
import type { Completion, ScoreResponse } from '../../../src/openai/schemas.js';
import { loadServedModel } from '../../../src/serve/engine.js';
import { testApp } from '../../helpers/app.js';
import { calibratedModelDir } from '../../helpers/calibrated-model.js';

const model = await loadServedModel(await calibratedModelDir(), { intraOpThreads: 1 });
t.teardown(() => model.close());
const app = await testApp(t, { models: [model] });

async function score(body: Record<string, unknown>): Promise<ScoreResponse> {
  const res = await app.inject({ method: 'POST', url: '/v1/score', payload: { model: model.id, ...body } });
  if (res.statusCode !== 200) throw new Error(`expected 200, got ${res.statusCode}: ${res.body}`);
  return res.json<ScoreResponse>();
}

async function refused(body: Record<string, unknown>, status = 400): Promise<ApiErrorBody['error']> {
  const res = await app.inject({ method: 'POST', url: '/v1/score', payload: { model: model.id, prompt: 'the cat', continuations: [' sat'], ...body } });
  t.equal(res.statusCode, status, `${status} for ${JSON.stringify(body)}`);
  return res.json<ApiErrorBody>().error;
}

/** The prompt's token logprobs as completions report them (echo, max_tokens 0), dense. */
async function echoedLogprobs(ids: number[], extra: Record<string, unknown> = {}): Promise<Array<number | null>> {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    payload: { model: model.id, prompt: ids, max_tokens: 0, echo: true, logprobs: 0, ...extra },
  });
  const lp = res.json<Completion>().choices[0].logprobs;
  if (lp === null) throw new Error('no logprobs');
  return lp.token_logprobs;
}

t.test('each continuation gets its tokens, logprobs, their sum and perplexity', async (t) => {
  const res = await score({ prompt: 'the cat sat on the', continuations: [' mat', ' dog and the park'], sparse_prefill: false });
  t.match(res.id, /^score-\w+$/);
  t.equal(res.object, 'score');
  t.equal(res.model, model.id);
  t.same(
    res.data.map((d) => d.index),
    [0, 1],
  );
  const promptIds = model.encode('the cat sat on the');
  for (const [i, text] of [' mat', ' dog and the park'].entries()) {
    const d = res.data[i];
    const joined = model.encode(`the cat sat on the${text}`);
    t.same(d.token_ids, joined.slice(promptIds.length), 'the tokens of the joined text after the prompt');
    t.equal(d.tokens.length, d.token_ids.length);
    t.equal(d.tokens.join(''), model.decode(joined).slice(model.decode(promptIds).length), 'the tokens spell the continuation');
    t.ok(
      d.token_logprobs.every((v) => v <= 0),
      'log-probabilities',
    );
    t.ok(Math.abs(d.logprob_sum - d.token_logprobs.reduce((a, b) => a + b, 0)) < 1e-9, 'the sum');
    t.ok(Math.abs(d.perplexity - Math.exp(-d.logprob_sum / d.token_logprobs.length)) < 1e-9, 'exp of minus the mean');
    t.type(d.greedy, 'boolean');
    // The same numbers as completions give for the joined tokens, dense.
    const echoed = await echoedLogprobs(joined);
    t.same(d.token_logprobs, echoed.slice(promptIds.length), 'agrees with echo + logprobs of /v1/completions');
  }
  const tokens = res.data.reduce((sum, d) => sum + promptIds.length + d.token_ids.length, 0);
  t.equal(res.usage.prompt_tokens, tokens, 'every token of every sequence is processed');
  t.equal(res.usage.completion_tokens, 0);
  t.equal(res.usage.total_tokens, tokens);
  t.match(res.sparsity, { tier: 'dense', activation_source: 'dense', sparse_prefill: false });
});

t.test('token ids are used as given, for prompt and continuations', async (t) => {
  const prompt = model.encode('one two three');
  const cont = model.encode(' four five', false);
  const res = await score({ prompt, continuations: [cont, cont.slice(0, 1)] });
  t.same(res.data[0].token_ids, cont);
  t.same(res.data[1].token_ids, cont.slice(0, 1));
  t.equal(res.data[1].token_logprobs[0], res.data[0].token_logprobs[0], 'the same first token after the same prompt scores the same');
});

t.test('a string continuation after a token-id prompt is tokenized alone', async (t) => {
  const prompt = model.encode('one two three');
  const res = await score({ prompt, continuations: [' four'] });
  t.same(res.data[0].token_ids, model.encode(' four', false));
});

t.test('greedy: true for exactly the most likely next token of the vocabulary', async (t) => {
  const prompt = model.encode('the cat sat on the');
  const scores: Array<{ id: number; logprob: number; greedy: boolean }> = [];
  for (let first = 0; first < model.vocabSize; first += 64) {
    const ids = Array.from({ length: Math.min(64, model.vocabSize - first) }, (_, i) => [first + i]);
    const res = await score({ prompt, continuations: ids, sparse_prefill: false });
    for (const d of res.data) scores.push({ id: d.token_ids[0], logprob: d.logprob_sum, greedy: d.greedy });
  }
  t.equal(scores.length, model.vocabSize);
  const greedy = scores.filter((s) => s.greedy);
  t.equal(greedy.length, 1, 'one token is the argmax');
  t.equal(greedy[0]?.logprob, Math.max(...scores.map((s) => s.logprob)));
  const total = scores.reduce((sum, s) => sum + Math.exp(s.logprob), 0);
  t.ok(Math.abs(total - 1) < 1e-3, `the probabilities of all next tokens sum to 1 (${total})`);
});

t.test('at a tier: scoring runs the prompt sparse by default, and reports it', async (t) => {
  const body = { prompt: 'the cat sat on the', continuations: [' mat'] };
  const dense = await score(body);
  const s80 = await score({ ...body, sparsity: 0.8 });
  t.match(s80.sparsity, { tier: 's80', activation_source: 'static', sparse_prefill: true });
  t.ok((s80.usage.flops_executed ?? Infinity) < (dense.usage.flops_executed ?? 0), 'fewer FLOPs');
  t.equal(s80.usage.flops_dense, dense.usage.flops_dense);
  t.not(s80.data[0].logprob_sum, dense.data[0].logprob_sum, 'pruned neurons change the scores');
  const densePrefill = await score({ ...body, sparsity: 0.8, sparse_prefill: false });
  t.equal(densePrefill.sparsity?.sparse_prefill, false);
  t.equal(densePrefill.data[0].logprob_sum, dense.data[0].logprob_sum, 'a dense prefill scores as dense (no decode step runs)');
  const named = await score({ ...body, sparsity: 's50' });
  t.equal(named.sparsity?.tier, 's50');
});

t.test('per-token activation: every scored position selects its own neurons', async (t) => {
  const body = { prompt: 'the cat sat on the', continuations: [' mat'] };
  const dense = await score(body);
  const token = await score({ ...body, sparsity: 0.8, activation: 'token' });
  t.match(token.sparsity, { tier: 's80', activation_source: 'token', sparse_prefill: true, selector: 'gate-rerank' });
  t.ok((token.usage.flops_executed ?? Infinity) < (dense.usage.flops_executed ?? 0), 'fewer FLOPs');
  t.not(token.data[0].logprob_sum, dense.data[0].logprob_sum, 'dropped neurons change the scores');
});

t.test('bad requests are 400s naming the field', async (t) => {
  t.equal((await refused({ continuations: [] })).param, 'continuations');
  t.equal((await refused({ continuations: [''] })).param, 'continuations');
  t.equal((await refused({ continuations: new Array(65).fill(' a') })).param, 'continuations');
  t.equal((await refused({ continuations: [' a', [1]] })).param, 'continuations');
  t.equal((await refused({ continuations: [[model.vocabSize]] })).param, 'continuations');
  t.equal((await refused({ prompt: [model.vocabSize] })).param, 'prompt');
  t.equal((await refused({ prompt: [] })).param, 'prompt');
  t.equal((await refused({ sparsity: 's99' })).param, 'sparsity');
  t.equal((await refused({ activation: 'sometimes' })).param, 'activation');
  const long = await refused({ continuations: [new Array(model.contextLength).fill(1)] });
  t.equal(long.code, 'context_length_exceeded');
  t.equal((await refused({ model: 'nope' }, 404)).code, 'model_not_found');
});
