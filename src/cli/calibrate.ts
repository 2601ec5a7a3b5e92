/**
 * Calibrates tier masks for a model directory:
 *
 *   npm run calibrate -- --model DIR --data FILE.jsonl [--metric cor_gxo] [--tiers 0.25,0.5,0.7,0.8,0.9] [--force]
 *
 * Scores every unit over the calibration samples and writes DIR/sparsity/masks.json with the
 * metric, the calibration file's hash and the weights' hash. The masks a model already has are
 * the tiers it serves (shipped models have theirs): replacing them takes --force.
 */
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import cliProgress from 'cli-progress';
import { Command } from 'commander';
import { loadModelDir } from '../arch/load.js';
import { Attributor } from '../sparsity/attribution.js';
import { calibrate, readCalibrationFile } from '../sparsity/calibration.js';
import { DEFAULT_TIERS, MASKS_FILE, tierMask, writeMaskFile, type MaskFile } from '../sparsity/masks.js';
import { METRICS, type Metric } from '../sparsity/metrics.js';
import { parseMetric, parseModelDir, parsePositiveInt, parseSparsities, runCli } from './options.js';

const program = new Command('calibrate')
  .description('Compute attribution-based tier masks over a calibration set and store them in the model directory')
  .requiredOption('--model <dir>', 'model directory (Hugging Face layout); masks go to its sparsity/', parseModelDir)
  .requiredOption('--data <file>', 'calibration set: JSON lines of {"prompt", "completion"?}')
  .option('--metric <name>', `one of ${METRICS.join(', ')}`, parseMetric, 'cor_gxo' as Metric)
  .option('--tiers <list>', 'comma-separated MLP sparsities', parseSparsities, DEFAULT_TIERS)
  .option('--prune-heads', 'drop attention heads at the same per-layer sparsity too')
  .option('--max-length <n>', 'tokens per sample at most', parsePositiveInt, 256)
  .option('--ig-steps <n>', 'Integrated Gradients steps', parsePositiveInt, 8)
  .option('--force', `replace the model's ${MASKS_FILE} when it has one`)
  .action(
    async (opts: {
      model: string;
      data: string;
      metric: Metric;
      tiers: number[];
      pruneHeads?: boolean;
      maxLength: number;
      igSteps: number;
      force?: boolean;
    }) => {
      // Checked before the (long) calibration, not after it.
      const existing = join(opts.model, MASKS_FILE);
      if (existsSync(existing) && opts.force !== true) throw new Error(`${existing} exists (the tiers this model serves); pass --force to replace it`);
      const set = readCalibrationFile(opts.data); // before the model: a bad file fails at once
      const model = await loadModelDir(opts.model);
      const attributor = await Attributor.create(model.config, model.weights);
      const bar = new cliProgress.SingleBar(
        {
          format: 'calibrate |{bar}| {value}/{total} samples | {tokens} tokens | ETA {eta_formatted}',
          stream: process.stderr,
          noTTYOutput: true,
          notTTYSchedule: 10_000,
        },
        cliProgress.Presets.shades_classic,
      );
      bar.start(set.samples.length, 0, { tokens: 0 });
      let seen = 0;
      const { scores, tokens } = await calibrate(attributor, model.tokenizer, set, opts.metric, {
        maxLength: Math.min(opts.maxLength, model.config.maxPositions),
        igSteps: opts.igSteps,
        onSample: (n) => {
          seen += n;
          bar.increment(1, { tokens: seen });
        },
      });
      bar.stop();
      await attributor.release();

      const pruneHeads = opts.pruneHeads === true;
      const masks: MaskFile = {
        format: 1,
        metric: opts.metric,
        weightsSha256: model.weightsHash,
        calibration: { file: basename(set.file), sha256: set.sha256, samples: set.samples.length, tokens },
        created: new Date().toISOString(),
        pruneHeads,
        scores: scores.map((l) => ({ mlp: Array.from(l.mlp), heads: Array.from(l.heads) })),
        tiers: opts.tiers.map((s) => tierMask(model.config, scores, s, pruneHeads)),
      };
      const file = writeMaskFile(model.dir, masks);

      console.log(`\n${file}: metric ${opts.metric}, ${set.samples.length} samples, ${tokens} tokens`);
      console.table(
        masks.tiers.map((t) => ({
          'MLP sparsity': t.sparsity,
          'neurons kept / layer': `${t.layers[0].mlp.length} / ${model.config.intermediateSize}`,
          'heads kept / layer': `${t.layers[0].heads.length} / ${model.config.numHeads}`,
          'FLOP-weighted sparsity': t.flopSparsity.toFixed(3),
        })),
      );
    },
  );

await runCli(program);
