/**
 * Runs a prepared chat completion and shapes the output as OpenAI's chat completions, whole
 * (`createChatCompletion`) or as `chat.completion.chunk` events (`streamChatCompletion`).
 * Both consume completions' `runChoices`, so sparsity, FLOPs, metrics and aborts behave as
 * they do for /v1/completions.
 */
import { randomUUID } from 'node:crypto';
import type { ServedModel, TokenInfo } from '../runtime/types.js';
import type { PreparedChat } from './chat-request.js';
import { completionMeta, emptyUsage, runChoices, type CompletionMeta, type ResultObserver } from './completion-run.js';
import { ExecutionSummary } from './execution.js';
import { checkFinite } from './logprobs.js';
import type { ChatCompletion, ChatCompletionChoice, ChatCompletionChunk, ChatLogprobs, ChatTokenLogprob } from './schemas.js';

export function chatCompletionMeta(model: ServedModel): CompletionMeta {
  return { ...completionMeta(model), id: `chatcmpl-${randomUUID().replaceAll('-', '')}` };
}

const utf8 = new TextEncoder();

/**
 * Chat's per-token logprobs. The engine lists the sampled token among the alternatives even
 * when it is not in the top k (legacy completions' "logprobs + 1"); chat's top_logprobs are
 * exactly the k most likely, which come first.
 */
function chatLogprobs(tokens: readonly TokenInfo[], topLogprobs: number): ChatTokenLogprob[] {
  const out: ChatTokenLogprob[] = [];
  for (const token of tokens) {
    checkFinite(token);
    // Only an echoed prompt's first token has no logprob, and chat never echoes.
    if (token.logprob === null) continue;
    out.push({
      token: token.text,
      logprob: token.logprob,
      bytes: [...utf8.encode(token.text)],
      top_logprobs: (token.top ?? []).slice(0, topLogprobs).map((alt) => ({ token: alt.token, logprob: alt.logprob, bytes: [...utf8.encode(alt.token)] })),
    });
  }
  return out;
}

/** The whole chat completion, with the first choice's `sparsity` object and every choice's FLOPs in `usage`. */
export async function createChatCompletion(
  model: ServedModel,
  prepared: PreparedChat,
  signal: AbortSignal,
  meta: CompletionMeta = chatCompletionMeta(model),
  onResult?: ResultObserver,
): Promise<ChatCompletion> {
  const topLogprobs = prepared.params.logprobs;
  const choices: ChatCompletionChoice[] = [];
  const usage = emptyUsage();
  const summary = new ExecutionSummary();
  for await (const event of runChoices(model, prepared, signal, usage, summary, onResult)) {
    let choice = choices[choices.length - 1];
    if (choice === undefined || choice.index !== event.index) {
      const logprobs: ChatLogprobs | null = topLogprobs === null ? null : { content: [] };
      choice = { index: event.index, message: { role: 'assistant', content: '' }, logprobs, finish_reason: 'length' };
      choices.push(choice);
    }
    choice.message.content += event.text;
    if (topLogprobs !== null) choice.logprobs?.content?.push(...chatLogprobs(event.tokens, topLogprobs));
    if (event.finishReason !== null) choice.finish_reason = event.finishReason;
  }
  const completion: ChatCompletion = { id: meta.id, object: 'chat.completion', created: meta.created, model: meta.model, choices, usage: summary.addTo(usage) };
  const sparsity = summary.sparsity();
  if (sparsity !== undefined) completion.sparsity = sparsity;
  return completion;
}

/**
 * The chat completion as stream chunks: per choice a first chunk with the role, then the
 * content as it becomes final, then a chunk with `delta: {}` and the finish_reason (and that
 * choice's `sparsity`); with include_usage a last chunk with no choices, the usage and the
 * first choice's `sparsity`. The caller writes `data: [DONE]` after it.
 */
export async function* streamChatCompletion(
  model: ServedModel,
  prepared: PreparedChat,
  signal: AbortSignal,
  meta: CompletionMeta = chatCompletionMeta(model),
  onResult?: ResultObserver,
): AsyncGenerator<ChatCompletionChunk, void> {
  const topLogprobs = prepared.params.logprobs;
  const head = { id: meta.id, object: 'chat.completion.chunk' as const, created: meta.created, model: meta.model };
  // OpenAI puts `usage: null` on every chunk but the last when usage is asked for.
  const usageField = prepared.includeUsage ? { usage: null } : {};
  const usage = emptyUsage();
  const summary = new ExecutionSummary();
  let started = -1;
  for await (const { index, text, tokens, finishReason, sparsity } of runChoices(model, prepared, signal, usage, summary, onResult)) {
    // Choices run one after the other, so a new index is a new choice.
    if (index !== started) {
      started = index;
      yield { ...head, choices: [{ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }], ...usageField };
    }
    if (finishReason === null) {
      const logprobs = topLogprobs === null ? null : { content: chatLogprobs(tokens, topLogprobs) };
      yield { ...head, choices: [{ index, delta: { content: text }, logprobs, finish_reason: null }], ...usageField };
      continue;
    }
    const chunk: ChatCompletionChunk = { ...head, choices: [{ index, delta: {}, logprobs: null, finish_reason: finishReason }], ...usageField };
    if (sparsity !== undefined) chunk.sparsity = sparsity;
    yield chunk;
  }
  if (prepared.includeUsage && !signal.aborted) {
    const last: ChatCompletionChunk = { ...head, choices: [], usage: summary.addTo(usage) };
    const sparsity = summary.sparsity();
    if (sparsity !== undefined) last.sparsity = sparsity;
    yield last;
  }
}
