/**
 * What a batched decode step costs by batch size, tier and activation source, timed on the
 * sessions themselves (no HTTP, no scheduler), to decide two questions of continuous batching
 * under sparsity (issue 15):
 * - sequences at different static tiers: a separate graph run per tier (what the server does), or
 *   one run of them all at the densest tier present ("promotion")?
 * - per-prompt neuron sets: one batch per set (what the server does), or one batch over the
 *   union of the sets, which grows with the batch?
 *
 *   npm run bench:batching -- [--threads 2] [--rounds 5] [--prompts 16] [--out docs/batch-costs.md]
 *
 * How much per-prompt sets overlap is measured on the trained default model (models/default),
 * by the same attribution a request runs; what a step costs, at SmolLM2-135M's shape on the load
 * sweep's random model (a step's time depends on how many neurons run, not which). Every
 * (session, batch size) point is timed once per round, round after round, so that the machine's
 * drift falls on every side of a comparison alike; comparisons are taken round by round.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import { Command } from 'commander';
import { parsePositiveInt, parsePositiveNumber, runCli } from '../src/cli/options.js';
import { loadModelDir, type LoadedModel } from '../src/arch/load.js';
import { KvArena } from '../src/runtime/kv-arena.js';
import { DecoderSession, type OrtOptions } from '../src/runtime/session.js';
import { Attributor, promptTargets } from '../src/sparsity/attribution.js';
import { keepTop, readMaskFile } from '../src/sparsity/masks.js';
import { meanOverPositions, scoreSequence } from '../src/sparsity/metrics.js';
import { pruneMlp } from '../src/sparsity/prune.js';
import { keptBlocks, tokenFeeds, tokenSelection } from '../src/sparsity/selectors.js';
import { tiersOf } from '../src/sparsity/tiers.js';
import { promptSetFeeds } from '../src/serve/prompt-neurons.js';
import { watchCpu, waitForQuiet } from './lib/cpu-load.js';
import { recordTable } from './lib/markdown.js';
import { ensureSweepModel } from './lib/sweep-model.js';

interface Options {
  threads: number;
  rounds: number;
  prompts: number;
  steps: number;
  maxOtherLoad: number;
  out?: string;
}

const BATCH_SIZES = [1, 2, 4, 8];
const PROMPT_TOKENS = 32;
const OVERLAP_MODEL = 'models/default';
const PROMPTS_FILE = 'data/eval/validation-prompts.jsonl';

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * Per batch size k, the union of k prompts' neuron sets at each sparsity, as a share of a layer's
 * neurons: the mean over layers, for each of the disjoint groups of k consecutive prompts.
 */
async function unionShares(model: LoadedModel, sparsities: number[], prompts: number, ortOptions: OrtOptions): Promise<Map<number, Map<number, number[]>>> {
  const masks = readMaskFile(model.dir, model.weightsHash, model.config);
  const metric = masks?.metric ?? 'cor_gxo';
  const texts = readFileSync(PROMPTS_FILE, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(0, prompts)
    .map((l) => (JSON.parse(l) as { prompt: string }).prompt);
  const attributor = await Attributor.create(model.config, model.weights, ortOptions);
  const scores: Float64Array[][] = [];
  for (const text of texts) {
    const ids = model.tokenizer.encode(text).slice(0, PROMPT_TOKENS);
    const scored = await scoreSequence(attributor, ids, promptTargets(ids), metric);
    scores.push(scored.layers.map((l) => meanOverPositions(l.mlp, model.config.intermediateSize)));
  }
  await attributor.release();
  const I = model.config.intermediateSize;
  const shares = new Map<number, Map<number, number[]>>();
  for (const s of sparsities) {
    const sets = scores.map((layers) => layers.map((layer) => keepTop(layer, s)));
    const byK = new Map<number, number[]>();
    for (const k of BATCH_SIZES) {
      const groups: number[] = [];
      for (let g = 0; g + k <= sets.length; g += k) {
        const group = sets.slice(g, g + k);
        const perLayer = group[0].map((_, l) => new Set(group.flatMap((set) => set[l])).size / I);
        groups.push(mean(perLayer));
      }
      byK.set(k, groups);
    }
    shares.set(s, byK);
  }
  return shares;
}

/** A session and its inputs, timed at some batch sizes. */
interface Timed {
  label: string;
  session: DecoderSession;
  inputs: Record<string, ort.Tensor>;
  sizes: number[];
  /** Per batch size, one median step time per round. */
  ms: Map<number, number[]>;
}

/**
 * The median time of `steps` batched decode steps of `rows` sequences, each holding the same
 * prompt's cache, after one untimed step.
 */
async function stepMs(t: Timed, rows: number, arena: KvArena, steps: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i <= steps; i++) {
    const positions = Array.from({ length: rows }, () => PROMPT_TOKENS + i);
    const t0 = performance.now();
    await t.session.step(
      positions.map((_, r) => 3 + r + i),
      positions,
      arena,
      t.inputs,
    );
    if (i > 0) times.push(performance.now() - t0);
  }
  return median(times);
}

const ratio = (x: number) => `${x.toFixed(2)}x`;

async function run(options: Options): Promise<void> {
  // The union of the largest batch's sets needs at least one group of that many prompts.
  if (options.prompts < Math.max(...BATCH_SIZES)) throw new Error(`--prompts must be at least ${Math.max(...BATCH_SIZES)}, the largest batch measured`);
  const ortOptions: OrtOptions = { intraOpThreads: options.threads, interOpThreads: 1 };
  const log = (line: string) => process.stderr.write(`${line}\n`);

  const sweepDir = await ensureSweepModel(log);
  const model = await loadModelDir(sweepDir);
  const c = model.config;
  const tiers = tiersOf(c, readMaskFile(model.dir, model.weightsHash, c));
  const sparse = tiers.filter((t) => t.sparsity > 0);
  const sparsities = sparse.map((t) => t.sparsity);

  log(`per-prompt sets of ${options.prompts} prompts on ${OVERLAP_MODEL} ...`);
  const overlapModel = await loadModelDir(OVERLAP_MODEL);
  const shares = await unionShares(overlapModel, sparsities, options.prompts, ortOptions);

  log('building sessions ...');
  const timed: Timed[] = [];
  const add = async (label: string, session: Promise<DecoderSession>, inputs: Record<string, ort.Tensor>, sizes: number[]) =>
    timed.push({ label, session: await session, inputs, sizes, ms: new Map(sizes.map((n) => [n, []])) });
  await add('dense', DecoderSession.create(c, model.weights, ortOptions), {}, BATCH_SIZES);
  for (const tier of sparse) await add(`static ${tier.name}`, DecoderSession.create(c, pruneMlp(c, model.weights, tier.keep!), ortOptions), {}, BATCH_SIZES);
  // Per-prompt graphs take their MLP weights as inputs: one graph per set size. A set of a tier's
  // size runs alone; a union of k sets (its mean size over layers and groups) runs k rows.
  const promptSizes = new Map<string, number>();
  for (const tier of sparse) {
    promptSizes.set(`prompt ${tier.name}`, tier.neuronsPerLayer);
    for (const k of BATCH_SIZES.slice(1))
      promptSizes.set(`prompt ${tier.name} union of ${k}`, Math.round(mean(shares.get(tier.sparsity)!.get(k)!) * c.intermediateSize));
  }
  for (const [label, kept] of promptSizes) {
    const keep = model.weights.layers.map(() => [...Array(kept).keys()]);
    const k = Number(/union of (\d+)/.exec(label)?.[1] ?? 1);
    await add(label, DecoderSession.create(c, pruneMlp(c, model.weights, keep), ortOptions, { mlpInputs: true }), promptSetFeeds(model.weights, keep), [k]);
  }
  const selection = tokenSelection(model, 'gate-rerank');
  const tokenSession = DecoderSession.create(c, model.weights, ortOptions, { tokenSelection: selection });
  for (const tier of sparse) {
    await add(
      `token ${tier.name}`,
      tokenSession,
      tokenFeeds(c.intermediateSize, selection, keptBlocks(c.intermediateSize, selection.block, tier.sparsity)),
      BATCH_SIZES,
    );
  }

  // Every row holds the same prompt's cache (its keys do not change a step's cost).
  const dense = timed[0].session;
  const prompt = Array.from({ length: PROMPT_TOKENS }, (_, i) => 3 + ((i * 7919) % 30000));
  const { cache } = await dense.forward(prompt, dense.emptyCache());
  const arena = new KvArena(c);
  arena.reserve(Math.max(...BATCH_SIZES), PROMPT_TOKENS + options.steps + 1);
  for (let r = 0; r < Math.max(...BATCH_SIZES); r++) arena.load(r, cache);

  // A round that other processes share the cores with is run again (3 times at most).
  const otherLoad: number[] = [];
  for (let round = 0; round < options.rounds; round++) {
    for (let attempt = 1; ; attempt++) {
      await waitForQuiet(() => [], { maxCores: options.maxOtherLoad / 2, timeoutMs: 120_000 });
      log(`round ${round + 1} of ${options.rounds}${attempt > 1 ? ` (again: other processes used ${otherLoad.at(-1)!.toFixed(2)} cores)` : ''} ...`);
      const watch = watchCpu(() => []);
      const points = timed.map((t) => t.sizes.map((n) => ({ n, ms: 0 })));
      for (const [i, t] of timed.entries()) for (const point of points[i]) point.ms = await stepMs(t, point.n, arena, options.steps);
      const other = watch.stop()?.otherCores ?? 0;
      otherLoad.push(other);
      if (other > options.maxOtherLoad && attempt < 3) continue;
      for (const [i, t] of timed.entries()) for (const point of points[i]) t.ms.get(point.n)!.push(point.ms);
      break;
    }
  }
  for (const t of new Set(timed.map((x) => x.session))) await t.release();

  const at = (label: string, n: number) => timed.find((t) => t.label === label)!.ms.get(n)!;
  /** The median over rounds of f(round). */
  const perRound = (f: (r: number) => number) => median(Array.from({ length: options.rounds }, (_, r) => f(r)));

  const stepRows = timed
    .filter((t) => !t.label.startsWith('prompt'))
    .map((t) => ({
      'session (decode)': t.label,
      ...Object.fromEntries(BATCH_SIZES.flatMap((n) => [[`${n} row${n > 1 ? 's' : ''}: ms`, median(t.ms.get(n)!).toFixed(1)]])),
      ...Object.fromEntries(BATCH_SIZES.map((n) => [`tokens/s at ${n}`, ((1000 * n) / median(t.ms.get(n)!)).toFixed(0)])),
    }));

  // Mixed tiers: k sequences at each of two tiers, as two runs or as one run of 2k at the denser.
  const mixRows: Record<string, string>[] = [];
  const names = ['dense', ...sparse.map((t) => `static ${t.name}`)];
  for (let a = 0; a < names.length; a++) {
    for (let b = a + 1; b < names.length; b++) {
      for (const k of BATCH_SIZES.filter((n) => 2 * n <= Math.max(...BATCH_SIZES))) {
        const separate = (r: number) => at(names[a], k)[r] + at(names[b], k)[r];
        const promoted = (r: number) => at(names[a], 2 * k)[r];
        mixRows.push({
          sequences: `${k} ${names[a].replace('static ', '')} + ${k} ${names[b].replace('static ', '')}`,
          'separate runs: ms per step of all': perRound(separate).toFixed(1),
          [`promoted (one run of ${'2k'} at the denser): ms`]: perRound(promoted).toFixed(1),
          'separate / promoted': ratio(perRound((r) => separate(r) / promoted(r))),
        });
      }
    }
  }

  // Per-prompt sets: k sequences, each its own batch of one, or one batch over their union.
  const unionRows: Record<string, string>[] = [];
  for (const tier of sparse) {
    for (const k of BATCH_SIZES.slice(1)) {
      const own = (r: number) => k * at(`prompt ${tier.name}`, 1)[r];
      const union = (r: number) => at(`prompt ${tier.name} union of ${k}`, k)[r];
      const denseK = (r: number) => at('dense', k)[r];
      const groups = shares.get(tier.sparsity)!.get(k)!;
      unionRows.push({
        tier: tier.name,
        sequences: String(k),
        'union of their sets (mean share of a layer, range over groups)': `${(100 * mean(groups)).toFixed(0)}% (${(100 * Math.min(...groups)).toFixed(0)}–${(100 * Math.max(...groups)).toFixed(0)}%) vs ${(100 * (1 - tier.sparsity)).toFixed(0)}% alone`,
        'own batches: ms per step of all': perRound(own).toFixed(1),
        'one batch over the union: ms': perRound(union).toFixed(1),
        'dense batch: ms': perRound(denseK).toFixed(1),
        'own / union': ratio(perRound((r) => own(r) / union(r))),
        'union / dense': ratio(perRound((r) => union(r) / denseK(r))),
      });
    }
  }

  const header = [
    `step costs: ${sweepDir} (SmolLM2-135M's shape: ${c.numLayers} layers, hidden ${c.hiddenSize}, intermediate ${c.intermediateSize}), float32, ONNX Runtime ${ort.env.versions.common} CPU, ${options.threads} intra-op threads; every row's cache holds a ${PROMPT_TOKENS}-token prompt; a point is the median of ${options.steps} steps after one untimed step, taken once per round over ${options.rounds} rounds; tables give the median over rounds (ratios: of the round-by-round ratios)`,
    `per-prompt overlap: ${OVERLAP_MODEL} (trained; ${overlapModel.config.numLayers} layers, intermediate ${overlapModel.config.intermediateSize}), the first ${options.prompts} prompts of ${PROMPTS_FILE} (first ${PROMPT_TOKENS} tokens), each scored as a request's per-prompt set is (its calibration's metric, mean over positions), groups of k consecutive prompts`,
    `per-token rows: the served gate-rerank selector; static tiers from ${sweepDir}'s random-score masks`,
    `other processes used ${Math.max(...otherLoad).toFixed(2)} cores at most during a round (mean ${mean(otherLoad).toFixed(2)}); ${otherLoad.length - options.rounds} round(s) were run again for using more than ${options.maxOtherLoad}`,
  ];
  console.log(header.join('\n'));
  console.table(stepRows);
  console.table(mixRows);
  console.table(unionRows);

  if (options.out) {
    const marker = '<!-- Written by hand below this line; `npm run bench:batching -- --out` keeps it. -->';
    let notes = '';
    try {
      const previous = readFileSync(options.out, 'utf8');
      if (previous.includes(marker)) notes = previous.slice(previous.indexOf(marker));
    } catch {}
    const args = process.argv.slice(2).join(' ');
    writeFileSync(
      options.out,
      [
        '# Batched decode step costs by tier and activation source',
        '',
        `Generated by \`npm run bench:batching${args ? ` -- ${args}` : ''}\` on ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, ${availableParallelism()} cores, Node ${process.version}.`,
        '',
        ...header.map((h) => `- ${h}`),
        '',
        '## A step by batch size',
        '',
        recordTable(stepRows),
        '',
        '## Sequences at two static tiers: separate runs or promotion to the denser',
        '',
        recordTable(mixRows),
        '',
        '## Per-prompt sets: one batch each, or one batch over their union',
        '',
        recordTable(unionRows),
        '',
        notes || marker,
        '',
      ].join('\n'),
    );
  }
}

const program = new Command('bench:batching')
  .description(
    'Time batched decode steps by batch size, tier and activation source: mixed tiers (separate runs vs promotion) and per-prompt sets (own batches vs their union)',
  )
  .option('--threads <n>', 'ONNX Runtime intra-op threads', parsePositiveInt, 2)
  .option('--rounds <n>', 'rounds of timing every point', parsePositiveInt, 5)
  .option('--steps <n>', 'timed steps per point and round', parsePositiveInt, 8)
  .option('--prompts <n>', 'prompts whose per-prompt sets are overlapped', parsePositiveInt, 16)
  .option('--max-other-load <cores>', 'run a round again when other processes used more CPU than this during it', parsePositiveNumber, 0.2)
  .option('--out <file>', 'also write the tables to this Markdown file')
  .action(run);

await runCli(program);
