/**
 * POST /v1/score: the log-probabilities of given continuations after a prompt (ranking,
 * multiple choice, perplexity), at any tier. Each continuation runs as one prompt-only
 * generation of prompt + continuation (`echo`, `maxTokens: 0`), whose echoed token logprobs
 * are sliced to the continuation's part.
 *
 * How continuations become tokens:
 * - token ids are used as given (after the prompt's ids, or the tokenized string prompt's);
 * - a string continuation after a string prompt is tokenized the way the model would see the
 *   joined text: `encode(prompt + continuation)`, keeping the tokens after `encode(prompt)`,
 *   when that tokenization starts with the prompt's tokens and adds at least one. When it does
 *   not (a merge across the boundary, a tokenizer that appends EOS) the continuation is
 *   tokenized alone, without special tokens, and appended;
 * - a string continuation after a token-id prompt is tokenized alone, without special tokens.
 */
import { randomUUID } from 'node:crypto';
import type { ExecutionOptions, GenerationDelta, GenerationResult, SamplingParams, ServedModel, TokenInfo } from '../runtime/types.js';
import type { ResultObserver } from './completion-run.js';
import { checkTextFits, textEncoder, type Encoder } from './encoding.js';
import { invalidRequest, nonFiniteLogits } from './errors.js';
import { checkExecution, executionOptions, ExecutionSummary } from './execution.js';
import { checkFinite } from './logprobs.js';
import type { ContinuationScore, ScoreRequest, ScoreResponse, Usage } from './schemas.js';

export interface PreparedScore {
  prompt: number[];
  /** Token ids of each continuation, in request order. */
  continuations: number[][];
  execution: ExecutionOptions;
}

/** Scoring processes prompts only, so by default it runs them sparse (`sparse_prefill: true`). */
export const SCORE_SPARSE_PREFILL_DEFAULT = true;

/** logprobs 1: the most likely alternative of each token tells whether it was the greedy choice. */
const SCORING: SamplingParams = { maxTokens: 0, temperature: 0, topP: 1, topK: -1, stop: [], logprobs: 1, echo: true };

export async function prepareScore(model: ServedModel, body: ScoreRequest, encode: Encoder = textEncoder(model)): Promise<PreparedScore> {
  const execution = executionOptions(body, SCORE_SPARSE_PREFILL_DEFAULT);
  checkExecution(model, execution);
  const promptText = typeof body.prompt === 'string' ? body.prompt : null;
  if (promptText !== null) checkTextFits(model, promptText, 'prompt', 'the prompt');
  const prompt = promptText !== null ? (await encode([promptText]))[0] : (body.prompt as number[]);
  if (prompt.length === 0) {
    throw invalidRequest('The prompt is empty after tokenization; the first continuation token needs at least one token before it.', 'prompt');
  }
  checkIds(model, prompt, 'prompt', 'the prompt');
  // Before any continuation is tokenized: a prompt that leaves no room fails at once.
  if (prompt.length >= model.contextLength) {
    throw invalidRequest(
      `This model's maximum context length is ${model.contextLength} tokens; the prompt has ${prompt.length}, leaving no room for a continuation.`,
      'prompt',
      'context_length_exceeded',
    );
  }
  const continuations = isStrings(body.continuations) ? await tokenizeContinuations(model, promptText, prompt, body.continuations, encode) : body.continuations;
  continuations.forEach((ids, i) => {
    if (ids.length === 0) throw invalidRequest(`Continuation ${i} is empty after tokenization.`, 'continuations');
    checkIds(model, ids, 'continuations', `continuation ${i}`);
    const total = prompt.length + ids.length;
    if (total > model.contextLength) {
      throw invalidRequest(
        `This model's maximum context length is ${model.contextLength} tokens; the prompt (${prompt.length}) and continuation ${i} (${ids.length}) have ${total}.`,
        'continuations',
        'context_length_exceeded',
      );
    }
  });
  return { prompt, continuations, execution };
}

function isStrings(value: string[] | number[][]): value is string[] {
  return typeof value[0] === 'string';
}

/** Each continuation's tokens as the joined text has them, or alone where the join merges across the boundary. */
async function tokenizeContinuations(
  model: ServedModel,
  promptText: string | null,
  promptIds: number[],
  texts: string[],
  encode: Encoder,
): Promise<number[][]> {
  for (const [i, text] of texts.entries()) checkTextFits(model, (promptText ?? '') + text, 'continuations', `the prompt with continuation ${i}`);
  const joined = promptText !== null ? await encode(texts.map((text) => promptText + text)) : [];
  const extendsPrompt = (ids: number[] | undefined): ids is number[] =>
    ids !== undefined && ids.length > promptIds.length && promptIds.every((id, i) => ids[i] === id);
  const alone = texts.map((_text, i) => !extendsPrompt(joined[i]));
  const aloneIds = alone.some(Boolean)
    ? await encode(
        texts.filter((_text, i) => alone[i]),
        false,
      )
    : [];
  let next = 0;
  return texts.map((_text, i) => (alone[i] ? aloneIds[next++] : (joined[i] as number[]).slice(promptIds.length)));
}

function checkIds(model: ServedModel, ids: number[], param: string, which: string): void {
  const bad = ids.findIndex((id) => id >= model.vocabSize);
  if (bad >= 0) {
    throw invalidRequest(
      `Token id ${ids[bad]} at position ${bad} of ${which} is outside the vocabulary; ids must be in [0, ${model.vocabSize}).`,
      param,
      'invalid_token_id',
    );
  }
}

export interface ScoreMeta {
  id: string;
  created: number;
  model: string;
}

export function scoreMeta(model: ServedModel): ScoreMeta {
  return { id: `score-${randomUUID().replaceAll('-', '')}`, created: Math.floor(Date.now() / 1000), model: model.id };
}

/**
 * Scores every continuation, one after the other. Returns null when `signal` aborted (the
 * client has gone) before all were scored.
 */
export async function runScore(
  model: ServedModel,
  prepared: PreparedScore,
  signal: AbortSignal,
  meta: ScoreMeta = scoreMeta(model),
  onResult?: ResultObserver,
): Promise<ScoreResponse | null> {
  const data: ContinuationScore[] = [];
  const summary = new ExecutionSummary();
  const usage: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
  for (const [index, continuation] of prepared.continuations.entries()) {
    if (signal.aborted) return null;
    const ids = [...prepared.prompt, ...continuation];
    const { tokens, result } = await scoreSequence(model, ids, prepared.execution, signal);
    if (result === null || signal.aborted) return null;
    summary.add(result);
    onResult?.(result);
    // Every token of every sequence is processed as prompt.
    usage.prompt_tokens += ids.length;
    usage.total_tokens = usage.prompt_tokens;
    data.push(continuationScore(index, tokens.slice(prepared.prompt.length), continuation));
  }
  const response: ScoreResponse = { id: meta.id, object: 'score', created: meta.created, model: meta.model, data, usage: summary.addTo(usage) };
  const sparsity = summary.sparsity();
  if (sparsity !== undefined) response.sparsity = sparsity;
  return response;
}

/** The echoed tokens of `ids` with their logprobs; result null when the generation did not finish. */
async function scoreSequence(
  model: ServedModel,
  ids: number[],
  execution: ExecutionOptions,
  signal: AbortSignal,
): Promise<{ tokens: TokenInfo[]; result: GenerationResult | null }> {
  const tokens: TokenInfo[] = [];
  const generation = model.generate(ids, SCORING, signal, execution);
  let step: IteratorResult<GenerationDelta, GenerationResult>;
  try {
    for (step = await generation.next(); !step.done; step = await generation.next()) {
      tokens.push(...step.value.tokens);
      if (signal.aborted) break;
    }
  } finally {
    await generation.return({ finishReason: 'length', promptTokens: 0, completionTokens: 0 });
  }
  if (step.done !== true) return { tokens, result: null };
  if (tokens.length !== ids.length) {
    throw new Error(`the engine echoed ${tokens.length} tokens for a ${ids.length}-token sequence`);
  }
  return { tokens, result: step.value };
}

function continuationScore(index: number, tokens: TokenInfo[], ids: number[]): ContinuationScore {
  const logprobs = tokens.map((token, i) => {
    // Only the sequence's first token lacks a logprob, and a continuation never starts there.
    if (token.logprob === null) throw new Error(`the engine gave no logprob for continuation token ${i}`);
    checkFinite(token);
    return token.logprob;
  });
  const sum = logprobs.reduce((a, b) => a + b, 0);
  const perplexity = Math.exp(-sum / logprobs.length);
  // Finite logprobs can still sum or exponentiate past float64 when the model is far off.
  if (!Number.isFinite(sum) || !Number.isFinite(perplexity)) throw nonFiniteLogits(`continuation ${index}: logprob sum ${sum}, perplexity ${perplexity}`);
  return {
    index,
    tokens: tokens.map((t) => t.text),
    token_ids: ids,
    token_logprobs: logprobs,
    logprob_sum: sum,
    perplexity,
    greedy: tokens.every(isGreedy),
  };
}

/** Whether no alternative was more likely than the token itself. */
function isGreedy(token: TokenInfo): boolean {
  const logprob = token.logprob ?? -Infinity;
  return (token.top ?? []).every((alt) => alt.logprob <= logprob);
}
