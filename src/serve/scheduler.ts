/**
 * How a model's graph runs are scheduled: one at a time, in one queue, so that they take turns on
 * the cores. Prompts run in chunks through it, and decode steps run in batches, one batch per
 * session and inputs (a tier), each step for every sequence of the batch.
 */
import type * as ort from 'onnxruntime-node';
import type { ModelConfig } from '../model/types.js';
import { KvCache } from '../runtime/kv-cache.js';
import type { ForwardResult, DecoderSession } from '../runtime/session.js';
import type { DecodeStats } from '../runtime/types.js';
import { type BatchStats, DecodeBatch, RunQueue } from './decode-batch.js';
import type { LatencyModel, RunningBatch } from './latency.js';

export interface SchedulerOptions {
  /** Sequences per decode step at most. */
  maxBatchSize: number;
  /** Prompt tokens per prefill run at most. */
  prefillChunk: number;
}

export class Scheduler {
  private readonly queue = new RunQueue();
  /** The running decode batches by key, with the profile their steps' timings go to. */
  private readonly batches = new Map<string, { session: DecoderSession; batch: DecodeBatch; profile: string }>();
  private readonly stats: DecodeStats = { steps: 0, sequenceSteps: 0, maxRows: 0 };
  /**
   * The last prefill, so that `n` choices of one prompt (and a repeated prompt) share it. A
   * cache snapshot's positions are never rewritten: the first sequence to continue it appends
   * in place, later ones copy it first (KvCache.append).
   */
  private lastPrefill: { key: string; result: Promise<ForwardResult> } | null = null;

  constructor(
    private readonly config: ModelConfig,
    readonly options: SchedulerOptions,
    private readonly latency: LatencyModel,
  ) {}

  /** Decode steps run so far, the sequences they stepped in all, and the most in one. */
  decodeStats(): DecodeStats {
    return { ...this.stats };
  }

  /** The batches running now, as the latency model sees them. */
  running(): RunningBatch[] {
    return [...this.batches.values()].map((b) => ({ profile: b.profile, rows: b.batch.size }));
  }

  /**
   * The prompt through `session`, in chunks; with `memoKey`, shared with the previous prefill of
   * the same key (`shared` is told whether it was).
   */
  prefill(
    session: DecoderSession,
    promptIds: number[],
    logitsToKeep: number,
    inputs: Record<string, ort.Tensor>,
    memoKey: string | null,
    shared: (reused: boolean) => void,
  ): Promise<ForwardResult> {
    const run = () => this.chunkedPrefill(session, promptIds, logitsToKeep, inputs);
    if (memoKey === null) return run();
    const key = `${memoKey}:${logitsToKeep}:${promptIds.join(',')}`;
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
  }

  /**
   * The prompt in chunks of at most `prefillChunk` tokens, each its own run in the queue, so that
   * a long prompt lets the running sequences step in between. Returns the logits of the last
   * `logitsToKeep` positions.
   */
  private async chunkedPrefill(session: DecoderSession, promptIds: number[], logitsToKeep: number, inputs: Record<string, ort.Tensor>): Promise<ForwardResult> {
    const n = promptIds.length;
    const chunk = this.options.prefillChunk;
    let cache = KvCache.empty(this.config, n + 1);
    const kept: Float32Array[] = [];
    for (let start = 0; start < n; start += chunk) {
      const end = Math.min(start + chunk, n);
      const wanted = end - Math.max(start, n - logitsToKeep); // this chunk's positions among the last logitsToKeep
      const from = cache;
      const result = await this.queue.run(
        () => session.forward(promptIds.slice(start, end), from, Math.max(1, wanted), inputs),
        start === 0 ? 'first-chunk' : 'chunk',
      );
      cache = result.cache;
      if (wanted > 0) kept.push(result.logits);
    }
    const logits = new Float32Array(kept.reduce((sum, l) => sum + l.length, 0));
    let at = 0;
    for (const l of kept) {
      logits.set(l, at);
      at += l.length;
    }
    return { logits, cache };
  }

  /**
   * The decode batch of `session` with `inputs`, named by `key` (a tier's session and inputs; a
   * per-prompt neuron set has its own). A session rebuilt after eviction starts a new batch; the
   * old one ends with its last member.
   */
  batch(key: string, profile: string, session: DecoderSession, inputs: Record<string, ort.Tensor>): DecodeBatch {
    const existing = this.batches.get(key);
    if (existing && existing.session === session) return existing.batch;
    const onEmpty = () => {
      if (this.batches.get(key)?.batch === batch) this.batches.delete(key);
    };
    const onStep = ({ rows, stepped, ms }: BatchStats) => {
      this.stats.steps++;
      this.stats.sequenceSteps += stepped;
      this.stats.maxRows = Math.max(this.stats.maxRows, rows);
      this.latency.recordStep(profile, rows, ms);
    };
    const batch = new DecodeBatch(session, inputs, this.queue, this.options.maxBatchSize, this.config.vocabSize, onEmpty, onStep);
    this.batches.set(key, { session, batch, profile });
    return batch;
  }

  close(): void {
    this.lastPrefill = null;
  }
}
