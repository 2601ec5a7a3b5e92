/**
 * Trains the learned per-token neuron predictors of a model (resumable):
 *
 *   npm run train-predictor -- --model DIR [--labels cor_gxo|magnitude|both] [--rank N]
 *     [--tokens N] [--steps N] [--threads N] [--fresh]
 *
 * Labels passages of the default model's training corpus (TRAIN split only) with the dense
 * model's per-token oracle (Corrected GxO and magnitude, src/sparsity/predictor-data.ts), caches
 * them under .cache/predictor/, trains one low-rank predictor per layer per label kind
 * (checkpointed there too), and writes DIR/sparsity/predictor-{labels}.safetensors stamped with
 * the weights' hash. Prints the recall of the Corrected-GxO oracle's top-k sets on held-out
 * positions, beside gate-first selection's.
 */
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError } from 'commander';
import { loadModelDir } from '../arch/load.js';
import { gateFirstScores, gateFirstWeights } from '../arch/token-mlp.js';
import { checkRank, defaultRank, PREDICTOR_LABELS, writePredictor, type PredictorLabels } from '../sparsity/predictor.js';
import { dataKey, DEFAULT_LABEL_SPARSITIES, labelPassages, selectPassages } from '../sparsity/predictor-data.js';
import { measureRecall, predictorScoreFn, PREDICTOR_TRAIN_DEFAULTS, trainPredictor, type ScoreFn } from '../sparsity/predictor-train.js';
import { loadCorpus, splitCorpus } from '../train/corpus.js';
import { parseModelDir, parsePositiveInt, parseSparsities, runCli } from './options.js';

function parseLabels(value: string): PredictorLabels[] {
  if (value === 'both') return [...PREDICTOR_LABELS];
  if ((PREDICTOR_LABELS as readonly string[]).includes(value)) return [value as PredictorLabels];
  throw new InvalidArgumentError(`expected one of ${PREDICTOR_LABELS.join(', ')}, both`);
}

interface Options {
  model: string;
  labels: PredictorLabels[];
  rank?: number;
  tokens: number;
  validationTokens: number;
  steps: number;
  batch: number;
  lr: number;
  sparsities: number[];
  threads: number;
  work: string;
  fresh?: boolean;
}

const bar = (format: string) =>
  new cliProgress.SingleBar({ format, stream: process.stderr, etaBuffer: 50, noTTYOutput: true, notTTYSchedule: 30_000 }, cliProgress.Presets.shades_classic);

const program = new Command('train-predictor')
  .description('Train per-token MLP neuron predictors on oracle labels (resumable)')
  .requiredOption('--model <dir>', 'model directory (Hugging Face layout)', parseModelDir)
  .option('--labels <kind>', 'cor_gxo, magnitude or both', parseLabels, [...PREDICTOR_LABELS])
  .option('--rank <n>', 'predictor rank (default hidden/8, a multiple of 8)', parsePositiveInt)
  .option('--tokens <n>', 'training positions to label', parsePositiveInt, 16384)
  .option('--validation-tokens <n>', 'held-out positions to label (recall is measured on them)', parsePositiveInt, 2048)
  .option('--steps <n>', 'optimisation steps per layer', parsePositiveInt, PREDICTOR_TRAIN_DEFAULTS.steps)
  .option('--batch <n>', 'positions per step', parsePositiveInt, PREDICTOR_TRAIN_DEFAULTS.batch)
  .option('--lr <x>', 'peak learning rate', Number, PREDICTOR_TRAIN_DEFAULTS.peakLr)
  .option('--sparsities <list>', 'label sparsities (the soft target averages their top-k sets)', parseSparsities, DEFAULT_LABEL_SPARSITIES)
  .option('--threads <n>', 'ONNX Runtime intra-op threads', parsePositiveInt, 2)
  .option('--work <dir>', 'label cache and checkpoints', '.cache/predictor')
  .option('--fresh', 'ignore (and delete) the cached labels and checkpoints of this run')
  .action(async (o: Options) => {
    const started = performance.now();
    const model = await loadModelDir(o.model);
    const { config, weights } = model;
    const rank = o.rank ?? defaultRank(config.hiddenSize);
    checkRank(rank, config.hiddenSize, config.intermediateSize);

    const { train: docs } = splitCorpus(loadCorpus());
    const passages = selectPassages(
      docs.map((d) => d.text),
      (t) => model.tokenizer.encode(t),
      {
        trainTokens: o.tokens,
        validationTokens: o.validationTokens,
        maxLength: 128,
        seed: 0,
      },
    );
    const work = join(o.work, dataKey(model.weightsHash, passages, o.sparsities));
    if (o.fresh) rmSync(work, { recursive: true, force: true });
    process.stderr.write(`${o.model}: ${passages.length} passages of the corpus's train split; labels and checkpoints in ${work}\n`);

    const labelBar = bar('label |{bar}| {value}/{total} positions | ETA {eta_formatted}');
    let labelStarted = false;
    const t0 = performance.now();
    const { train, validation } = await labelPassages(config, weights, passages, {
      work,
      sparsities: o.sparsities,
      ort: { intraOpThreads: o.threads },
      onProgress: (done, total) => {
        if (!labelStarted) labelBar.start(total, done);
        labelStarted = true;
        labelBar.update(done);
      },
    });
    labelBar.stop();
    const labelSeconds = (performance.now() - t0) / 1000;
    process.stderr.write(`labels: ${train.positions} training and ${validation.positions} validation positions (${labelSeconds.toFixed(0)} s, cached)\n`);

    const F = config.intermediateSize;
    const rows: { name: string; recall: Record<string, number> }[] = [];
    // Gate-first on the same positions: a predictor serves only where it beats it (servedSelector).
    const norms = weights.layers.map((l) => gateFirstWeights(l));
    const gateFirst: ScoreFn = (l, x) => gateFirstScores(weights.layers[l], norms[l], x);
    const gateFirstRecall = measureRecall(validation, gateFirst, 'cor_gxo');
    const timings: string[] = [];
    for (const labels of o.labels) {
      const settings = { ...PREDICTOR_TRAIN_DEFAULTS, rank, steps: o.steps, batch: o.batch, peakLr: o.lr };
      const trainBar = bar(`train ${labels} |{bar}| step {value}/{total} | loss {loss} | ETA {eta_formatted}`);
      let trainStarted = false;
      const result = await trainPredictor(train, labels, settings, {
        threads: o.threads,
        checkpoint: join(work, `train-${labels}`),
        onProgress: (p) => {
          if (!trainStarted) trainBar.start(p.steps, p.step - 1, { loss: '-' });
          trainStarted = true;
          trainBar.update(p.step, { loss: p.loss.toFixed(4) });
        },
      });
      trainBar.stop();
      // A run resumed from a finished checkpoint takes no step, so it has no loss of its own to print.
      timings.push(
        `${labels}: ${result.seconds.toFixed(0)} s of training, ${Number.isNaN(result.finalLoss) ? 'resumed finished' : `final loss ${result.finalLoss.toFixed(4)}`}`,
      );
      const score = predictorScoreFn(result.layers, rank, F);
      const recall = measureRecall(validation, score, 'cor_gxo');
      writePredictor(model.dir, {
        labels,
        rank,
        hidden: config.hiddenSize,
        intermediate: F,
        layers: result.layers,
        meta: {
          weightsSha256: model.weightsHash,
          labels,
          rank,
          trainSparsities: o.sparsities,
          steps: o.steps,
          trainTokens: train.positions,
          validationTokens: validation.positions,
          recall,
          gateFirstRecall,
          createdAt: new Date().toISOString(),
        },
      });
      rows.push({ name: `predictor (${labels} labels)`, recall });
      if (labels !== 'cor_gxo') rows.push({ name: `  vs its own ${labels} oracle`, recall: measureRecall(validation, score, labels) });
    }
    rows.push({ name: 'gate-first |SiLU(gate)|·‖up‖·‖down‖', recall: gateFirstRecall });

    const keys = o.sparsities.map(String);
    console.log(
      `\nRecall of the Corrected-GxO oracle's per-token top-k (mean over ${config.numLayers} layers and ${validation.positions} held-out positions), ${o.model}, rank ${rank}:`,
    );
    console.log(['selection'.padEnd(40), ...keys.map((k) => `s=${k}`.padStart(8))].join(''));
    for (const r of rows) console.log([r.name.padEnd(40), ...keys.map((k) => r.recall[k].toFixed(3).padStart(8))].join(''));
    for (const t of timings) console.log(t);
    console.log(`total ${((performance.now() - started) / 1000).toFixed(0)} s; labelling ${labelSeconds.toFixed(0)} s`);
  });

await runCli(program);
