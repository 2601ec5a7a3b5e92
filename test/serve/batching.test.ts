/**
 * Continuous batching: sequences that run at the same time decode together, one graph run per
 * step, joining after their (chunked) prefill and leaving when they finish or are cancelled.
 * Batched greedy outputs equal unbatched ones token for token, on both shipped models (one whose
 * GroupQueryAttention applies RoPE itself, one with the RotaryEmbedding op before it), at a
 * static tier and with per-token selection.
 */
import t from 'tap';
import { loadServedModel, type Engine } from '../../src/serve/engine.js';
import type { ExecutionOptions, SamplingParams } from '../../src/runtime/types.js';

const greedy: SamplingParams = { maxTokens: 12, temperature: 0, topP: 1, topK: -1, stop: [], logprobs: null, echo: false };

async function ids(
  model: Engine,
  prompt: number[],
  params: Partial<SamplingParams>,
  execution: ExecutionOptions = {},
  started?: () => void,
): Promise<number[]> {
  const out: number[] = [];
  for await (const delta of model.generate(prompt, { ...greedy, ...params }, undefined, execution)) {
    out.push(...delta.tokens.map((token) => token.id));
    started?.();
  }
  return out;
}

/** Prompts of different lengths (several prefill chunks for the long ones), and when each stops. */
function requests(model: Engine) {
  const texts = [
    'Once upon a time',
    'The little dog ran to the park and saw a big red ball under the tree',
    'She said',
    'In the morning the sun was bright and the birds sang in the garden while the children played',
  ];
  // Earlier ones run longer, so that later ones join while they decode and leave before them.
  return texts.map((text, i) => ({ prompt: model.encode(text), maxTokens: 21 - 5 * i }));
}

for (const name of ['default', 'stories260K']) {
  t.test(`${name}: batched greedy outputs equal unbatched ones`, async (t) => {
    const dir = new URL(`../../models/${name}`, import.meta.url).pathname;
    // Chunks of 5 prompt tokens, and at most 3 rows: the fourth request waits for a row.
    const batched = await loadServedModel(dir, { intraOpThreads: 1, prefillChunkTokens: 5, maxBatchSize: 3 });
    const whole = await loadServedModel(dir, { intraOpThreads: 1, prefillChunkTokens: 1024 });
    t.teardown(() => Promise.all([batched.close(), whole.close()]));

    for (const execution of [{}, { sparsity: 0.5 }, { sparsity: 0.5, activation: 'token' as const }]) {
      const reqs = requests(batched);
      const alone: number[][] = [];
      for (const r of reqs) alone.push(await ids(whole, r.prompt, { maxTokens: r.maxTokens }, execution));
      t.ok(
        alone.every((a, i) => a.length === reqs[i].maxTokens || a.length > 0),
        'every request generates',
      );

      const before = batched.batching();
      // Each starts once the previous one has its first token, so that it joins a running batch.
      const firstTokens = reqs.map(() => {
        let resolve = () => {};
        const promise = new Promise<void>((done) => (resolve = done));
        return { promise, resolve };
      });
      const together = await Promise.all(
        reqs.map(async (r, i) => {
          if (i > 0) await firstTokens[i - 1].promise;
          return ids(batched, r.prompt, { maxTokens: r.maxTokens }, execution, firstTokens[i].resolve);
        }),
      );
      t.same(together, alone, `${JSON.stringify(execution)}: token for token`);
      const after = batched.batching();
      const steps = after.steps - before.steps;
      const rows = after.sequenceSteps - before.sequenceSteps;
      t.ok(rows > steps, `${JSON.stringify(execution)}: steps ran several sequences (${rows} sequence steps in ${steps} runs)`);
      t.ok(after.maxRows <= 3, 'never more rows than MAX_BATCH_SIZE');
    }
  });
}

t.test('a cancelled sequence leaves the batch and the others go on unchanged', async (t) => {
  const model = await loadServedModel(new URL('../../models/default', import.meta.url).pathname, { intraOpThreads: 1 });
  t.teardown(() => model.close());
  const [a, b, c] = requests(model);
  const aloneA = await ids(model, a.prompt, { maxTokens: 20 });
  const aloneC = await ids(model, c.prompt, { maxTokens: 20 });
  const controller = new AbortController();
  const cancelled = (async () => {
    const out: number[] = [];
    for await (const delta of model.generate(b.prompt, { ...greedy, maxTokens: 20 }, controller.signal)) {
      out.push(...delta.tokens.map((token) => token.id));
      if (out.length >= 3) controller.abort();
    }
    return out;
  })();
  const [gotA, gotB, gotC] = await Promise.all([ids(model, a.prompt, { maxTokens: 20 }), cancelled, ids(model, c.prompt, { maxTokens: 20 })]);
  t.ok(model.batching().maxRows >= 2, 'they ran batched');
  t.same(gotA, aloneA);
  t.same(gotC, aloneC);
  t.ok(gotB.length >= 3 && gotB.length < 20, `the cancelled one stopped early (${gotB.length} tokens)`);
});

t.test('dense sequences batch together whatever activation they asked for; other tiers run as their own batches', async (t) => {
  const model = await loadServedModel(new URL('../../models/default', import.meta.url).pathname, { intraOpThreads: 1 });
  t.teardown(() => model.close());
  const [a, b, c] = requests(model);
  await Promise.all([ids(model, a.prompt, { maxTokens: 12 }), ids(model, b.prompt, { maxTokens: 12 }, { activation: 'token' })]);
  t.equal(model.batching().maxRows, 2, 'dense and dense-with-activation-token share steps');
  const before = model.batching();
  await Promise.all([ids(model, a.prompt, { maxTokens: 12 }), ids(model, c.prompt, { maxTokens: 12 }, { sparsity: 0.5 })]);
  const after = model.batching();
  t.equal(after.sequenceSteps - before.sequenceSteps, after.steps - before.steps, 'dense and s50: one sequence per step, two batches');
});
