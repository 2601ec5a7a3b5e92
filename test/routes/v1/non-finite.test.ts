/**
 * A model whose weights are all finite but whose logits overflow float32 (an lm_head of
 * ±3e38): no response carries a NaN or an infinity as a logprob. Completions with logprobs
 * (JSON and streamed) and /v1/score answer 500 `non_finite_logits` instead of a serializer
 * failure (NaN) or nulls (infinity), while the same routes on a sound model answer 200.
 */
import { join } from 'node:path';
import t from 'tap';
import { readSafetensors, writeSafetensors } from '../../../src/model/safetensors.js';
import { writeTestModel } from '../../../src/arch/testmodel.js';
import type { ApiErrorBody } from '../../../src/openai/errors.js';
import type { Completion, ScoreResponse } from '../../../src/openai/schemas.js';
import { loadServedModel } from '../../../src/serve/engine.js';
import { testApp } from '../../helpers/app.js';

const SHAPE = { hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 8, tie: false, seed: 5 };
const root = t.testdir();
await writeTestModel(join(root, 'sound'), SHAPE);
await writeTestModel(join(root, 'overflow'), SHAPE);
const file = join(root, 'overflow', 'model.safetensors');
const tensors = readSafetensors(file);
// Finite (float32's largest is 3.4e38), so the load-time check passes; a dot product of 32 of
// them with the unit-size final hidden state is far beyond it.
tensors['lm_head.weight'].data.forEach((w, i, data) => {
  data[i] = w < 0 ? -3e38 : 3e38;
});
writeSafetensors(file, tensors);

const sound = await loadServedModel(join(root, 'sound'), { intraOpThreads: 1, preload: false });
const overflow = await loadServedModel(join(root, 'overflow'), { intraOpThreads: 1, preload: false });
t.teardown(async () => {
  await sound.close();
  await overflow.close();
});
const app = await testApp(t, { models: [sound, overflow] });

/** The requests that return logprobs, and how many nulls each rightly has (an echoed prompt's first token has no logprob). */
const REQUESTS: [string, string, Record<string, unknown>, number][] = [
  ['completion with logprobs', '/v1/completions', { prompt: 'the cat', max_tokens: 4, logprobs: 2, temperature: 0 }, 0],
  ['prompt scoring by echo', '/v1/completions', { prompt: 'the cat sat', max_tokens: 0, echo: true, logprobs: 1 }, 1],
  ['score', '/v1/score', { prompt: 'the cat', continuations: [' sat', ' ran'] }, 0],
];

/** Every logprob-like number of a response (token logprobs, alternatives, sums, perplexities); JSON writes an infinity as null. */
function logprobsOf(url: string, body: string): (number | null)[] {
  if (url === '/v1/score') return (JSON.parse(body) as ScoreResponse).data.flatMap((d) => [...d.token_logprobs, d.logprob_sum, d.perplexity]);
  return (JSON.parse(body) as Completion).choices.flatMap((c) => [
    ...(c.logprobs?.token_logprobs ?? []),
    ...(c.logprobs?.top_logprobs ?? []).flatMap((top) => Object.values(top ?? {})),
  ]);
}

t.test('a sound model answers every logprob request with finite numbers', async (t) => {
  for (const [what, url, body, nulls] of REQUESTS) {
    const res = await app.inject({ method: 'POST', url, payload: { model: sound.id, ...body } });
    t.equal(res.statusCode, 200, what);
    const values = logprobsOf(url, res.body);
    t.equal(values.filter((x) => x === null).length, nulls, `${what}: nulls only where there is no logprob`);
    t.ok(values.length > nulls && values.every((x) => x === null || Number.isFinite(x)), `${what}: every logprob finite`);
  }
});

t.test('non-finite logits become a 500 non_finite_logits, never a non-finite logprob', async (t) => {
  for (const [what, url, body] of REQUESTS) {
    const res = await app.inject({ method: 'POST', url, payload: { model: overflow.id, ...body } });
    t.equal(res.statusCode, 500, what);
    const { error } = res.json<ApiErrorBody>();
    t.match(error, { type: 'server_error', code: 'non_finite_logits' }, what);
    t.match(error.message, /non-finite values \(logprob (NaN|-?Infinity)/, `${what}: the message says what was not finite`);
  }
});

t.test('a streamed completion with logprobs fails before its first chunk, with a proper status', async (t) => {
  // The first token's logprobs are already non-finite, and the route takes the first chunk
  // before it commits to a 200 stream; a failure after that ends the stream with an error event
  // (sse.ts), whatever the error.
  const res = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    payload: { model: overflow.id, prompt: 'the cat', max_tokens: 4, logprobs: 1, stream: true },
  });
  t.equal(res.statusCode, 500);
  t.match(res.json<ApiErrorBody>().error, { type: 'server_error', code: 'non_finite_logits' });
});
