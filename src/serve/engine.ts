/**
 * A loaded model directory served through ONNX Runtime: the ServedModel contract.
 *
 * A request is planned (its tier, from `sparsity` or a latency budget), becomes a Sequence with
 * its neurons and sessions, and is generated: its prompt runs dense (or at the tier with
 * sparsePrefill), its decode steps at the tier, batched with the other sequences at that tier.
 * The tier's neurons are the calibrated ones (activation "static", a session with pruned MLP
 * weights), the prompt's own from attribution (activation "prompt", cached in the activation
 * store and fed to a session whose MLP weights are inputs), or each token's own, chosen inside
 * the graph (activation "token").
 */
import { basename, resolve } from 'node:path';
import type { ActivationStore } from '../cache/types.js';
import { type LoadedModel, loadModelDir } from '../arch/load.js';
import type { QuantName } from '../model/quant.js';
import { type DecodingModel, generate } from '../runtime/generate.js';
import { SessionPool } from '../runtime/pool.js';
import type { OrtOptions } from '../runtime/session.js';
import {
  type DecodeStats,
  type ExecutionOptions,
  type GenerationDelta,
  type GenerationResult,
  ParameterError,
  type SamplingParams,
  type ServedModel,
  type TierInfo,
  type TokenActivationInfo,
} from '../runtime/types.js';
import { tokenKeptUnits } from '../sparsity/selectors.js';
import { readMaskFile } from '../sparsity/masks.js';
import { isMetric } from '../sparsity/metrics.js';
import { selectTier, type Tier } from '../sparsity/tiers.js';
import { DEFAULT_MAX_BATCH_SIZE, DEFAULT_PREFILL_CHUNK_TOKENS } from './decode-batch.js';
import { LatencyModel } from './latency.js';
import { PromptNeurons } from './prompt-neurons.js';
import { Scheduler } from './scheduler.js';
import { type Plan, Sequence, type Setup } from './sequence.js';
import { type Activation, profileKey, TierSessions } from './tier-sessions.js';

export interface ServeOptions extends OrtOptions {
  /** Name clients use in `model`; defaults to the directory's name. */
  id?: string;
  /** Sessions of all models, shared so that one memory budget covers them. */
  pool?: SessionPool;
  /** Where per-prompt activation scores are cached; without one they are computed every time. */
  store?: ActivationStore;
  /** Build every tier's session and measure its latency profile at load (else on first use). */
  preload?: boolean;
  /** A chat template that replaces the one in tokenizer_config.json (CHAT_TEMPLATE). */
  chatTemplate?: string;
  /** Sequences that decode together in one step at most (MAX_BATCH_SIZE). */
  maxBatchSize?: number;
  /** Prompt tokens per prefill run at most, so that running sequences step in between (PREFILL_CHUNK_TOKENS). */
  prefillChunkTokens?: number;
  /** Serve the weights quantised (QUANT); float32 without. */
  quant?: QuantName;
}

export class Engine implements ServedModel, DecodingModel {
  readonly id: string;
  readonly created = Math.floor(Date.now() / 1000);
  readonly contextLength: number;
  readonly vocabSize: number;
  readonly eosToken: string | null;
  readonly bosToken: string | null;
  readonly tokenizerDir: string;
  readonly maxTokenChars: number;
  readonly chatTemplate: string | null;
  readonly eosTokenIds: ReadonlySet<number>;
  private readonly latency = new LatencyModel();
  private readonly sessions: TierSessions;
  private readonly promptNeurons: PromptNeurons;
  private readonly scheduler: Scheduler;
  private readonly pool: SessionPool;
  private readonly ownsPool: boolean;
  /** Per-prompt sets differ per request: each gets a batch of its own. */
  private promptBatches = 0;

  constructor(
    readonly model: LoadedModel,
    options: ServeOptions = {},
  ) {
    this.id = options.id ?? basename(model.dir);
    this.contextLength = model.config.maxPositions;
    this.vocabSize = model.config.vocabSize;
    this.eosToken = model.tokenizer.eosToken;
    this.bosToken = model.tokenizer.bosToken;
    this.tokenizerDir = model.dir;
    this.maxTokenChars = model.tokenizer.maxTokenChars;
    this.chatTemplate = options.chatTemplate ?? model.tokenizer.chatTemplate;
    this.eosTokenIds = new Set(model.config.eosTokenIds);
    this.ownsPool = options.pool === undefined;
    this.pool = options.pool ?? new SessionPool();
    const masks = readMaskFile(model.dir, model.weightsHash, model.config);
    this.sessions = new TierSessions(model, masks, this.pool, options, this.latency, options.quant);
    // Per-prompt sets are scored with the calibration's metric, else Corrected GxO.
    const metric = masks && isMetric(masks.metric) ? masks.metric : 'cor_gxo';
    this.promptNeurons = new PromptNeurons(model, metric, this.pool, options, this.sessions.denseBytes, options.store);
    this.scheduler = new Scheduler(
      model.config,
      { maxBatchSize: options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE, prefillChunk: options.prefillChunkTokens ?? DEFAULT_PREFILL_CHUNK_TOKENS },
      this.latency,
    );
  }

  get quant(): QuantName | undefined {
    return this.sessions.quant;
  }

  get metric() {
    return this.promptNeurons.metric;
  }

  // Text.

  encode(text: string, addSpecialTokens = true): number[] {
    return this.model.tokenizer.encode(text, addSpecialTokens);
  }

  decode(ids: number[]): string {
    return this.model.tokenizer.decode(ids);
  }

  tokenLabel(id: number): string {
    return this.model.tokenizer.idToToken(id) ?? '';
  }

  // What it serves.

  tiers(): TierInfo[] {
    return this.sessions.info();
  }

  tokenActivation(): TokenActivationInfo {
    return this.sessions.tokenInfo();
  }

  batching(): DecodeStats {
    return this.scheduler.decodeStats();
  }

  /** Builds the sessions of every tier, static and per-token (or of dense only), and measures their profiles. */
  preload(which: 'all' | 'dense' = 'all'): Promise<void> {
    return this.sessions.preload(which);
  }

  // Planning a request.

  /** The API boundary's check of a request's execution options (the engine trusts them afterwards). */
  checkExecution(execution: ExecutionOptions): void {
    if (execution.sparsity !== undefined) selectTier(this.sessions.tiersFor(execution.activation), execution.sparsity, this.id);
    if (execution.latencyBudgetMs !== undefined && !(execution.latencyBudgetMs > 0)) {
      throw new ParameterError('latency_budget_ms', `'latency_budget_ms' must be a positive number of milliseconds; got ${execution.latencyBudgetMs}.`);
    }
    if (execution.latencyBudgetMs !== undefined && execution.sparsity !== undefined) {
      throw new ParameterError('latency_budget_ms', "Give either 'sparsity' or 'latency_budget_ms', not both.");
    }
  }

  /** What a request at `tier` would take, with the batches running now. */
  private predictMs(tier: Tier, activation: Activation, promptTokens: number, maxTokens: number, sparsePrefill: boolean): number {
    const decodeProfile = profileKey(tier, activation);
    return this.latency.predictMs({
      decodeProfile,
      prefillProfile: sparsePrefill ? decodeProfile : 'dense',
      promptTokens,
      maxTokens,
      prefillChunk: this.scheduler.options.prefillChunk,
      running: this.scheduler.running(),
    });
  }

  private async plan(promptTokens: number, maxTokens: number, execution: ExecutionOptions): Promise<Plan> {
    const activation = execution.activation ?? 'static';
    const sparsePrefill = execution.sparsePrefill ?? false;
    const tiers = this.sessions.tiersFor(activation);
    if (execution.latencyBudgetMs === undefined) {
      const tier = selectTier(tiers, execution.sparsity ?? 0, this.id);
      return { tier, activation, sparsePrefill, profile: profileKey(tier, activation) };
    }
    // Every tier needs a profile to be compared; building one measures it.
    await this.sessions.profile(activation);
    const budgetMs = execution.latencyBudgetMs;
    const predicted = tiers.map((tier) => ({ tier, ms: this.predictMs(tier, activation, promptTokens, maxTokens, sparsePrefill) }));
    const fits = predicted.filter((p) => p.ms <= budgetMs);
    const chosen = fits.length > 0 ? fits[0] : predicted[predicted.length - 1];
    const budget = { budgetMs, predictedMs: chosen.ms, budgetMet: fits.length > 0 };
    return { tier: chosen.tier, activation, sparsePrefill, budget, profile: profileKey(chosen.tier, activation) };
  }

  /** The planned sequence's neurons and sessions. */
  private async setUp(plan: Plan, promptIds: number[]): Promise<Setup> {
    const { tier, activation } = plan;
    const counts = (keep: number[][] | null) => (keep ? keep.map((k) => ({ mlp: k.length })) : []);
    const base = { plan, selected: {}, inputs: {}, decodeUnits: counts(tier.keep), batchKey: plan.profile };
    let setup: Omit<Setup, 'decodeSession' | 'prefillSession'>;
    if (tier.sparsity === 0) {
      setup = { ...base, source: 'dense' };
    } else if (activation === 'token') {
      const { selection, selector } = this.sessions;
      const decodeUnits = tokenKeptUnits(this.model.config, selection, this.sessions.tokenBlocks(tier));
      setup = { ...base, source: 'token', inputs: this.sessions.tokenInputs(tier), decodeUnits, selected: { selector, block: selection.block } };
    } else if (activation === 'prompt') {
      const { keep, source } = await this.promptNeurons.choose(promptIds, tier.sparsity);
      setup = { ...base, source, inputs: this.promptNeurons.gather(keep), decodeUnits: counts(keep), batchKey: `prompt:${++this.promptBatches}` };
    } else {
      setup = { ...base, source: 'static' };
    }
    const decodeSession = await this.sessions.decodeSession(tier, activation);
    try {
      const sparsePrefill = plan.sparsePrefill && tier.sparsity > 0;
      const prefillSession = sparsePrefill ? null : await this.sessions.session(this.sessions.tiers[0], 'static');
      return { ...setup, decodeSession, prefillSession };
    } catch (err) {
      decodeSession.done();
      throw err;
    }
  }

  // Generation.

  generate(
    promptIds: number[],
    params: SamplingParams,
    signal?: AbortSignal,
    execution: ExecutionOptions = {},
  ): AsyncGenerator<GenerationDelta, GenerationResult> {
    for (const id of promptIds) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`token id ${id} is outside the vocabulary [0, ${this.vocabSize})`);
      }
    }
    if (promptIds.length === 0) throw new RangeError('the prompt has no tokens');
    if (promptIds.length + params.maxTokens > this.contextLength) {
      throw new RangeError(`prompt (${promptIds.length} tokens) + max_tokens (${params.maxTokens}) exceeds the context length ${this.contextLength}`);
    }
    return this.run(promptIds, params, signal, execution);
  }

  private async *run(
    promptIds: number[],
    params: SamplingParams,
    signal: AbortSignal | undefined,
    execution: ExecutionOptions,
  ): AsyncGenerator<GenerationDelta, GenerationResult> {
    const plan = await this.plan(promptIds.length, params.maxTokens, execution);
    const sequence = new Sequence(this.model.config, await this.setUp(plan, promptIds), this.scheduler);
    try {
      let echo = params.echo; // the echoed prompt comes first and is not a new token
      const it = generate(this, sequence, promptIds, params, signal);
      let r = await it.next();
      for (; !r.done; r = await it.next()) {
        if (echo) echo = false;
        else sequence.produced();
        yield r.value;
      }
      sequence.close();
      if (sequence.prefillRan)
        this.latency.recordPrefill(plan.profile, plan.sparsePrefill && plan.tier.sparsity > 0 ? plan.profile : 'dense', promptIds.length, sequence.prefillMs);
      return sequence.account(r.value, promptIds.length);
    } finally {
      sequence.close();
    }
  }

  async close(): Promise<void> {
    this.scheduler.close();
    if (this.ownsPool) await this.pool.close();
  }
}

export async function loadServedModel(dir: string, options: ServeOptions = {}): Promise<Engine> {
  const model = await loadModelDir(resolve(dir));
  const engine = new Engine(model, options);
  await engine.preload((options.preload ?? true) ? 'all' : 'dense');
  return engine;
}
