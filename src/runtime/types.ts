/** What the HTTP layer asks of a served model. Implemented in src/serve/engine.ts. */
import type { QuantName } from '../model/quant.js';

export interface SamplingParams {
  /** New tokens to generate at most (0 is allowed: with `echo` it scores the prompt only). */
  maxTokens: number;
  /** 0 means greedy. */
  temperature: number;
  /** Nucleus sampling mass in (0, 1]; 1 disables it. */
  topP: number;
  /** Keep the k most likely tokens; 0 or -1 disables it. */
  topK: number;
  /** Same seed, same prompt, same parameters: same output. */
  seed?: number;
  /** Up to 4 strings; generation stops before the first occurrence, which is not returned. */
  stop: string[];
  /** Number of top alternatives to report per token (OpenAI's `logprobs`), or null for none. */
  logprobs: number | null;
  /** Return the prompt's tokens (and their logprobs) before the completion. */
  echo: boolean;
}

export interface TopLogprob {
  token: string;
  logprob: number;
}

/** One token of a completion (or of the echoed prompt) with its log-probability. */
export interface TokenInfo {
  id: number;
  /** The token's text as it contributes to the output (may be '' for partial UTF-8). */
  text: string;
  /** null for the first prompt token, which has no context to be predicted from. */
  logprob: number | null;
  /** `logprobs` alternatives, most likely first; null when not requested or for the first prompt token. */
  top: TopLogprob[] | null;
}

export type FinishReason = 'stop' | 'length';

/** How a request wants to run: which neurons, chosen how. All optional: dense by default. */
export interface ExecutionOptions {
  /** MLP sparsity in [0, 0.95] or a tier name ("dense", "s50", ...): the nearest tier at or below it runs. */
  sparsity?: number | string;
  /** The densest tier predicted to finish within this many milliseconds runs. */
  latencyBudgetMs?: number;
  /**
   * "static": the tier's calibrated masks; "prompt": a per-prompt set from attribution on the
   * prompt (cached); "token": every token selects its own neurons inside the graph.
   */
  activation?: 'static' | 'prompt' | 'token';
  /** Run the prompt sparse too (default: prefill dense, decode sparse). */
  sparsePrefill?: boolean;
}

/** Decode steps a model has run (each steps a batch of sequences together). */
export interface DecodeStats {
  steps: number;
  /** Sequences those steps advanced, summed over steps (their mean batch is sequenceSteps / steps). */
  sequenceSteps: number;
  /** The most rows one step ran. */
  maxRows: number;
}

/** What ran, reported in the response's `sparsity` object. */
export interface SparsityReport {
  /** Tier name: "dense" or "s" + percent, e.g. "s80". */
  tier: string;
  /** The tier's per-layer MLP sparsity. */
  sparsity: number;
  /** Where the active neurons came from. */
  activationSource: 'dense' | 'static' | 'cache' | 'computed' | 'token';
  /** With per-token activation: the selector that chose the neurons, and its block size in neurons. */
  selector?: string;
  block?: number;
  /** flops_executed / flops_dense of this generation. */
  flopRatio: number;
  sparsePrefill: boolean;
  /** With a latency budget: the prediction that chose the tier, and whether any tier fit. */
  budgetMs?: number;
  predictedMs?: number;
  budgetMet?: boolean;
}

/** A request parameter the model cannot honour (unknown tier, no calibrated masks, ...): a 400 naming it. */
export class ParameterError extends Error {
  constructor(
    readonly param: string,
    message: string,
    readonly code = 'invalid_value',
  ) {
    super(message);
    this.name = 'ParameterError';
  }
}

/** Latency profile of one tier, measured at start-up and updated from requests. */
export interface TierProfile {
  prefillMsPerToken: number;
  decodeMsPerToken: number;
  /** Requests whose timings updated this profile (0: start-up measurement only). */
  samples: number;
}

export interface TierInfo {
  name: string;
  sparsity: number;
  /** MLP neurons kept per layer. */
  neuronsPerLayer: number;
  /** Dense weight bytes per decoded token / this tier's (the memory-traffic speedup bound). */
  trafficBound: number;
  profile: TierProfile | null;
  /** Whether its sessions are built (the pool may build them on first use and evict them). */
  loaded: boolean;
  /** Estimated weight memory its sessions hold now (0 when none is built). */
  memoryBytes: number;
}

/** Per-token activation as a model serves it: its selector, and a tier per sparsity. */
export interface TokenActivationInfo {
  /** The selector `activation: "token"` runs ("predictor-cor_gxo" or "gate"). */
  selector: string;
  /** Every selector this model has. */
  selectors: string[];
  /** Neurons per selection block. */
  block: number;
  /** Sparse tiers; `neuronsPerLayer` is what each token keeps, `trafficBound` counts the selector's bytes. */
  tiers: TierInfo[];
}

/** A piece of output, yielded as soon as it is final (stop strings are held back until decided). */
export interface GenerationDelta {
  text: string;
  /** Tokens whose text is in this delta; with `echo`, the prompt's tokens come first, in one delta. */
  tokens: TokenInfo[];
}

export interface GenerationResult {
  finishReason: FinishReason;
  promptTokens: number;
  completionTokens: number;
  /** Absent only on results of abandoned generations. */
  sparsity?: SparsityReport;
  /** Analytic FLOPs of this generation (prompt and completion), dense and as executed. */
  flopsDense?: number;
  flopsExecuted?: number;
  /** Prompt tokens whose pass was shared with an earlier generation (not run, not counted in FLOPs). */
  cachedPromptTokens?: number;
  /** Wall-clock milliseconds: prompt processing, then until the first and the last new token. */
  timings?: { prefillMs: number; firstTokenMs: number; totalMs: number };
}

export interface ServedModel {
  /** Name used in requests' `model` field. */
  readonly id: string;
  readonly created: number;
  readonly contextLength: number;
  readonly vocabSize: number;
  readonly eosToken: string | null;
  readonly bosToken: string | null;
  encode(text: string, addSpecialTokens?: boolean): number[];
  decode(ids: number[]): string;
  /** The directory of its tokenizer.json, for tokenizing long texts on worker threads. */
  readonly tokenizerDir?: string;
  /** Characters of the longest vocabulary entry: a text of c characters has at least c / maxTokenChars tokens. */
  readonly maxTokenChars?: number;
  /** The Jinja chat template /v1/chat/completions renders messages with; null or absent: none. */
  readonly chatTemplate?: string | null;
  /** How its weights are served (QUANT); absent: float32. */
  readonly quant?: QuantName;
  /**
   * Generates `params.maxTokens` tokens at most after `promptIds`.
   * Yields deltas as they are final; returns how it finished. Stops early when `signal` aborts
   * (the result then reports what was generated so far).
   */
  generate(promptIds: number[], params: SamplingParams, signal?: AbortSignal, execution?: ExecutionOptions): AsyncGenerator<GenerationDelta, GenerationResult>;
  /** The sparsity tiers this model serves (at least "dense"), with their latency profiles. */
  tiers(): TierInfo[];
  /** Per-token activation, when the model serves it. */
  tokenActivation?(): TokenActivationInfo;
  /** Its decode steps so far, when it batches them. */
  batching?(): DecodeStats;
  /** Checks execution options before any work; throws ParameterError naming the parameter. */
  checkExecution(execution: ExecutionOptions): void;
  close(): Promise<void>;
}
