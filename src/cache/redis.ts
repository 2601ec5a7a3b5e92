/**
 * Activation scores in Redis, shared by every replica of the service.
 *
 * Redis is only a cache here, so it must never make a request slower or fail it:
 * - every command has a deadline (`timeoutMs`, 50 ms by default: a slow Redis costs at most
 *   that, then the request computes its own scores);
 * - while disconnected, commands fail at once instead of queueing (no offline queue, no
 *   retries, nothing resent after a reconnect: the request that wanted the answer has moved on);
 * - the client reconnects in the background with capped exponential backoff, and the store
 *   works again as soon as it is back, with no restart;
 * - get and set never throw: a failure is reported as an 'error' event and get returns null.
 *
 * Transitions are logged, not failures: one warning when Redis becomes unavailable (connection
 * lost, refused, or a command timing out) and one line when it answers again.
 *
 * Values are codec.ts blobs stored with SET ... EX ttl. A value that does not decode is an
 * 'error' and a miss, never returned; the caller's set after computing overwrites it.
 */
import { Redis } from 'ioredis';
import { decodeScores, encodeScores } from './codec.js';
import { emit, type CacheEventListener, type CacheLogger } from './events.js';
import { cacheKey } from './key.js';
import { DEFAULT_TTL_SECONDS } from './memory.js';
import type { ActivationKey, ActivationStore, LayerScores } from './types.js';

export const DEFAULT_PREFIX = 'sparse-slm:';
export const DEFAULT_TIMEOUT_MS = 50;
export const DEFAULT_MAX_RECONNECT_DELAY_MS = 2000;

export interface RedisStoreOptions {
  /** redis://[:password@]host:port[/db] or rediss:// */
  url: string;
  /** Namespace in front of every key, so services can share a Redis. */
  prefix?: string;
  /** Lifetime of a stored value, in whole seconds. */
  ttlSeconds?: number;
  /** Deadline of each command, in milliseconds. */
  timeoutMs?: number;
  /** Longest wait between two reconnection attempts. */
  maxReconnectDelayMs?: number;
  onEvent?: CacheEventListener;
  logger?: CacheLogger;
}

/**
 * Delay before reconnection attempt `attempt` (1, 2, ...): doubling from 50 ms up to the cap,
 * with jitter so that replicas which lost the same Redis do not all return at the same instant.
 */
export function reconnectDelay(attempt: number, maxMs: number): number {
  const base = Math.min(maxMs, 50 * 2 ** Math.min(attempt - 1, 30));
  return Math.round(base * (0.75 + 0.25 * Math.random()));
}

/** host:port of a Redis URL, for logs: the URL itself may carry a password. */
function describe(url: string): string {
  try {
    const u = new URL(url);
    return `${u.hostname}:${u.port === '' ? '6379' : u.port}`;
  } catch {
    return 'redis';
  }
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class RedisStore implements ActivationStore {
  readonly kind = 'redis';
  readonly prefix: string;
  readonly ttlSeconds: number;
  readonly timeoutMs: number;
  private readonly client: Redis;
  private readonly onEvent: CacheEventListener | undefined;
  private readonly logger: CacheLogger | undefined;
  private readonly target: string;
  /** 'unknown' until the first connection or failure, so a healthy start logs no "recovered". */
  private health: 'unknown' | 'up' | 'down' = 'unknown';
  private closed = false;

  constructor(options: RedisStoreOptions) {
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isInteger(this.ttlSeconds) || this.ttlSeconds < 1) {
      throw new RangeError(`ttlSeconds must be a whole number of seconds >= 1, got ${options.ttlSeconds}`);
    }
    if (!(this.timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0, got ${options.timeoutMs}`);
    const maxDelay = options.maxReconnectDelayMs ?? DEFAULT_MAX_RECONNECT_DELAY_MS;
    this.onEvent = options.onEvent;
    this.logger = options.logger;
    this.target = describe(options.url);

    this.client = new Redis(options.url, {
      // Connect now, in the background: the first requests find it connected more often.
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      commandTimeout: this.timeoutMs,
      // Only reconnection waits on this (commands never do); a blackholed host retries sooner.
      connectTimeout: Math.max(1000, 10 * this.timeoutMs),
      retryStrategy: (attempt) => reconnectDelay(attempt, maxDelay),
      // close() sends QUIT first, so little is left to flush; and ioredis's 2 s fallback timer
      // outlives a socket that had already died, holding the process that long at exit.
      disconnectTimeout: 200,
    });
    // Without an 'error' listener ioredis prints every failed reconnection attempt.
    this.client.on('error', (err: unknown) => this.markDown(err));
    this.client.on('close', () => this.markDown(new Error('connection closed')));
    this.client.on('ready', () => this.markUp());
  }

  /** Resolves true once connected, false if that takes longer than timeoutMs (never rejects). */
  async ready(timeoutMs: number): Promise<boolean> {
    if (this.client.status === 'ready') return true;
    return new Promise((resolve) => {
      const onReady = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.client.off('ready', onReady);
        resolve(false);
      }, timeoutMs);
      this.client.once('ready', onReady);
    });
  }

  async get(key: ActivationKey): Promise<LayerScores | null> {
    let id: string;
    try {
      id = cacheKey(this.prefix, key);
    } catch {
      emit(this.onEvent, 'error', { op: 'get', backend: 'redis' });
      return null;
    }
    let value: Buffer | null;
    try {
      value = await this.client.getBuffer(id);
    } catch (err) {
      this.markDown(err);
      emit(this.onEvent, 'error', { op: 'get', backend: 'redis' });
      return null;
    }
    this.markUp();
    if (value === null) {
      emit(this.onEvent, 'miss', { op: 'get', backend: 'redis' });
      return null;
    }
    let scores: LayerScores;
    try {
      scores = decodeScores(value);
    } catch {
      // Redis answered; the value is what is wrong, so this is no outage to log.
      emit(this.onEvent, 'error', { op: 'get', backend: 'redis' });
      return null;
    }
    emit(this.onEvent, 'hit', { op: 'get', backend: 'redis' });
    return scores;
  }

  async set(key: ActivationKey, scores: LayerScores): Promise<void> {
    let id: string;
    let value: Buffer;
    try {
      id = cacheKey(this.prefix, key);
      value = encodeScores(scores);
    } catch {
      emit(this.onEvent, 'error', { op: 'set', backend: 'redis' });
      return;
    }
    try {
      await this.client.set(id, value, 'EX', this.ttlSeconds);
    } catch (err) {
      this.markDown(err);
      emit(this.onEvent, 'error', { op: 'set', backend: 'redis' });
      return;
    }
    this.markUp();
  }

  /** Says goodbye to Redis (QUIT) when connected, else just drops the reconnection loop. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.client.status === 'ready') {
      try {
        await this.client.quit();
      } catch {
        // A Redis that does not answer QUIT in time is disconnected below all the same.
      }
    }
    const status = this.client.status;
    if (status === 'end') return;
    // Between reconnection attempts there is no socket, and ioredis emits no 'end' for it.
    const hasSocket = status === 'connecting' || status === 'connect' || status === 'ready';
    const ended = new Promise<void>((resolve) => this.client.once('end', () => resolve()));
    this.client.disconnect();
    if (hasSocket) await Promise.race([ended, new Promise<void>((resolve) => setTimeout(resolve, 1000).unref())]);
  }

  private markDown(err: unknown): void {
    if (this.closed || this.health === 'down') return;
    this.health = 'down';
    this.logger?.warn(
      { redis: this.target, reason: message(err) },
      'Redis unavailable: the activation cache falls back to memory and computed scores until it is back',
    );
  }

  private markUp(): void {
    if (this.closed || this.health === 'up') return;
    const recovered = this.health === 'down';
    this.health = 'up';
    if (!recovered) return;
    const obj = { redis: this.target };
    const msg = 'Redis available again: the activation cache uses it';
    if (this.logger?.info !== undefined) this.logger.info(obj, msg);
    else this.logger?.warn(obj, msg);
  }
}
