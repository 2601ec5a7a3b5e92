/**
 * One sequence being generated (a slot, in llama.cpp's sense). It is planned (a tier, an
 * activation source), given its neurons and sessions, runs its prompt pass, then its decode steps
 * in the batch of its tier, and finally accounts for itself: FLOPs as run and as dense, timings,
 * and the `sparsity` report. Closing it leaves its batch and releases its sessions.
 */
import type * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../model/types.js';
import type { Runner } from '../runtime/generate.js';
import type { KvCache } from '../runtime/kv-cache.js';
import type { Lease } from '../runtime/pool.js';
import type { DecoderSession } from '../runtime/session.js';
import type { GenerationResult, SparsityReport } from '../runtime/types.js';
import { generationFlops, type KeptUnits } from '../sparsity/flops.js';
import type { Tier } from '../sparsity/tiers.js';
import type { BatchMember } from './decode-batch.js';
import type { Scheduler } from './scheduler.js';
import type { Activation } from './tier-sessions.js';

/** Where a request runs: chosen from its options, before any neuron or session. */
export interface Plan {
  tier: Tier;
  activation: Activation;
  sparsePrefill: boolean;
  /** With a latency budget: the budget, the chosen tier's prediction, and whether it fits. */
  budget?: { budgetMs: number; predictedMs: number; budgetMet: boolean };
  /** The latency profile its timings belong to. */
  profile: string;
}

/** What a planned sequence runs with. */
export interface Setup {
  plan: Plan;
  /** Where its decode neurons come from. */
  source: SparsityReport['activationSource'];
  /** Per-token selection's selector and block. */
  selected: Pick<SparsityReport, 'selector' | 'block'>;
  /** Neurons per layer its decode steps (and a sparse prefill) run. */
  decodeUnits: KeptUnits[];
  decodeSession: Lease<DecoderSession>;
  /** Dense unless the plan's prefill is sparse (then the decode session). */
  prefillSession: Lease<DecoderSession> | null;
  /** Inputs of the decode graph (a per-prompt set's weights, a per-token tier's size). */
  inputs: Record<string, ort.Tensor>;
  /**
   * Its decode batch's name: sequences with equal keys step together. A tier's profile key (so
   * dense requests batch whatever activation they asked for); a per-prompt set has its own.
   */
  batchKey: string;
}

export class Sequence implements Runner {
  prefillMs = 0;
  decodeSteps = 0;
  /** Prompt positions whose logits the prefill returned. */
  private promptLogits = 1;
  /** False when the prompt pass was an earlier sequence's (n choices, a repeated prompt). */
  prefillRan = true;
  private firstTokenMs: number | null = null;
  private readonly start = performance.now();
  private cache: KvCache | null = null;
  private member: BatchMember | null = null;
  private closed = false;

  constructor(
    private readonly config: ModelConfig,
    private readonly setup: Setup,
    private readonly scheduler: Scheduler,
  ) {}

  private get sparsePrefill(): boolean {
    return this.setup.plan.sparsePrefill && this.setup.plan.tier.sparsity > 0;
  }

  async prefill(promptIds: number[], logitsToKeep: number): Promise<Float32Array> {
    const t0 = performance.now();
    this.promptLogits = logitsToKeep;
    const { plan, decodeSession, prefillSession, inputs, source } = this.setup;
    const session = (prefillSession ?? decodeSession).value;
    // Per-prompt inputs differ per request; only sessions with fixed weights share a prefill.
    const memoKey = !this.sparsePrefill ? 'dense' : plan.activation === 'prompt' ? null : `${plan.tier.name}:${source}`;
    const { logits, cache } = await this.scheduler.prefill(session, promptIds, logitsToKeep, this.sparsePrefill ? inputs : {}, memoKey, (reused) => {
      this.prefillRan = !reused;
    });
    this.cache = cache;
    this.prefillMs = performance.now() - t0;
    return logits;
  }

  step(id: number): Promise<Float32Array> {
    this.decodeSteps++;
    if (this.member === null) {
      if (this.cache === null) throw new Error('a sequence steps after its prefill');
      const { batchKey, plan, decodeSession, inputs } = this.setup;
      this.member = this.scheduler.batch(batchKey, plan.profile, decodeSession.value, inputs).join(this.cache);
      this.cache = null;
    }
    return this.member.step(id);
  }

  /** Notes when its first new token came out. */
  produced(): void {
    this.firstTokenMs ??= performance.now() - this.start;
  }

  /** Leaves its batch (finished, stopped or cancelled) and releases its sessions; idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.member?.leave();
    this.member = null;
    this.cache = null;
    this.setup.decodeSession.done();
    this.setup.prefillSession?.done();
  }

  /** The generation's result with what it cost and what ran. */
  account(result: GenerationResult, promptTokens: number): GenerationResult {
    const totalMs = performance.now() - this.start;
    const { plan, decodeUnits, source, selected } = this.setup;
    const shape = { promptTokens, decodeSteps: this.decodeSteps, promptLogits: this.promptLogits, prefillRan: this.prefillRan };
    const flopsDense = generationFlops(this.config, shape, [], []);
    const flopsExecuted = generationFlops(this.config, shape, this.sparsePrefill ? decodeUnits : [], decodeUnits);
    return {
      ...result,
      flopsDense,
      flopsExecuted,
      cachedPromptTokens: this.prefillRan ? 0 : promptTokens,
      timings: { prefillMs: this.prefillMs, firstTokenMs: this.firstTokenMs ?? totalMs, totalMs },
      sparsity: {
        tier: plan.tier.name,
        sparsity: plan.tier.sparsity,
        activationSource: source,
        ...selected,
        // Nothing ran (a reused prompt pass, no new token): nothing was saved either.
        flopRatio: flopsDense > 0 ? flopsExecuted / flopsDense : 1,
        sparsePrefill: this.sparsePrefill,
        ...plan.budget,
      },
    };
  }
}
