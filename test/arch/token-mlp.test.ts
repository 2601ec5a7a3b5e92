/**
 * Per-token selection inside the serving graph computes what the dense graph computes with
 * every other neuron zeroed at that position: the masked graph, fed the very sets the
 * selecting graph reports, gives the same logits, in a prompt pass (every position selects its
 * own neurons) and in decode steps over a cache.
 */
import t from 'tap';
import { defaultBlock, gateFirstWeights, neuronMajorDown, type PredictorWeights, type TokenSelection } from '../../src/arch/token-mlp.js';
import { loadModelDir } from '../../src/arch/load.js';
import { createRng } from '../../src/random.js';
import { DecoderSession, mlpMaskName } from '../../src/runtime/session.js';
import { tokenFeeds } from '../../src/sparsity/selectors.js';
import * as ort from 'onnxruntime-node';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../src/project.js';
import { writeTestModel } from '../../src/arch/testmodel.js';
import type { ModelConfig } from '../../src/model/types.js';

const stories = await loadModelDir(join(PROJECT_ROOT, 'models', 'stories260K'));
const root = mkdtempSync(join(tmpdir(), 'token-mlp-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));
// A GELU MLP with biases (Phi-2's layout; GPT-2's MLP is the same): its selector's activations are the neurons' own.
const phi = await loadModelDir((await writeTestModel(join(root, 'phi'), { architecture: 'PhiForCausalLM', seed: 3 })).dir);
const { config, weights } = stories;

/** Masks from the selecting graph's reported blocks: [layers][positions * F]. */
function masksOf(selected: BigInt64Array[], positions: number, B: number, F: number): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  selected.forEach((blocks, l) => {
    const mask = new Float32Array(positions * F);
    const kept = blocks.length / positions;
    for (let p = 0; p < positions; p++) {
      for (let j = 0; j < kept; j++) mask.fill(1, p * F + Number(blocks[p * kept + j]) * B, p * F + (Number(blocks[p * kept + j]) + 1) * B);
    }
    feeds[mlpMaskName(l)] = new ort.Tensor('float32', mask, [1, positions, F]);
  });
  return feeds;
}

const rand = createRng(11);
const gaussian = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
const rank = 8;
const predictorFor = (c: ModelConfig): PredictorWeights[] =>
  Array.from({ length: c.numLayers }, () => ({
    a: gaussian(c.hiddenSize * rank, 0.3),
    b: gaussian(rank * c.intermediateSize, 0.3),
    bias: gaussian(c.intermediateSize, 0.1),
  }));

function selectionsFor(c: ModelConfig): TokenSelection[] {
  const B = defaultBlock(c.intermediateSize);
  const predictor = predictorFor(c);
  const selections: TokenSelection[] = [
    { selector: 'gate', block: B, outputSelected: true },
    { selector: 'predictor', block: B, rank, layers: predictor, outputSelected: true },
    { selector: 'gate', block: 1, outputSelected: true },
    { selector: 'predictor', block: 1, rank, layers: predictor, outputSelected: true },
  ];
  // Reranking by exact outputs is for gated MLPs (a GELU MLP's gate-first scores are exact already).
  if (c.mlp === 'swiglu') selections.push({ selector: 'gate', block: 1, rerank: true, outputSelected: true });
  return selections;
}

for (const [model, { config, weights }] of [
  ['stories260K', stories],
  ['Phi-2 layout', phi],
] as const) {
  const F = config.intermediateSize;
  const V = config.vocabSize;
  const masked = await DecoderSession.create(config, weights, { intraOpThreads: 1 }, { mlpMask: true });
  t.teardown(() => masked.release());
  for (const selection of selectionsFor(config)) {
    t.test(
      `${model}: ${selection.selector}${'rerank' in selection && selection.rerank ? ' (reranked)' : ''}, blocks of ${selection.block}: equal to the dense graph masked with the same sets`,
      async (t) => {
        const session = await DecoderSession.create(config, weights, { intraOpThreads: 1 }, { tokenSelection: selection });
        t.teardown(() => session.release());
        const nb = F / selection.block;
        const keptBlocks = Math.round(0.3 * nb);
        const blocks = tokenFeeds(F, selection, keptBlocks);
        const prompt = [1, 403, 407, 261, 378, 270, 1000].map((id) => id % V);

        const sparse = await session.forward(prompt, session.emptyCache(), prompt.length, blocks);
        t.equal(sparse.selected!.length, config.numLayers);
        t.equal(sparse.selected![0].length, prompt.length * keptBlocks, 'each position keeps token_blocks blocks');
        const perPosition = [...Array(prompt.length).keys()].map((p) => [...sparse.selected![0].subarray(p * keptBlocks, (p + 1) * keptBlocks)].join());
        t.ok(new Set(perPosition).size > 1, 'positions choose different blocks');
        const reference = await masked.forward(prompt, masked.emptyCache(), prompt.length, masksOf(sparse.selected!, prompt.length, selection.block, F));
        // float32 sums in another order (gathered rows against the masked dense product): 1e-4 on
        // logits of size ~10 is about 30 ulps.
        t.ok(maxDiff(sparse.logits, reference.logits) < 1e-4, `prompt pass logits agree (max diff ${maxDiff(sparse.logits, reference.logits)})`);

        let a = sparse;
        let b = reference;
        for (const token of [300, 301, 302]) {
          a = await session.forward([token % V], a.cache, 1, blocks);
          b = await masked.forward([token % V], b.cache, 1, masksOf(a.selected!, 1, selection.block, F));
          t.ok(maxDiff(a.logits, b.logits) < 1e-4, `decode step logits agree (max diff ${maxDiff(a.logits, b.logits)})`);
        }
        const dense = await masked.forward(
          prompt,
          masked.emptyCache(),
          prompt.length,
          masksOf(
            weights.layers.map(() => BigInt64Array.from({ length: prompt.length * nb }, (_, i) => BigInt(i % nb))),
            prompt.length,
            selection.block,
            F,
          ),
        );
        t.ok(maxDiff(sparse.logits, dense.logits) > 1e-2, 'and the selection changes the output');
      },
    );
  }
}

t.test("gate-first weights: the norms of each neuron's up row and down column", async (t) => {
  const w = weights.layers[0];
  const c = gateFirstWeights(w);
  const down = neuronMajorDown(w);
  const d = config.hiddenSize;
  const norm = (xs: ArrayLike<number>) => Math.sqrt(Array.from(xs).reduce((s, x) => s + x * x, 0));
  const F = config.intermediateSize;
  for (const i of [0, 5, F - 1]) {
    const downColumn = Array.from({ length: d }, (_, h) => w.down.data[h * F + i]);
    t.same(Array.from(down.subarray(i * d, (i + 1) * d)), downColumn, `row ${i} of the neuron-major down is column ${i}`);
    t.ok(Math.abs(c[i] - norm(w.up.data.subarray(i * d, (i + 1) * d)) * norm(downColumn)) < 1e-5);
  }
});

function maxDiff(x: Float32Array, y: Float32Array): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}
