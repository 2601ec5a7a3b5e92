/** Per-token activation as served: what runs, what it computes, what it reports. */
import t from 'tap';
import { loadModelDir } from '../../src/arch/load.js';
import { loadServedModel } from '../../src/serve/engine.js';
import { argmax } from '../../src/runtime/sampling.js';
import { DecoderSession } from '../../src/runtime/session.js';
import type { ExecutionOptions, SamplingParams } from '../../src/runtime/types.js';
import { generationFlops } from '../../src/sparsity/flops.js';
import { keptBlocks, tokenFeeds, tokenKeptUnits, tokenSelection } from '../../src/sparsity/selectors.js';
import { calibratedModelDir } from '../helpers/calibrated-model.js';
import { GREEDY, generateAll, testServedModel } from '../helpers/served-model.js';

const dir = await calibratedModelDir();
const model = await loadServedModel(dir, { intraOpThreads: 1 });
t.teardown(() => model.close());
const prompt = model.encode('the cat sat on the mat and');

const run = (execution: ExecutionOptions, params: Partial<SamplingParams> = {}, promptIds = prompt) =>
  generateAll(model, promptIds, { ...GREEDY, ...params }, execution);

t.test('the model lists its per-token tiers: reranked gate-first without a trained predictor', async (t) => {
  const info = model.tokenActivation();
  t.match(info, { selector: 'gate-rerank', selectors: ['gate', 'gate-rerank'], block: 1 });
  t.same(
    info.tiers.map((x) => [x.name, x.neuronsPerLayer]),
    [
      ['s50', 50],
      ['s80', 20],
    ],
    'single neurons of 100',
  );
  t.ok(
    info.tiers.every((x) => x.loaded && x.profile !== null && x.profile.decodeMsPerToken > 0),
    'preloaded and measured',
  );
  t.ok(info.tiers[0].trafficBound > 1 && info.tiers[1].trafficBound > info.tiers[0].trafficBound);
});

t.test('activation "token": a dense prefill, then each step selects its own neurons in the graph', async (t) => {
  const { ids, result } = await run({ sparsity: 0.8, activation: 'token' });
  t.match(result.sparsity, { tier: 's80', sparsity: 0.8, activationSource: 'token', selector: 'gate-rerank', block: 1, sparsePrefill: false });
  // The same by hand: the dense session's prefill, then the per-token session keeping 20 neurons.
  const loaded = await loadModelDir(dir);
  const dense = await DecoderSession.create(loaded.config, loaded.weights, { intraOpThreads: 1 });
  const selection = tokenSelection(loaded, 'gate-rerank');
  const token = await DecoderSession.create(loaded.config, loaded.weights, { intraOpThreads: 1 }, { tokenSelection: selection });
  const blocks = tokenFeeds(100, selection, keptBlocks(100, 1, 0.8));
  let step = await dense.forward(prompt, dense.emptyCache());
  const expected: number[] = [];
  for (let i = 0; i < GREEDY.maxTokens; i++) {
    expected.push(argmax(step.logits));
    if (i + 1 < GREEDY.maxTokens) step = await token.forward([expected[i]], step.cache, 1, blocks);
  }
  t.same(ids, expected);
  t.not(ids.join(), (await run({})).ids.join(), 'and it is not the dense output');
  // FLOPs: the kept neurons, plus gate-first's dense gate rows of the dropped ones and the up rows of the candidates it dropped.
  const shape = { promptTokens: prompt.length, decodeSteps: GREEDY.maxTokens - 1, promptLogits: 1 };
  t.equal(result.flopsExecuted, generationFlops(loaded.config, shape, [], tokenKeptUnits(loaded.config, selection, 20)));
  t.ok(result.flopsExecuted! < result.flopsDense!, 'fewer FLOPs than dense');
  await dense.release();
  await token.release();
});

t.test('per-token tiers by name, sparse prefill, dense at 0, and budgets route among them', async (t) => {
  t.equal((await run({ sparsity: 's50', activation: 'token' })).result.sparsity!.tier, 's50');
  t.match((await run({ sparsity: 0, activation: 'token' })).result.sparsity, { tier: 'dense', activationSource: 'dense' });
  const sparse = (await run({ sparsity: 0.8, activation: 'token', sparsePrefill: true }, {}, [...prompt, 7])).result;
  const decodeOnly = (await run({ sparsity: 0.8, activation: 'token' }, {}, [...prompt, 8])).result;
  t.equal(sparse.sparsity!.sparsePrefill, true);
  t.ok(sparse.flopsExecuted! < decodeOnly.flopsExecuted!, 'a per-token prompt pass saves more');
  const tight = (await run({ latencyBudgetMs: 1e-6, activation: 'token' })).result.sparsity!;
  t.match(tight, { tier: 's80', activationSource: 'token', budgetMet: false });
  t.throws(() => model.checkExecution({ sparsity: 's70', activation: 'token' }), { name: 'ParameterError', param: 'sparsity', message: /dense, s50, s80/ });
});

t.test('a model without calibrated tiers still serves per-token activation at the default sparsities', async (t) => {
  const plain = await testServedModel();
  t.teardown(() => plain.close());
  t.doesNotThrow(() => plain.checkExecution({ sparsity: 0.5, activation: 'token' }));
  t.same(
    plain.tokenActivation!().tiers.map((x) => x.name),
    ['s25', 's50', 's70', 's80', 's90'],
  );
});
