/**
 * Per-prompt activation scores, cached so that a repeated prompt (a system prompt, a template, a
 * few-shot prefix) pays for its attribution once. Scores, not sets, are cached: one attribution
 * then serves every tier.
 */

/** What identifies a prompt's scores: the model's weights, the metric, the prompt's tokens. */
export interface ActivationKey {
  modelHash: string;
  metric: string;
  tokens: readonly number[];
}

/** Per layer, one score per MLP neuron (higher = keep). */
export type LayerScores = Float32Array[];

export type CacheEvent = 'hit' | 'miss' | 'error';

/** The health of a remote backend, read when metrics are scraped. */
export interface CacheBackendStatus {
  backend: 'redis';
  /** The client holds a connection that completed its handshake. */
  connected: boolean;
  /** The circuit breaker's state (src/cache/breaker.ts). */
  breaker: 'closed' | 'open' | 'half-open';
  /** connected and the breaker closed: lookups are being answered by the backend. */
  up: boolean;
  /** How many times the breaker has opened since start. */
  breakerOpens: number;
}

export interface ActivationStore {
  /** 'redis' or 'memory': where the scores live. */
  readonly kind: string;
  /** The scores, or null on a miss. Never throws: a failing backend counts as a miss. */
  get(key: ActivationKey): Promise<LayerScores | null>;
  /** Stores the scores. Never throws: a failing backend loses the write, nothing else. */
  set(key: ActivationKey, scores: LayerScores): Promise<void>;
  close(): Promise<void>;
  /** The remote backend's health; absent (or undefined) for a store with no remote backend. */
  status?(): CacheBackendStatus | undefined;
}
