/**
 * Quantised serving graphs (DecoderGraphOptions.quant) against the independent TypeScript
 * reference run on the weights their codes stand for (`dequantizedWeights`), on stories260K (a
 * trained model: tied head, a down projection whose 172 inputs pad the last block of 32) and on
 * generated models: a separate head, Phi-2's layout and GPT-2's.
 *
 * - With MatMulNBits' accuracy level 0 the kernels compute in float32 on the dequantised codes,
 *   so the graphs must match the reference as a float32 graph does (bound 1e-5 relative rms;
 *   measured 3e-7 to 9e-7): this checks the layout (nibble order, scales per block, padding).
 * - As served (level 4) the kernels also round each block of 32 activations to int8 (half a
 *   step of max|block| / 127) before integer dot products; through every projection of every
 *   layer that moves the logits by 1.7-2.2% of their rms here (max over positions). Bound: 3%.
 *   A layout error moves them by a large fraction of their rms.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { DecoderBuilder } from '../../src/arch/decoder.js';
import { Graph } from '../../src/graph/graph.js';
import { loadModelDir } from '../../src/arch/load.js';
import { dequantizedWeights, QUANT_SPECS } from '../../src/model/quant.js';
import { writeTestModel } from '../../src/arch/testmodel.js';
import { DecoderSession } from '../../src/runtime/session.js';
import { referenceLogits } from '../helpers/reference.js';
import { STORIES_DIR } from '../helpers/stories.js';

/** Relative rms error allowed at each accuracy level (see above). */
const BOUNDS = { 0: 1e-5, 4: 0.03 } as const;

const root = mkdtempSync(join(tmpdir(), 'llama-quant-'));
t.teardown(() => rmSync(root, { recursive: true, force: true }));

/** rms(got - expected) / rms(expected). */
function relativeRms(got: ArrayLike<number>, expected: ArrayLike<number>): number {
  let e = 0;
  let s = 0;
  for (let i = 0; i < expected.length; i++) {
    e += (got[i] - expected[i]) ** 2;
    s += expected[i] ** 2;
  }
  return Math.sqrt(e / s);
}

async function modelDirs(): Promise<[string, string][]> {
  const generated = join(root, 'separate-head');
  await writeTestModel(generated, { seed: 11 });
  // LayerNorm, GELU and biases on every projection and on the head; GPT-2's learned positions stay float32.
  const phi = join(root, 'phi');
  await writeTestModel(phi, { architecture: 'PhiForCausalLM', seed: 12 });
  const gpt2 = join(root, 'gpt2');
  await writeTestModel(gpt2, { architecture: 'GPT2LMHeadModel', seed: 13 });
  return [
    ['stories260K', STORIES_DIR],
    ['a generated model with a separate head', generated],
    ["Phi-2's layout", phi],
    ["GPT-2's layout (tied head)", gpt2],
  ];
}

const prompt = [1, 103, 261, 107, 282, 260, 151, 178, 292, 285];
const next = [301, 270, 33];

for (const [name, dir] of await modelDirs()) {
  for (const [quant, stored] of Object.entries(QUANT_SPECS)) {
    for (const accuracyLevel of [0, 4] as const) {
      const spec = { ...stored, accuracyLevel };
      t.test(`${name}, ${quant}, accuracy level ${accuracyLevel}: prefill and decode match the reference on the dequantised weights`, async (t) => {
        const { config, weights } = await loadModelDir(dir);
        const expected = referenceLogits(config, dequantizedWeights(weights, spec), [...prompt, ...next]);
        const session = await DecoderSession.create(config, weights, { intraOpThreads: 1 }, { quant: spec });
        t.teardown(() => session.release());
        const V = config.vocabSize;
        const prefill = await session.forward(prompt, session.emptyCache(), prompt.length);
        let worst = 0;
        for (let p = 0; p < prompt.length; p++) worst = Math.max(worst, relativeRms(prefill.logits.subarray(p * V, (p + 1) * V), expected[p]));
        let cache = prefill.cache;
        for (const [i, id] of next.entries()) {
          const step = await session.forward([id], cache, 1);
          cache = step.cache;
          worst = Math.max(worst, relativeRms(step.logits, expected[prompt.length + i]));
        }
        t.ok(worst < BOUNDS[accuracyLevel], `largest relative rms error over ${prompt.length + next.length} positions: ${worst.toExponential(2)}`);
        // And the weights were quantised: against the unrounded weights' logits the graph is off by
        // more than a float32 graph would be (the level-0 bound), which an ignored `quant` is not.
        const unrounded = referenceLogits(config, weights, prompt);
        const fromFloat = relativeRms(prefill.logits.subarray((prompt.length - 1) * V), unrounded[prompt.length - 1]);
        t.ok(fromFloat > BOUNDS[0], `differs from the float32 model: ${fromFloat.toExponential(2)}`);
      });
    }
  }
}

t.test('the quantised graph reads every weight through the quantised kernels', async (t) => {
  const { config, weights } = await loadModelDir(STORIES_DIR);
  const g = new Graph('llama');
  g.output(new DecoderBuilder(g, config, { cache: true, fused: true, quant: QUANT_SPECS.int4 }).build(weights), 'logits');
  const count = (op: string) => g.nodes.filter((n) => n.op === op).length;
  t.equal(count('com.microsoft.MatMulNBits'), 4 * config.numLayers + 1, 'q/k/v, o, gate/up and down of every layer, and the head');
  t.equal(count('com.microsoft.GatherBlockQuantized'), 1, 'the embedding');
  t.equal(count('MatMul'), 0, 'no float32 weight product');
  const floatWeights = [...g.initializers.values()].filter((i) => i.value.dtype === 'float32' && i.data.length >= config.hiddenSize * config.hiddenSize);
  t.same(
    floatWeights.map((i) => i.value.name),
    [],
    'no float32 matrix is stored',
  );
});
