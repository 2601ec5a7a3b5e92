/**
 * POST /v1/completions (non-streaming): what an OpenAI legacy-completions client can rely on.
 * Written against behaviour every model has, never against particular generated text.
 */
import t from 'tap';
import type { Completion } from '../../../src/openai/schemas.js';
import { testApp } from '../../helpers/app.js';
import { testServedModel } from '../../helpers/served-model.js';

const model = await testServedModel();
t.teardown(() => model.close());
const app = await testApp(t, { models: [model] });

async function complete(body: Record<string, unknown>): Promise<Completion> {
  const res = await app.inject({ method: 'POST', url: '/v1/completions', payload: { model: model.id, ...body } });
  if (res.statusCode !== 200) throw new Error(`expected 200, got ${res.statusCode}: ${res.body}`);
  t.match(res.headers['content-type'], /^application\/json/);
  return res.json<Completion>();
}

const codePoints = (s: string): number => [...s].length;

t.test('a completion has the shape of OpenAI legacy completions', async (t) => {
  const res = await complete({ prompt: 'Once upon a time', max_tokens: 5 });
  t.match(res.id, /^cmpl-\w+$/);
  t.equal(res.object, 'text_completion');
  t.equal(res.model, model.id);
  t.ok(Number.isInteger(res.created) && Math.abs(res.created - Date.now() / 1000) < 60, 'created is a unix time in seconds');
  t.equal(res.choices.length, 1);
  const [choice] = res.choices;
  t.equal(choice.index, 0);
  t.type(choice.text, 'string');
  t.equal(choice.logprobs, null);
  t.ok(choice.finish_reason === 'stop' || choice.finish_reason === 'length');
  t.equal(res.usage.prompt_tokens, model.encode('Once upon a time').length);
  t.equal(res.usage.total_tokens, res.usage.prompt_tokens + res.usage.completion_tokens);
});

t.test('max_tokens bounds the completion; finishing by length means exactly max_tokens', async (t) => {
  for (const maxTokens of [1, 3, 8]) {
    const res = await complete({ prompt: 'The cat', max_tokens: maxTokens, temperature: 0 });
    t.ok(res.usage.completion_tokens <= maxTokens, `at most ${maxTokens} tokens`);
    if (res.choices[0].finish_reason === 'length') t.equal(res.usage.completion_tokens, maxTokens);
  }
});

t.test('max_tokens defaults to 16', async (t) => {
  const res = await complete({ prompt: 'The cat', temperature: 0 });
  t.ok(res.usage.completion_tokens <= 16);
  if (res.choices[0].finish_reason === 'length') t.equal(res.usage.completion_tokens, 16);
});

t.test('max_tokens 0 generates nothing', async (t) => {
  const res = await complete({ prompt: 'The cat', max_tokens: 0 });
  t.equal(res.choices[0].text, '');
  t.equal(res.usage.completion_tokens, 0);
});

t.test('n choices per prompt, indexed prompt * n + j, usage counting each prompt once', async (t) => {
  const prompts = ['One day', 'The dog'];
  const res = await complete({ prompt: prompts, n: 3, max_tokens: 4, seed: 7 });
  t.same(
    res.choices.map((c) => c.index),
    [0, 1, 2, 3, 4, 5],
  );
  const promptTokens = prompts.reduce((sum, p) => sum + model.encode(p).length, 0);
  t.equal(res.usage.prompt_tokens, promptTokens);
  t.ok(res.usage.completion_tokens <= 6 * 4);
});

t.test('token-id prompts are used as given', async (t) => {
  const ids = model.encode('Hello there');
  const fromIds = await complete({ prompt: ids, max_tokens: 6, temperature: 0 });
  const fromText = await complete({ prompt: 'Hello there', max_tokens: 6, temperature: 0 });
  t.equal(fromIds.usage.prompt_tokens, ids.length);
  t.equal(fromIds.choices[0].text, fromText.choices[0].text, 'the same tokens give the same greedy completion');

  const batch = await complete({ prompt: [ids, ids.slice(0, 2)], max_tokens: 2 });
  t.equal(batch.choices.length, 2);
  t.equal(batch.usage.prompt_tokens, ids.length + 2);
});

t.test('greedy decoding is deterministic', async (t) => {
  const a = await complete({ prompt: 'Once upon a time', max_tokens: 10, temperature: 0 });
  const b = await complete({ prompt: 'Once upon a time', max_tokens: 10, temperature: 0 });
  t.equal(a.choices[0].text, b.choices[0].text);
});

t.test('the same seed gives the same sampled output', async (t) => {
  const body = { prompt: 'Once upon a time', max_tokens: 10, temperature: 1, top_p: 0.9, top_k: 20, seed: 1234, n: 2 };
  const a = await complete(body);
  const b = await complete(body);
  t.same(
    a.choices.map((c) => c.text),
    b.choices.map((c) => c.text),
  );
});

t.test('a stop string ends the completion before its first occurrence', async (t) => {
  const prompt = 'Once upon a time';
  const free = await complete({ prompt, max_tokens: 12, temperature: 0 });
  const text = free.choices[0].text;
  if (text.length < 2) {
    t.pass('the model produced too little text to cut; nothing to check');
    return;
  }
  const stop = text.slice(Math.floor(text.length / 2), Math.floor(text.length / 2) + 2);
  const cut = await complete({ prompt, max_tokens: 12, temperature: 0, stop: [stop, '\u0000never'] });
  t.equal(cut.choices[0].text, text.slice(0, text.indexOf(stop)));
  t.equal(cut.choices[0].finish_reason, 'stop');

  const asString = await complete({ prompt, max_tokens: 12, temperature: 0, stop });
  t.equal(asString.choices[0].text, cut.choices[0].text, 'stop may be a single string');
});

t.test('echo returns the prompt before the completion', async (t) => {
  const prompt = 'Once upon a time';
  const plain = await complete({ prompt, max_tokens: 5, temperature: 0 });
  const echoed = await complete({ prompt, max_tokens: 5, temperature: 0, echo: true });
  const promptText = model.decode(model.encode(prompt));
  t.ok(echoed.choices[0].text.startsWith(promptText), 'starts with the decoded prompt');
  t.equal(echoed.choices[0].text, promptText + plain.choices[0].text);
  t.equal(echoed.usage.completion_tokens, plain.usage.completion_tokens);
});

t.test('logprobs: one entry per token, top alternatives, offsets into the text', async (t) => {
  const res = await complete({ prompt: 'Once upon a time', max_tokens: 6, logprobs: 3, seed: 3 });
  const [choice] = res.choices;
  const lp = choice.logprobs;
  if (lp === null) throw new Error('logprobs missing');
  t.equal(lp.token_logprobs.length, lp.tokens.length);
  t.equal(lp.top_logprobs.length, lp.tokens.length);
  t.equal(lp.text_offset.length, lp.tokens.length);
  t.equal(lp.tokens.join(''), choice.text, 'the tokens spell the text');
  if (choice.finish_reason === 'length') t.equal(lp.tokens.length, res.usage.completion_tokens);
  let offset = 0;
  lp.tokens.forEach((token, i) => {
    t.equal(lp.text_offset[i], offset, `offset of token ${i}`);
    offset += codePoints(token);
    const logprob = lp.token_logprobs[i];
    t.ok(logprob !== null && logprob <= 0, 'a log-probability');
    const top = lp.top_logprobs[i] as Record<string, number> | null;
    if (top === null) throw new Error('top_logprobs entry missing');
    const alternatives = Object.values(top);
    t.ok(alternatives.length >= 1 && alternatives.length <= 4, 'up to logprobs + 1 alternatives');
    t.ok(alternatives.every((v) => v <= 0));
    // Keyed by the tokenizer's spelling, which may differ from the token's text (partial UTF-8).
    t.ok(alternatives.includes(logprob as number), 'the chosen token is among the alternatives');
  });
});

t.test('logprobs 0 still reports each token and its logprob', async (t) => {
  const res = await complete({ prompt: 'Once upon a time', max_tokens: 4, logprobs: 0, temperature: 0 });
  const lp = res.choices[0].logprobs;
  if (lp === null) throw new Error('logprobs missing');
  t.equal(lp.tokens.join(''), res.choices[0].text);
  t.ok(lp.token_logprobs.every((v) => v !== null && v <= 0));
});

t.test('echo + logprobs + max_tokens 0 scores the prompt (as evaluation harnesses ask)', async (t) => {
  const ids = model.encode('Once upon a time');
  const res = await complete({ prompt: ids, max_tokens: 0, echo: true, logprobs: 1 });
  const [choice] = res.choices;
  const lp = choice.logprobs;
  if (lp === null) throw new Error('logprobs missing');
  t.equal(choice.text, model.decode(ids));
  t.equal(lp.tokens.length, ids.length, 'one entry per prompt token');
  t.equal(lp.tokens.join(''), choice.text);
  t.equal(lp.token_logprobs[0], null, 'the first token has no context to be predicted from');
  t.equal(lp.top_logprobs[0], null);
  t.ok(lp.token_logprobs.slice(1).every((v) => v !== null && v <= 0));
  t.equal(lp.text_offset[0], 0, 'offsets count from the start of the echoed prompt');
  t.equal(res.usage.completion_tokens, 0);
});

t.test('null means "not given" for optional fields', async (t) => {
  const res = await complete({
    prompt: 'Hi',
    max_tokens: null,
    temperature: null,
    top_p: null,
    top_k: null,
    seed: null,
    stop: null,
    n: null,
    stream: null,
    logprobs: null,
    echo: null,
    suffix: null,
    presence_penalty: 0,
    frequency_penalty: null,
    logit_bias: {},
    user: 'someone',
    best_of: 1,
  });
  t.equal(res.choices.length, 1);
  t.ok(res.usage.completion_tokens <= 16);
});

t.test('unknown fields are ignored', async (t) => {
  const res = await complete({ prompt: 'Hi', max_tokens: 1, some_future_option: true });
  t.equal(res.choices.length, 1);
});
