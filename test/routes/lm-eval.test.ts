/**
 * What lm-evaluation-harness's `local-completions` model asks of a server, request for request:
 * the remote-tokenizer probes (GET /tokenizer_info with `eos_token`, POST /tokenize and
 * /detokenize as vLLM answers them) and the loglikelihood request (token-id prompt, echo,
 * logprobs 1, max_tokens 1, temperature 0).
 */
import t from 'tap';
import type { ApiErrorBody } from '../../src/openai/errors.js';
import type { Completion, DetokenizeResponse, TokenizeResponse, TokenizerInfo } from '../../src/openai/schemas.js';
import { listen, testApp } from '../helpers/app.js';
import { testServedModel } from '../helpers/served-model.js';

const model = await testServedModel();
t.teardown(() => model.close());
const app = await testApp(t, { models: [model] });
const base = await listen(app);

async function get<T>(path: string): Promise<{ status: number; json: T }> {
  const res = await fetch(base + path);
  return { status: res.status, json: (await res.json()) as T };
}

async function post<T>(path: string, body: unknown): Promise<{ status: number; json: T }> {
  const res = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as T };
}

t.test('GET /tokenizer_info reports eos_token, bos_token and the limits', async (t) => {
  const { status, json } = await get<TokenizerInfo>('/tokenizer_info');
  t.equal(status, 200);
  t.ok('eos_token' in json, 'the harness requires eos_token');
  t.equal(json.eos_token, model.eosToken);
  t.equal(json.bos_token, model.bosToken);
  t.equal(json.model_max_length, model.contextLength);
  t.equal(json.max_model_len, model.contextLength);
  t.equal(json.vocab_size, model.vocabSize);
  t.type(json.tokenizer_class, 'string');
  t.equal(json.model, model.id);
});

t.test('POST /tokenize as the harness calls it (no model, add_special_tokens false)', async (t) => {
  const { status, json } = await post<TokenizeResponse>('/tokenize', { prompt: 'test', add_special_tokens: false });
  t.equal(status, 200);
  t.same(json.tokens, model.encode('test', false));
  t.equal(json.count, json.tokens.length);
  t.equal(json.max_model_len, model.contextLength);
});

t.test('add_special_tokens defaults to true, as in vLLM', async (t) => {
  const { json } = await post<TokenizeResponse>('/tokenize', { prompt: 'Once upon a time', model: model.id });
  t.same(json.tokens, model.encode('Once upon a time'));
});

t.test('the eos token tokenizes to one id, which is how the harness finds eos_token_id', async (t) => {
  if (model.eosToken === null) throw new Error('the test model has an eos token');
  const { json } = await post<TokenizeResponse>('/tokenize', { prompt: model.eosToken, add_special_tokens: false });
  t.equal(json.tokens.length, 1);
  const back = await post<DetokenizeResponse>('/detokenize', { tokens: json.tokens });
  t.equal(back.status, 200);
  t.ok(back.json.prompt === model.eosToken || back.json.prompt === '', 'the id is the eos token (decoded as itself, or skipped as special)');
});

t.test('POST /detokenize inverts /tokenize', async (t) => {
  const text = 'The little dog ran home.';
  const { json } = await post<TokenizeResponse>('/tokenize', { prompt: text, add_special_tokens: false });
  const { status, json: back } = await post<DetokenizeResponse>('/detokenize', { tokens: json.tokens });
  t.equal(status, 200);
  t.equal(back.prompt, text);
});

t.test('tokenizer endpoints: bad input in OpenAI error shape', async (t) => {
  const unknown = await post<ApiErrorBody>('/tokenize', { prompt: 'x', model: 'nope' });
  t.equal(unknown.status, 404);
  t.equal(unknown.json.error.param, 'model');
  const missing = await post<ApiErrorBody>('/tokenize', { add_special_tokens: true });
  t.equal(missing.status, 400);
  t.equal(missing.json.error.param, 'prompt');
  const outside = await post<ApiErrorBody>('/detokenize', { tokens: [1, model.vocabSize] });
  t.equal(outside.status, 400);
  t.equal(outside.json.error.param, 'tokens');
  t.equal(outside.json.error.code, 'invalid_token_id');
  const info = await get<ApiErrorBody>('/tokenizer_info?model=nope');
  t.equal(info.status, 404);
});

t.test('without a model the tokenizer endpoints answer 503', async (t) => {
  const empty = await testApp(t, { models: [] });
  const res = await empty.inject({ method: 'GET', url: '/tokenizer_info' });
  t.equal(res.statusCode, 503);
  t.equal(res.json<ApiErrorBody>().error.code, 'not_ready');
});

t.test("the loglikelihood request of local-completions: every prompt token's logprob and top alternative", async (t) => {
  // The harness sends context + continuation as token ids, batched as a list of lists.
  const context = model.encode('Once upon a time');
  const continuation = model.encode(' there was a cat', false);
  const shorter = model.encode(' the end', false);
  const prompts = [
    [...context, ...continuation],
    [...context, ...shorter],
  ];
  const { status, json } = await post<Completion>('/v1/completions', {
    model: model.id,
    prompt: prompts,
    max_tokens: 1,
    logprobs: 1,
    echo: true,
    temperature: 0,
    seed: 1234,
  });
  t.equal(status, 200);
  t.equal(json.choices.length, prompts.length);
  for (const [i, ids] of prompts.entries()) {
    const choice = json.choices.find((c) => c.index === i);
    const lp = choice?.logprobs;
    if (lp == null) throw new Error(`choice ${i}: logprobs missing`);
    // max_tokens 1 adds one generated token after the echoed prompt.
    t.equal(lp.tokens.length, ids.length + 1, `choice ${i}: one entry per prompt token, then the new one`);
    t.equal(lp.token_logprobs.length, lp.tokens.length);
    t.equal(lp.top_logprobs.length, lp.tokens.length);
    t.equal(lp.token_logprobs[0], null, 'the first token has no logprob');
    t.equal(lp.top_logprobs[0], null);
    for (let k = 1; k < lp.tokens.length; k++) {
      const logprob = lp.token_logprobs[k];
      t.ok(typeof logprob === 'number' && logprob <= 0, `choice ${i} token ${k}: a logprob`);
      const top = lp.top_logprobs[k];
      if (top === null) throw new Error(`choice ${i} token ${k}: top_logprobs missing`);
      const values = Object.values(top);
      t.ok(values.length >= 1 && values.length <= 2, 'a dict of the top token (and the chosen one)');
      // What the harness computes: is_greedy = the top alternative's logprob is the token's.
      t.ok(Math.max(...values) >= (logprob ?? 0) - 1e-6, 'the top alternative is at least as likely');
    }
    t.equal(lp.tokens.join(''), choice?.text, 'tokens spell the echoed text');
  }
  // The harness sums the continuation's logprobs: they are the ones after the context.
  const lp = json.choices[0].logprobs;
  const sum = lp?.token_logprobs.slice(context.length, context.length + continuation.length).reduce<number>((a, b) => a + (b ?? 0), 0);
  const scored = await post<{ data: Array<{ logprob_sum: number }> }>('/v1/score', {
    model: model.id,
    prompt: context,
    continuations: [continuation],
    sparse_prefill: false,
  });
  t.ok(sum !== undefined && Math.abs(sum - scored.json.data[0].logprob_sum) < 1e-9, 'the same log-likelihood as /v1/score');
});
