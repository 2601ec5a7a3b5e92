/**
 * A model's sessions per tier, built in the shared pool on first use, each with its latency
 * profile measured when it is built:
 * - a static tier's graph holds its calibrated neurons only (pruned MLP weights);
 * - a per-prompt graph of a tier's size takes its MLP weights as inputs (a request's own set);
 * - one per-token graph serves every per-token tier (the tier is its `token_blocks` input).
 *
 * Served quantised (QUANT), every weight a graph holds as a constant is quantised when the graph
 * is built, so a static tier is pruned first and quantised after. A per-prompt set's MLP weights
 * (graph inputs) and the rows per-token selection gathers stay float32: ONNX Runtime 1.30's
 * quantised kernels dequantise any weight that is not a constant on every call
 * (docs/quantisation-probe.md). Their attention, embedding, head and (gate-first) gate are
 * quantised like the rest.
 */
import type * as ort from 'onnxruntime-node';
import { neuronValues } from '../arch/neurons.js';
import type { TokenSelection } from '../arch/token-mlp.js';
import type { LoadedModel } from '../arch/load.js';
import type { ModelConfig, ModelWeights } from '../model/types.js';
import type { SessionPool, Lease } from '../runtime/pool.js';
import { DecoderSession, type OrtOptions } from '../runtime/session.js';
import type { ExecutionOptions, TierInfo, TokenActivationInfo } from '../runtime/types.js';
import { blockBytes, QUANT_SPECS, type QuantName, type QuantSpec } from '../model/quant.js';
import { weightBytesPerToken } from '../sparsity/flops.js';
import { DEFAULT_TIERS, type MaskFile } from '../sparsity/masks.js';
import { pruneMlp } from '../sparsity/prune.js';
import { availableSelectors, keptBlocks, servedSelector, tokenFeeds, tokenSavedBytes, tokenSelection, type Selector } from '../sparsity/selectors.js';
import { tierName, tiersOf, type Tier } from '../sparsity/tiers.js';
import type { LatencyModel } from './latency.js';

export type Activation = NonNullable<ExecutionOptions['activation']>;

/** A tier's latency profile: per-token tiers have their own; "prompt" decodes as fast as "static". */
export const profileKey = (tier: Tier, activation: Activation) => (activation === 'token' && tier.sparsity > 0 ? `token:${tier.name}` : tier.name);

/** Tokens of the start-up latency measurement: a prompt, then decode steps. */
const WARMUP_PROMPT = 16;
const WARMUP_DECODE = 8;

function floatBytes(weights: ModelWeights): number {
  const { embed, positions, norm, normBias, lmHead, lmHeadBias } = weights;
  let n = 0;
  for (const t of [embed, positions, norm, normBias, lmHead === embed ? undefined : lmHead, lmHeadBias]) n += t?.data.length ?? 0;
  for (const l of weights.layers) for (const t of Object.values(l)) n += t.data.length;
  return 4 * n;
}

/** Float32 bytes of `neurons` MLP neurons per layer (what each owns: src/arch/neurons.ts). */
function mlpBytes(config: ModelConfig, neurons: number): number {
  return 4 * neuronValues(config) * neurons * config.numLayers;
}

/** Float32 bytes of the MLP neurons a tier drops. */
function droppedBytes(config: ModelConfig, tier: Tier): number {
  return mlpBytes(config, config.intermediateSize - tier.neuronsPerLayer);
}

export class TierSessions {
  /** Static tiers: dense, then one per calibrated mask. */
  readonly tiers: Tier[];
  /** Per-token tiers: dense, then the static tiers' sparsities (or the default ones without masks). */
  readonly tokenTiers: Tier[];
  /** What `activation: "token"` runs, and every selector the model has (read once: predictors are files). */
  readonly selector: Selector;
  private readonly selectors: Selector[];
  readonly selection: TokenSelection;
  private readonly denseBytesPerToken: number;
  /** Bytes of the dense weights as one session holds them. */
  readonly denseBytes: number;

  constructor(
    private readonly model: LoadedModel,
    masks: MaskFile | null,
    private readonly pool: SessionPool,
    private readonly ortOptions: OrtOptions,
    private readonly latency: LatencyModel,
    /** Served quantised (QUANT), else float32. */
    readonly quant?: QuantName,
  ) {
    this.tiers = tiersOf(model.config, masks);
    this.selectors = availableSelectors(model);
    this.selector = servedSelector(model);
    this.selection = tokenSelection(model, this.selector);
    const sparsities = this.tiers.length > 1 ? this.tiers.slice(1).map((t) => t.sparsity) : DEFAULT_TIERS;
    this.tokenTiers = [
      this.tiers[0],
      ...sparsities.map((sparsity) => {
        const blocks = keptBlocks(model.config.intermediateSize, this.selection.block, sparsity);
        return { name: tierName(sparsity), sparsity, keep: null, neuronsPerLayer: blocks * this.selection.block };
      }),
    ];
    this.denseBytesPerToken = weightBytesPerToken(model.weights);
    this.denseBytes = floatBytes(model.weights);
  }

  /** The tiers an activation mode chooses from. */
  tiersFor(activation: Activation | undefined): Tier[] {
    return activation === 'token' ? this.tokenTiers : this.tiers;
  }

  info(): TierInfo[] {
    return this.tiers.map((t) => ({
      name: t.name,
      sparsity: t.sparsity,
      neuronsPerLayer: t.neuronsPerLayer,
      trafficBound: this.denseBytesPerToken / (this.denseBytesPerToken - droppedBytes(this.model.config, t)),
      profile: this.latency.get(t.name),
      loaded: this.pool.has(this.key(t, 'static')),
      memoryBytes: this.pool.bytesOf(this.key(t, 'static')) + this.pool.bytesOf(this.key(t, 'prompt')),
    }));
  }

  tokenInfo(): TokenActivationInfo {
    return {
      selector: this.selector,
      selectors: this.selectors,
      block: this.selection.block,
      tiers: this.tokenTiers.slice(1).map((t) => ({
        name: t.name,
        sparsity: t.sparsity,
        neuronsPerLayer: t.neuronsPerLayer,
        trafficBound: this.denseBytesPerToken / (this.denseBytesPerToken - tokenSavedBytes(this.model.config, this.selection, this.tokenBlocks(t))),
        profile: this.latency.get(profileKey(t, 'token')),
        loaded: this.pool.has(this.tokenKey()),
        memoryBytes: this.pool.bytesOf(this.tokenKey()),
      })),
    };
  }

  private key(tier: Tier, kind: 'static' | 'prompt'): string {
    return `${this.model.weightsHash}:${this.quant ?? 'f32'}:${tier.name}:${kind}`;
  }

  private tokenKey(): string {
    return `${this.model.weightsHash}:${this.quant ?? 'f32'}:token:${this.selector}:${this.selection.block}`;
  }

  private get quantSpec(): QuantSpec | undefined {
    return this.quant && QUANT_SPECS[this.quant];
  }

  /** The bytes of weights that take `floatBytes` in float32, as this model serves its constants. */
  private servedBytes(floatBytes: number): number {
    if (!this.quantSpec) return floatBytes;
    // Per weight: its code, and its share of its block's float32 scale.
    return (floatBytes / 4) * ((blockBytes(this.quantSpec) + 4) / this.quantSpec.block);
  }

  tokenBlocks(tier: Tier): number {
    return tier.neuronsPerLayer / this.selection.block;
  }

  /** The inputs of a per-token tier (`token_blocks`, ...). */
  tokenInputs(tier: Tier): Record<string, ort.Tensor> {
    return tokenFeeds(this.model.config.intermediateSize, this.selection, this.tokenBlocks(tier));
  }

  /** The tier's weights: calibrated neurons for static, the first N as a shape template for prompt sets. */
  private weights(tier: Tier, kind: 'static' | 'prompt'): ModelWeights {
    if (tier.keep === null) return this.model.weights;
    const { config, weights } = this.model;
    if (kind === 'static') return pruneMlp(config, weights, tier.keep);
    const first = [...Array(tier.neuronsPerLayer).keys()];
    return pruneMlp(
      config,
      weights,
      tier.keep.map(() => first),
    );
  }

  /** A static tier's session, or a per-prompt one of its size. */
  async session(tier: Tier, kind: 'static' | 'prompt'): Promise<Lease<DecoderSession>> {
    // Sizes come from counts: pruned weights are copied only when a session is built.
    const { config } = this.model;
    // A per-prompt set's MLP weights are float32 inputs; everything else is a constant.
    const bytes =
      kind === 'prompt'
        ? this.servedBytes(this.denseBytes - mlpBytes(config, config.intermediateSize)) + mlpBytes(config, tier.neuronsPerLayer)
        : this.servedBytes(this.denseBytes - droppedBytes(config, tier));
    const lease = await this.pool.acquire(this.key(tier, kind), bytes, () =>
      DecoderSession.create(this.model.config, this.weights(tier, kind), this.ortOptions, { mlpInputs: kind === 'prompt', quant: this.quantSpec }),
    );
    if (kind === 'static' && !this.latency.has(tier.name)) await this.measure(tier, lease.value);
    return lease;
  }

  /**
   * A per-token tier's session: the one session of every per-token tier, which holds the weights
   * once in the packed neuron-major layout, plus the dense gate or the predictor.
   */
  async tokenSession(tier: Tier): Promise<Lease<DecoderSession>> {
    // What each neuron owns is gathered per token and stays float32, but for the row of the
    // projection the selector multiplies densely (gate, or a GELU MLP's up), a constant like the rest.
    const { config } = this.model;
    const F = config.intermediateSize;
    const gathered = mlpBytes(config, F) - 4 * config.hiddenSize * F * config.numLayers;
    const lease = await this.pool.acquire(this.tokenKey(), gathered + this.servedBytes(this.denseBytes - gathered), () =>
      DecoderSession.create(this.model.config, this.model.weights, this.ortOptions, { tokenSelection: this.selection, quant: this.quantSpec }),
    );
    if (!this.latency.has(profileKey(tier, 'token'))) await this.measure(tier, lease.value, 'token', this.tokenInputs(tier));
    return lease;
  }

  /** The session a decode at `tier` with `activation` runs on. */
  decodeSession(tier: Tier, activation: Activation): Promise<Lease<DecoderSession>> {
    if (tier.sparsity > 0 && activation === 'token') return this.tokenSession(tier);
    return this.session(tier, tier.sparsity > 0 && activation === 'prompt' ? 'prompt' : 'static');
  }

  /** Builds what it takes for every tier of `activation` to have a latency profile. */
  async profile(activation: Activation): Promise<void> {
    for (const tier of this.tiersFor(activation)) {
      if (this.latency.has(profileKey(tier, activation))) continue;
      (await (activation === 'token' && tier.sparsity > 0 ? this.tokenSession(tier) : this.session(tier, 'static'))).done();
    }
  }

  /** Builds the sessions of every tier, static and per-token (or of dense only), and measures their profiles. */
  async preload(which: 'all' | 'dense' = 'all'): Promise<void> {
    for (const tier of which === 'all' ? this.tiers : this.tiers.slice(0, 1)) (await this.session(tier, 'static')).done();
    if (which === 'all') for (const tier of this.tokenTiers.slice(1)) (await this.tokenSession(tier)).done();
  }

  /** The start-up latency profile of a tier: a short prompt, then a few decode steps. */
  private async measure(tier: Tier, session: DecoderSession, activation: Activation = 'static', inputs: Record<string, ort.Tensor> = {}): Promise<void> {
    const { maxPositions, vocabSize } = this.model.config;
    const prompt = Array.from({ length: Math.min(WARMUP_PROMPT, maxPositions - WARMUP_DECODE - 1) }, (_, i) => (i * 7) % vocabSize);
    await session.forward(prompt.slice(0, 2), session.emptyCache(), 1, inputs); // first run allocates
    let t0 = performance.now();
    let { cache } = await session.forward(prompt, session.emptyCache(), 1, inputs);
    const prefillMs = performance.now() - t0;
    t0 = performance.now();
    for (let i = 0; i < WARMUP_DECODE; i++) ({ cache } = await session.forward([i % vocabSize], cache, 1, inputs));
    const decodeMs = performance.now() - t0;
    this.latency.set(profileKey(tier, activation), prefillMs / prompt.length, decodeMs / WARMUP_DECODE);
  }
}
