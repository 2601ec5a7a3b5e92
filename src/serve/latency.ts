/**
 * What a request is predicted to take at each tier, for the latency-budget router, from timings
 * measured at start-up and updated by every request and every decode step:
 * - per tier (a profile key: the tier, or `token:` and the tier for per-token selection), the
 *   prompt's cost per token and a decode step's cost with the sequence alone;
 * - per tier and batch size, a decode step's cost.
 *
 * All runs of a model take turns in one queue, so a sequence's token waits for its own batch's
 * step and for one step of every other running batch (other tiers), and each chunk of its prompt
 * waits for one step of each running batch. The prediction adds those up for the batches running
 * now, with this request in its tier's batch.
 */
import type { TierProfile } from '../runtime/types.js';

/** Exponential moving average weight of a new timing. */
const EMA = 0.2;

const blend = (old: number, value: number) => (1 - EMA) * old + EMA * value;

/** A running batch as the router sees it: its profile key and its sequences. */
export interface RunningBatch {
  profile: string;
  rows: number;
}

export interface PredictionInput {
  /** The profile of the tier the request would decode at, and of its prompt pass. */
  decodeProfile: string;
  prefillProfile: string;
  promptTokens: number;
  maxTokens: number;
  /** Prompt tokens per prefill run (PREFILL_CHUNK_TOKENS). */
  prefillChunk: number;
  running: RunningBatch[];
}

export class LatencyModel {
  private readonly profiles = new Map<string, TierProfile>();
  /** Per profile, a step's milliseconds by batch size. */
  private readonly steps = new Map<string, Map<number, number>>();

  has(profile: string): boolean {
    return this.profiles.has(profile);
  }

  get(profile: string): TierProfile | null {
    return this.profiles.get(profile) ?? null;
  }

  /** The start-up measurement of a tier (a short prompt, then a few steps alone). */
  set(profile: string, prefillMsPerToken: number, decodeMsPerToken: number): void {
    this.profiles.set(profile, { prefillMsPerToken, decodeMsPerToken, samples: 0 });
    this.steps.set(profile, new Map([[1, decodeMsPerToken]]));
  }

  /** A decode step that ran `rows` sequences of `profile` in `ms`. */
  recordStep(profile: string, rows: number, ms: number): void {
    const byRows = this.steps.get(profile);
    if (!byRows) return;
    const old = byRows.get(rows);
    byRows.set(rows, old === undefined ? ms : blend(old, ms));
    const p = this.profiles.get(profile);
    if (p && rows === 1) p.decodeMsPerToken = blend(p.decodeMsPerToken, ms);
  }

  /** A request's prompt pass (not one shared with an earlier request: that says nothing of its cost). */
  recordPrefill(decodeProfile: string, prefillProfile: string, promptTokens: number, ms: number): void {
    const p = this.profiles.get(prefillProfile);
    if (p && promptTokens > 0) p.prefillMsPerToken = blend(p.prefillMsPerToken, ms / promptTokens);
    const d = this.profiles.get(decodeProfile);
    if (d) d.samples++;
  }

  /** A step's milliseconds at `rows` sequences: as measured, else at the nearest size measured. */
  stepMs(profile: string, rows: number): number {
    const byRows = this.steps.get(profile);
    if (!byRows || byRows.size === 0) throw new Error(`no latency profile for ${profile}`);
    let best: [number, number] | null = null;
    for (const [r, ms] of byRows) if (best === null || Math.abs(r - rows) < Math.abs(best[0] - rows)) best = [r, ms];
    return best![1];
  }

  predictMs(input: PredictionInput): number {
    const prefill = this.profiles.get(input.prefillProfile);
    if (!prefill) throw new Error(`no latency profile for ${input.prefillProfile}`);
    const before = input.running.reduce((sum, b) => sum + this.stepMs(b.profile, b.rows), 0);
    const at = input.running.findIndex((b) => b.profile === input.decodeProfile);
    const joined =
      at < 0 ? [...input.running, { profile: input.decodeProfile, rows: 1 }] : input.running.map((b, i) => (i === at ? { ...b, rows: b.rows + 1 } : b));
    const perToken = joined.reduce((sum, b) => sum + this.stepMs(b.profile, b.rows), 0);
    const chunks = Math.ceil(input.promptTokens / input.prefillChunk);
    return input.promptTokens * prefill.prefillMsPerToken + chunks * before + input.maxTokens * perToken;
  }
}
