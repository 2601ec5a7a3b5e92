/** The decoding loop's contract (src/runtime/types.ts), on a generated model. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { loadModelDir } from '../../src/arch/load.js';
import { writeTestModel } from '../../src/arch/testmodel.js';
import { Engine, loadServedModel } from '../../src/serve/engine.js';
import { logSoftmax } from '../../src/runtime/sampling.js';
import { DecoderSession } from '../../src/runtime/session.js';
import type { GenerationDelta, GenerationResult, SamplingParams, ServedModel } from '../../src/runtime/types.js';

const dir = mkdtempSync(join(tmpdir(), 'engine-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
await writeTestModel(dir, { hidden: 32, intermediate: 64, layers: 2, heads: 4, kvHeads: 2, headDim: 8, vocab: 300, maxPositions: 64, seed: 9 });
const model = await loadServedModel(dir, { intraOpThreads: 1 });
t.teardown(() => model.close());

const greedy: SamplingParams = { maxTokens: 12, temperature: 0, topP: 1, topK: -1, stop: [], logprobs: null, echo: false };

async function run(m: ServedModel, ids: number[], params: Partial<SamplingParams>, signal?: AbortSignal) {
  const deltas: GenerationDelta[] = [];
  const it = m.generate(ids, { ...greedy, ...params }, signal);
  let r = await it.next();
  for (; !r.done; r = await it.next()) deltas.push(r.value);
  return { deltas, text: deltas.map((d) => d.text).join(''), ids: deltas.flatMap((d) => d.tokens.map((x) => x.id)), result: r.value as GenerationResult };
}

const prompt = model.encode('the cat sat on');

t.test('max_tokens bounds the completion and finishes with length', async (t) => {
  const r = await run(model, prompt, { maxTokens: 7 });
  t.equal(r.ids.length, 7);
  t.match(r.result, { finishReason: 'length', promptTokens: prompt.length, completionTokens: 7 });
  t.equal(r.text, r.deltas.flatMap((d) => d.tokens.map((x) => x.text)).join(''), 'token texts add up to the text');
});

t.test('sampling with a seed is reproducible', async (t) => {
  const a = await run(model, prompt, { temperature: 1, seed: 42, maxTokens: 20 });
  const b = await run(model, prompt, { temperature: 1, seed: 42, maxTokens: 20 });
  const c = await run(model, prompt, { temperature: 1, seed: 43, maxTokens: 20 });
  t.same(a.ids, b.ids);
  t.not(a.ids.join(), c.ids.join(), 'another seed, another sample');
  const k1 = await run(model, prompt, { temperature: 1, topK: 1, seed: 5 });
  t.same(k1.ids, (await run(model, prompt, {})).ids, 'top_k 1 samples the greedy tokens');
});

t.test('a stop string ends the text before it', async (t) => {
  const full = await run(model, prompt, { maxTokens: 30 });
  const stop = full.text.slice(8, 10);
  t.ok(stop.length === 2, `stop string "${stop}" taken from the unstopped output`);
  const cut = await run(model, prompt, { maxTokens: 30, stop: [stop, 'never appears'] });
  t.equal(cut.text, full.text.slice(0, full.text.indexOf(stop)));
  t.equal(cut.result.finishReason, 'stop');
  t.equal(cut.deltas.flatMap((d) => d.tokens.map((x) => x.text)).join(''), cut.text, 'tokens trimmed to the text');
});

t.test('echo with logprobs scores the prompt as a full forward does', async (t) => {
  const r = await run(model, prompt, { echo: true, logprobs: 3, maxTokens: 2 });
  const echo = r.deltas[0];
  t.same(
    echo.tokens.map((x) => x.id),
    prompt,
    'the prompt comes first',
  );
  t.equal(echo.tokens[0].logprob, null, 'the first token has no context');
  const { config, weights } = await loadModelDir(dir);
  const session = await DecoderSession.create(config, weights, { intraOpThreads: 1 });
  const { logits } = await session.forward(prompt, session.emptyCache(), prompt.length);
  const V = config.vocabSize;
  for (let i = 1; i < prompt.length; i++) {
    const expected = logSoftmax(logits.subarray((i - 1) * V, i * V))[prompt[i]];
    t.ok(Math.abs(echo.tokens[i].logprob! - expected) < 1e-5, `prompt token ${i}: ${echo.tokens[i].logprob} vs ${expected}`);
    t.ok(echo.tokens[i].top!.length >= 3 && echo.tokens[i].top!.length <= 4, 'top 3, plus the token itself when not among them');
  }
  const gen = r.deltas.slice(1).flatMap((d) => d.tokens);
  t.equal(gen.length, 2);
  t.ok(
    gen.every((x) => x.top![0].logprob === x.logprob),
    'a greedy token is the most likely',
  );
  await session.release();

  const only = await run(model, prompt, { echo: true, logprobs: 1, maxTokens: 0 });
  t.equal(only.deltas.length, 1, 'max_tokens 0: the prompt only');
  t.equal(only.result.completionTokens, 0);
});

t.test('an aborted signal stops generation between tokens', async (t) => {
  const controller = new AbortController();
  const it = model.generate(prompt, { ...greedy, maxTokens: 50 }, controller.signal);
  await it.next();
  controller.abort();
  let r = await it.next();
  let after = 0;
  for (; !r.done; r = await it.next()) after++;
  t.ok(after <= 1, 'at most the pending delta after the abort');
  t.ok(r.value.completionTokens < 50);
});

t.test('an EOS token ends generation without adding text', async (t) => {
  const first = (await run(model, prompt, { maxTokens: 1 })).ids[0];
  const loaded = await loadModelDir(dir);
  loaded.config.eosTokenIds = [first];
  const eosModel = new Engine(loaded, { intraOpThreads: 1 });
  const r = await run(eosModel, prompt, { maxTokens: 10 });
  t.equal(r.text, '');
  t.match(r.result, { finishReason: 'stop', promptTokens: prompt.length, completionTokens: 1 });
  await eosModel.close();
});

t.test('bad prompts are refused before any work', async (t) => {
  t.throws(() => model.generate([1, 300], greedy), /token id 300 is outside the vocabulary \[0, 300\)/);
  t.throws(() => model.generate([], greedy), /no tokens/);
  t.throws(() => model.generate(prompt, { ...greedy, maxTokens: 64 }), /exceeds the context length 64/);
});
