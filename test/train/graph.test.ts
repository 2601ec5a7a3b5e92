/** Weight gradients of the training graph against central finite differences (float64). */
import t from 'tap';
import { parseConfig } from '../../src/arch/config.js';
import { hfConfigJson, initialValues, resolveShape } from '../../src/arch/testmodel.js';
import { assembleWeights, tensorSpecs } from '../../src/arch/checkpoints.js';
import type { Architecture } from '../../src/model/types.js';
import { buildTrainingGraph, gradName } from '../../src/train/graph.js';
import { f64, i64, session } from '../helpers/ort.js';

function tinyModel(architecture: Architecture, tie: boolean) {
  // GPT-2's attention is multi-head.
  const kvHeads = architecture === 'GPT2LMHeadModel' ? 2 : 1;
  const shape = resolveShape({ architecture, hidden: 8, intermediate: 12, layers: 2, heads: 2, kvHeads, headDim: 4, vocab: 260, maxPositions: 16, tie });
  const config = parseConfig(hfConfigJson(shape), 'config.json');
  const specs = new Map(tensorSpecs(config).map((s) => [s.name, s.shape]));
  return { config, weights: assembleWeights(config, (n) => ({ shape: specs.get(n)!, data: initialValues(n, specs.get(n)!, 7) })) };
}

const variants: [Architecture, boolean][] = [
  ['LlamaForCausalLM', true],
  ['LlamaForCausalLM', false],
  // LayerNorm and GELU with their biases, the parallel block, half-rotated heads; learned positions and a tied head.
  ['PhiForCausalLM', false],
  ['GPT2LMHeadModel', true],
];
for (const [architecture, tie] of variants) {
  t.test(`every weight's gradient matches finite differences (${architecture}, ${tie ? 'tied' : 'separate'} head)`, async (t) => {
    const { config, weights } = tinyModel(architecture, tie);
    const { graph, parameters } = buildTrainingGraph(config, weights, true, 'float64');
    const s = await session(graph);
    const B = 2;
    const S = 5;
    const ids = [1, 40, 41, 42, 43, 7, 8, 9, 10, 11];
    const targets = [40, 41, 42, 43, 2, 8, 9, 10, 11, 2];
    const values = new Map([...parameters].map(([n, p]) => [n, Float64Array.from(p.init)]));
    const feeds = () => {
      const f: Record<string, ReturnType<typeof f64>> = {
        input_ids: i64(ids, [B, S]),
        position_ids: i64(
          ids.map((_, i) => i % S),
          [B, S],
        ),
        target_ids: i64(targets, [B, S]),
        target_weights: f64([1, 1, 1, 1, 0, 1, 1, 1, 1, 1], [B, S]),
      };
      for (const [n, p] of parameters) f[n] = f64(values.get(n)!, p.value.shape as number[]);
      return f;
    };
    const out = await s.run(feeds());
    const lossAt = async () => ((await s.run(feeds())).loss.data as Float64Array)[0];
    const h = 1e-5;
    let worst = 0;
    let checked = 0;
    for (const [name] of parameters) {
      const v = values.get(name)!;
      const analytic = out[gradName(name)].data as Float64Array;
      t.equal(analytic.length, v.length, `${name}: gradient has the weight's size`);
      // A few entries of every tensor: first, last, and one in between whose row holds a used token.
      for (const j of new Set([0, Math.floor(v.length / 2), 40 * 8 + 3, v.length - 1].filter((j) => j < v.length))) {
        const x0 = v[j];
        v[j] = x0 + h;
        const up = await lossAt();
        v[j] = x0 - h;
        const down = await lossAt();
        v[j] = x0;
        worst = Math.max(worst, Math.abs((up - down) / (2 * h) - analytic[j]));
        checked++;
      }
    }
    // As for single ops: h = 1e-5 in float64 leaves ~1e-9.
    t.ok(worst < 1e-7, `${checked} entries over ${parameters.size} tensors: max abs error ${worst.toExponential(2)}`);
    t.equal(parameters.has('lm_head.weight'), !tie, 'a tied head is the embedding');
  });
}
