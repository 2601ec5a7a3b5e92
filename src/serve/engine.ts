/**
 * A loaded model directory served through ONNX Runtime: the ServedModel contract.
 *
 * Each request runs at a sparsity tier. Its prompt runs dense (or sparse with sparsePrefill)
 * and its decode steps run the tier's neurons only: the calibrated ones from a session with
 * pruned MLP weights (activation "static"), or the prompt's own, from attribution on the prompt
 * (cached by score in the activation store), gathered into tensors once per request and fed to
 * a session whose MLP weights are inputs (activation "prompt").
 */
import { basename, resolve } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { ActivationStore } from '../cache/types.js';
import { loadModelDir, type LoadedModel } from '../model/load.js';
import type { LlamaConfig, LlamaWeights } from '../model/types.js';
import { Attributor, promptTargets } from '../sparsity/attribution.js';
import { generationFlops, weightBytesPerToken, type KeptUnits } from '../sparsity/flops.js';
import { DEFAULT_TIERS, keepTop, readMaskFile } from '../sparsity/masks.js';
import { isMetric, meanOverPositions, scoreSequence, type Metric } from '../sparsity/metrics.js';
import { gatherLayerMlp, pruneMlp } from '../sparsity/prune.js';
import { availableSelectors, keptBlocks, servedSelector, tokenFeeds, tokenKeptUnits, tokenSavedBytes, tokenSelection, type Selector } from '../sparsity/selectors.js';
import { selectTier, tierName, tiersOf, type Tier } from '../sparsity/tiers.js';
import type { TokenSelection } from '../arch/token-mlp.js';
import { generate, type DecodingModel } from '../runtime/generate.js';
import { DecodeBatch, DEFAULT_MAX_BATCH_SIZE, DEFAULT_PREFILL_CHUNK_TOKENS, RunQueue, type BatchStats } from './decode-batch.js';
import { LatencyModel } from './latency.js';
import { Sequence } from './sequence.js';
import { SessionPool, type Lease } from '../runtime/pool.js';
import { KvCache } from '../runtime/kv-cache.js';
import { LlamaSession, type ForwardResult, type OrtOptions } from '../runtime/session.js';
import {
  ParameterError,
  type ExecutionOptions,
  type GenerationDelta,
  type GenerationResult,
  type SamplingParams,
  type DecodeStats,
  type ServedModel,
  type SparsityReport,
  type TierInfo,
  type TokenActivationInfo,
} from '../runtime/types.js';

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
}


/** A tier's latency profile: per-token tiers have their own; "prompt" decodes as fast as "static". */
const profileKey = (tier: Tier, activation: Activation) => (activation === 'token' && tier.sparsity > 0 ? `token:${tier.name}` : tier.name);

/** Tokens of the start-up latency measurement: a prompt, then decode steps. */
const WARMUP_PROMPT = 16;
const WARMUP_DECODE = 8;

function floatBytes(weights: LlamaWeights): number {
  let n = weights.embed.data.length + weights.norm.data.length;
  if (weights.lmHead !== weights.embed) n += weights.lmHead.data.length;
  for (const l of weights.layers) for (const t of Object.values(l)) n += t.data.length;
  return 4 * n;
}

/** Float32 bytes of the MLP neurons a tier drops: a gate row, an up row and a down column each, per layer. */
function droppedBytes(config: LlamaConfig, tier: Tier): number {
  return 4 * 3 * config.hiddenSize * (config.intermediateSize - tier.neuronsPerLayer) * config.numLayers;
}

type Activation = NonNullable<ExecutionOptions['activation']>;

interface Plan {
  tier: Tier;
  activation: Activation;
  sparsePrefill: boolean;
  budget?: { budgetMs: number; predictedMs: number; budgetMet: boolean };
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
  /** The metric per-prompt sets are scored with: the calibration's, else Corrected GxO. */
  readonly metric: Metric;
  private readonly tierList: Tier[];
  /** Per-token tiers: dense, then the static tiers' sparsities (or the default ones without masks). */
  private readonly tokenTierList: Tier[];
  /** What `activation: "token"` runs, and every selector the model has (read once: predictors are files). */
  private readonly selector: Selector;
  private readonly selectors: Selector[];
  private readonly selection: TokenSelection;
  private readonly latency = new LatencyModel();
  private readonly pool: SessionPool;
  private readonly ownsPool: boolean;
  private readonly denseBytesPerToken: number;
  private readonly denseSessionBytes: number;
  /**
   * The last prefill, so that `n` choices of one prompt (and a repeated prompt) share it. A
   * cache snapshot's positions are never rewritten: the first request to continue it appends
   * in place, later ones copy it first (KvCache.append).
   */
  private lastPrefill: { key: string; result: Promise<ForwardResult> } | null = null;
  /** Every graph run of this model's requests, one at a time. */
  private readonly queue = new RunQueue();
  /** The running decode batches, by tier and activation (per-prompt sets each have their own). */
  private readonly batches = new Map<string, { session: LlamaSession; batch: DecodeBatch; profile: string }>();
  private promptBatches = 0;
  private readonly decodeStats: DecodeStats = { steps: 0, sequenceSteps: 0, maxRows: 0 };
  private readonly maxBatchSize: number;
  private readonly prefillChunk: number;
  private store: ActivationStore | undefined;

  constructor(
    readonly model: LoadedModel,
    private readonly options: ServeOptions = {},
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
    const masks = readMaskFile(model.dir, model.weightsHash, model.config);
    this.metric = masks && isMetric(masks.metric) ? masks.metric : 'cor_gxo';
    this.tierList = tiersOf(model.config, masks);
    this.selectors = availableSelectors(model);
    this.selector = servedSelector(model);
    this.selection = tokenSelection(model, this.selector);
    const sparsities = this.tierList.length > 1 ? this.tierList.slice(1).map((t) => t.sparsity) : DEFAULT_TIERS;
    this.tokenTierList = [this.tierList[0], ...sparsities.map((sparsity) => {
      const blocks = keptBlocks(model.config.intermediateSize, this.selection.block, sparsity);
      return { name: tierName(sparsity), sparsity, keep: null, neuronsPerLayer: blocks * this.selection.block };
    })];
    this.ownsPool = options.pool === undefined;
    this.pool = options.pool ?? new SessionPool();
    this.denseBytesPerToken = weightBytesPerToken(model.weights);
    this.denseSessionBytes = floatBytes(model.weights);
    this.store = options.store;
    this.maxBatchSize = options.maxBatchSize ?? DEFAULT_MAX_BATCH_SIZE;
    this.prefillChunk = options.prefillChunkTokens ?? DEFAULT_PREFILL_CHUNK_TOKENS;
  }

  /** Decode steps run so far, the sequences they stepped in all, and the most in one. */
  batching(): DecodeStats {
    return { ...this.decodeStats };
  }

  useActivationStore(store: ActivationStore): void {
    this.store = store;
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

  // Tiers and their sessions.

  tiers(): TierInfo[] {
    return this.tierList.map((t) => ({
      name: t.name,
      sparsity: t.sparsity,
      neuronsPerLayer: t.neuronsPerLayer,
      trafficBound: this.denseBytesPerToken / (this.denseBytesPerToken - droppedBytes(this.model.config, t)),
      profile: this.latency.get(t.name),
      loaded: this.pool.has(this.sessionKey(t, 'static')),
      memoryBytes: this.pool.bytesOf(this.sessionKey(t, 'static')) + this.pool.bytesOf(this.sessionKey(t, 'prompt')),
    }));
  }

  tokenActivation(): TokenActivationInfo {
    return {
      selector: this.selector,
      selectors: this.selectors,
      block: this.selection.block,
      tiers: this.tokenTierList.slice(1).map((t) => ({
        name: t.name,
        sparsity: t.sparsity,
        neuronsPerLayer: t.neuronsPerLayer,
        trafficBound: this.denseBytesPerToken / (this.denseBytesPerToken - tokenSavedBytes(this.model.config, this.selection, this.tokenBlocks(t))),
        profile: this.latency.get(profileKey(t, 'token')),
        loaded: this.pool.has(this.tokenSessionKey()),
        memoryBytes: this.pool.bytesOf(this.tokenSessionKey()),
      })),
    };
  }

  private sessionKey(tier: Tier, kind: 'static' | 'prompt'): string {
    return `${this.model.weightsHash}:${tier.name}:${kind}`;
  }

  private tokenSessionKey(): string {
    return `${this.model.weightsHash}:token:${this.selector}:${this.selection.block}`;
  }

  private tokenBlocks(tier: Tier): number {
    return tier.neuronsPerLayer / this.selection.block;
  }

  /** The inputs of a per-token tier (`token_blocks`, ...). */
  private tokenInputs(tier: Tier): Record<string, ort.Tensor> {
    return tokenFeeds(this.model.config.intermediateSize, this.selection, this.tokenBlocks(tier));
  }

  /**
   * The one session of every per-token tier (the tier is its `token_blocks` input). It holds
   * the weights once in the packed neuron-major layout, plus the dense gate or the predictor.
   */
  private async tokenSession(): Promise<Lease<LlamaSession>> {
    return this.pool.acquire(this.tokenSessionKey(), this.denseSessionBytes, () =>
      LlamaSession.create(this.model.config, this.model.weights, this.options, { tokenSelection: this.selection }));
  }

  /** A per-token tier's session, its latency profile measured on first use. */
  private async tokenTierSession(tier: Tier): Promise<Lease<LlamaSession>> {
    const lease = await this.tokenSession();
    if (!this.latency.has(profileKey(tier, 'token'))) await this.measure(tier, lease.value, 'token', this.tokenInputs(tier));
    return lease;
  }

  /** The tier's weights: calibrated neurons for static, the first N as a shape template for prompt sets. */
  private tierWeights(tier: Tier, kind: 'static' | 'prompt' = 'static'): LlamaWeights {
    if (tier.keep === null) return this.model.weights;
    if (kind === 'static') return pruneMlp(this.model.weights, tier.keep);
    const first = [...Array(tier.neuronsPerLayer).keys()];
    return pruneMlp(this.model.weights, tier.keep.map(() => first));
  }

  private async session(tier: Tier, kind: 'static' | 'prompt'): Promise<Lease<LlamaSession>> {
    // Sizes come from counts: pruned weights are copied only when a session is built.
    const bytes = this.denseSessionBytes - droppedBytes(this.model.config, tier);
    const lease = await this.pool.acquire(this.sessionKey(tier, kind), bytes, () =>
      LlamaSession.create(this.model.config, this.tierWeights(tier, kind), this.options, { mlpInputs: kind === 'prompt' }));
    if (kind === 'static' && !this.latency.has(tier.name)) await this.measure(tier, lease.value);
    return lease;
  }

  /** The start-up latency profile of a tier: a short prompt, then a few decode steps. */
  private async measure(tier: Tier, session: LlamaSession, activation: Activation = 'static', inputs: Record<string, ort.Tensor> = {}): Promise<void> {
    const prompt = Array.from({ length: Math.min(WARMUP_PROMPT, this.contextLength - WARMUP_DECODE - 1) }, (_, i) => (i * 7) % this.vocabSize);
    await session.forward(prompt.slice(0, 2), session.emptyCache(), 1, inputs); // first run allocates
    let t0 = performance.now();
    let { cache } = await session.forward(prompt, session.emptyCache(), 1, inputs);
    const prefillMs = performance.now() - t0;
    t0 = performance.now();
    for (let i = 0; i < WARMUP_DECODE; i++) ({ cache } = await session.forward([i % this.vocabSize], cache, 1, inputs));
    const decodeMs = performance.now() - t0;
    this.latency.set(profileKey(tier, activation), prefillMs / prompt.length, decodeMs / WARMUP_DECODE);
  }

  /** Builds the sessions of every tier, static and per-token (or of dense only), and measures their profiles. */
  async preload(which: 'all' | 'dense' = 'all'): Promise<void> {
    for (const tier of which === 'all' ? this.tierList : this.tierList.slice(0, 1)) (await this.session(tier, 'static')).done();
    if (which === 'all') for (const tier of this.tokenTierList.slice(1)) (await this.tokenTierSession(tier)).done();
  }

  // Planning a request.

  checkExecution(execution: ExecutionOptions): void {
    if (execution.sparsity !== undefined) selectTier(this.tiersFor(execution.activation), execution.sparsity, this.id);
    if (execution.latencyBudgetMs !== undefined && !(execution.latencyBudgetMs > 0)) {
      throw new ParameterError('latency_budget_ms', `'latency_budget_ms' must be a positive number of milliseconds; got ${execution.latencyBudgetMs}.`);
    }
    if (execution.latencyBudgetMs !== undefined && execution.sparsity !== undefined) {
      throw new ParameterError('latency_budget_ms', "Give either 'sparsity' or 'latency_budget_ms', not both.");
    }
  }

  /** The tiers an activation mode chooses from. */
  private tiersFor(activation: Activation | undefined): Tier[] {
    return activation === 'token' ? this.tokenTierList : this.tierList;
  }

  /** What a request at `tier` would take, with the batches running now. */
  private predictMs(tier: Tier, activation: Activation, promptTokens: number, maxTokens: number, sparsePrefill: boolean): number {
    const decodeProfile = profileKey(tier, activation);
    return this.latency.predictMs({
      decodeProfile,
      prefillProfile: sparsePrefill ? decodeProfile : 'dense',
      promptTokens,
      maxTokens,
      prefillChunk: this.prefillChunk,
      running: [...this.batches.values()].map((b) => ({ profile: b.profile, rows: b.batch.size })),
    });
  }

  private async plan(promptTokens: number, maxTokens: number, execution: ExecutionOptions): Promise<Plan> {
    this.checkExecution(execution);
    const activation = execution.activation ?? 'static';
    const sparsePrefill = execution.sparsePrefill ?? false;
    const tiers = this.tiersFor(activation);
    if (execution.latencyBudgetMs === undefined) {
      return { tier: selectTier(tiers, execution.sparsity ?? 0, this.id), activation, sparsePrefill };
    }
    // Every tier needs a profile to be compared; building one measures it.
    for (const tier of tiers) {
      if (this.latency.has(profileKey(tier, activation))) continue;
      (await (activation === 'token' && tier.sparsity > 0 ? this.tokenTierSession(tier) : this.session(tier, 'static'))).done();
    }
    const budgetMs = execution.latencyBudgetMs;
    const predicted = tiers.map((tier) => ({ tier, ms: this.predictMs(tier, activation, promptTokens, maxTokens, sparsePrefill) }));
    const fits = predicted.filter((p) => p.ms <= budgetMs);
    const chosen = fits.length > 0 ? fits[0] : predicted[predicted.length - 1];
    return { tier: chosen.tier, activation, sparsePrefill, budget: { budgetMs, predictedMs: chosen.ms, budgetMet: fits.length > 0 } };
  }

  // Per-prompt neuron sets.

  private attributor(): Promise<Lease<Attributor>> {
    // The attribution graph holds about twice the weights (forward and backward constants).
    return this.pool.acquire(`${this.model.weightsHash}:attribution`, 2 * this.denseSessionBytes, () =>
      Attributor.create(this.model.config, this.model.weights, this.options));
  }

  /** Per-layer neuron scores of a prompt: from the store, else computed (and stored). */
  private async promptScores(promptIds: number[]): Promise<{ scores: Float32Array[]; source: 'cache' | 'computed' }> {
    const key = { modelHash: this.model.weightsHash, metric: this.metric, tokens: promptIds };
    const cached = await this.store?.get(key);
    if (cached && cached.length === this.model.config.numLayers) return { scores: cached, source: 'cache' };
    const targets = promptTargets(promptIds);
    const lease = await this.attributor();
    try {
      const scored = await scoreSequence(lease.value, promptIds, targets, this.metric);
      const scores = scored.layers.map((l) => Float32Array.from(meanOverPositions(l.mlp, this.model.config.intermediateSize)));
      await this.store?.set(key, scores);
      return { scores, source: 'computed' };
    } finally {
      lease.done();
    }
  }

  /** The request's MLP weights for the kept neurons, as the prompt-set graph takes them. */
  private gatherMlp(keep: number[][]): Record<string, ort.Tensor> {
    const feeds: Record<string, ort.Tensor> = {};
    const hidden = this.model.config.hiddenSize;
    this.model.weights.layers.forEach((w, l) => {
      const k = keep[l].length;
      const { gateUp, down } = gatherLayerMlp(w, keep[l]);
      const p = `model.layers.${l}.mlp`;
      feeds[`${p}.gate_up_proj.weight`] = new ort.Tensor('float32', gateUp, [hidden, 2 * k]);
      feeds[`${p}.down_proj.weight`] = new ort.Tensor('float32', down, [k, hidden]);
    });
    return feeds;
  }

  // Generation.

  /**
   * The prompt through `session` in chunks of at most `prefillChunk` tokens, each its own run in
   * the model's queue, so that a long prompt lets the running sequences step in between.
   * Returns the logits of the last `logitsToKeep` positions.
   */
  private async chunkedPrefill(session: LlamaSession, promptIds: number[], logitsToKeep: number, inputs: Record<string, ort.Tensor>): Promise<ForwardResult> {
    const n = promptIds.length;
    let cache = KvCache.empty(this.model.config, n + 1);
    const logits: Float32Array[] = [];
    for (let start = 0; start < n; start += this.prefillChunk) {
      const end = Math.min(start + this.prefillChunk, n);
      const wanted = end - Math.max(start, n - logitsToKeep); // this chunk's positions among the last logitsToKeep
      const from = cache;
      const result = await this.queue.run(() => session.forward(promptIds.slice(start, end), from, Math.max(1, wanted), inputs));
      cache = result.cache;
      if (wanted > 0) logits.push(result.logits);
    }
    const all = new Float32Array(logits.reduce((sum, l) => sum + l.length, 0));
    logits.reduce((at, l) => (all.set(l, at), at + l.length), 0);
    return { logits: all, cache };
  }

  /** A prefill through `session`; `shared` is told whether an earlier choice's pass was reused. */
  private prefillWith(session: LlamaSession, sessionKey: string, inputs: Record<string, ort.Tensor>, memo: boolean) {
    return (promptIds: number[], logitsToKeep: number, shared: (reused: boolean) => void): Promise<ForwardResult> => {
      const run = () => this.chunkedPrefill(session, promptIds, logitsToKeep, inputs);
      if (!memo) return run();
      const key = `${sessionKey}:${logitsToKeep}:${promptIds.join(',')}`;
      shared(this.lastPrefill?.key === key);
      if (this.lastPrefill?.key !== key) {
        const result = run();
        this.lastPrefill = { key, result };
        // A failed prefill must not be served from the memo to the next request.
        result.catch(() => {
          if (this.lastPrefill?.key === key) this.lastPrefill = null;
        });
      }
      return this.lastPrefill.result;
    };
  }

  /**
   * The decode batch of `session` with `inputs`, named by `key` (a tier's session and its
   * inputs; a per-prompt neuron set's own key). A session rebuilt after eviction starts a new
   * batch; the old one ends with its last member.
   */
  private decodeBatch(key: string, profile: string, session: LlamaSession, inputs: Record<string, ort.Tensor>): DecodeBatch {
    const existing = this.batches.get(key);
    if (existing && existing.session === session) return existing.batch;
    const onEmpty = () => {
      if (this.batches.get(key)?.batch === batch) this.batches.delete(key);
    };
    const onStep = ({ rows, stepped, ms }: BatchStats) => {
      this.decodeStats.steps++;
      this.decodeStats.sequenceSteps += stepped;
      this.decodeStats.maxRows = Math.max(this.decodeStats.maxRows, rows);
      this.latency.recordStep(profile, rows, ms);
    };
    const batch = new DecodeBatch(session, inputs, this.queue, this.maxBatchSize, this.vocabSize, onEmpty, onStep);
    this.batches.set(key, { session, batch, profile });
    return batch;
  }

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
    this.checkExecution(execution);
    return this.run(promptIds, params, signal, execution);
  }

  private async *run(promptIds: number[], params: SamplingParams, signal: AbortSignal | undefined, execution: ExecutionOptions): AsyncGenerator<GenerationDelta, GenerationResult> {
    const start = performance.now();
    const plan = await this.plan(promptIds.length, params.maxTokens, execution);
    const { tier } = plan;
    const leases: Lease<LlamaSession>[] = [];
    let sequence: Sequence | undefined;
    const hold = async (pending: Promise<Lease<LlamaSession>>) => {
      const l = await pending;
      leases.push(l);
      return l.value;
    };
    try {
      const dense = this.tierList[0];
      const isDense = tier.sparsity === 0;
      let source: SparsityReport['activationSource'] = isDense ? 'dense' : 'static';
      const counts = (keep: number[][] | null): KeptUnits[] => (keep ? keep.map((k) => ({ mlp: k.length })) : []);
      let decodeUnits: KeptUnits[] = counts(tier.keep);
      let decodeSession: LlamaSession;
      let inputs: Record<string, ort.Tensor> = {};
      let selected: Pick<SparsityReport, 'selector' | 'block'> = {};
      if (!isDense && plan.activation === 'token') {
        source = 'token';
        inputs = this.tokenInputs(tier);
        decodeUnits = tokenKeptUnits(this.model.config, this.selection, this.tokenBlocks(tier));
        selected = { selector: this.selector, block: this.selection.block };
        decodeSession = await hold(this.tokenTierSession(tier));
      } else if (!isDense && plan.activation === 'prompt') {
        const { scores, source: from } = await this.promptScores(promptIds);
        source = from;
        const keep = scores.map((s) => keepTop(s, tier.sparsity));
        decodeUnits = counts(keep);
        inputs = this.gatherMlp(keep);
        decodeSession = await hold(this.session(tier, 'prompt'));
      } else {
        decodeSession = await hold(this.session(tier, 'static'));
      }
      const sparsePrefill = plan.sparsePrefill && !isDense;
      const prefillSession = sparsePrefill ? decodeSession : await hold(this.session(dense, 'static'));
      const prefillKey = sparsePrefill ? `${tier.name}:${source}` : 'dense';
      // Per-prompt inputs differ per request; only sessions with fixed weights share a prefill.
      const memo = !(sparsePrefill && plan.activation === 'prompt');
      const batchKey = plan.activation === 'prompt' && !isDense ? `prompt:${++this.promptBatches}` : `${tier.name}:${plan.activation}`;
      sequence = new Sequence({
        prefill: this.prefillWith(prefillSession, prefillKey, sparsePrefill ? inputs : {}, memo),
        batch: () => this.decodeBatch(batchKey, profileKey(tier, plan.activation), decodeSession, inputs),
      });
      let firstTokenMs: number | null = null;
      let echo = params.echo; // the echoed prompt comes first and is not a new token
      const it = generate(this, sequence, promptIds, params, signal);
      let r = await it.next();
      for (; !r.done; r = await it.next()) {
        if (echo) echo = false;
        else firstTokenMs ??= performance.now() - start;
        yield r.value;
      }
      sequence.finish();
      const totalMs = performance.now() - start;
      const { prefillMs, decodeSteps, promptLogits, prefillRan } = sequence;
      const shape = { promptTokens: promptIds.length, decodeSteps, promptLogits, prefillRan };
      const flopsDense = generationFlops(this.model.config, shape, [], []);
      const flopsExecuted = generationFlops(this.model.config, shape, sparsePrefill ? decodeUnits : [], decodeUnits);
      if (prefillRan) this.latency.recordPrefill(profileKey(tier, plan.activation), sparsePrefill ? profileKey(tier, plan.activation) : 'dense', promptIds.length, prefillMs);
      return {
        ...r.value,
        flopsDense,
        flopsExecuted,
        cachedPromptTokens: prefillRan ? 0 : promptIds.length,
        timings: { prefillMs, firstTokenMs: firstTokenMs ?? totalMs, totalMs },
        sparsity: {
          tier: tier.name,
          sparsity: tier.sparsity,
          activationSource: source,
          ...selected,
          // Nothing ran (a reused prompt pass, no new token): nothing was saved either.
          flopRatio: flopsDense > 0 ? flopsExecuted / flopsDense : 1,
          sparsePrefill,
          ...plan.budget,
        },
      };
    } finally {
      sequence?.finish();
      for (const l of leases) l.done();
    }
  }

  async close(): Promise<void> {
    this.lastPrefill = null;
    if (this.ownsPool) await this.pool.close();
  }
}

export async function loadServedModel(dir: string, options: ServeOptions = {}): Promise<Engine> {
  const model = await loadModelDir(resolve(dir));
  const engine = new Engine(model, options);
  await engine.preload(options.preload ?? true ? 'all' : 'dense');
  return engine;
}
