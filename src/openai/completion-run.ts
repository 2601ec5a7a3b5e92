/**
 * Runs a prepared completion on a model and shapes the output as OpenAI's legacy
 * completions, either whole (`createCompletion`) or as stream chunks (`streamCompletion`).
 * Both share `runChoices`, so the streamed and the non-streamed answers cannot disagree.
 *
 * Choices run one after the other: index = promptIndex * n + j, as OpenAI numbers them.
 */
import { randomUUID } from 'node:crypto';
import type { FinishReason, GenerationDelta, GenerationResult, ServedModel, TokenInfo } from '../runtime/types.js';
import type { PreparedCompletion } from './completion-request.js';
import { ExecutionSummary, sparsityInfo } from './execution.js';
import { appendLogprobs, emptyLogprobs, LogprobsBuilder } from './logprobs.js';
import type { Completion, CompletionChoice, CompletionChunk, CompletionLogprobs, SparsityInfo, Usage } from './schemas.js';

/** A piece of one choice: text as it became final, then (once) how the choice finished. */
export interface ChoiceEvent {
  index: number;
  text: string;
  /** The engine's tokens behind `text` (with their logprobs when asked for): chat shapes its own logprobs from them. */
  tokens: readonly TokenInfo[];
  logprobs: CompletionLogprobs | null;
  finishReason: FinishReason | null;
  /** With the finish: what this choice ran, when the engine reported it. */
  sparsity?: SparsityInfo;
}

/** Called with each finished generation's result (metrics); aborted generations that returned one included. */
export type ResultObserver = (result: GenerationResult) => void;

/** Required by the generator protocol when closing a generation early; nobody reads it. */
const ABANDONED: GenerationResult = { finishReason: 'length', promptTokens: 0, completionTokens: 0 };

export interface CompletionMeta {
  id: string;
  created: number;
  model: string;
}

export function completionMeta(model: ServedModel): CompletionMeta {
  return { id: `cmpl-${randomUUID().replaceAll('-', '')}`, created: Math.floor(Date.now() / 1000), model: model.id };
}

/**
 * Yields each choice's deltas and its finish, counting tokens into `usage` and what ran into
 * `summary`. Stops early,
 * without a finish event for the interrupted choice, once `signal` aborts (the client has
 * gone). Consumers iterate with for-await, so that when they stop early the engine's
 * generator is closed too.
 */
export async function* runChoices(
  model: ServedModel,
  prepared: PreparedCompletion,
  signal: AbortSignal,
  usage: Usage,
  summary: ExecutionSummary,
  onResult: ResultObserver | undefined,
): AsyncGenerator<ChoiceEvent, void> {
  const { prompts, n, params, execution } = prepared;
  for (const [p, ids] of prompts.entries()) {
    // The prompt is processed once per choice but, as OpenAI counts it, billed once per prompt.
    addUsage(usage, ids.length, 0);
    for (let j = 0; j < n; j++) {
      if (signal.aborted) return;
      const index = p * n + j;
      // Distinct but reproducible seeds, so that n seeded choices are not n copies of one.
      const seed = params.seed === undefined ? undefined : params.seed + j;
      const builder = params.logprobs === null ? null : new LogprobsBuilder();
      const generation = model.generate(ids, { ...params, seed }, signal, execution);
      let step: IteratorResult<GenerationDelta, GenerationResult>;
      try {
        for (step = await generation.next(); !step.done; step = await generation.next()) {
          const delta = step.value;
          if (delta.text !== '' || (builder !== null && delta.tokens.length > 0)) {
            yield { index, text: delta.text, tokens: delta.tokens, logprobs: builder?.next(delta.tokens) ?? null, finishReason: null };
          }
          // Do not rely on the engine alone to notice the abort between tokens.
          if (signal.aborted) break;
        }
      } finally {
        // Reached early when aborted, or when our consumer stops (e.g. the SSE socket broke):
        // closing the engine's generator releases what it holds for this sequence.
        await generation.return(ABANDONED);
      }
      if (step.done !== true) return;
      const result = step.value;
      addUsage(usage, 0, result.completionTokens);
      summary.add(result);
      onResult?.(result);
      if (signal.aborted) return;
      const finish: ChoiceEvent = { index, text: '', tokens: [], logprobs: null, finishReason: result.finishReason };
      if (result.sparsity !== undefined) finish.sparsity = sparsityInfo(result.sparsity);
      yield finish;
    }
  }
}

export function emptyUsage(): Usage {
  return { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
}

function addUsage(usage: Usage, promptTokens: number, completionTokens: number): void {
  usage.prompt_tokens += promptTokens;
  usage.completion_tokens += completionTokens;
  usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
}

/**
 * The whole completion, as a non-streaming request returns it, with the `sparsity` object of
 * the first choice and the FLOPs of all of them in `usage`.
 */
export async function createCompletion(
  model: ServedModel,
  prepared: PreparedCompletion,
  signal: AbortSignal,
  meta: CompletionMeta = completionMeta(model),
  onResult?: ResultObserver,
): Promise<Completion> {
  const choices: CompletionChoice[] = [];
  const usage = emptyUsage();
  const summary = new ExecutionSummary();
  for await (const event of runChoices(model, prepared, signal, usage, summary, onResult)) {
    let choice = choices[choices.length - 1];
    if (choice === undefined || choice.index !== event.index) {
      choice = { index: event.index, text: '', logprobs: prepared.params.logprobs === null ? null : emptyLogprobs(), finish_reason: 'length' };
      choices.push(choice);
    }
    choice.text += event.text;
    if (event.logprobs !== null && choice.logprobs !== null) appendLogprobs(choice.logprobs, event.logprobs);
    if (event.finishReason !== null) choice.finish_reason = event.finishReason;
  }
  const completion: Completion = { id: meta.id, object: 'text_completion', created: meta.created, model: meta.model, choices, usage: summary.addTo(usage) };
  const sparsity = summary.sparsity();
  if (sparsity !== undefined) completion.sparsity = sparsity;
  return completion;
}

/**
 * The completion as stream chunks: the text of each choice as it becomes final, a chunk with
 * its finish_reason (and that choice's `sparsity` object), then (with include_usage) a usage
 * chunk with no choices, the FLOPs of every choice, and the first choice's `sparsity`. The
 * caller writes `data: [DONE]` after the last one.
 */
export async function* streamCompletion(
  model: ServedModel,
  prepared: PreparedCompletion,
  signal: AbortSignal,
  meta: CompletionMeta = completionMeta(model),
  onResult?: ResultObserver,
): AsyncGenerator<CompletionChunk, void> {
  const head = { id: meta.id, object: 'text_completion' as const, created: meta.created, model: meta.model };
  // OpenAI puts `usage: null` on every chunk but the last when usage is asked for.
  const usageField = prepared.includeUsage ? { usage: null } : {};
  const usage = emptyUsage();
  const summary = new ExecutionSummary();
  for await (const { index, text, logprobs, finishReason, sparsity } of runChoices(model, prepared, signal, usage, summary, onResult)) {
    const chunk: CompletionChunk = { ...head, choices: [{ index, text, logprobs, finish_reason: finishReason }], ...usageField };
    if (sparsity !== undefined) chunk.sparsity = sparsity;
    yield chunk;
  }
  if (prepared.includeUsage && !signal.aborted) {
    const last: CompletionChunk = { ...head, choices: [], usage: summary.addTo(usage) };
    const sparsity = summary.sparsity();
    if (sparsity !== undefined) last.sparsity = sparsity;
    yield last;
  }
}
