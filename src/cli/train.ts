/**
 * Trains the default model from scratch, or resumes the run in --work:
 *
 *   npm run train -- [--out models/default] [--work .cache/train] [--steps 3000] [--threads 2]
 *
 * Writes the model in Hugging Face layout to --out with `training.json` (every number the model
 * card gives), its model card README.md and the loss curve docs/default-model-loss.svg.
 */
import { cpus } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
import { Command } from 'commander';
import { parsePositiveInt, parsePositiveNumber, runCli } from './options.js';
import { ADAMW_DEFAULTS } from '../train/adamw.js';
import { writeModelCard } from '../train/card.js';
import { lineChartSvg } from '../plot.js';
import { trainDefaultModel, writeCalibrationSet } from '../train/run.js';

const program = new Command('train')
  .description('Train the default model on the bundled English corpora (resumable)')
  .option('--out <dir>', 'where the trained model goes', 'models/default')
  .option('--work <dir>', 'tokenizer, checkpoints and logs of the run', '.cache/train')
  .option('--steps <n>', 'optimisation steps', parsePositiveInt, 3000)
  .option('--batch <n>', 'sequences per step', parsePositiveInt, 16)
  .option('--seq <n>', 'tokens per sequence', parsePositiveInt, 128)
  .option('--lr <x>', 'peak learning rate', parsePositiveNumber, 2e-3)
  .option('--warmup <n>', 'warm-up steps', parsePositiveInt, 200)
  .option('--eval-every <n>', 'steps between validations and checkpoints', parsePositiveInt, 150)
  .option('--threads <n>', 'ONNX Runtime intra-op threads', parsePositiveInt, 2)
  .option('--seed <n>', 'seed of initialisation and batches', parsePositiveInt, 1)
  .action(
    async (o: {
      out: string;
      work: string;
      steps: number;
      batch: number;
      seq: number;
      lr: number;
      warmup: number;
      evalEvery: number;
      threads: number;
      seed: number;
    }) => {
      const settings = { steps: o.steps, batch: o.batch, seq: o.seq, peakLr: o.lr, warmup: o.warmup, clip: 1, seed: o.seed, adamw: ADAMW_DEFAULTS };
      const bar = new cliProgress.SingleBar(
        {
          format: 'train |{bar}| step {value}/{total} | loss {loss} | val {val} | {speed} tok/s | ETA {eta_formatted}',
          stream: process.stderr,
          etaBuffer: 50,
          noTTYOutput: true,
          notTTYSchedule: 30_000,
        },
        cliProgress.Presets.shades_classic,
      );
      let started = false;
      let ema = NaN;
      let lastVal = '-';
      const started_at = new Date().toISOString();
      const result = await trainDefaultModel({
        work: o.work,
        out: o.out,
        settings,
        evalEvery: o.evalEvery,
        threads: o.threads,
        log: (line) => process.stderr.write(`${line}\n`),
        onProgress: (p) => {
          if (!started) {
            bar.start(o.steps, p.step - 1, { loss: '-', val: '-', speed: '-' });
            started = true;
          }
          ema = Number.isNaN(ema) ? p.loss : 0.95 * ema + 0.05 * p.loss;
          if (p.valLoss !== undefined) lastVal = p.valLoss.toFixed(3);
          bar.update(p.step, { loss: ema.toFixed(3), val: lastVal, speed: (p.tokens / p.seconds).toFixed(0) });
        },
      });
      bar.stop();

      mkdirSync('docs', { recursive: true });
      const every = Math.max(1, Math.floor(result.history.length / 400));
      const svg = await lineChartSvg('Default model: loss', 'tokens seen', 'cross-entropy (nats/token)', [
        { name: 'train (batch)', points: result.history.filter((_, i) => i % every === 0).map((p) => ({ x: p.tokens, y: p.loss })) },
        { name: 'validation', points: result.history.filter((p) => p.valLoss !== undefined).map((p) => ({ x: p.tokens, y: p.valLoss! })) },
      ]);
      writeFileSync('docs/default-model-loss.svg', svg);
      const calibrationFile = 'data/calibration/default-model.jsonl';
      const calibrationDocs = writeCalibrationSet(calibrationFile);
      const hardware = `${cpus().length} x ${cpus()[0]?.model ?? 'CPU'}`;
      const training = {
        ...result,
        settings,
        started: started_at,
        finished: new Date().toISOString(),
        hardware,
        threads: o.threads,
        calibrationFile,
        calibrationDocs,
      };
      writeFileSync(join(o.out, 'training.json'), `${JSON.stringify({ ...training, history: undefined }, null, 1)}\n`);
      writeFileSync(join(o.work, 'history.json'), JSON.stringify(result.history));
      await writeModelCard(o.out, training);
      console.log(
        `validation: loss ${result.validation.loss.toFixed(4)} nats/token, ${result.validation.bitsPerByte.toFixed(4)} bits/byte; bigram baseline ${result.baseline.bitsPerByte.toFixed(4)} bits/byte`,
      );
    },
  );

await runCli(program);
