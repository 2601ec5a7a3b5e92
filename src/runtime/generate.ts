/** The decoding loop: prefill, then one token at a time until max_tokens, EOS or a stop string. */
import { IncrementalDecoder } from './detokenizer.js';
import { createRng, randomSeed } from '../random.js';
import { logSoftmax, sampleToken, topIndices } from './sampling.js';
import { StopMatcher } from './stops.js';
import type { FinishReason, GenerationDelta, GenerationResult, SamplingParams, TokenInfo } from './types.js';

export interface DecodingModel {
  vocabSize: number;
  contextLength: number;
  eosTokenIds: ReadonlySet<number>;
  /** Text of ids, special tokens skipped. */
  decode(ids: number[]): string;
  /** The vocabulary entry of a token, shown for tokens that add no text (specials, partial bytes). */
  tokenLabel(id: number): string;
}

/**
 * How one sequence runs its forward passes (which sessions, which neurons, alone or in a batch):
 * it holds the sequence's KV cache, so each call continues where the last one ended.
 */
export interface Runner {
  /** Logits of the prompt's last `logitsToKeep` positions ([logitsToKeep, vocab], row after row). */
  prefill(promptIds: number[], logitsToKeep: number): Promise<Float32Array>;
  /** Logits after `id`, appended to the sequence. */
  step(id: number): Promise<Float32Array>;
}

/** Logprob of `id` and the `k` most likely alternatives (plus `id` itself, as OpenAI reports). */
function scoreToken(row: Float32Array, id: number, k: number, labelOf: (id: number) => string): Pick<TokenInfo, 'logprob' | 'top'> {
  const lp = logSoftmax(row);
  const ids = topIndices(lp, k);
  if (!ids.includes(id)) ids.push(id);
  return { logprob: lp[id], top: ids.map((i) => ({ token: labelOf(i), logprob: lp[i] })) };
}

function labeller(model: DecodingModel, decoder: IncrementalDecoder) {
  return (id: number) => decoder.peek(id) || model.tokenLabel(id);
}

/** The prompt's tokens with the logprob of each given what precedes it (the first has none). */
function echoPrompt(model: DecodingModel, promptIds: number[], logits: Float32Array, k: number | null): GenerationDelta {
  const decoder = new IncrementalDecoder((ids) => model.decode(ids));
  const V = model.vocabSize;
  const tokens = promptIds.map((id, i): TokenInfo => {
    const scored = k !== null && i > 0 ? scoreToken(logits.subarray((i - 1) * V, i * V), id, k, labeller(model, decoder)) : { logprob: null, top: null };
    return { id, text: decoder.push(id), ...scored };
  });
  return { text: tokens.map((t) => t.text).join(''), tokens };
}

export async function* generate(
  model: DecodingModel,
  runner: Runner,
  promptIds: number[],
  params: SamplingParams,
  signal?: AbortSignal,
): AsyncGenerator<GenerationDelta, GenerationResult> {
  const V = model.vocabSize;
  const promptLogprobs = params.echo && params.logprobs !== null;
  let logits = await runner.prefill(promptIds, promptLogprobs ? promptIds.length : 1);
  if (params.echo) yield echoPrompt(model, promptIds, logits, params.logprobs);
  logits = logits.subarray(logits.length - V);

  const rand = createRng(params.seed ?? randomSeed());
  const decoder = new IncrementalDecoder((ids) => model.decode(ids), promptIds);
  const stops = new StopMatcher(params.stop);
  // Tokens decoded but not yet released, because a stop string may still begin in their text.
  let pending: TokenInfo[] = [];
  let pendingText = '';
  let completionTokens = 0;
  let finishReason: FinishReason = 'length';

  /** Releases the pending tokens that end within `limit` chars; with `cut`, trims the last one. */
  const release = (limit: number, cut = false): GenerationDelta | null => {
    const out: TokenInfo[] = [];
    let end = 0;
    while (pending.length > 0) {
      const t = pending[0];
      if (cut ? end >= limit : end + t.text.length > limit) break;
      out.push(cut ? { ...t, text: t.text.slice(0, limit - end) } : t);
      end += t.text.length;
      pending.shift();
    }
    const text = pendingText.slice(0, Math.min(end, limit));
    pendingText = pendingText.slice(text.length);
    if (cut) [pending, pendingText] = [[], ''];
    return out.length > 0 ? { text, tokens: out } : null;
  };

  while (completionTokens < params.maxTokens && !signal?.aborted) {
    const id = sampleToken(logits, params, rand);
    completionTokens++;
    if (model.eosTokenIds.has(id)) {
      finishReason = 'stop';
      break;
    }
    const scored = params.logprobs !== null ? scoreToken(logits, id, params.logprobs, labeller(model, decoder)) : { logprob: null, top: null };
    const text = decoder.push(id);
    pending.push({ id, text, ...scored });
    pendingText += text;

    const stopAt = stops.find(pendingText);
    if (stopAt >= 0) {
      const delta = release(stopAt, true);
      if (delta) yield delta;
      finishReason = 'stop';
      break;
    }
    const delta = release(stops.safeLength(pendingText));
    if (delta) yield delta;

    if (completionTokens >= params.maxTokens) break;
    // The cache holds the prompt and every sampled token but this one.
    if (promptIds.length + completionTokens - 1 >= model.contextLength) break;
    logits = await runner.step(id);
  }
  const rest = release(Infinity);
  if (rest) yield rest;
  return { finishReason, promptTokens: promptIds.length, completionTokens };
}
