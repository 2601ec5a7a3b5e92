/**
 * Every feature works on every architecture beyond LLaMA: a random checkpoint at each family's
 * layout, scaled down, calibrates and serves dense, at static tiers, with per-prompt sets and
 * with per-token selection.
 * - Phi-3 (Phi3ForCausalLM): the LLaMA forward on weights its checkpoint stacks (qkv_proj,
 *   gate_up_proj, split at load: test/arch/checkpoints.test.ts).
 * - MobiLlama (MobiLlamaForCausalLM): LLaMA with one MLP shared by every layer.
 * - Phi-2 (PhiForCausalLM): parallel block, LayerNorm, GELU MLP with biases, partial RoPE.
 * - GPT-2 (GPT2LMHeadModel): learned positions, Conv1D weights, a fused c_attn, GELU, tied head.
 * (Their logits against the reference forward: test/arch/llama.test.ts; their attribution
 * gradients against finite differences: test/sparsity/attribution.test.ts.)
 */
import t from 'tap';
import { loadModelDir } from '../../src/arch/load.js';
import type { Architecture } from '../../src/model/types.js';
import type { ExecutionOptions } from '../../src/runtime/types.js';
import { loadServedModel } from '../../src/serve/engine.js';
import { readMaskFile } from '../../src/sparsity/masks.js';
import { calibratedModelDir } from '../helpers/calibrated-model.js';
import { GREEDY, generateAll } from '../helpers/served-model.js';

const architectures: Architecture[] = ['Phi3ForCausalLM', 'MobiLlamaForCausalLM', 'PhiForCausalLM', 'GPT2LMHeadModel'];
const prompt = [1, 70, 71, 72, 100, 33, 72, 80];
const runs: [string, ExecutionOptions, string][] = [
  ['dense', {}, 'dense'],
  ['static s50', { sparsity: 0.5 }, 'static'],
  ['static s80', { sparsity: 0.8 }, 'static'],
  ['per-prompt s80', { sparsity: 0.8, activation: 'prompt' }, 'computed'],
  ['per-token s50', { sparsity: 0.5, activation: 'token' }, 'token'],
  ['per-token s80', { sparsity: 0.8, activation: 'token' }, 'token'],
];

for (const architecture of architectures) {
  t.test(architecture, async (t) => {
    // GPT-2's and MobiLlama's attention is multi-head.
    const multiHead = architecture === 'GPT2LMHeadModel' || architecture === 'MobiLlamaForCausalLM';
    const dir = await calibratedModelDir([0.5, 0.8], multiHead ? { architecture, kvHeads: 4 } : { architecture });
    const geluMlp = architecture === 'PhiForCausalLM' || architecture === 'GPT2LMHeadModel';
    const model = await loadServedModel(dir, { intraOpThreads: 1 });
    t.teardown(() => model.close());

    t.test('calibration wrote its tiers', async (t) => {
      const loaded = await loadModelDir(dir);
      t.equal(loaded.config.architecture, architecture);
      const masks = readMaskFile(dir, loaded.weightsHash, loaded.config);
      t.same(
        masks?.tiers.map((tier) => tier.sparsity),
        [0.5, 0.8],
      );
    });

    for (const [name, execution, source] of runs) {
      t.test(`serves a completion: ${name}`, async (t) => {
        const { ids, result } = await generateAll(model, prompt, GREEDY, execution);
        t.equal(ids.length, result.completionTokens);
        t.ok(ids.length > 0, `${ids.length} tokens`);
        t.equal(result.sparsity?.activationSource, source);
        const ratio = result.sparsity!.flopRatio;
        if (name === 'dense') t.equal(ratio, 1);
        else t.ok(ratio < 1, `executed ${ratio.toFixed(3)} of the dense FLOPs`);
        // A GELU MLP's gate-first scores are its exact outputs: nothing to rerank.
        if (source === 'token') t.equal(result.sparsity?.selector, geluMlp ? 'gate' : 'gate-rerank');
      });
    }
  });
}
