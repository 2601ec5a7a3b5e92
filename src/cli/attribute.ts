/**
 * Attribution of one prompt (and optional target continuation):
 *
 *   npm run --silent attribute -- --model DIR --prompt TEXT [--target TEXT] [--metric cor_gxo] --json [--raw]
 *
 * With --json prints {"model", "metric", "tokens", "layers": [{"mlp": [...], "heads": [...]}]}:
 * one score per neuron and head, the mean over positions; --raw adds each layer's MLP
 * activations and gradients per position. Without --json prints the top units per layer.
 */
import { Command } from 'commander';
import { loadModelDir } from '../arch/load.js';
import { Attributor, continuationTargets, selfTargets } from '../sparsity/attribution.js';
import { encodeContinuation } from '../sparsity/calibration.js';
import { meanOverPositions, METRICS, scoreSequence, type Metric } from '../sparsity/metrics.js';
import { parseMetric, parseModelDir, parsePositiveInt, runCli } from './options.js';

/** [position][unit] rows of a flat array. */
function rows(data: Float32Array, units: number): number[][] {
  return Array.from({ length: data.length / units }, (_, p) => Array.from(data.subarray(p * units, (p + 1) * units)));
}

const program = new Command('attribute')
  .description('Score every MLP neuron and attention head of a model by its attribution to the loss on a prompt')
  .requiredOption('--model <dir>', 'model directory (Hugging Face layout)', parseModelDir)
  .requiredOption('--prompt <text>', 'prompt text')
  .option('--target <text>', 'reference continuation (teacher-forced); without it the prompt predicts itself')
  .option('--metric <name>', `one of ${METRICS.join(', ')}`, parseMetric, 'cor_gxo' as Metric)
  .option('--ig-steps <n>', 'Integrated Gradients steps', parsePositiveInt, 8)
  .option('--json', 'print one JSON object')
  .option('--raw', 'with --json: add per-position MLP activations and gradients')
  .option('--top <n>', 'units listed per layer without --json', parsePositiveInt, 8)
  .action(async (opts: { model: string; prompt: string; target?: string; metric: Metric; igSteps: number; json?: boolean; raw?: boolean; top: number }) => {
    const model = await loadModelDir(opts.model);
    const { tokens, promptLength } = opts.target
      ? encodeContinuation(model.tokenizer, opts.prompt, opts.target)
      : { tokens: model.tokenizer.encode(opts.prompt), promptLength: 0 };
    if (tokens.length < 2) throw new Error('the prompt needs at least two tokens to attribute a next-token loss');
    if (tokens.length > model.config.maxPositions) throw new Error(`${tokens.length} tokens exceed the model's ${model.config.maxPositions} positions`);
    const targets = opts.target ? continuationTargets(tokens, promptLength) : selfTargets(tokens);
    const attributor = await Attributor.create(model.config, model.weights);
    const scored = await scoreSequence(attributor, tokens, targets, opts.metric, { igSteps: opts.igSteps });
    await attributor.release();

    const { intermediateSize: I, numHeads: H } = model.config;
    const layers = scored.layers.map((l) => ({
      mlp: Array.from(meanOverPositions(l.mlp, I)),
      heads: Array.from(meanOverPositions(l.heads, H)),
    }));
    if (opts.json) {
      const out: Record<string, unknown> = { model: model.dir, metric: opts.metric, tokens, loss: scored.attribution.loss, layers };
      if (opts.raw) out.raw = scored.attribution.layers.map((l) => ({ a: rows(l.mlp.a, I), g: rows(l.mlp.g, I) }));
      process.stdout.write(`${JSON.stringify(out)}\n`);
      return;
    }
    console.log(`${model.dir}: ${tokens.length} tokens, loss ${scored.attribution.loss.toFixed(4)}, metric ${opts.metric}`);
    layers.forEach((l, i) => {
      const top = (s: number[]) =>
        s
          .map((v, j) => [j, v] as const)
          .sort((a, b) => b[1] - a[1])
          .slice(0, opts.top);
      console.log(
        `layer ${i} neurons: ${top(l.mlp)
          .map(([j, v]) => `${j}:${v.toExponential(2)}`)
          .join(' ')}`,
      );
      console.log(
        `layer ${i} heads:   ${top(l.heads)
          .map(([j, v]) => `${j}:${v.toExponential(2)}`)
          .join(' ')}`,
      );
    });
  });

await runCli(program);
