/**
 * Accuracy against sparsity, for every metric and activation mode, and for the per-token
 * served selectors (mode `token`):
 *
 *   npm run eval -- [--model models/default] [--out docs/eval/default] [--limit N] [--fresh]
 *                   [--modes oracle,prompt,static,token] [--selectors gate,predictor-cor_gxo]
 *                   [--quant none|int8|int4]
 *
 * Writes OUT/results.json, OUT/README.md and SVG plots. Finished prompts and passages are kept
 * in OUT/progress.jsonl as they complete; started again with the same settings, the run resumes
 * from there (or, when nothing is left, renders the report again); --fresh starts over.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import cliProgress from 'cli-progress';
import { Command, InvalidArgumentError } from 'commander';
import { MODES, type Mode, type Unit, type UnitSettings } from '../eval/evaluator.js';
import { ProgressFile } from '../eval/progress.js';
import { summarize, writeReport } from '../eval/report.js';
import { readPassages, readPromptSet, runEvaluation, settingsKey } from '../eval/run.js';
import { loadModelDir, type LoadedModel } from '../arch/load.js';
import { QUANT_CHOICES, type QuantChoice } from '../model/quant.js';
import { PROJECT_ROOT } from '../project.js';
import { readCalibrationFile } from '../sparsity/calibration.js';
import { MASKS_FILE, readMaskFile } from '../sparsity/masks.js';
import { METRICS } from '../sparsity/metrics.js';
import { isSelector, SELECTORS, type Selector } from '../sparsity/selectors.js';
import { tokenVariants } from '../eval/token.js';
import { parseMetric, parseModelDir, parsePositiveInt, parseSparsities, runCli } from './options.js';

const list =
  <T>(parse: (v: string) => T) =>
  (value: string): T[] => [...new Set(value.split(',').map((v) => parse(v.trim())))];

function parseMode(value: string): Mode {
  if (!(MODES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${MODES.join(', ')}`);
  return value as Mode;
}

function parseSelector(value: string): Selector {
  if (!isSelector(value)) throw new InvalidArgumentError(`expected one of ${SELECTORS.join(', ')}`);
  return value;
}

function parseQuant(value: string): QuantChoice {
  if (!(QUANT_CHOICES as readonly string[]).includes(value)) throw new InvalidArgumentError(`expected one of ${QUANT_CHOICES.join(', ')}`);
  return value as QuantChoice;
}

// Tenths, and 25% (a served tier of models without calibrated masks).
const DEFAULT_SPARSITIES = [...Array.from({ length: 10 }, (_, i) => i / 10), 0.25].sort((a, b) => a - b);
const DEFAULT_PROMPTS = ['data/eval/validation-prompts.jsonl', 'data/eval/instruct-prompts.jsonl'];

/** The calibration file a model's tiers were made from, when it is in data/calibration/. */
function defaultCalibration(model: LoadedModel): string | undefined {
  const masks = readMaskFile(model.dir, model.weightsHash, model.config);
  const file = masks && join(PROJECT_ROOT, 'data', 'calibration', masks.calibration.file);
  return file && existsSync(file) ? file : undefined;
}

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: PROJECT_ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

interface Options extends Omit<UnitSettings, 'tokenVariants' | 'quant'> {
  model: string;
  quant: QuantChoice;
  selectors?: Selector[];
  out?: string;
  prompts: string[];
  passages: string;
  calibration?: string;
  limit?: number;
  threads?: number;
  fresh?: boolean;
}

const program = new Command('eval')
  .description('Measure how closely sparse activation follows the dense model, per metric, sparsity and activation mode')
  .option('--model <dir>', 'model directory', parseModelDir, 'models/default')
  .option('--out <dir>', 'where results go (default: docs/eval/<model directory name>, with -<quant> when quantised)')
  .option('--prompts <files>', 'comma-separated prompt sets (JSON lines of {"prompt"})', list(String), DEFAULT_PROMPTS)
  .option('--passages <file>', 'held-out text for perplexity (JSON lines of {"text"})', 'data/eval/heldout-text.jsonl')
  .option('--calibration <file>', "calibration set for the static mode (default: the one the model's masks were made from)")
  .option('--metrics <list>', `comma-separated, of ${METRICS.join(', ')}`, list(parseMetric), [...METRICS])
  .option('--modes <list>', `comma-separated, of ${MODES.join(', ')}`, list(parseMode), [...MODES])
  .option(
    '--selectors <list>',
    `the token mode's selectors, comma-separated, of ${SELECTORS.join(', ')} (default: every one the model has)`,
    list(parseSelector),
  )
  .option('--sparsities <list>', 'comma-separated MLP sparsities', parseSparsities, DEFAULT_SPARSITIES)
  .option('--max-tokens <n>', 'tokens generated per prompt at most', parsePositiveInt, 32)
  .option('--passage-tokens <n>', 'tokens of each held-out passage at most', parsePositiveInt, 128)
  .option('--passage-context <n>', 'dense context tokens before the scored part of a passage', parsePositiveInt, 32)
  .option('--ig-steps <n>', 'Integrated Gradients steps', parsePositiveInt, 8)
  .option('--calibration-max-length <n>', 'tokens per calibration sample at most', parsePositiveInt, 256)
  .option('--limit <n>', 'only the first N prompts of each set and N passages (a quick run)', parsePositiveInt)
  .option(
    '--quant <name>',
    `evaluate blockwise-quantised weights, as served with QUANT (one of ${QUANT_CHOICES.join(', ')}); attribution stays float32`,
    parseQuant,
    'none',
  )
  .option('--threads <n>', 'ONNX Runtime intra-op threads (default: one per core)', parsePositiveInt)
  .option('--fresh', 'recompute everything, discarding the units of an earlier run')
  .action(async (opts: Options) => {
    const started = new Date();
    const limit = opts.limit ?? null;
    // Inputs first: a bad file fails before the model loads.
    const promptSets = opts.prompts.map((f) => readPromptSet(f, limit));
    const passages = readPassages(opts.passages, limit);
    const model = await loadModelDir(opts.model);
    const calibrationFile = opts.calibration ?? defaultCalibration(model);
    if (!calibrationFile) throw new Error(`no calibration set: pass --calibration (the model has no ${MASKS_FILE} naming one in data/calibration/)`);
    const inputs = { promptSets, passages, calibration: readCalibrationFile(calibrationFile) };
    const modes = MODES.filter((m) => opts.modes.includes(m));
    const settings: UnitSettings = {
      metrics: METRICS.filter((m) => opts.metrics.includes(m)),
      modes,
      sparsities: opts.sparsities,
      maxTokens: opts.maxTokens,
      passageTokens: opts.passageTokens,
      passageContext: opts.passageContext,
      igSteps: opts.igSteps,
      calibrationMaxLength: opts.calibrationMaxLength,
      tokenVariants: modes.includes('token') ? tokenVariants(model, opts.selectors) : [],
      // Absent for float32, as before the option: earlier runs' progress files still resume.
      ...(opts.quant !== 'none' && { quant: opts.quant }),
    };
    const out = opts.out ?? join(PROJECT_ROOT, 'docs', 'eval', basename(model.dir) + (settings.quant ? `-${settings.quant}` : ''));
    mkdirSync(out, { recursive: true });
    // Untracked files (a build output, a symlinked node_modules) do not change what runs.
    const here = {
      commit: git(['rev-parse', 'HEAD']),
      dirty: (git(['status', '--porcelain', '--untracked-files=no']) ?? '') !== '',
      started: started.toISOString(),
    };
    const progress = ProgressFile.open<Unit>(join(out, 'progress.jsonl'), settingsKey(model, settings, inputs), here, opts.fresh);

    const bar = new cliProgress.SingleBar(
      {
        format: 'eval |{bar}| {value}/{total} units | {unit} | ETA {eta_formatted}',
        stream: process.stderr,
        noTTYOutput: true,
        notTTYSchedule: 10_000,
        etaBuffer: 4,
      },
      cliProgress.Presets.shades_classic,
    );
    const units = await runEvaluation(model, settings, inputs, progress, {
      intraOpThreads: opts.threads,
      onStart: (total, done) => bar.start(total, done, { unit: done > 0 ? `resumed after ${done}` : 'calibration' }),
      onUnit: (unit) => bar.increment(1, { unit }),
    });
    bar.stop();

    const rel = (f: string) => relative(PROJECT_ROOT, f) || '.';
    const results = summarize(
      model,
      rel(model.dir),
      settings,
      {
        ...inputs,
        promptSets: inputs.promptSets.map((s) => ({ ...s, file: rel(s.file) })),
        passages: { ...inputs.passages, file: rel(inputs.passages.file) },
        calibration: { ...inputs.calibration, file: rel(inputs.calibration.file) },
      },
      units,
      {
        command: ['npm run eval --', ...process.argv.slice(2)].join(' '),
        computed: progress.origin,
        rendered: { commit: here.commit, dirty: here.dirty },
        finished: new Date().toISOString(),
        seconds: (Date.now() - started.getTime()) / 1000,
        node: process.versions.node,
        onnxruntime: (await import('onnxruntime-node')).env.versions.common ?? 'unknown',
      },
    );
    const files = await writeReport(out, results);
    console.log(
      `\n${files.map(rel).join('\n')}\n\nThe computed units stay in ${rel(progress.file)}: the same command renders the report again without recomputing; --fresh recomputes.`,
    );
  });

await runCli(program);
