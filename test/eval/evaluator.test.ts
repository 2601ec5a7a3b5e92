/**
 * Evaluation runs what serving runs: its masked graph and neuron sets reproduce the served
 * tiers and per-prompt sets token for token, its one-pass perplexity equals step-by-step
 * decoding, and a run resumes from its progress file with the same results; on each
 * architecture's layout.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import t from 'tap';
import { Evaluator, MODES, type Unit, type UnitSettings } from '../../src/eval/evaluator.js';
import { MaskedModel } from '../../src/eval/masked-model.js';
import { calibratedScores, neuronsAt, oracleScores, promptScores, rankings } from '../../src/eval/neuron-sets.js';
import { ProgressFile } from '../../src/eval/progress.js';
import { tokenVariants, variantName } from '../../src/eval/token.js';
import { keptBlocks, tokenSelection } from '../../src/sparsity/selectors.js';
import { runEvaluation, type EvalInputs } from '../../src/eval/run.js';
import { loadModelDir } from '../../src/arch/load.js';
import { loadServedModel } from '../../src/serve/engine.js';
import { argmax, logSoftmax } from '../../src/runtime/sampling.js';
import { DecoderSession, mlpMaskName } from '../../src/runtime/session.js';
import type { GenerationResult, SamplingParams } from '../../src/runtime/types.js';
import { Attributor, promptTargets } from '../../src/sparsity/attribution.js';
import { readMaskFile } from '../../src/sparsity/masks.js';
import { meanOverPositions, METRICS, scoreSequence } from '../../src/sparsity/metrics.js';
import type { Architecture } from '../../src/model/types.js';
import { CALIBRATION_MAX_LENGTH, CALIBRATION_SET, calibratedModelDir } from '../helpers/calibrated-model.js';

// Each architecture's layer (LLaMA's; Phi's parallel block with a GELU MLP and biases; GPT-2's); GPT-2 has no grouped-query attention.
const architectures: Architecture[] = ['LlamaForCausalLM', 'PhiForCausalLM', 'GPT2LMHeadModel'];

for (const architecture of architectures) {
  t.test(architecture, async (t) => {
    const dir = await calibratedModelDir(undefined, architecture === 'GPT2LMHeadModel' ? { architecture, kvHeads: 4 } : { architecture });
    const model = await loadModelDir(dir);
    const { config, weights, tokenizer } = model;
    const ortOptions = { intraOpThreads: 1 };
    const masked = await MaskedModel.create(config, weights, ortOptions);
    const attributor = await Attributor.create(config, weights, ortOptions);
    const served = await loadServedModel(dir, ortOptions);
    t.teardown(async () => {
      await Promise.all([masked.release(), attributor.release(), served.close()]);
    });

    const prompt = tokenizer.encode('the cat sat on the mat and');
    const MAX = 10;
    /** Served generation stops at eos; so does evaluation's, for the comparisons. */
    const eos = new Set(config.eosTokenIds);

    async function servedIds(execution: { sparsity?: number; activation?: 'static' | 'prompt' }): Promise<number[]> {
      const params: SamplingParams = { maxTokens: MAX, temperature: 0, topP: 1, topK: -1, stop: [], logprobs: null, echo: false };
      const it = served.generate(prompt, params, undefined, execution);
      const ids: number[] = [];
      let r = await it.next();
      for (; !r.done; r = await it.next()) ids.push(...r.value.tokens.map((x) => x.id));
      t.ok((r.value as GenerationResult).sparsity !== undefined || execution.sparsity === undefined);
      return ids;
    }

    t.test('with every neuron kept, the masked graph generates what the dense session does', async (t) => {
      const dense = await DecoderSession.create(config, weights, ortOptions);
      let step = await dense.forward(prompt, dense.emptyCache());
      const expected: number[] = [];
      for (let i = 0; i < MAX; i++) {
        expected.push(argmax(step.logits));
        step = await dense.forward([expected[i]], step.cache);
      }
      t.same(await masked.greedy(prompt, { maxTokens: MAX, eos, neuronsAt: () => null }), expected);
      await dense.release();
    });

    t.test('static mode: the calibrated set, masked, generates what the served tier generates', async (t) => {
      const tier = readMaskFile(dir, model.weightsHash, model.config)!.tiers.find((x) => x.sparsity === 0.8)!;
      const scores = await calibratedScores(attributor, tokenizer, CALIBRATION_SET, { maxLength: CALIBRATION_MAX_LENGTH, igSteps: 2 });
      const set = neuronsAt(rankings(scores).cor_gxo, 0.8);
      t.same(
        set.map((l) => [...l].sort((a, b) => a - b)),
        tier.layers.map((l) => l.mlp),
        'the same neurons as the served tier',
      );
      const ids = await masked.greedy(prompt, { maxTokens: MAX, eos, neuronsAt: () => set });
      t.same(ids, await servedIds({ sparsity: 0.8 }));
      // The set changes the model (greedy tokens may not move: the random Phi model repeats one token dense and at 80%).
      const tokens = [...prompt, ...ids];
      const sparseNll = await masked.nll(tokens, prompt.length, () => set);
      const denseNll = await masked.nll(tokens, prompt.length, () => null);
      t.ok(
        sparseNll.some((v, i) => Math.abs(v - denseNll[i]) > 1e-3),
        "and the set is not the dense model: the continuation's likelihood moves",
      );
    });

    t.test("prompt mode: scores are the engine's, and the set generates what the served per-prompt run does", async (t) => {
      const scores = await promptScores(attributor, prompt, 3);
      for (const metric of METRICS) {
        const engine = await scoreSequence(attributor, prompt, promptTargets(prompt), metric, { igSteps: 3 });
        t.same(
          scores[metric],
          engine.layers.map((l) => meanOverPositions(l.mlp, config.intermediateSize)),
          metric,
        );
      }
      const set = neuronsAt(rankings(await promptScores(attributor, prompt, 8)).cor_gxo, 0.8);
      t.same(await masked.greedy(prompt, { maxTokens: MAX, eos, neuronsAt: () => set }), await servedIds({ sparsity: 0.8, activation: 'prompt' }));
    });

    t.test("oracle mode: one scored step per decode step, against the dense model's own next token", async (t) => {
      const stepper = await Attributor.create(config, weights, ortOptions, { cache: true });
      const dense = await masked.greedy(prompt, { maxTokens: MAX, eos, neuronsAt: () => null });
      const read = [...prompt, ...dense.slice(0, -1)];
      const { scores, predictions } = await oracleScores(stepper, masked, read, prompt.length, 2);
      t.same(predictions, dense.slice(1), 'the targets are the dense continuation');
      t.equal(scores.length, MAX - 1);
      t.ok(scores.every((s) => METRICS.every((m) => s[m].length === config.numLayers && s[m][0].length === config.intermediateSize)));
      const step3 = neuronsAt(rankings(scores[2]).cor_gxo, 0.5);
      t.ok(
        step3.every((l) => l.length === 50),
        'half of each layer kept',
      );
      t.not(neuronsAt(rankings(scores[0]).cor_gxo, 0.5).join(), step3.join(), 'each step has its own set');
      await stepper.release();
    });

    t.test('perplexity in one pass equals decoding each position with its own mask', async (t) => {
      const tokens = tokenizer.encode('she said that it would rain today and the dog ran in the park');
      const start = 4;
      const I = config.intermediateSize;
      // A different random half of the neurons at each position.
      const sets = tokens.map((_, p) =>
        Array.from({ length: config.numLayers }, (_, l) => Array.from({ length: I }, (_, i) => i).filter((i) => (i * 7 + p * 13 + l * 5) % 2 === 0)),
      );
      const onePass = await masked.nll(tokens, start, (p) => sets[p]);

      const session = await DecoderSession.create(config, weights, ortOptions, { mlpMask: true });
      const maskFeeds = (p: number) => {
        const feeds: Record<string, ort.Tensor> = {};
        for (let l = 0; l < config.numLayers; l++) {
          const m = new Float32Array(I).fill(p < start ? 1 : 0);
          if (p >= start) for (const i of sets[p][l]) m[i] = 1;
          feeds[mlpMaskName(l)] = new ort.Tensor('float32', m, [1, 1, I]);
        }
        return feeds;
      };
      let cache = session.emptyCache();
      const stepwise: number[] = [];
      for (let p = 0; p + 1 < tokens.length; p++) {
        const step = await session.forward([tokens[p]], cache, 1, maskFeeds(p));
        cache = step.cache;
        if (p >= start) stepwise.push(-logSoftmax(step.logits)[tokens[p + 1]]);
      }
      t.equal(onePass.length, stepwise.length);
      const worst = Math.max(...onePass.map((x, i) => Math.abs(x - stepwise[i])));
      // float32 through a batched and a stepwise pass: 1e-4 nats is rounding, far below any effect measured.
      t.ok(worst < 1e-4, `worst difference ${worst} nats`);
      const dense = await masked.nll(tokens, start, () => null);
      t.not(onePass.reduce((a, b) => a + b).toFixed(4), dense.reduce((a, b) => a + b).toFixed(4), 'the masks change the likelihood');
      await session.release();
    });

    t.test('a run resumes from its progress file: finished units are not redone, and results are the same', async (t) => {
      const out = mkdtempSync(join(tmpdir(), 'eval-run-'));
      t.teardown(() => rmSync(out, { recursive: true, force: true }));
      const settings: UnitSettings = {
        metrics: ['magnitude', 'cor_gxo'],
        modes: [...MODES],
        sparsities: [0, 0.5],
        maxTokens: 6,
        passageTokens: 24,
        passageContext: 8,
        igSteps: 2,
        calibrationMaxLength: 32,
        tokenVariants: [],
      };
      const inputs: EvalInputs = {
        promptSets: [{ name: 'p', file: 'inline', sha256: '', prompts: ['the cat sat', 'one two three'] }],
        passages: { file: 'inline', sha256: '', texts: ['a dog ran in the park and barked and she said that it would rain today on the mat'] },
        calibration: CALIBRATION_SET,
      };
      const file = join(out, 'progress.jsonl');
      const origin = { commit: null, dirty: true, started: new Date().toISOString() };
      const first = await runEvaluation(model, settings, inputs, ProgressFile.open<Unit>(file, 'key', origin), ortOptions);
      t.equal(first.prompts.length, 2);
      t.equal(first.passages.length, 1);
      for (const unit of first.prompts) {
        t.equal(unit.runs.length, 3 * 2 * 2, 'every mode, metric and sparsity');
        for (const run of unit.runs.filter((r) => r.sparsity === 0)) t.same(run.tokens, unit.dense, `${run.mode} ${run.metric} at sparsity 0 is dense`);
      }
      for (const run of first.passages[0].runs.filter((r) => r.sparsity === 0))
        t.ok(Math.abs(run.nats - first.passages[0].denseNats) < 1e-9, `${run.mode} ${run.metric} at sparsity 0`);
      t.ok(
        first.passages[0].runs.some((r) => Math.abs(r.nats - first.passages[0].denseNats) > 1e-3),
        'sparsity changes the likelihood',
      );

      // Killed while writing the last unit: its line is torn.
      const lines = readFileSync(file, 'utf8').trim().split('\n');
      writeFileSync(file, [...lines.slice(0, -1), lines.at(-1)!.slice(0, 40)].join('\n'));
      let redone = 0;
      let resumedFrom = -1;
      const second = await runEvaluation(model, settings, inputs, ProgressFile.open<Unit>(file, 'key', origin), {
        ...ortOptions,
        onStart: (_, done) => (resumedFrom = done),
        onUnit: () => redone++,
      });
      t.equal(resumedFrom, 3, 'calibration and both prompts were kept');
      t.equal(redone, 1, 'only the torn unit is computed again');
      t.same(second, first, 'with the same results');
    });

    t.test('token mode: the served per-token graph keeping every block is the dense model; fewer blocks are not', async (t) => {
      const variants = tokenVariants(model);
      // Reranking needs a gate (SwiGLU); a GELU MLP's gate-first scores are exact already.
      t.same(
        variants.map(variantName),
        config.mlp === 'swiglu' ? ['token:gate/1', 'token:gate/4', 'token:gate-rerank/1'] : ['token:gate/1', 'token:gate/4'],
        'gate-first at single neurons and at the default block (100 neurons: 4), reranked at single neurons with SwiGLU; no predictor here',
      );
      const settings: UnitSettings = {
        metrics: ['cor_gxo'],
        modes: ['oracle', 'token'],
        sparsities: [0, 0.5],
        maxTokens: 8,
        passageTokens: 24,
        passageContext: 8,
        igSteps: 1,
        calibrationMaxLength: 16,
        tokenVariants: variants,
      };
      const evaluator = await Evaluator.create(model, settings, ortOptions);
      t.teardown(() => evaluator.release());
      const calibration = await evaluator.calibration(CALIBRATION_SET);
      const unit = await evaluator.prompt('p', 0, 'the cat sat on the mat and', calibration);
      t.equal(unit.runs.length, 2, 'the oracle runs as before');
      t.equal(unit.tokenRuns.length, variants.length * 2, 'variants x sparsities');
      for (const run of unit.tokenRuns.filter((r) => r.sparsity === 0))
        t.same(run.tokens, unit.dense, `${run.variant} keeping every block generates the dense output`);
      // The served engine's greedy decoding through the same graph, step by step, for one variant at 50%.
      const session = await DecoderSession.create(config, weights, ortOptions, { tokenSelection: tokenSelection(model, 'gate', 4) });
      const feeds = { token_blocks: new ort.Tensor('int64', BigInt64Array.of(BigInt(keptBlocks(100, 4, 0.5))), [1]) };
      const prompt = tokenizer.encode('the cat sat on the mat and');
      let step = await masked.denseStep(prompt, masked.emptyCache());
      const expected: number[] = [];
      for (let i = 0; i < unit.dense.length && !eos.has(step.next); i++) {
        expected.push(step.next);
        const r = await session.forward([step.next], step.cache, 1, feeds);
        step = { next: argmax(r.logits), cache: r.cache };
      }
      t.same(
        unit.tokenRuns.find((r) => r.variant === 'token:gate/4' && r.sparsity === 0.5)!.tokens.slice(0, expected.length),
        expected,
        'a decode step of the token mode is a step of the per-token graph',
      );
      await session.release();

      const passage = await evaluator.passage(0, 'a dog ran in the park and barked and she said that it would rain today on the mat', calibration);
      for (const run of passage.tokenRuns.filter((r) => r.sparsity === 0)) {
        t.ok(
          Math.abs(run.nats - passage.denseNats) < 1e-4 * passage.tokens,
          `${run.variant} at sparsity 0: dense likelihood (${run.nats} vs ${passage.denseNats})`,
        );
        t.equal(run.recall, 1, 'every oracle neuron is kept');
      }
      for (const run of passage.tokenRuns.filter((r) => r.sparsity === 0.5)) {
        t.not(run.nats.toFixed(4), passage.denseNats.toFixed(4), `${run.variant} at 50% changes the likelihood`);
        t.ok(run.recall! > 0 && run.recall! < 1, `${run.variant} at 50%: recall ${run.recall}`);
      }
    });

    t.test('the evaluator refuses a passage too short to score', async (t) => {
      const settings: UnitSettings = {
        metrics: ['cor_gxo'],
        modes: ['static'],
        sparsities: [0],
        maxTokens: 2,
        passageTokens: 64,
        passageContext: 32,
        igSteps: 1,
        calibrationMaxLength: 16,
        tokenVariants: [],
      };
      const evaluator = await Evaluator.create(model, settings, ortOptions);
      const calibration = await evaluator.calibration(CALIBRATION_SET);
      await t.rejects(evaluator.passage(0, 'too short', calibration), /needs at least 34/);
      await evaluator.release();
    });
  });
}
