/**
 * Bad input gets a clear error in OpenAI's shape, never a crash: one test per kind of bad
 * input, each against a real listening server, each followed by a request that must still
 * succeed.
 */
import t, { type Test } from 'tap';
import type { ApiErrorBody } from '../../../src/openai/errors.js';
import { listen, testApp } from '../../helpers/app.js';
import { failingModel } from '../../helpers/models.js';
import { testServedModel } from '../../helpers/served-model.js';

const model = await testServedModel();
t.teardown(() => model.close());
const BODY_LIMIT = 64 * 1024;
const app = await testApp(t, { models: [model, failingModel(model)], bodyLimit: BODY_LIMIT });
const base = await listen(app);

async function send(body: string, contentType = 'application/json', path = '/v1/completions'): Promise<{ status: number; json: ApiErrorBody }> {
  const res = await fetch(base + path, { method: 'POST', headers: { 'content-type': contentType }, body });
  return { status: res.status, json: (await res.json()) as ApiErrorBody };
}

/** Checks the error's shape and that the server then still completes a prompt. */
async function expectError(t: Test, res: { status: number; json: ApiErrorBody }, status: number, param: string | null, message?: RegExp): Promise<void> {
  t.equal(res.status, status, 'status');
  t.same(Object.keys(res.json).sort(), ['error']);
  t.same(Object.keys(res.json.error).sort(), ['code', 'message', 'param', 'type']);
  t.equal(res.json.error.type, status >= 500 ? 'server_error' : 'invalid_request_error');
  t.equal(res.json.error.param, param, 'param names the offending parameter');
  t.type(res.json.error.message, 'string');
  if (message !== undefined) t.match(res.json.error.message, message);
  const after = await fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: model.id, prompt: 'Hello', max_tokens: 2 }),
  });
  t.equal(after.status, 200, 'the server still serves completions afterwards');
  await after.arrayBuffer();
}

const valid = { model: model.id, prompt: 'Hello', max_tokens: 2 };
const withBody = (patch: Record<string, unknown>): string => JSON.stringify({ ...valid, ...patch });
const without = (name: string): string => JSON.stringify(Object.fromEntries(Object.entries(valid).filter(([k]) => k !== name)));

// Schema violations: 400 naming the parameter and saying what was expected.
const schemaCases: Array<[string, string, string, RegExp]> = [
  ['missing model', without('model'), 'model', /model/],
  ['missing prompt', without('prompt'), 'prompt', /prompt/],
  ['model not a string', withBody({ model: 3 }), 'model', /string/],
  ['prompt of the wrong type', withBody({ prompt: true }), 'prompt', /expected a string/],
  ['empty prompt array', withBody({ prompt: [] }), 'prompt', /prompt/],
  ['empty token-id array inside a batch', withBody({ prompt: [[1], []] }), 'prompt', /prompt\[1\]/],
  ['negative token id', withBody({ prompt: [1, -1] }), 'prompt', /prompt\[1\].*>= 0/],
  ['mixed prompt array', withBody({ prompt: ['a', 1] }), 'prompt', /prompt/],
  ['temperature above 2', withBody({ temperature: 2.5 }), 'temperature', /0 to 2/],
  ['temperature as a string', withBody({ temperature: '0.5' }), 'temperature', /number/],
  ['top_p of 0', withBody({ top_p: 0 }), 'top_p', /\(0, 1\]/],
  ['top_p above 1', withBody({ top_p: 1.5 }), 'top_p', /\(0, 1\]/],
  ['top_k below -1', withBody({ top_k: -2 }), 'top_k', /top_k/],
  ['negative max_tokens', withBody({ max_tokens: -1 }), 'max_tokens', />= 0/],
  ['fractional max_tokens', withBody({ max_tokens: 1.5 }), 'max_tokens', /integer/],
  ['n of 0', withBody({ n: 0 }), 'n', /1 to 16/],
  ['n above 16', withBody({ n: 17 }), 'n', /1 to 16/],
  ['five stop strings', withBody({ stop: ['a', 'b', 'c', 'd', 'e'] }), 'stop', /up to 4/],
  ['an empty stop string', withBody({ stop: '' }), 'stop', /non-empty/],
  ['logprobs above 20', withBody({ logprobs: 21 }), 'logprobs', /0 to 20/],
  ['seed not an integer', withBody({ seed: 'abc' }), 'seed', /integer/],
  ['stream not a boolean', withBody({ stream: 'yes' }), 'stream', /boolean/],
  ['echo not a boolean', withBody({ echo: 1 }), 'echo', /boolean/],
  ['stream_options.include_usage not a boolean', withBody({ stream: true, stream_options: { include_usage: 'y' } }), 'stream_options', /include_usage/],
];
for (const [name, body, param, message] of schemaCases) {
  t.test(`400 for ${name}`, async (t) => {
    await expectError(t, await send(body), 400, param, message);
  });
}

// Accepted by the schema for compatibility, but not implemented: refused rather than ignored.
const unsupportedCases: Array<[string, Record<string, unknown>, string]> = [
  ['a suffix', { suffix: 'end' }, 'suffix'],
  ['a presence_penalty', { presence_penalty: 0.5 }, 'presence_penalty'],
  ['a frequency_penalty', { frequency_penalty: -1 }, 'frequency_penalty'],
  ['a logit_bias', { logit_bias: { '5': 10 } }, 'logit_bias'],
  ['best_of above n', { best_of: 3 }, 'best_of'],
  ['stream_options without streaming', { stream_options: { include_usage: true } }, 'stream_options'],
];
for (const [name, patch, param] of unsupportedCases) {
  t.test(`400 for ${name}`, async (t) => {
    await expectError(t, await send(withBody(patch)), 400, param, new RegExp(param));
  });
}

t.test('404 model_not_found for an unknown model', async (t) => {
  const res = await send(withBody({ model: 'no-such-model' }));
  await expectError(t, res, 404, 'model', /no-such-model/);
  t.equal(res.json.error.code, 'model_not_found');
});

t.test('400 when the prompt alone exceeds the context window', async (t) => {
  const ids = new Array<number>(model.contextLength + 1).fill(model.encode('a', false)[0] ?? 1);
  const res = await send(withBody({ prompt: ids, max_tokens: 0 }));
  await expectError(t, res, 400, 'prompt', new RegExp(`maximum context length is ${model.contextLength} tokens`));
  t.equal(res.json.error.code, 'context_length_exceeded');
});

t.test('400 when prompt + max_tokens exceed the context window', async (t) => {
  const ids = new Array<number>(model.contextLength - 3).fill(model.encode('a', false)[0] ?? 1);
  const res = await send(withBody({ prompt: ids, max_tokens: 10 }));
  await expectError(
    t,
    res,
    400,
    'max_tokens',
    new RegExp(`maximum context length is ${model.contextLength} tokens; the prompt has ${ids.length} and max_tokens is 10`),
  );
});

t.test('a prompt filling the context window exactly is accepted', async (t) => {
  const ids = new Array<number>(model.contextLength - 2).fill(model.encode('a', false)[0] ?? 1);
  const res = await fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: withBody({ prompt: ids, max_tokens: 2 }),
  });
  t.equal(res.status, 200);
  await res.arrayBuffer();
});

t.test('400 for a token id outside the vocabulary', async (t) => {
  const res = await send(withBody({ prompt: [1, model.vocabSize] }));
  await expectError(t, res, 400, 'prompt', new RegExp(`\\[0, ${model.vocabSize}\\)`));
  t.equal(res.json.error.code, 'invalid_token_id');
});

t.test('400 for a token id outside the vocabulary in a batch of prompts', async (t) => {
  await expectError(t, await send(withBody({ prompt: [[1], [model.vocabSize + 10]] })), 400, 'prompt', /prompt 1/);
});

t.test('400 for a body that is not valid JSON', async (t) => {
  await expectError(t, await send('{"model": "x", '), 400, null, /JSON/);
});

t.test('400 for an empty JSON body', async (t) => {
  await expectError(t, await send(''), 400, null, /JSON/);
});

t.test('400 for a JSON body that is not an object', async (t) => {
  await expectError(t, await send('[1, 2]'), 400, null, /JSON object/);
});

t.test('413 for a body over the limit', async (t) => {
  const res = await send(withBody({ prompt: 'x'.repeat(BODY_LIMIT) }));
  await expectError(t, res, 413, null, new RegExp(`${BODY_LIMIT} bytes`));
});

t.test('415 for a body that is not JSON at all', async (t) => {
  const res = await send(withBody({}), 'application/xml');
  await expectError(t, res, 415, null);
});

t.test('404 in the same shape for an unknown route', async (t) => {
  const res = await fetch(`${base}/v1/chat/nothing`);
  await expectError(t, { status: res.status, json: (await res.json()) as ApiErrorBody }, 404, null, /\/v1\/chat\/nothing/);
});

t.test('500 in the same shape when the engine fails, and the server keeps serving', async (t) => {
  const res = await send(withBody({ model: 'failing' }));
  await expectError(t, res, 500, null);
  t.notMatch(res.json.error.message, /simulated/, 'internal details stay in the log');
});
