/**
 * Activation scores in Redis, shared by every replica of the service.
 *
 * Redis is only a cache here, so it must never make a request slower or fail it:
 * - a get has a tight deadline (`timeoutMs`, 25 ms by default: a slow Redis costs a lookup at
 *   most that, then the request computes its own scores); a set has a looser one
 *   (`writeTimeoutMs`, 250 ms), since LayeredStore does not make requests wait for writes;
 * - while disconnected, commands fail at once instead of queueing (no offline queue, no
 *   retries, nothing resent after a reconnect: the request that wanted the answer has moved on);
 * - a circuit breaker (breaker.ts) stops asking a Redis that failed or timed out
 *   `breakerThreshold` times in a row (default 3): for `breakerCooldownMs` (default 5 s) gets
 *   are misses and sets are dropped without touching the socket. Then a background PING is the
 *   trial: an answer within the get deadline closes the breaker, anything else reopens it. So
 *   a hung Redis costs a few deadlines in all, not one per request, and no request ever waits
 *   for the trial;
 * - the client reconnects in the background with capped exponential backoff, and the store
 *   works again as soon as it is back, with no restart;
 * - get and set never throw: a failure is reported as an 'error' event with its reason, and get
 *   returns null.
 *
 * Redis is "up" while the client is connected and the breaker closed (what `status()` reports
 * and `slm_cache_up` shows). Transitions of that are logged, not failures: one warning when
 * it goes down (connection lost or refused, or the breaker opening) and one line when it is
 * up again.
 *
 * Values are codec.ts blobs stored with SET ... EX ttl. A value that does not decode is an
 * 'error' and a miss, never returned; the caller's set after computing overwrites it.
 */
import { Redis } from 'ioredis';
import { CircuitBreaker, DEFAULT_COOLDOWN_MS, DEFAULT_FAILURE_THRESHOLD, type BreakerState } from './breaker.js';
import { decodeScores, encodeScores } from './codec.js';
import { emit, type CacheErrorReason, type CacheEventListener, type CacheLogger } from './events.js';
import { cacheKey } from './key.js';
import { DEFAULT_TTL_SECONDS } from './memory.js';
import type { ActivationKey, ActivationStore, CacheBackendStatus, LayerScores } from './types.js';

export const DEFAULT_PREFIX = 'sparse-slm:';
/** Deadline of a get: loopback or same-zone Redis answers a few hundred KiB in about a millisecond. */
export const DEFAULT_TIMEOUT_MS = 25;
/** Deadline of a set: nobody waits for it, so it only has to tell a hung Redis from a slow one. */
export const DEFAULT_WRITE_TIMEOUT_MS = 250;
export const DEFAULT_MAX_RECONNECT_DELAY_MS = 2000;

export interface RedisStoreOptions {
  /** redis://[:password@]host:port[/db] or rediss:// */
  url: string;
  /** Namespace in front of every key, so services can share a Redis. */
  prefix?: string;
  /** Lifetime of a stored value, in whole seconds. */
  ttlSeconds?: number;
  /** Deadline of a get (and of the breaker's trial PING), in milliseconds (default 25). */
  timeoutMs?: number;
  /** Deadline of a set, in milliseconds (default 250). */
  writeTimeoutMs?: number;
  /** Longest wait between two reconnection attempts. */
  maxReconnectDelayMs?: number;
  /** Consecutive failed or timed-out commands that open the circuit breaker (default 3). */
  breakerThreshold?: number;
  /** How long the open breaker keeps Redis out of the way before a trial, in ms (default 5000). */
  breakerCooldownMs?: number;
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

class DeadlineExceeded extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
  }
}

/**
 * `promise`, or a DeadlineExceeded after `ms`. When the timer fires, the verdict waits for one
 * setImmediate: that runs after the event loop's poll phase, so an answer that arrived while the
 * loop was busy elsewhere (a long synchronous stretch) is read first instead of being counted
 * as a timeout, which would open the breaker on a healthy Redis.
 */
function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      setImmediate(() => {
        if (settled) return;
        settled = true;
        reject(new DeadlineExceeded(ms));
      });
    }, ms);
    promise.then(
      (value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

function reasonOf(err: unknown): CacheErrorReason {
  // ioredis's own commandTimeout (the backstop) says "Command timed out".
  return err instanceof DeadlineExceeded || /timed out/i.test(message(err)) ? 'timeout' : 'failed';
}

export class RedisStore implements ActivationStore {
  readonly kind = 'redis';
  readonly prefix: string;
  readonly ttlSeconds: number;
  readonly timeoutMs: number;
  readonly writeTimeoutMs: number;
  private readonly client: Redis;
  private readonly breaker: CircuitBreaker;
  private readonly onEvent: CacheEventListener | undefined;
  private readonly logger: CacheLogger | undefined;
  private readonly target: string;
  /** 'unknown' until the first connection or failure, so a healthy start logs no "recovered". */
  private health: 'unknown' | 'up' | 'down' = 'unknown';
  /** The latest failure, for the warning when Redis goes down. */
  private lastError = '';
  private trialTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: RedisStoreOptions) {
    this.prefix = options.prefix ?? DEFAULT_PREFIX;
    this.ttlSeconds = options.ttlSeconds ?? DEFAULT_TTL_SECONDS;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.writeTimeoutMs = options.writeTimeoutMs ?? Math.max(DEFAULT_WRITE_TIMEOUT_MS, this.timeoutMs);
    if (!Number.isInteger(this.ttlSeconds) || this.ttlSeconds < 1) {
      throw new RangeError(`ttlSeconds must be a whole number of seconds >= 1, got ${options.ttlSeconds}`);
    }
    if (!(this.timeoutMs > 0)) throw new RangeError(`timeoutMs must be > 0, got ${options.timeoutMs}`);
    if (!(this.writeTimeoutMs > 0)) throw new RangeError(`writeTimeoutMs must be > 0, got ${options.writeTimeoutMs}`);
    const maxDelay = options.maxReconnectDelayMs ?? DEFAULT_MAX_RECONNECT_DELAY_MS;
    this.onEvent = options.onEvent;
    this.logger = options.logger;
    this.target = describe(options.url);
    this.breaker = new CircuitBreaker({
      failureThreshold: options.breakerThreshold ?? DEFAULT_FAILURE_THRESHOLD,
      cooldownMs: options.breakerCooldownMs ?? DEFAULT_COOLDOWN_MS,
      onStateChange: (to) => this.onBreaker(to),
    });

    this.client = new Redis(options.url, {
      // Connect now, in the background: the first requests find it connected more often.
      lazyConnect: false,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // A backstop only: gets and sets have their own, tighter, deadlines (withDeadline). It
      // also bounds the connection handshake (HELLO) against a server that never answers.
      commandTimeout: Math.max(this.timeoutMs, this.writeTimeoutMs),
      // Only reconnection waits on this (commands never do); a blackholed host retries sooner.
      connectTimeout: Math.max(1000, 10 * this.timeoutMs),
      retryStrategy: (attempt) => reconnectDelay(attempt, maxDelay),
      // close() sends QUIT first, so little is left to flush; and ioredis's 2 s fallback timer
      // outlives a socket that had already died, holding the process that long at exit.
      disconnectTimeout: 200,
    });
    // Without an 'error' listener ioredis prints every failed reconnection attempt.
    this.client.on('error', (err: unknown) => {
      this.lastError = message(err);
      this.refreshHealth();
    });
    this.client.on('close', () => {
      if (this.lastError === '') this.lastError = 'connection closed';
      this.refreshHealth();
    });
    this.client.on('ready', () => this.refreshHealth());
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

  /** Connected and breaker closed is "up": what slm_cache_up reports. */
  status(): CacheBackendStatus {
    const connected = this.client.status === 'ready';
    const breaker = this.breaker.state;
    return { backend: 'redis', connected, breaker, up: connected && breaker === 'closed', breakerOpens: this.breaker.opens };
  }

  async get(key: ActivationKey): Promise<LayerScores | null> {
    let id: string;
    try {
      id = cacheKey(this.prefix, key);
    } catch {
      emit(this.onEvent, 'error', { op: 'get', backend: 'redis', reason: 'invalid' });
      return null;
    }
    const refused = this.refusal();
    if (refused !== undefined) {
      emit(this.onEvent, 'error', { op: 'get', backend: 'redis', reason: refused });
      return null;
    }
    let value: Buffer | null;
    try {
      value = await withDeadline(this.client.getBuffer(id), this.timeoutMs);
    } catch (err) {
      this.failed(err);
      emit(this.onEvent, 'error', { op: 'get', backend: 'redis', reason: reasonOf(err) });
      return null;
    }
    this.breaker.success();
    if (value === null) {
      emit(this.onEvent, 'miss', { op: 'get', backend: 'redis' });
      return null;
    }
    let scores: LayerScores;
    try {
      scores = decodeScores(value);
    } catch {
      // Redis answered; the value is what is wrong, so this is no outage to log.
      emit(this.onEvent, 'error', { op: 'get', backend: 'redis', reason: 'invalid' });
      return null;
    }
    emit(this.onEvent, 'hit', { op: 'get', backend: 'redis' });
    return scores;
  }

  async set(key: ActivationKey, scores: LayerScores): Promise<void> {
    let id: string;
    let value: Buffer;
    try {
      // Encoded before any wait: the caller may reuse the arrays once this returns a promise.
      id = cacheKey(this.prefix, key);
      value = encodeScores(scores);
    } catch {
      emit(this.onEvent, 'error', { op: 'set', backend: 'redis', reason: 'invalid' });
      return;
    }
    const refused = this.refusal();
    if (refused !== undefined) {
      emit(this.onEvent, 'error', { op: 'set', backend: 'redis', reason: refused });
      return;
    }
    try {
      await withDeadline(this.client.set(id, value, 'EX', this.ttlSeconds), this.writeTimeoutMs);
    } catch (err) {
      this.failed(err);
      emit(this.onEvent, 'error', { op: 'set', backend: 'redis', reason: reasonOf(err) });
      return;
    }
    this.breaker.success();
  }

  /** Says goodbye to Redis (QUIT) when connected, else just drops the reconnection loop. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.trialTimer);
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

  /**
   * Why a command must not be sent now, or undefined when it may. Not connected comes first: a
   * command that cannot be written fails at no cost, so it neither feeds nor uses up the breaker
   * (whose half-open trial is the background PING anyway).
   */
  private refusal(): CacheErrorReason | undefined {
    if (this.closed || this.client.status !== 'ready') return 'unavailable';
    if (this.breaker.state !== 'closed') return 'breaker_open';
    return undefined;
  }

  private failed(err: unknown): void {
    this.lastError = message(err);
    // A command lost with its connection says nothing about a connected Redis's health: the
    // reconnection handles that, and commands fail at no cost meanwhile. (ioredis leaves
    // 'ready' before it rejects the commands of a closed connection.)
    if (this.client.status === 'ready') this.breaker.failure();
  }

  private onBreaker(to: BreakerState): void {
    if (to === 'open') {
      // The trial runs in the background after the cool-down, so no request ever waits on it.
      clearTimeout(this.trialTimer);
      this.trialTimer = setTimeout(() => void this.trial(), this.breaker.cooldownMs);
      this.trialTimer.unref();
    }
    this.refreshHealth();
  }

  /** The half-open trial: one PING with the get deadline. */
  private async trial(): Promise<void> {
    this.trialTimer = undefined;
    if (this.closed) return;
    if (this.client.status !== 'ready') {
      // Nothing to try on: look again after another cool-down (or when 'ready' refreshes health).
      this.trialTimer = setTimeout(() => void this.trial(), this.breaker.cooldownMs);
      this.trialTimer.unref();
      return;
    }
    if (!this.breaker.allow()) return;
    try {
      await withDeadline(this.client.ping(), this.timeoutMs);
      this.breaker.success();
    } catch (err) {
      this.failed(err);
    }
  }

  private refreshHealth(): void {
    if (this.closed) return;
    const { up, connected } = this.status();
    if (up) {
      if (this.health === 'up') return;
      const recovered = this.health === 'down';
      this.health = 'up';
      this.lastError = '';
      if (!recovered) return;
      const obj = { redis: this.target };
      const msg = 'Redis available again: the activation cache uses it';
      if (this.logger?.info !== undefined) this.logger.info(obj, msg);
      else this.logger?.warn(obj, msg);
      return;
    }
    if (this.health === 'down') return;
    // Not connected and no failure seen yet: still connecting at start-up, nothing to say.
    if (!connected && this.lastError === '') return;
    this.health = 'down';
    const reason = connected
      ? `${this.breaker.failureThreshold} commands failed in a row (last: ${this.lastError}); circuit breaker open, next trial in ${this.breaker.cooldownMs} ms`
      : this.lastError;
    this.logger?.warn(
      { redis: this.target, reason, breaker: this.breaker.state },
      'Redis unavailable: the activation cache falls back to memory and computed scores until it is back',
    );
  }
}
