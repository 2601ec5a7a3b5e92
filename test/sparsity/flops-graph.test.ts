/**
 * The analytic FLOP count against the serving graphs themselves: every MatMul node's operand
 * shapes, dense and pruned. Weight products have constant [in, out] operands (2 * in * out per
 * token); the two attention products per layer multiply over the context.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { DecoderBuilder } from '../../src/arch/decoder.js';
import { Graph } from '../../src/graph/graph.js';
import { loadModelDir } from '../../src/arch/load.js';
import { writeTestModel } from '../../src/arch/testmodel.js';
import type { ModelConfig, ModelWeights } from '../../src/model/types.js';
import { tokenFlops } from '../../src/sparsity/flops.js';
import { pruneMlp } from '../../src/sparsity/prune.js';

const dir = mkdtempSync(join(tmpdir(), 'flops-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** FLOPs of one decoded token at `context`, read off the graph's MatMul nodes. */
function graphFlops(config: ModelConfig, weights: ModelWeights, context: number): number {
  const g = new Graph();
  g.output(new DecoderBuilder(g, config, { cache: true }).build(weights), 'logits');
  let total = 0;
  let attention = 0;
  for (const node of g.nodes.filter((n) => n.op === 'MatMul')) {
    const [a, b] = node.inputs;
    const data = g.constantData(b);
    if (data) {
      const [inDim, outDim] = b.shape as number[];
      total += 2 * inDim * outDim;
    } else {
      // [batch, kvHeads, group, seq, x] @ [batch, kvHeads, 1, x, y]: one side is the context.
      const [, kvHeads, group] = a.shape as number[];
      t.equal(typeof kvHeads, 'number');
      total += 2 * kvHeads * group * config.headDim * context;
      attention++;
    }
  }
  t.equal(attention, 2 * config.numLayers, 'scores and weighted sum in every layer');
  return total;
}

for (const tie of [true, false]) {
  t.test(`analytic FLOPs equal the graph's (${tie ? 'tied' : 'separate'} head, GQA)`, async (t) => {
    const sub = join(dir, String(tie));
    await writeTestModel(sub, { hidden: 48, intermediate: 120, layers: 3, heads: 6, kvHeads: 2, headDim: 8, vocab: 300, maxPositions: 64, tie, seed: 2 });
    const { config, weights } = await loadModelDir(sub);
    for (const context of [1, 17, 64]) {
      t.equal(tokenFlops(config, context).total, graphFlops(config, weights, context), `dense, context ${context}`);
      const keep = [[0, 5, 7], [...Array(60).keys()], [119]];
      const kept = keep.map((k) => ({ mlp: k.length }));
      t.equal(tokenFlops(config, context, kept).total, graphFlops(config, pruneMlp(config, weights, keep), context), `pruned, context ${context}`);
    }
  });
}
