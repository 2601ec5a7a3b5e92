/**
 * The reference forward is itself checked against llama2.c: stories260K's logits (numpy
 * forward, equal to run.c's within 7e-6) and run.c's greedy completions. Everything else that
 * trusts the reference inherits these checks.
 */
import t from 'tap';
import { loadModelDir } from '../../src/arch/load.js';
import { writeTestModel } from '../../src/arch/testmodel.js';
import type { HostTensor, ModelWeights } from '../../src/model/types.js';
import { argmax, referenceGreedy, referenceLogits } from './reference.js';
import { readStoriesReference, STORIES_DIR } from './stories.js';

t.test('stories260K: top-5 logits at the last prompt position match reference.json', async (t) => {
  const { config, weights } = await loadModelDir(STORIES_DIR);
  const check = readStoriesReference().logits_check;
  const logits = referenceLogits(config, weights, check.prompt_ids);
  t.equal(logits.length, check.prompt_ids.length, 'one row per position');
  const last = logits[check.position];
  t.equal(last.length, config.vocabSize);
  const top5 = [...last.keys()].sort((a, b) => last[b] - last[a]).slice(0, 5);
  t.same(
    top5,
    check.top5.map(([id]) => id),
    'the same five tokens in the same order',
  );
  for (const [id, value] of check.top5) {
    t.ok(Math.abs(last[id] - value) <= 1e-4, `logit of ${id}: ${last[id]} vs ${value}`);
  }
});

t.test("stories260K: greedy decoding reproduces run.c's 32 tokens for every prompt", async (t) => {
  const { config, weights } = await loadModelDir(STORIES_DIR);
  const reference = readStoriesReference();
  for (const p of reference.prompts) {
    t.same(referenceGreedy(config, weights, p.prompt_ids, reference.max_new_tokens), p.completion_ids, p.prompt);
  }
});

t.test('stories260K: teacher-forced logits agree with greedy decoding', async (t) => {
  // Logits over prompt + completion at once must pick each next completion token: the
  // per-position rows of referenceLogits are what a prefill graph will be compared with.
  const { config, weights } = await loadModelDir(STORIES_DIR);
  const p = readStoriesReference().prompts[1];
  const logits = referenceLogits(config, weights, [...p.prompt_ids, ...p.completion_ids]);
  const picks = p.completion_ids.map((_, i) => argmax(logits[p.prompt_ids.length - 1 + i]));
  t.same(picks, p.completion_ids);
});

/** A k/v projection (or bias) with each head's block of rows repeated `times` in place: [h0, h0, h1, h1, ...]. */
function repeatHeads(w: HostTensor, kvHeads: number, headDim: number, times: number): HostTensor {
  const cols = w.shape.length === 2 ? w.shape[1] : 1;
  const out = new Float32Array(w.data.length * times);
  let o = 0;
  for (let h = 0; h < kvHeads; h++) {
    const block = w.data.subarray(h * headDim * cols, (h + 1) * headDim * cols);
    for (let r = 0; r < times; r++, o += block.length) out.set(block, o);
  }
  return { shape: w.shape.length === 2 ? [kvHeads * times * headDim, cols] : [kvHeads * times * headDim], data: out };
}

t.test('GQA: query head h reads KV head floor(h / group), as HF repeat_kv does', async (t) => {
  // Copying each KV head to every query head of its group must give an equivalent MHA model.
  const dir = t.testdir();
  await writeTestModel(dir, { architecture: 'Qwen2ForCausalLM', heads: 6, kvHeads: 2, headDim: 8 });
  const { config, weights } = await loadModelDir(dir);
  const group = config.numHeads / config.numKvHeads;
  const mha: ModelWeights = {
    ...weights,
    layers: weights.layers.map((l) => ({
      ...l,
      k: repeatHeads(l.k, config.numKvHeads, config.headDim, group),
      v: repeatHeads(l.v, config.numKvHeads, config.headDim, group),
      kBias: l.kBias && repeatHeads(l.kBias, config.numKvHeads, config.headDim, group),
      vBias: l.vBias && repeatHeads(l.vBias, config.numKvHeads, config.headDim, group),
    })),
  };
  const tokens = [1, 40, 41, 42, 43];
  const gqa = referenceLogits(config, weights, tokens);
  const full = referenceLogits({ ...config, numKvHeads: config.numHeads }, mha, tokens);
  let worst = 0;
  for (let p = 0; p < tokens.length; p++) for (let i = 0; i < gqa[p].length; i++) worst = Math.max(worst, Math.abs(gqa[p][i] - full[p][i]));
  t.ok(worst < 1e-9, `max difference ${worst}`);
});

t.test('biases and norm weights change the output (the reference does not ignore them)', async (t) => {
  const dir = t.testdir();
  await writeTestModel(dir, { architecture: 'Qwen2ForCausalLM', seed: 3 });
  const { config, weights } = await loadModelDir(dir);
  const tokens = [1, 100, 200];
  const base = referenceLogits(config, weights, tokens)[2];
  const ones = (n: number): HostTensor => ({ shape: [n], data: new Float32Array(n).fill(1) });
  const variants: [string, ModelWeights][] = [
    ['no k bias', { ...weights, layers: weights.layers.map((l) => ({ ...l, kBias: undefined })) }],
    ['unit post-attention norm', { ...weights, layers: weights.layers.map((l) => ({ ...l, postNorm: ones(config.hiddenSize) })) }],
    ['unit final norm', { ...weights, norm: ones(config.hiddenSize) }],
  ];
  for (const [name, w] of variants) {
    const other = referenceLogits(config, w, tokens)[2];
    t.ok(
      other.some((v, i) => Math.abs(v - base[i]) > 1e-3),
      name,
    );
  }
});

t.test('a tied head is the embedding matrix', async (t) => {
  const dir = t.testdir();
  await writeTestModel(dir, { tie: false, seed: 6 });
  const { config, weights } = await loadModelDir(dir);
  const tied = referenceLogits({ ...config, tieWordEmbeddings: true }, { ...weights, lmHead: weights.embed }, [1, 5]);
  const untied = referenceLogits(config, weights, [1, 5]);
  t.ok(
    tied[1].some((v, i) => Math.abs(v - untied[1][i]) > 1e-3),
    'the separate head is used when there is one',
  );
});

t.test('referenceGreedy and referenceLogits reject bad input', async (t) => {
  const dir = t.testdir();
  const { config } = await writeTestModel(dir, { layers: 1 });
  const { weights } = await loadModelDir(dir);
  t.throws(() => referenceGreedy(config, weights, [], 3), /at least one prompt token/);
  t.throws(() => referenceLogits(config, weights, [config.vocabSize]), /outside the vocabulary/);
  t.same(referenceGreedy(config, weights, [1], 0), []);
});
