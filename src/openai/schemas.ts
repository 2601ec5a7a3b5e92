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

const nullable = <T extends TSchema>(schema: T) => Type.Optional(Type.Union([schema, Type.Null()]));

export const MAX_SPARSITY = 0.95;

/**
 * How a request wants to run (sparse-serving extensions, shared by completions and scoring).
 * The model checks what the schema cannot (tier names, calibrated masks) before any work.
 */
export const ExecutionFields = {
  sparsity: nullable(
    Type.Union([Type.Number({ minimum: 0, maximum: MAX_SPARSITY }), Type.String({ minLength: 1 })], {
      description: `a number from 0 to ${MAX_SPARSITY} (the nearest tier at or below it runs) or a tier name such as "dense" or "s80"`,
    }),
  ),
  latency_budget_ms: nullable(
    Type.Number({ exclusiveMinimum: 0, description: 'a number of milliseconds > 0; the densest tier predicted to finish within it runs' }),
  ),
  activation: nullable(
    Type.Union([Type.Literal('static'), Type.Literal('prompt'), Type.Literal('token')], {
      description:
        '"static" (the tier\'s calibrated masks), "prompt" (a per-prompt neuron set from attribution on the prompt, cached) or "token" (every token selects its own neurons inside the graph)',
    }),
  ),
  sparse_prefill: nullable(Type.Boolean({ description: 'a boolean; true runs the prompt sparse too (by default only decoding is sparse)' })),
};

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
        description: 'a string, or a non-empty array of strings, of token ids, or of non-empty token-id arrays',
      },
    ),
    max_tokens: nullable(
      Type.Integer({ minimum: 0, default: COMPLETION_DEFAULTS.maxTokens, description: `an integer >= 0 (default ${COMPLETION_DEFAULTS.maxTokens})` }),
    ),
    temperature: nullable(
      Type.Number({
        minimum: 0,
        maximum: 2,
        default: COMPLETION_DEFAULTS.temperature,
        description: `a number from 0 to 2 (default ${COMPLETION_DEFAULTS.temperature}; 0 is greedy)`,
      }),
    ),
    top_p: nullable(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 1,
        default: COMPLETION_DEFAULTS.topP,
        description: `a number in (0, 1] (default ${COMPLETION_DEFAULTS.topP})`,
      }),
    ),
    top_k: nullable(
      Type.Integer({
        minimum: -1,
        default: COMPLETION_DEFAULTS.topK,
        description: `an integer, -1 or 0 to disable, or >= 1 (default ${COMPLETION_DEFAULTS.topK}; a vLLM extension)`,
      }),
    ),
    seed: nullable(
      Type.Integer({
        minimum: Number.MIN_SAFE_INTEGER,
        maximum: Number.MAX_SAFE_INTEGER,
        description: 'an integer; the same seed and request give the same output',
      }),
    ),
    stop: nullable(
      Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { maxItems: MAX_STOP })], {
        description: `a non-empty string or an array of up to ${MAX_STOP} non-empty strings`,
      }),
    ),
    n: nullable(
      Type.Integer({
        minimum: 1,
        maximum: MAX_N,
        default: COMPLETION_DEFAULTS.n,
        description: `an integer from 1 to ${MAX_N} (default ${COMPLETION_DEFAULTS.n})`,
      }),
    ),
    best_of: nullable(Type.Integer({ minimum: 1, maximum: MAX_N, description: 'null or equal to n (best-of ranking is not supported)' })),
    stream: nullable(Type.Boolean({ default: false, description: 'a boolean; true streams server-sent events' })),
    stream_options: nullable(
      Type.Object(
        { include_usage: nullable(Type.Boolean({ description: 'send a final chunk with usage and no choices' })) },
        { description: 'an object {include_usage: boolean}, only with stream: true' },
      ),
    ),
    logprobs: nullable(
      Type.Integer({
        minimum: 0,
        maximum: MAX_LOGPROBS,
        description: `an integer from 0 to ${MAX_LOGPROBS}, the number of top alternatives per token, or null`,
      }),
    ),
    echo: nullable(Type.Boolean({ default: false, description: 'a boolean; true returns the prompt before the completion' })),
    suffix: nullable(Type.String({ description: 'null or an empty string (suffixes are not supported)' })),
    presence_penalty: nullable(Type.Number({ minimum: -2, maximum: 2, description: '0 or null (penalties are not supported)' })),
    frequency_penalty: nullable(Type.Number({ minimum: -2, maximum: 2, description: '0 or null (penalties are not supported)' })),
    logit_bias: nullable(Type.Object({}, { additionalProperties: Type.Number(), description: 'null or an empty object (logit biases are not supported)' })),
    user: nullable(Type.String({ description: 'a string identifying the end user (ignored)' })),
    ...ExecutionFields,
  },
  {
    description:
      'An OpenAI legacy completions request, plus the sparse-serving fields `sparsity`, `latency_budget_ms`, `activation` and `sparse_prefill`. Unknown fields are ignored.',
  },
);
export type CompletionRequest = Static<typeof CompletionRequest>;

export const FinishReason = Type.Union([Type.Literal('stop'), Type.Literal('length')]);

export const CompletionLogprobs = Type.Object({
  tokens: Type.Array(Type.String()),
  token_logprobs: Type.Array(Type.Union([Type.Number(), Type.Null()])),
  top_logprobs: Type.Array(Type.Union([Type.Object({}, { additionalProperties: Type.Number() }), Type.Null()])),
  /** Character (code point) offsets of each token in the choice's text, echoed prompt included. */
  text_offset: Type.Array(Type.Integer()),
});
export type CompletionLogprobs = Static<typeof CompletionLogprobs>;

export const Usage = Type.Object({
  prompt_tokens: Type.Integer(),
  completion_tokens: Type.Integer(),
  total_tokens: Type.Integer(),
  flops_dense: Type.Optional(Type.Number({ description: 'analytic FLOPs of every generation of the request (prompt and completion) had it run dense' })),
  flops_executed: Type.Optional(Type.Number({ description: 'analytic FLOPs as executed, at the tier and neuron sets that ran' })),
  prompt_tokens_details: Type.Optional(
    Type.Object({
      cached_tokens: Type.Integer({ description: 'prompt tokens whose pass was reused (another choice, or the same prompt just before): they cost no FLOPs' }),
    }),
  ),
});
export type Usage = Static<typeof Usage>;

/** What ran: the response's `sparsity` object. */
export const SparsityInfo = Type.Object(
  {
    tier: Type.String({ description: 'the tier that ran: "dense" or "s" + percent, e.g. "s80"' }),
    sparsity: Type.Number({ description: "the tier's per-layer MLP sparsity" }),
    activation_source: Type.Union([Type.Literal('dense'), Type.Literal('static'), Type.Literal('cache'), Type.Literal('computed'), Type.Literal('token')], {
      description: 'where the active neurons came from: none dropped, calibrated masks, a cached or a freshly computed per-prompt set, or chosen per token',
    }),
    selector: Type.Optional(
      Type.String({ description: 'with per-token activation: the selector that chose each token\'s neurons ("predictor-cor_gxo" or "gate")' }),
    ),
    block: Type.Optional(Type.Integer({ description: 'with per-token activation: neurons per selection block' })),
    flop_ratio: Type.Number({ description: 'flops_executed / flops_dense' }),
    sparse_prefill: Type.Boolean({ description: 'whether the prompt ran sparse too' }),
    budget_ms: Type.Optional(Type.Number({ description: 'the latency budget asked for' })),
    predicted_ms: Type.Optional(Type.Number({ description: "the chosen tier's predicted latency" })),
    budget_met: Type.Optional(Type.Boolean({ description: 'false when no tier was predicted to fit and the sparsest ran' })),
  },
  {
    description:
      "How the request ran. With several choices or continuations, the first one's (all run the same tier unless a latency profile changed in between).",
  },
);
export type SparsityInfo = Static<typeof SparsityInfo>;

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
  sparsity: Type.Optional(SparsityInfo),
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
  sparsity: Type.Optional(SparsityInfo),
});
export type CompletionChunk = Static<typeof CompletionChunk>;

export const ChatRole = Type.Union([Type.Literal('system'), Type.Literal('developer'), Type.Literal('user'), Type.Literal('assistant')]);

export const ChatMessage = Type.Object(
  {
    role: ChatRole,
    content: Type.Union(
      [
        Type.String(),
        Type.Array(Type.Object({ type: Type.String(), text: Type.Optional(Type.String()) }), {
          description: 'content parts; only {"type": "text", "text": ...} is supported',
        }),
      ],
      { description: 'a string, or an array of {"type": "text", "text": string} parts (joined)' },
    ),
    name: nullable(Type.String({ description: 'a participant name, passed to the chat template' })),
  },
  { description: 'a message {role, content}: role "system", "developer", "user" or "assistant"' },
);
export type ChatMessage = Static<typeof ChatMessage>;

const unsupportedList = (what: string) => nullable(Type.Array(Type.Unknown(), { description: `null or an empty array (${what} is not supported)` }));

// The descriptions double as the "expected ..." part of validation error messages.
export const ChatCompletionRequest = Type.Object(
  {
    model: Type.String({ description: 'the id of a served model, as listed by GET /v1/models' }),
    messages: Type.Array(ChatMessage, {
      minItems: 1,
      description: "a non-empty array of messages {role, content}, rendered into the prompt by the model's chat template",
    }),
    max_completion_tokens: nullable(
      Type.Integer({ minimum: 0, description: `an integer >= 0 (default ${COMPLETION_DEFAULTS.maxTokens}); wins over max_tokens` }),
    ),
    max_tokens: nullable(
      Type.Integer({ minimum: 0, description: `an integer >= 0 (default ${COMPLETION_DEFAULTS.maxTokens}; deprecated by OpenAI for max_completion_tokens)` }),
    ),
    temperature: nullable(
      Type.Number({
        minimum: 0,
        maximum: 2,
        default: COMPLETION_DEFAULTS.temperature,
        description: `a number from 0 to 2 (default ${COMPLETION_DEFAULTS.temperature}; 0 is greedy)`,
      }),
    ),
    top_p: nullable(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 1,
        default: COMPLETION_DEFAULTS.topP,
        description: `a number in (0, 1] (default ${COMPLETION_DEFAULTS.topP})`,
      }),
    ),
    seed: nullable(
      Type.Integer({
        minimum: Number.MIN_SAFE_INTEGER,
        maximum: Number.MAX_SAFE_INTEGER,
        description: 'an integer; the same seed and request give the same output',
      }),
    ),
    stop: nullable(
      Type.Union([Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { maxItems: MAX_STOP })], {
        description: `a non-empty string or an array of up to ${MAX_STOP} non-empty strings`,
      }),
    ),
    n: nullable(
      Type.Integer({
        minimum: 1,
        maximum: MAX_N,
        default: COMPLETION_DEFAULTS.n,
        description: `an integer from 1 to ${MAX_N} (default ${COMPLETION_DEFAULTS.n})`,
      }),
    ),
    stream: nullable(Type.Boolean({ default: false, description: 'a boolean; true streams server-sent events' })),
    stream_options: nullable(
      Type.Object(
        { include_usage: nullable(Type.Boolean({ description: 'send a final chunk with usage and no choices' })) },
        { description: 'an object {include_usage: boolean}, only with stream: true' },
      ),
    ),
    logprobs: nullable(Type.Boolean({ default: false, description: 'a boolean; true returns the log-probability of each output token' })),
    top_logprobs: nullable(
      Type.Integer({
        minimum: 0,
        maximum: MAX_LOGPROBS,
        description: `an integer from 0 to ${MAX_LOGPROBS}, the most likely alternatives per token; needs logprobs: true`,
      }),
    ),
    presence_penalty: nullable(Type.Number({ minimum: -2, maximum: 2, description: '0 or null (penalties are not supported)' })),
    frequency_penalty: nullable(Type.Number({ minimum: -2, maximum: 2, description: '0 or null (penalties are not supported)' })),
    logit_bias: nullable(Type.Object({}, { additionalProperties: Type.Number(), description: 'null or an empty object (logit biases are not supported)' })),
    response_format: nullable(Type.Object({ type: Type.String() }, { description: 'null or {"type": "text"} (structured output is not supported)' })),
    tools: unsupportedList('tool calling'),
    functions: unsupportedList('function calling'),
    tool_choice: nullable(Type.Unknown({ description: 'null or "none" (tool calling is not supported)' })),
    function_call: nullable(Type.Unknown({ description: 'null or "none" (function calling is not supported)' })),
    user: nullable(Type.String({ description: 'a string identifying the end user (ignored)' })),
    ...ExecutionFields,
  },
  {
    description:
      'An OpenAI chat completions request, plus the sparse-serving fields `sparsity`, `latency_budget_ms`, `activation` and `sparse_prefill`. Unknown fields are ignored.',
  },
);
export type ChatCompletionRequest = Static<typeof ChatCompletionRequest>;

const ChatTopLogprob = Type.Object({
  token: Type.String({ description: "the token's text (may be empty for part of a UTF-8 character)" }),
  logprob: Type.Number(),
  bytes: Type.Union([Type.Array(Type.Integer()), Type.Null()], { description: 'the UTF-8 bytes of `token`' }),
});

export const ChatTokenLogprob = Type.Object({
  ...ChatTopLogprob.properties,
  top_logprobs: Type.Array(ChatTopLogprob, { description: 'the `top_logprobs` most likely tokens at this position, most likely first' }),
});
export type ChatTokenLogprob = Static<typeof ChatTokenLogprob>;

export const ChatLogprobs = Type.Object({ content: Type.Union([Type.Array(ChatTokenLogprob), Type.Null()]) });
export type ChatLogprobs = Static<typeof ChatLogprobs>;

export const ChatCompletionChoice = Type.Object({
  index: Type.Integer(),
  message: Type.Object({ role: Type.Literal('assistant'), content: Type.String() }),
  logprobs: Type.Union([ChatLogprobs, Type.Null()]),
  finish_reason: FinishReason,
});
export type ChatCompletionChoice = Static<typeof ChatCompletionChoice>;

export const ChatCompletion = Type.Object({
  id: Type.String({ description: 'chatcmpl-<hex>' }),
  object: Type.Literal('chat.completion'),
  created: Type.Integer(),
  model: Type.String(),
  choices: Type.Array(ChatCompletionChoice),
  usage: Usage,
  sparsity: Type.Optional(SparsityInfo),
});
export type ChatCompletion = Static<typeof ChatCompletion>;

/** One server-sent event of a streamed chat completion (`data: <chunk>`), documented, never serialised by Fastify. */
export const ChatCompletionChunk = Type.Object({
  id: Type.String(),
  object: Type.Literal('chat.completion.chunk'),
  created: Type.Integer(),
  model: Type.String(),
  choices: Type.Array(
    Type.Object({
      index: Type.Integer(),
      delta: Type.Object(
        { role: Type.Optional(Type.Literal('assistant')), content: Type.Optional(Type.String()) },
        { description: 'the first chunk of a choice has {role, content: ""}, then {content} pieces, and {} with the finish_reason' },
      ),
      logprobs: Type.Union([ChatLogprobs, Type.Null()]),
      finish_reason: Type.Union([FinishReason, Type.Null()]),
    }),
  ),
  usage: Type.Optional(Type.Union([Usage, Type.Null()])),
  sparsity: Type.Optional(SparsityInfo),
});
export type ChatCompletionChunk = Static<typeof ChatCompletionChunk>;

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

export const TierCard = Type.Object({
  name: Type.String({ description: 'what `sparsity` may name: "dense" or "s" + percent' }),
  sparsity: Type.Number({ description: 'per-layer MLP sparsity' }),
  neurons_per_layer: Type.Integer({ description: 'MLP neurons kept per layer' }),
  traffic_bound: Type.Number({ description: "dense weight bytes per decoded token / this tier's: the memory-traffic speedup bound" }),
  profile: Type.Union(
    [
      Type.Object({
        prefill_ms_per_token: Type.Number(),
        decode_ms_per_token: Type.Number(),
        samples: Type.Integer({ description: 'requests that updated the profile (0: the start-up measurement only)' }),
      }),
      Type.Null(),
    ],
    { description: 'the latency profile `latency_budget_ms` routes by; null until measured' },
  ),
  loaded: Type.Boolean({ description: 'whether its sessions are built (they may be built on first use and evicted)' }),
  memory_bytes: Type.Integer({ description: 'estimated weight memory its sessions hold now (0 when none is built)' }),
});
export type TierCard = Static<typeof TierCard>;

export const ModelCard = Type.Object({
  id: Type.String(),
  object: Type.Literal('model'),
  created: Type.Integer(),
  owned_by: Type.String(),
  max_model_len: Type.Integer({ description: 'context window in tokens (prompt + completion), as vLLM reports it' }),
  quantization: Type.Union([Type.Literal('none'), Type.Literal('int8'), Type.Literal('int4')], {
    description: 'how the weights are served (QUANT): float32, or blockwise int8 or int4',
  }),
  tiers: Type.Array(TierCard, { description: 'the sparsity tiers served, densest first' }),
  per_token: Type.Optional(
    Type.Object(
      {
        selector: Type.String({
          description: 'the selector `activation: "token"` runs: "predictor-cor_gxo" (trained on Corrected GxO oracle sets) or "gate" (gate-first)',
        }),
        selectors: Type.Array(Type.String(), { description: 'every selector this model has' }),
        block: Type.Integer({ description: 'neurons per selection block' }),
        tiers: Type.Array(TierCard, {
          description: "the per-token tiers: neurons each token keeps per layer, the traffic bound with the selector's bytes counted",
        }),
      },
      { description: 'per-token activation (`activation: "token"`)' },
    ),
  ),
});
export type ModelCard = Static<typeof ModelCard>;

export const ModelList = Type.Object(
  {
    object: Type.Literal('list'),
    data: Type.Array(ModelCard),
  },
  { description: 'The served models' },
);
export type ModelList = Static<typeof ModelList>;

export const ModelParams = Type.Object({
  model: Type.String({ description: 'the id of a served model, URL-encoded ("org/name" as org%2Fname)' }),
});
export type ModelParams = Static<typeof ModelParams>;

export const MAX_CONTINUATIONS = 64;

const TokenIds = Type.Array(Type.Integer({ minimum: 0 }), { minItems: 1 });

export const ScoreRequest = Type.Object(
  {
    model: Type.String({ description: 'the id of a served model, as listed by GET /v1/models' }),
    prompt: Type.Union([Type.String(), TokenIds], { description: 'a string or a non-empty array of token ids' }),
    continuations: Type.Union(
      [
        Type.Array(Type.String({ minLength: 1 }), { minItems: 1, maxItems: MAX_CONTINUATIONS }),
        Type.Array(TokenIds, { minItems: 1, maxItems: MAX_CONTINUATIONS }),
      ],
      { description: `an array of 1 to ${MAX_CONTINUATIONS} non-empty strings, or of 1 to ${MAX_CONTINUATIONS} non-empty token-id arrays` },
    ),
    ...ExecutionFields,
    sparse_prefill: nullable(
      Type.Boolean({ default: true, description: 'a boolean (default true here: scoring is all prompt processing); false runs it dense' }),
    ),
  },
  { description: 'Log-probabilities of continuations after a prompt. Unknown fields are ignored.' },
);
export type ScoreRequest = Static<typeof ScoreRequest>;

export const ContinuationScore = Type.Object({
  index: Type.Integer({ description: 'position in `continuations`' }),
  tokens: Type.Array(Type.String(), { description: "each continuation token's text (may be empty for part of a UTF-8 character)" }),
  token_ids: Type.Array(Type.Integer()),
  token_logprobs: Type.Array(Type.Number(), { description: 'natural-log probability of each continuation token given everything before it' }),
  logprob_sum: Type.Number({ description: 'the sum of token_logprobs: the log-likelihood of the continuation' }),
  perplexity: Type.Number({ description: 'exp(-mean of token_logprobs)' }),
  greedy: Type.Boolean({ description: 'whether every continuation token was the most likely one (what greedy decoding would produce)' }),
});
export type ContinuationScore = Static<typeof ContinuationScore>;

export const ScoreResponse = Type.Object({
  id: Type.String({ description: 'score-<hex>' }),
  object: Type.Literal('score'),
  created: Type.Integer(),
  model: Type.String(),
  data: Type.Array(ContinuationScore),
  usage: Usage,
  sparsity: Type.Optional(SparsityInfo),
});
export type ScoreResponse = Static<typeof ScoreResponse>;

const OptionalModel = nullable(Type.String({ description: 'the id of a served model; defaults to the first one' }));

export const TokenizeRequest = Type.Object(
  {
    model: OptionalModel,
    prompt: Type.String({ description: 'the text to tokenize' }),
    add_special_tokens: nullable(Type.Boolean({ default: true, description: "a boolean (default true): add the tokenizer's special tokens, e.g. BOS" })),
  },
  { description: "vLLM's /tokenize. Unknown fields are ignored." },
);
export type TokenizeRequest = Static<typeof TokenizeRequest>;

export const TokenizeResponse = Type.Object({
  tokens: Type.Array(Type.Integer()),
  count: Type.Integer(),
  max_model_len: Type.Integer(),
});
export type TokenizeResponse = Static<typeof TokenizeResponse>;

export const DetokenizeRequest = Type.Object(
  {
    model: OptionalModel,
    tokens: Type.Array(Type.Integer({ minimum: 0 }), { description: 'an array of token ids' }),
  },
  { description: "vLLM's /detokenize. Unknown fields are ignored." },
);
export type DetokenizeRequest = Static<typeof DetokenizeRequest>;

export const DetokenizeResponse = Type.Object({ prompt: Type.String() });
export type DetokenizeResponse = Static<typeof DetokenizeResponse>;

export const TokenizerInfoQuery = Type.Object({
  model: Type.Optional(Type.String({ description: 'the id of a served model; defaults to the first one' })),
});
export type TokenizerInfoQuery = Static<typeof TokenizerInfoQuery>;

export const TokenizerInfo = Type.Object(
  {
    tokenizer_class: Type.String(),
    model: Type.String({ description: 'the model whose tokenizer this is' }),
    eos_token: Type.Union([Type.String(), Type.Null()]),
    bos_token: Type.Union([Type.String(), Type.Null()]),
    model_max_length: Type.Integer({ description: 'as in tokenizer_config.json: the context window' }),
    max_model_len: Type.Integer({ description: 'the same, as vLLM names it elsewhere' }),
    vocab_size: Type.Integer(),
  },
  { description: "The tokenizer's configuration, as vLLM's /tokenizer_info reports it (lm-evaluation-harness reads eos_token)" },
);
export type TokenizerInfo = Static<typeof TokenizerInfo>;
