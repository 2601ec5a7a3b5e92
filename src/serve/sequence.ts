/**
 * One sequence being generated (a slot, in llama.cpp's sense): its prompt pass, then its decode
 * steps in a batch shared with the other sequences at the same tier, with what it needs to
 * account for itself afterwards (timings, steps, whether its prefill ran or was shared).
 */
import type { KvCache } from '../runtime/kv-cache.js';
import type { Runner } from '../runtime/generate.js';
import type { ForwardResult } from '../runtime/session.js';
import type { BatchMember, DecodeBatch } from './decode-batch.js';

export interface SequenceParts {
  /** The prompt pass; `shared` says whether an earlier sequence's identical pass was reused. */
  prefill(promptIds: number[], logitsToKeep: number, shared: (reused: boolean) => void): Promise<ForwardResult>;
  /** The batch its decode steps join. */
  batch(): DecodeBatch;
}

export class Sequence implements Runner {
  prefillMs = 0;
  decodeSteps = 0;
  /** Prompt positions whose logits the prefill returned. */
  promptLogits = 1;
  /** False when the prompt pass was an earlier sequence's (n choices, a repeated prompt). */
  prefillRan = true;
  private cache: KvCache | null = null;
  private member: BatchMember | null = null;

  constructor(private readonly parts: SequenceParts) {}

  async prefill(promptIds: number[], logitsToKeep: number): Promise<Float32Array> {
    const t0 = performance.now();
    this.promptLogits = logitsToKeep;
    const { logits, cache } = await this.parts.prefill(promptIds, logitsToKeep, (reused) => (this.prefillRan = !reused));
    this.cache = cache;
    this.prefillMs = performance.now() - t0;
    return logits;
  }

  step(id: number): Promise<Float32Array> {
    this.decodeSteps++;
    if (this.member === null) {
      if (this.cache === null) throw new Error('a sequence steps after its prefill');
      this.member = this.parts.batch().join(this.cache);
      this.cache = null;
    }
    return this.member.step(id);
  }

  /** Leaves the batch (finished, stopped or cancelled); its row is free at the next step. */
  finish(): void {
    this.member?.leave();
    this.member = null;
    this.cache = null;
  }
}
