/**
 * Server configuration, read once from environment variables.
 *
 * Every variable is checked at start-up: a bad value stops the process with a message that
 * names the variable, instead of surfacing later as a confusing runtime failure.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Template } from '@huggingface/jinja';
import { PROJECT_ROOT } from './project.js';
import { QUANT_CHOICES, type QuantChoice } from './model/quant.js';
import { SPINNING, type Spinning } from './runtime/session.js';
import { DEFAULT_MAX_BATCH_SIZE, DEFAULT_PREFILL_CHUNK_TOKENS } from './serve/decode-batch.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  port: number;
  /** 0.0.0.0 by default, like vLLM: the server usually runs in a container behind a proxy. */
  host: string;
  /** Absolute paths of the model directories to serve, in the order given. */
  modelDirs: string[];
  /** Per model directory, the weights' quantisation when served ('none': float32). */
  quant: QuantChoice[];
  logLevel: LogLevel;
  /** Threads ONNX Runtime uses inside one operator; undefined leaves ORT's default. */
  ortIntraOpThreads: number | undefined;
  /** Threads ONNX Runtime uses across independent operators; undefined leaves ORT's default. */
  ortInterOpThreads: number | undefined;
  /** When ONNX Runtime's pool threads spin for work instead of sleeping (see Spinning). */
  ortSpinning: Spinning;
  /** Largest request body accepted, in bytes; larger ones get 413. */
  bodyLimitBytes: number;
  /** How long a shutdown waits for in-flight requests before cutting them off. */
  shutdownTimeoutMs: number;
  /** Requests generating at once on one model; more wait in its queue. */
  maxConcurrentPerModel: number;
  /** Sequences that decode together in one graph run, at most (continuous batching). */
  maxBatchSize: number;
  /** Prompt tokens per prefill run at most: a longer prompt is chunked so that running sequences step in between. */
  prefillChunkTokens: number;
  /** Requests waiting per model; beyond, 429 with Retry-After. */
  maxQueuePerModel: number;
  /** Longest a refused request is held before its 429 (never beyond its Retry-After), so that clients that do not back off cannot flood the event loop. */
  rejectDelayMs: number;
  /** Redis for the activation-score cache; undefined keeps the cache in-process. */
  redisUrl: string | undefined;
  /** Namespace of the cache's Redis keys, so services can share one Redis. */
  cachePrefix: string;
  /** Lifetime of a cached activation-score value, in seconds. */
  cacheTtlSeconds: number;
  /** Deadline of a Redis lookup, in ms: the most a lookup adds to a request. */
  cacheTimeoutMs: number;
  /** Consecutive Redis failures that open the cache's circuit breaker. */
  cacheBreakerThreshold: number;
  /** How long the open breaker skips Redis before one trial, in ms. */
  cacheBreakerCooldownMs: number;
  /** Estimated weight memory the session pool may hold, in bytes (Infinity: no limit). */
  poolMemoryBytes: number;
  /** Build every tier's sessions (and measure their latency) at start-up, else on first use. */
  poolPreload: boolean;
  /** Bearer keys accepted on /v1/* and the tokenizer routes; empty: no authentication. */
  apiKeys: string[];
  /** Whether /metrics needs a key too (when apiKeys is not empty). */
  authMetrics: boolean;
  /** Whether /docs and /openapi.json need a key too (when apiKeys is not empty). */
  authDocs: boolean;
  /** Requests per minute per API key (per client address without keys); 0: no limit. */
  rateLimitPerMinute: number;
  /** Origins allowed by CORS ('*' for any); empty: no CORS headers. */
  corsOrigins: string[];
  /** Server-side deadline of one request, queueing included; its generation is cut at it. */
  requestTimeoutMs: number;
  /** How long receiving a request (headers and body) may take before the connection is closed. */
  receiveTimeoutMs: number;
  /** Open connections at most; beyond, new ones are closed at once. */
  maxConnections: number;
  /** Requests served on one keep-alive connection before it is closed (0: no limit). */
  maxRequestsPerSocket: number;
  /** Cap on prompts × n × max_tokens of one request (400 beyond). */
  maxRequestTokens: number;
  /** On SIGTERM, how long /ready answers 503 while requests are still served, so balancers stop sending. */
  drainDelayMs: number;
  /** Worker threads that tokenize long texts off the event loop. */
  tokenizerThreads: number;
  /** Absolute path of a Jinja chat template that replaces every model's own; undefined: each model's. */
  chatTemplateFile: string | undefined;
}

/** Relative to the project root, so that the default does not depend on the cwd. */
export const DEFAULT_MODEL_DIR = resolve(PROJECT_ROOT, 'models/default');

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

/** Reads and checks the configuration; throws a ConfigError listing every bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = [];
  const value = (name: string): string | undefined => {
    const raw = env[name]?.trim();
    return raw === undefined || raw === '' ? undefined : raw;
  };
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = value(name);
    if (raw === undefined) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
      problems.push(`${name}=${JSON.stringify(raw)}: expected an integer from ${min} to ${max}`);
      return fallback;
    }
    return Number(raw);
  };
  const optionalInteger = (name: string, min: number, max: number): number | undefined =>
    value(name) === undefined ? undefined : integer(name, min, min, max);
  const boolean = (name: string, fallback: boolean): boolean => {
    const raw = value(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if (raw === 'true' || raw === '1') return true;
    if (raw === 'false' || raw === '0') return false;
    problems.push(`${name}=${JSON.stringify(env[name])}: expected true or false`);
    return fallback;
  };

  const oneOf = <T extends string>(name: string, choices: readonly T[], fallback: T): T => {
    const raw = value(name)?.toLowerCase();
    if (raw === undefined) return fallback;
    if ((choices as readonly string[]).includes(raw)) return raw as T;
    problems.push(`${name}=${JSON.stringify(env[name])}: expected one of ${choices.join(', ')}`);
    return fallback;
  };

  const port = integer('PORT', 8000, 0, 65535);
  const host = value('HOST') ?? '0.0.0.0';

  const dirs = (value('MODEL_DIR') ?? DEFAULT_MODEL_DIR).split(',').map((d) => d.trim());
  if (dirs.some((d) => d === '')) {
    problems.push(`MODEL_DIR=${JSON.stringify(env.MODEL_DIR)}: expected one or more comma-separated directories, none empty`);
  }
  // User-given relative paths are relative to the working directory, as shells expect.
  const modelDirs = dirs.filter((d) => d !== '').map((d) => resolve(d));

  // One choice for every model, or one per MODEL_DIR entry.
  const quants = (value('QUANT') ?? 'none').split(',').map((q) => q.trim().toLowerCase());
  let quant: QuantChoice[] = modelDirs.map(() => 'none');
  if (quants.some((q) => !(QUANT_CHOICES as readonly string[]).includes(q))) {
    problems.push(`QUANT=${JSON.stringify(env.QUANT)}: expected one of ${QUANT_CHOICES.join(', ')} (or one per MODEL_DIR entry, comma-separated)`);
  } else if (quants.length !== 1 && quants.length !== modelDirs.length) {
    problems.push(
      `QUANT=${JSON.stringify(env.QUANT)}: ${quants.length} values for ${modelDirs.length} model directories (give one, or one per MODEL_DIR entry)`,
    );
  } else {
    quant = modelDirs.map((_, i) => (quants.length === 1 ? quants[0] : quants[i]) as QuantChoice);
  }

  const level = oneOf('LOG_LEVEL', LOG_LEVELS, 'info');

  const redisUrl = value('REDIS_URL');
  if (redisUrl !== undefined && !isRedisUrl(redisUrl)) {
    // The value is not echoed: a Redis URL may carry a password, and this message is logged.
    problems.push('REDIS_URL: expected a redis:// or rediss:// URL with a host, e.g. redis://127.0.0.1:6379');
  }
  const cachePrefix = value('CACHE_PREFIX') ?? 'sparse-slm:';
  if (/\s/.test(cachePrefix)) {
    problems.push(`CACHE_PREFIX=${JSON.stringify(env.CACHE_PREFIX)}: expected a key prefix without whitespace`);
  }

  const list = (name: string): string[] =>
    (value(name) ?? '')
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');
  const apiKeys = list('API_KEYS');
  if (apiKeys.some((key) => key.length < 16 || /\s/.test(key))) {
    // The keys are not echoed: this message is logged.
    problems.push('API_KEYS: expected comma-separated keys of at least 16 characters, without whitespace');
  }
  const corsOrigins = list('CORS_ORIGINS');
  const chatTemplate = value('CHAT_TEMPLATE');

  const config: Config = {
    port,
    host,
    modelDirs,
    quant,
    logLevel: level,
    ortIntraOpThreads: optionalInteger('ORT_INTRA_OP_THREADS', 0, 1024),
    ortInterOpThreads: optionalInteger('ORT_INTER_OP_THREADS', 0, 1024),
    ortSpinning: oneOf('ORT_SPINNING', SPINNING, 'run'),
    bodyLimitBytes: integer('BODY_LIMIT_BYTES', 1024 * 1024, 1, 1024 * 1024 * 1024),
    shutdownTimeoutMs: integer('SHUTDOWN_TIMEOUT_MS', 10_000, 0, 3_600_000),
    // As many as decode together: running requests of one model share each step's weight reads.
    maxConcurrentPerModel: integer('MAX_CONCURRENT_PER_MODEL', DEFAULT_MAX_BATCH_SIZE, 1, 1024),
    maxBatchSize: integer('MAX_BATCH_SIZE', DEFAULT_MAX_BATCH_SIZE, 1, 256),
    prefillChunkTokens: integer('PREFILL_CHUNK_TOKENS', DEFAULT_PREFILL_CHUNK_TOKENS, 1, 1_000_000),
    maxQueuePerModel: integer('MAX_QUEUE_PER_MODEL', 32, 0, 100_000),
    rejectDelayMs: integer('REJECT_DELAY_MS', 2000, 0, 60_000),
    redisUrl,
    cachePrefix,
    // Redis's EX takes whole seconds; a year is far beyond any use of a per-prompt cache.
    cacheTtlSeconds: integer('CACHE_TTL_SECONDS', 3600, 1, 31_536_000),
    cacheTimeoutMs: integer('CACHE_TIMEOUT_MS', 25, 1, 60_000),
    cacheBreakerThreshold: integer('CACHE_BREAKER_THRESHOLD', 3, 1, 1000),
    cacheBreakerCooldownMs: integer('CACHE_BREAKER_COOLDOWN_MS', 5000, 1, 3_600_000),
    poolMemoryBytes: value('POOL_MEMORY_MB') === undefined ? Infinity : integer('POOL_MEMORY_MB', 0, 1, 1_048_576) * 1024 * 1024,
    poolPreload: boolean('POOL_PRELOAD', true),
    apiKeys,
    authMetrics: boolean('AUTH_METRICS', false),
    authDocs: boolean('AUTH_DOCS', false),
    rateLimitPerMinute: integer('RATE_LIMIT_PER_MINUTE', 0, 0, 1_000_000),
    corsOrigins,
    requestTimeoutMs: integer('REQUEST_TIMEOUT_MS', 120_000, 1, 86_400_000),
    receiveTimeoutMs: integer('RECEIVE_TIMEOUT_MS', 10_000, 1, 3_600_000),
    maxConnections: integer('MAX_CONNECTIONS', 2048, 1, 1_000_000),
    maxRequestsPerSocket: integer('MAX_REQUESTS_PER_SOCKET', 1000, 0, 1_000_000_000),
    maxRequestTokens: integer('MAX_REQUEST_TOKENS', 32_768, 1, 1_000_000_000),
    drainDelayMs: integer('DRAIN_DELAY_MS', 5000, 0, 3_600_000),
    tokenizerThreads: integer('TOKENIZER_THREADS', 1, 1, 64),
    chatTemplateFile: chatTemplate === undefined ? undefined : resolve(chatTemplate),
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/**
 * The CHAT_TEMPLATE file's text, parsed once so that a broken template stops the start-up
 * rather than failing every chat request; a ConfigError naming the variable otherwise.
 */
export function readChatTemplateFile(file: string): string {
  const problem = (what: string) => new ConfigError([`CHAT_TEMPLATE=${JSON.stringify(file)}: ${what}`]);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw problem(`cannot read the chat template file (${(err as Error).message})`);
  }
  if (text.trim() === '') throw problem('the chat template file is empty');
  try {
    new Template(text);
  } catch (err) {
    throw problem(`not a valid Jinja template (${(err as Error).message})`);
  }
  return text;
}

function isRedisUrl(raw: string): boolean {
  try {
    const url = new URL(raw);
    return (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '';
  } catch {
    return false;
  }
}
