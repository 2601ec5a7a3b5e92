/**
 * ServedModel wrappers that fail or never finish on purpose, for the tests of error handling
 * and client disconnects. They keep the wrapped model's tokenizer and limits.
 */
import type { GenerationDelta, GenerationResult, SamplingParams, ServedModel } from '../../src/runtime/types.js';

/** `base` under another id with its own `generate` (and, optionally, other overrides). */
export function wrap(base: ServedModel, id: string, generate: ServedModel['generate'], overrides: Partial<ServedModel> = {}): ServedModel {
  return {
    id,
    created: base.created,
    contextLength: base.contextLength,
    vocabSize: base.vocabSize,
    eosToken: base.eosToken,
    bosToken: base.bosToken,
    encode: (text, addSpecialTokens) => base.encode(text, addSpecialTokens),
    decode: (ids) => base.decode(ids),
    generate,
    tiers: () => base.tiers(),
    checkExecution: (execution) => base.checkExecution(execution),
    close: async () => {},
    ...overrides,
  };
}

/** Throws from the first step of every generation (e.g. a failing ONNX Runtime run). */
export function failingModel(base: ServedModel, id = 'failing'): ServedModel {
  // biome-ignore lint/correctness/useYield: the error must come from the first next(), as an engine's would, not from the generate() call
  return wrap(base, id, async function* (): AsyncGenerator<GenerationDelta, GenerationResult> {
    throw new Error('simulated engine failure');
  });
}

/** Yields one delta, then throws: the failure happens mid-stream, after the 200 went out. */
export function failingLateModel(base: ServedModel, id = 'failing-late'): ServedModel {
  return wrap(base, id, async function* (): AsyncGenerator<GenerationDelta, GenerationResult> {
    yield { text: 'a', tokens: [{ id: 0, text: 'a', logprob: -1, top: null }] };
    throw new Error('simulated engine failure');
  });
}

export interface EndlessModel extends ServedModel {
  /** Resolves when a generation has started; gives its signal. */
  started: Promise<AbortSignal | undefined>;
  /** Resolves when the generation ended (aborted or closed by its consumer). */
  ended: Promise<void>;
}

/** Generates a token every few milliseconds until its signal aborts: a client must hang up. */
export function endlessModel(base: ServedModel, id = 'endless'): EndlessModel {
  let onStart: (signal: AbortSignal | undefined) => void = () => {};
  let onEnd: () => void = () => {};
  const started = new Promise<AbortSignal | undefined>((resolve) => (onStart = resolve));
  const ended = new Promise<void>((resolve) => (onEnd = resolve));
  const model = wrap(base, id, async function* (ids: number[], _params: SamplingParams, signal?: AbortSignal) {
    onStart(signal);
    let count = 0;
    try {
      while (signal?.aborted !== true) {
        await new Promise((resolve) => setTimeout(resolve, 5));
        count++;
        yield { text: 'x', tokens: [{ id: 0, text: 'x', logprob: -1, top: null }] };
      }
      return { finishReason: 'length' as const, promptTokens: ids.length, completionTokens: count };
    } finally {
      onEnd();
    }
  });
  return Object.assign(model, { started, ended });
}

export interface GatedModel extends ServedModel {
  /** Resolves when a generation is waiting at the gate. */
  waiting: Promise<void>;
  /** Lets the waiting generation produce its one token and finish. */
  open(): void;
}

/** Holds every generation until `open()`: a request that stays in flight as long as needed. */
export function gatedModel(base: ServedModel, id = 'gated'): GatedModel {
  let onWait: () => void = () => {};
  let onOpen: () => void = () => {};
  const waiting = new Promise<void>((resolve) => (onWait = resolve));
  const gate = new Promise<void>((resolve) => (onOpen = resolve));
  const model = wrap(base, id, async function* (ids: number[]) {
    onWait();
    await gate;
    yield { text: 'x', tokens: [{ id: 0, text: 'x', logprob: -1, top: null }] };
    return { finishReason: 'length' as const, promptTokens: ids.length, completionTokens: 1 };
  });
  return Object.assign(model, { waiting, open: onOpen });
}
