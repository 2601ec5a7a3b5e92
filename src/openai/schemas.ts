/**
 * TypeBox schemas of the OpenAI-compatible API. They validate requests (through the route
 * schemas) and generate the OpenAPI document, so the documentation cannot drift from what
 * the server accepts.
 *
 * Most optional fields are also nullable because OpenAI accepts `null` for "not given" and
 * some clients send it; the defaults are applied in code (`completion-request.ts`) for that
 * reason, and repeated here only as documentation.
 */
import { Type, type Static, type TSchema } from 'typebox';

export const COMPLETION_DEFAULTS = {
  maxTokens: 16,
  temperature: 1,
  topP: 1,
  topK: -1,
  n: 1,
} as const;

export const MAX_N = 16;
export const MAX_STOP = 4;
export const MAX_LOGPROBS = 20;

const nullable = <T extends TSchema>(schema: T) =>
  Type.Optional(Type.Union([schema, Type.Null()]));

// The descriptions double as the "expected ..." part of validation error messages.
export const CompletionRequest = Type.Object(
  {
    model: Type.String({ description: 'the id of a served model, as listed by GET /v1/models' }),
    prompt: Type.Union(
      [
        Type.String(),
        Type.Array(Type.String(), { minItems: 1 }),
        Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 }),
        Type.Array(Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 }), { minItems: 1 }),
      ],
      {
        description:
          'a string, or a non-empty array of strings, of token ids, or of non-empty token-id arrays',
      },
    ),
    max_tokens: nullable(
      Type.Integer({ minimum: 0, default: COMPLETION_DEFAULTS.maxTokens, description: `an integer >= 0 (default ${COMPLETION_DEFAULTS.maxTokens})` }),
    ),
    temperature: nullable(
      Type.Number({ minimum: 0, maximum: 2, default: COMPLETION_DEFAULTS.temperature, description: `a number from 0 to 2 (default ${COMPLETION_DEFAULTS.temperature}; 0 is greedy)` }),
    ),
    top_p: nullable(
      Type.Number({ exclusiveMinimum: 0, maximum: 1, default: COMPLETION_DEFAULTS.topP, description: `a number in (0, 1] (default ${COMPLETION_DEFAULTS.topP})` }),
    ),
    top_k: nullable(
      Type.Integer({ minimum: -1, default: COMPLETION_DEFAULTS.topK, description: `an integer, -1 or 0 to disable, or >= 1 (default ${COMPLETION_DEFAULTS.topK}; a vLLM extension)` }),
    ),
    seed: nullable(
      Type.Integer({ minimum: Number.MIN_SAFE_INTEGER, maximum: Number.MAX_SAFE_INTEGER, description: 'an integer; the same seed and request give the same output' }),
    ),
    stop: nullable(
      Type.Union(
        [Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { maxItems: MAX_STOP })],
        { description: `a non-empty string or an array of up to ${MAX_STOP} non-empty strings` },
      ),
    ),
    n: nullable(Type.Integer({ minimum: 1, maximum: MAX_N, default: COMPLETION_DEFAULTS.n, description: `an integer from 1 to ${MAX_N} (default ${COMPLETION_DEFAULTS.n})` })),
    best_of: nullable(Type.Integer({ minimum: 1, maximum: MAX_N, description: 'null or equal to n (best-of ranking is not supported)' })),
    stream: nullable(Type.Boolean({ default: false, description: 'a boolean; true streams server-sent events' })),
    stream_options: nullable(
      Type.Object(
        { include_usage: nullable(Type.Boolean({ description: 'send a final chunk with usage and no choices' })) },
        { description: 'an object {include_usage: boolean}, only with stream: true' },
      ),
    ),
    logprobs: nullable(
      Type.Integer({ minimum: 0, maximum: MAX_LOGPROBS, description: `an integer from 0 to ${MAX_LOGPROBS}, the number of top alternatives per token, or null` }),
    ),
    echo: nullable(Type.Boolean({ default: false, description: 'a boolean; true returns the prompt before the completion' })),
    suffix: nullable(Type.String({ description: 'null or an empty string (suffixes are not supported)' })),
    presence_penalty: nullable(Type.Number({ minimum: -2, maximum: 2, description: '0 or null (penalties are not supported)' })),
    frequency_penalty: nullable(Type.Number({ minimum: -2, maximum: 2, description: '0 or null (penalties are not supported)' })),
    logit_bias: nullable(
      Type.Object({}, { additionalProperties: Type.Number(), description: 'null or an empty object (logit biases are not supported)' }),
    ),
    user: nullable(Type.String({ description: 'a string identifying the end user (ignored)' })),
  },
  { description: 'An OpenAI legacy completions request. Unknown fields are ignored.' },
);
export type CompletionRequest = Static<typeof CompletionRequest>;

export const FinishReason = Type.Union([Type.Literal('stop'), Type.Literal('length')]);

export const CompletionLogprobs = Type.Object({
  tokens: Type.Array(Type.String()),
  token_logprobs: Type.Array(Type.Union([Type.Number(), Type.Null()])),
  top_logprobs: Type.Array(
    Type.Union([Type.Object({}, { additionalProperties: Type.Number() }), Type.Null()]),
  ),
  /** Character (code point) offsets of each token in the choice's text, echoed prompt included. */
  text_offset: Type.Array(Type.Integer()),
});
export type CompletionLogprobs = Static<typeof CompletionLogprobs>;

export const Usage = Type.Object({
  prompt_tokens: Type.Integer(),
  completion_tokens: Type.Integer(),
  total_tokens: Type.Integer(),
});
export type Usage = Static<typeof Usage>;

export const CompletionChoice = Type.Object({
  index: Type.Integer(),
  text: Type.String(),
  logprobs: Type.Union([CompletionLogprobs, Type.Null()]),
  finish_reason: FinishReason,
});
export type CompletionChoice = Static<typeof CompletionChoice>;

export const Completion = Type.Object({
  id: Type.String({ description: 'cmpl-<hex>' }),
  object: Type.Literal('text_completion'),
  created: Type.Integer(),
  model: Type.String(),
  choices: Type.Array(CompletionChoice),
  usage: Usage,
});
export type Completion = Static<typeof Completion>;

/** One server-sent event of a streamed completion (`data: <chunk>`), documented, never serialised by Fastify. */
export const CompletionChunk = Type.Object({
  id: Type.String(),
  object: Type.Literal('text_completion'),
  created: Type.Integer(),
  model: Type.String(),
  choices: Type.Array(
    Type.Object({
      index: Type.Integer(),
      text: Type.String(),
      logprobs: Type.Union([CompletionLogprobs, Type.Null()]),
      finish_reason: Type.Union([FinishReason, Type.Null()]),
    }),
  ),
  usage: Type.Optional(Type.Union([Usage, Type.Null()])),
});
export type CompletionChunk = Static<typeof CompletionChunk>;

export const ErrorResponse = Type.Object(
  {
    error: Type.Object({
      message: Type.String(),
      type: Type.String(),
      param: Type.Union([Type.String(), Type.Null()], { description: 'the request parameter at fault, if any' }),
      code: Type.Union([Type.String(), Type.Null()]),
    }),
  },
  { description: "An error, in OpenAI's shape" },
);

export const ModelCard = Type.Object({
  id: Type.String(),
  object: Type.Literal('model'),
  created: Type.Integer(),
  owned_by: Type.String(),
  max_model_len: Type.Integer({ description: 'context window in tokens (prompt + completion), as vLLM reports it' }),
});

export const ModelList = Type.Object(
  {
    object: Type.Literal('list'),
    data: Type.Array(ModelCard),
  },
  { description: 'The served models' },
);
export type ModelList = Static<typeof ModelList>;
