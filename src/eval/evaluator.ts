/**
 * One evaluation unit at a time (a prompt, a held-out passage, the calibration): everything a
 * unit needs for every metric, mode and sparsity, computed from one set of attribution runs.
 *
 * A prompt: the dense greedy continuation, then one greedy continuation per (mode, metric,
 * sparsity) with the prompt pass dense and the decode steps masked. A passage: the dense
 * negative log-likelihood of its tokens after a dense context, then the same under each neuron
 * set. The token mode adds, per (per-token variant, sparsity), the same through the serving
 * graph's own per-token selection (src/eval/token.ts), and on passages the recall of the
 * oracle's Corrected GxO sets by the blocks each position selected.
 */
import type { LoadedModel } from '../arch/load.js';
import { QUANT_SPECS, type QuantName } from '../model/quant.js';
import type { OrtOptions } from '../runtime/session.js';
import { Attributor } from '../sparsity/attribution.js';
import type { CalibrationSet } from '../sparsity/calibration.js';
import { METRICS, type Metric } from '../sparsity/metrics.js';
import { recall } from '../sparsity/recall.js';
import { MaskedModel, type NeuronSet } from './masked-model.js';
import { calibratedScores, neuronsAt, oracleScores, promptScores, rankings, type MetricScores, type Ranking } from './neuron-sets.js';
import { TokenModel, variantName, type TokenVariant } from './token.js';

export const MODES = ['oracle', 'prompt', 'static', 'token'] as const;
export type Mode = (typeof MODES)[number];
/** The modes that apply one neuron set (per position, prompt or calibration) through the masked graph. */
export const SET_MODES = ['oracle', 'prompt', 'static'] as const;
export type SetMode = (typeof SET_MODES)[number];
export const setModes = (modes: readonly Mode[]): SetMode[] => SET_MODES.filter((m) => modes.includes(m));

export interface UnitSettings {
  metrics: Metric[];
  modes: Mode[];
  sparsities: number[];
  /** Tokens generated per prompt at most. */
  maxTokens: number;
  /** Tokens of a passage at most, and how many of them are dense context before scoring. */
  passageTokens: number;
  passageContext: number;
  igSteps: number;
  /** Tokens per calibration sample at most (as `npm run calibrate --max-length`). */
  calibrationMaxLength: number;
  /** The token mode's variants (src/eval/token.ts); evaluated when `modes` has 'token'. */
  tokenVariants: TokenVariant[];
  /**
   * Blockwise-quantised weights (QUANT_SPECS) in every session that is evaluated: the masked
   * model and the per-token sessions, built as the server builds them (`DecoderSession.create`'s
   * `quant`); absent: float32. Attribution stays float32: the static and per-prompt sets are the
   * float32 model's, as the served tiers' masks are; the oracle attributes each step on the
   * float32 weights over the evaluated model's dense cache, against its next token.
   */
  quant?: QuantName;
}

/** The token mode's variants a unit evaluates. */
export const tokenModeVariants = (settings: UnitSettings): TokenVariant[] => (settings.modes.includes('token') ? settings.tokenVariants : []);

export interface CalibrationUnit {
  kind: 'calibration';
  scores: Record<Metric, number[][]>;
}

export interface PromptUnit {
  kind: 'prompt';
  set: string;
  index: number;
  promptTokens: number;
  dense: number[];
  runs: { mode: SetMode; metric: Metric; sparsity: number; tokens: number[] }[];
  /** Per-token served variants (named as `variantName`), at each sparsity. */
  tokenRuns: { variant: string; sparsity: number; tokens: number[] }[];
}

export interface PassageUnit {
  kind: 'passage';
  index: number;
  /** Tokens scored, the UTF-8 bytes they decode to, and their dense negative log-likelihood. */
  tokens: number;
  bytes: number;
  denseNats: number;
  runs: { mode: SetMode; metric: Metric; sparsity: number; nats: number }[];
  /**
   * Per-token served variants at each sparsity; `recall` (with the oracle mode only): the share
   * of the oracle's Corrected GxO neurons (at the same sparsity) that the selected blocks
   * cover, mean over the scored positions and layers.
   */
  tokenRuns: { variant: string; sparsity: number; nats: number; recall?: number }[];
}

export type Unit = CalibrationUnit | PromptUnit | PassageUnit;

/** For each metric, the neuron set of a position (oracle) or of every position. */
type SetSource = (metric: Metric, sparsity: number, position: number) => NeuronSet;

export class Evaluator {
  private constructor(
    private readonly model: LoadedModel,
    private readonly settings: UnitSettings,
    private readonly masked: MaskedModel,
    private readonly attributor: Attributor,
    private readonly stepper: Attributor,
    private readonly token: TokenModel[],
  ) {}

  static async create(model: LoadedModel, settings: UnitSettings, options: OrtOptions = {}): Promise<Evaluator> {
    const { config, weights } = model;
    const quant = settings.quant && QUANT_SPECS[settings.quant];
    const [masked, attributor, stepper, ...token] = await Promise.all([
      MaskedModel.create(config, weights, options, quant),
      Attributor.create(config, weights, options),
      Attributor.create(config, weights, options, { cache: true }),
      ...tokenModeVariants(settings).map((v) => TokenModel.create(model, v, options, quant)),
    ]);
    return new Evaluator(model, settings, masked as MaskedModel, attributor as Attributor, stepper as Attributor, token as TokenModel[]);
  }

  async calibration(set: CalibrationSet): Promise<CalibrationUnit> {
    const maxLength = Math.min(this.settings.calibrationMaxLength, this.model.config.maxPositions);
    const scores = await calibratedScores(this.attributor, this.model.tokenizer, set, { maxLength, igSteps: this.settings.igSteps });
    const out = {} as Record<Metric, number[][]>;
    for (const metric of METRICS) out[metric] = scores[metric].map((l) => Array.from(l));
    return { kind: 'calibration', scores: out };
  }

  async prompt(set: string, index: number, text: string, calibration: CalibrationUnit): Promise<PromptUnit> {
    const { maxTokens } = this.settings;
    const eos = new Set(this.model.config.eosTokenIds);
    const prompt = this.model.tokenizer.encode(text).slice(0, this.model.config.maxPositions - maxTokens - 1);
    const dense = await this.masked.greedy(prompt, { maxTokens, eos, neuronsAt: () => null });
    // When the dense output stopped at eos, a sparse one gets one step more: whether it stops
    // there too is part of following the dense output.
    const ended = dense.length < maxTokens;
    const steps = ended ? dense.length + 1 : dense.length;
    // Decode step t reads token t - 1 at position prompt.length + t - 1.
    const read = [...prompt, ...dense.slice(0, steps - 1)];
    const sets = await this.sets(read, prompt.length, prompt, calibration);
    const runs: PromptUnit['runs'] = [];
    for (const mode of setModes(this.settings.modes)) {
      for (const metric of this.settings.metrics) {
        for (const sparsity of this.settings.sparsities) {
          const tokens = await this.masked.greedy(prompt, {
            maxTokens: steps,
            eos,
            neuronsAt: (t) => sets[mode](metric, sparsity, prompt.length + t - 1),
          });
          runs.push({ mode, metric, sparsity, tokens });
        }
      }
    }
    const tokenRuns: PromptUnit['tokenRuns'] = [];
    if (this.token.length > 0) {
      const after = await this.masked.denseStep(prompt, this.masked.emptyCache());
      for (const model of this.token) {
        for (const sparsity of this.settings.sparsities) {
          tokenRuns.push({ variant: variantName(model.variant), sparsity, tokens: await model.greedy(after, sparsity, steps, eos) });
        }
      }
    }
    return { kind: 'prompt', set, index, promptTokens: prompt.length, dense, runs, tokenRuns };
  }

  async passage(index: number, text: string, calibration: CalibrationUnit): Promise<PassageUnit> {
    const { passageTokens, passageContext } = this.settings;
    const tokenizer = this.model.tokenizer;
    const tokens = tokenizer.encode(text).slice(0, Math.min(passageTokens, this.model.config.maxPositions));
    if (tokens.length < passageContext + 2) throw new Error(`passage ${index} has ${tokens.length} tokens; it needs at least ${passageContext + 2}`);
    const context = tokens.slice(0, passageContext);
    const sets = await this.sets(tokens.slice(0, -1), passageContext, context, calibration);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    const denseNats = sum(await this.masked.nll(tokens, passageContext, () => null));
    const runs: PassageUnit['runs'] = [];
    for (const mode of setModes(this.settings.modes)) {
      for (const metric of this.settings.metrics) {
        for (const sparsity of this.settings.sparsities) {
          const nats = sum(await this.masked.nll(tokens, passageContext, (p) => sets[mode](metric, sparsity, p)));
          runs.push({ mode, metric, sparsity, nats });
        }
      }
    }
    const tokenRuns: PassageUnit['tokenRuns'] = [];
    if (this.token.length > 0) {
      const { cache } = await this.masked.denseStep(context, this.masked.emptyCache());
      const withOracle = this.settings.modes.includes('oracle');
      for (const model of this.token) {
        for (const sparsity of this.settings.sparsities) {
          const { nats, kept } = await model.nll(tokens, cache, sparsity);
          const run: PassageUnit['tokenRuns'][number] = { variant: variantName(model.variant), sparsity, nats: sum(nats) };
          if (withOracle) {
            let total = 0;
            let count = 0;
            kept.forEach((layers, q) => {
              const oracle = sets.oracle('cor_gxo', sparsity, passageContext + q)!;
              layers.forEach((neurons, l) => {
                total += recall(neurons, oracle[l]);
                count++;
              });
            });
            run.recall = total / count;
          }
          tokenRuns.push(run);
        }
      }
    }
    // The scored tokens are tokens[passageContext + 1 ..]: their bytes are what decoding them adds.
    const bytes = Buffer.byteLength(tokenizer.decode(tokens)) - Buffer.byteLength(tokenizer.decode(tokens.slice(0, passageContext + 1)));
    return { kind: 'passage', index, tokens: tokens.length - passageContext - 1, bytes, denseNats, runs, tokenRuns };
  }

  /**
   * Each mode's neuron sets for the positions of `read` from `start` on: the oracle's per
   * position, the prompt's from `prompt`, the static ones from the calibration.
   */
  private async sets(read: number[], start: number, prompt: number[], calibration: CalibrationUnit): Promise<Record<SetMode, SetSource>> {
    const { modes, igSteps } = this.settings;
    const constant = (r: Record<Metric, Ranking>): SetSource => {
      const cache = new Map<string, NeuronSet>();
      return (metric, sparsity) => {
        const key = `${metric}:${sparsity}`;
        if (!cache.has(key)) cache.set(key, neuronsAt(r[metric], sparsity));
        return cache.get(key)!;
      };
    };
    const unavailable: SetSource = () => {
      throw new Error('mode not evaluated');
    };
    const out: Record<SetMode, SetSource> = { oracle: unavailable, prompt: unavailable, static: unavailable };
    if (modes.includes('static')) out.static = constant(rankings(fromJson(calibration.scores)));
    if (modes.includes('prompt')) out.prompt = constant(rankings(await promptScores(this.attributor, prompt, igSteps)));
    if (modes.includes('oracle')) {
      const { scores } = await oracleScores(this.stepper, this.masked, read, start, igSteps);
      const perPosition = scores.map(rankings);
      out.oracle = (metric, sparsity, position) => {
        const ranking = perPosition[position - start];
        if (!ranking) throw new RangeError(`no oracle scores at position ${position}`);
        return neuronsAt(ranking[metric], sparsity);
      };
    }
    return out;
  }

  async release(): Promise<void> {
    await Promise.all([this.masked.release(), this.attributor.release(), this.stepper.release(), ...this.token.map((m) => m.release())]);
  }
}

function fromJson(scores: Record<Metric, number[][]>): MetricScores {
  const out = {} as MetricScores;
  for (const metric of METRICS) out[metric] = scores[metric].map((l) => Float64Array.from(l));
  return out;
}
