/** What the HTTP layer asks of a served model. Implemented in src/runtime/engine.ts. */

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
  /**
   * Generates `params.maxTokens` tokens at most after `promptIds`.
   * Yields deltas as they are final; returns how it finished. Stops early when `signal` aborts
   * (the result then reports what was generated so far).
   */
  generate(promptIds: number[], params: SamplingParams, signal?: AbortSignal): AsyncGenerator<GenerationDelta, GenerationResult>;
  close(): Promise<void>;
}
