/** Serving at sparsity tiers: what runs, what it computes, what it reports. */
import t from 'tap';
import { loadModelDir } from '../../src/arch/load.js';
import { argmax } from '../../src/runtime/sampling.js';
import { loadServedModel } from '../../src/serve/engine.js';
import { DecoderSession } from '../../src/runtime/session.js';
import { ParameterError, type ExecutionOptions, type SamplingParams } from '../../src/runtime/types.js';
import { generationFlops } from '../../src/sparsity/flops.js';
import { readMaskFile } from '../../src/sparsity/masks.js';
import { pruneMlp } from '../../src/sparsity/prune.js';
import { calibratedModelDir } from '../helpers/calibrated-model.js';
import { GREEDY, generateAll, testServedModel } from '../helpers/served-model.js';

const dir = await calibratedModelDir();
const model = await loadServedModel(dir, { intraOpThreads: 1 });
t.teardown(() => model.close());
const prompt = model.encode('the cat sat on the mat and');

const run = (execution: ExecutionOptions, params: Partial<SamplingParams> = {}, promptIds = prompt) =>
  generateAll(model, promptIds, { ...GREEDY, ...params }, execution);

t.test('the model lists dense and its calibrated tiers with profiles and traffic bounds', async (t) => {
  const tiers = model.tiers();
  t.same(
    tiers.map((x) => [x.name, x.sparsity, x.neuronsPerLayer]),
    [
      ['dense', 0, 100],
      ['s50', 0.5, 50],
      ['s80', 0.8, 20],
    ],
  );
  t.ok(
    tiers.every((x) => x.loaded && x.profile !== null && x.profile.decodeMsPerToken > 0),
    'preloaded and measured',
  );
  t.equal(tiers[0].trafficBound, 1);
  t.ok(tiers[1].trafficBound > 1 && tiers[2].trafficBound > tiers[1].trafficBound, 'fewer neurons, fewer bytes per token');
});

t.test('static sparsity: dense prefill, then the pruned graph decodes', async (t) => {
  const { ids, result } = await run({ sparsity: 0.8 });
  t.match(result.sparsity, { tier: 's80', sparsity: 0.8, activationSource: 'static', sparsePrefill: false });
  // The same by hand: a dense prefill, then greedy steps through a session of pruned weights.
  const { config, weights } = await loadModelDir(dir);
  const keep = readMaskFile(dir, model.model.weightsHash, config)!.tiers[1].layers.map((l) => l.mlp);
  const dense = await DecoderSession.create(config, weights, { intraOpThreads: 1 });
  const sparse = await DecoderSession.create(config, pruneMlp(config, weights, keep), { intraOpThreads: 1 });
  let step = await dense.forward(prompt, dense.emptyCache());
  const expected: number[] = [];
  for (let i = 0; i < GREEDY.maxTokens; i++) {
    expected.push(argmax(step.logits));
    if (i + 1 < GREEDY.maxTokens) step = await sparse.forward([expected[i]], step.cache);
  }
  t.same(ids, expected);
  const denseIds = (await run({})).ids;
  t.not(ids.join(), denseIds.join(), 'and it is not the dense output');
  await dense.release();
  await sparse.release();
});

t.test('a sparsity between tiers runs the nearest tier at or below it; names select tiers', async (t) => {
  t.equal((await run({ sparsity: 0.79 })).result.sparsity!.tier, 's50');
  t.equal((await run({ sparsity: 0.95 })).result.sparsity!.tier, 's80');
  t.equal((await run({ sparsity: 0.3 })).result.sparsity!.tier, 'dense');
  t.equal((await run({ sparsity: 's50' })).result.sparsity!.tier, 's50');
});

t.test('FLOPs: dense and executed as the graphs run them', async (t) => {
  // Each run its own prompt: a repeated prompt reuses the last prompt pass (and costs no FLOPs).
  let fresh = 0;
  const freshRun = (execution: ExecutionOptions) => run(execution, {}, [...prompt.slice(0, -1), 40 + fresh++]);
  const dense = (await freshRun({})).result;
  t.equal(dense.cachedPromptTokens, 0);
  const cfg = model.model.config;
  const shape = { promptTokens: prompt.length, decodeSteps: GREEDY.maxTokens - 1, promptLogits: 1 };
  t.equal(dense.flopsDense, generationFlops(cfg, shape, [], []));
  t.equal(dense.flopsExecuted, dense.flopsDense);
  const s80 = (await freshRun({ sparsity: 0.8 })).result;
  t.equal(s80.flopsDense, dense.flopsDense, 'the same work asked');
  t.equal(s80.flopsExecuted, generationFlops(cfg, shape, [], [{ mlp: 20 }, { mlp: 20 }]));
  t.ok(s80.sparsity!.flopRatio < 1 && s80.sparsity!.flopRatio === s80.flopsExecuted! / s80.flopsDense!);
  const sparsePrefill = (await freshRun({ sparsity: 0.8, sparsePrefill: true })).result;
  t.ok(sparsePrefill.flopsExecuted! < s80.flopsExecuted!, 'a sparse prefill saves more');
  t.equal(sparsePrefill.sparsity!.sparsePrefill, true);
  const repeated = (await run({ sparsity: 0.8, sparsePrefill: true }, {}, [...prompt.slice(0, -1), 40 + fresh - 1])).result;
  t.equal(repeated.cachedPromptTokens, prompt.length, 'the same prompt again reuses its pass');
  t.equal(repeated.flopsExecuted, generationFlops(cfg, { ...shape, prefillRan: false }, [], [{ mlp: 20 }, { mlp: 20 }]), 'and counts decode only');
  const nothing = (await run({ sparsity: 0.8, sparsePrefill: true }, { maxTokens: 0 }, [...prompt.slice(0, -1), 40 + fresh - 1])).result;
  t.match(nothing, { flopsDense: 0, flopsExecuted: 0, sparsity: { flopRatio: 1 } }, 'a reused prompt and no new token: no work, ratio 1');
});

t.test('a latency budget picks the densest tier predicted to fit', async (t) => {
  const loose = (await run({ latencyBudgetMs: 1e7 })).result.sparsity!;
  t.match(loose, { tier: 'dense', budgetMs: 1e7, budgetMet: true });
  const tight = (await run({ latencyBudgetMs: 1e-6 })).result.sparsity!;
  t.match(tight, { tier: 's80', budgetMet: false }, 'none fits: the sparsest, flagged');
  t.ok(tight.predictedMs! > 1e-6);
  // A budget between the dense and the sparsest prediction selects by the profiles.
  const profiles = model.tiers().map((x) => x.profile!);
  const predicted = (i: number) => prompt.length * profiles[0].prefillMsPerToken + GREEDY.maxTokens * profiles[i].decodeMsPerToken;
  const between = (await run({ latencyBudgetMs: predicted(0) * 0.999999 })).result.sparsity!;
  t.not(between.tier, 'dense', 'just under the dense prediction: not dense');
});

t.test('requests the model cannot honour are refused naming the parameter', async (t) => {
  t.throws(() => model.checkExecution({ sparsity: 's70' }), { name: 'ParameterError', param: 'sparsity', message: /no tier 's70'.*dense, s50, s80/ });
  t.throws(() => model.checkExecution({ sparsity: 0.5, latencyBudgetMs: 10 }), { name: 'ParameterError', param: 'latency_budget_ms' });
  t.throws(() => model.checkExecution({ latencyBudgetMs: -1 }), { name: 'ParameterError', param: 'latency_budget_ms' });
  const plain = await testServedModel();
  t.throws(() => plain.checkExecution({ sparsity: 0.5 }), ParameterError);
  t.throws(() => plain.checkExecution({ sparsity: 0.5 }), { name: 'ParameterError', code: 'no_tiers', message: /npm run calibrate/ });
  t.doesNotThrow(() => plain.checkExecution({ sparsity: 0 }), 'dense is always there');
  await plain.close();
});
