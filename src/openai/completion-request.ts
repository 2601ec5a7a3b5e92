/**
 * Turns a schema-valid completions request into what the engine runs: token-id prompts and
 * SamplingParams. Checks here are the ones a JSON schema cannot express (they need the
 * model: vocabulary, context window) or that reject fields we accept but do not implement,
 * so that a client is told instead of silently getting different behaviour.
 */
import type { ExecutionOptions, SamplingParams, ServedModel } from '../runtime/types.js';
import { checkTextFits, textEncoder, type Encoder } from './encoding.js';
import { invalidRequest } from './errors.js';
import { checkExecution, executionOptions } from './execution.js';
import { checkRequestTokens, DEFAULT_LIMITS, promptCount, type RequestLimits } from './limits.js';
import { COMPLETION_DEFAULTS, type CompletionRequest } from './schemas.js';

export interface PreparedCompletion {
  /** One token-id array per prompt, in request order. */
  prompts: number[][];
  /** Choices per prompt. */
  n: number;
  params: SamplingParams;
  /** Tier and neuron selection, the same for every generation of the request. */
  execution: ExecutionOptions;
  stream: boolean;
  includeUsage: boolean;
}

export async function prepareCompletion(
  model: ServedModel,
  body: CompletionRequest,
  limits: Pick<RequestLimits, 'maxRequestTokens'> = DEFAULT_LIMITS,
  encode: Encoder = textEncoder(model),
): Promise<PreparedCompletion> {
  rejectUnsupported(body);
  const n = body.n ?? COMPLETION_DEFAULTS.n;
  const stream = body.stream ?? false;
  if (body.stream_options != null && !stream) {
    throw invalidRequest("'stream_options' is only allowed when 'stream' is true.", 'stream_options');
  }
  const params: SamplingParams = {
    maxTokens: body.max_tokens ?? COMPLETION_DEFAULTS.maxTokens,
    temperature: body.temperature ?? COMPLETION_DEFAULTS.temperature,
    topP: body.top_p ?? COMPLETION_DEFAULTS.topP,
    topK: body.top_k ?? COMPLETION_DEFAULTS.topK,
    seed: body.seed ?? undefined,
    stop: body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop,
    logprobs: body.logprobs ?? null,
    echo: body.echo ?? false,
  };
  // Before tokenizing: a refused request should cost nothing.
  checkRequestTokens(promptCount(body.prompt), n, params.maxTokens, limits.maxRequestTokens);
  const execution = executionOptions(body);
  checkExecution(model, execution);
  const prompts = await tokenizePrompts(model, body.prompt, encode);
  for (const [i, ids] of prompts.entries()) checkPrompt(model, ids, params.maxTokens, prompts.length > 1 ? `prompt ${i}` : 'the prompt');
  return { prompts, n, params, execution, stream, includeUsage: stream && body.stream_options?.include_usage === true };
}

/** The sampling fields both completions APIs accept but this server does not implement. */
export function rejectUnsupportedSampling(body: { presence_penalty?: number | null; frequency_penalty?: number | null; logit_bias?: object | null }): void {
  for (const param of ['presence_penalty', 'frequency_penalty'] as const) {
    const value = body[param];
    if (value != null && value !== 0) {
      throw invalidRequest(`'${param}' is not supported by this server; omit it or send 0.`, param);
    }
  }
  if (body.logit_bias != null && Object.keys(body.logit_bias).length > 0) {
    throw invalidRequest("'logit_bias' is not supported by this server; omit it or send an empty object.", 'logit_bias');
  }
}

function rejectUnsupported(body: CompletionRequest): void {
  if (body.suffix != null && body.suffix !== '') {
    throw invalidRequest("'suffix' is not supported by this server; omit it or send null.", 'suffix');
  }
  rejectUnsupportedSampling(body);
  // best_of > n would mean ranking candidates by likelihood, which we do not do.
  if (body.best_of != null && body.best_of !== (body.n ?? COMPLETION_DEFAULTS.n)) {
    throw invalidRequest("'best_of' is not supported by this server unless it equals 'n'.", 'best_of');
  }
}

/**
 * Strings are tokenized (with the tokenizer's special tokens, e.g. BOS), after a check that they
 * can fit the context at all; token ids are used as given.
 */
async function tokenizePrompts(model: ServedModel, prompt: CompletionRequest['prompt'], encode: Encoder): Promise<number[][]> {
  if (typeof prompt === 'string') {
    checkTextFits(model, prompt, 'prompt', 'the prompt');
    return encode([prompt]);
  }
  if (isStringArray(prompt)) {
    for (const [i, text] of prompt.entries()) checkTextFits(model, text, 'prompt', `prompt ${i}`);
    return encode(prompt);
  }
  if (isIdArray(prompt)) return [prompt];
  return prompt;
}

function isStringArray(value: unknown[]): value is string[] {
  return typeof value[0] === 'string';
}

function isIdArray(value: unknown[]): value is number[] {
  return typeof value[0] === 'number';
}

/** The request fields a prompt check blames: where the prompt came from, and the token budget. */
export interface PromptParams {
  prompt: string;
  maxTokens: string;
}

/** Refuses a tokenized prompt that is empty, has ids outside the vocabulary, or leaves no room for `maxTokens`. */
export function checkPrompt(
  model: ServedModel,
  ids: number[],
  maxTokens: number,
  which: string,
  param: PromptParams = { prompt: 'prompt', maxTokens: 'max_tokens' },
): void {
  if (ids.length === 0) {
    throw invalidRequest(`${capitalize(which)} is empty after tokenization; send at least one token.`, param.prompt);
  }
  const bad = ids.findIndex((id) => id < 0 || id >= model.vocabSize);
  if (bad >= 0) {
    throw invalidRequest(
      `Token id ${ids[bad]} at position ${bad} of ${which} is outside the vocabulary; ids must be in [0, ${model.vocabSize}).`,
      param.prompt,
      'invalid_token_id',
    );
  }
  const limit = model.contextLength;
  if (ids.length > limit) {
    throw invalidRequest(`This model's maximum context length is ${limit} tokens; ${which} has ${ids.length} tokens.`, param.prompt, 'context_length_exceeded');
  }
  if (ids.length + maxTokens > limit) {
    throw invalidRequest(
      `This model's maximum context length is ${limit} tokens; ${which} has ${ids.length} and ${param.maxTokens} is ${maxTokens} ` +
        `(${ids.length + maxTokens} in total). Reduce the ${param.prompt} or ${param.maxTokens}.`,
      param.maxTokens,
      'context_length_exceeded',
    );
  }
}

function capitalize(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
