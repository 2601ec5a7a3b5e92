/**
 * Prometheus metrics (prom-client), served by routes/metrics.ts. Each app instance has its own
 * registry, so that several apps in one process (tests) do not share counts.
 *
 * `fastify.metrics` records:
 * - per generation (`recordGeneration`, called by the generating routes): FLOPs dense and
 *   executed, prompt and generated tokens, time to first token and per output token;
 * - per request, by a hook on the routes whose config names a `metricsEndpoint`: requests by
 *   model, tier, endpoint and status, and their duration;
 * - activation-cache events (`recordCacheEvent`; subscribed to `fastify.activationCacheEvents`
 *   when the activation-cache plugin is loaded): hits, misses and errors by operation, errors
 *   by reason; and, only when the cache has a Redis backend, whether it is up
 *   (`slm_cache_up`) and how often its circuit breaker opened, read from the store at scrape;
 * - the queue depth per model (`setQueueDepth`, called by the backpressure plugin);
 * plus prom-client's default process metrics.
 */
import fp from 'fastify-plugin';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CacheEventInfo } from '../src/cache/events.js';
import type { CacheBackendStatus, CacheEvent } from '../src/cache/types.js';
import type { DecodeStats, GenerationResult, ServedModel } from '../src/runtime/types.js';

declare module 'fastify' {
  interface FastifyInstance {
    metrics: ServerMetrics;
  }
  interface FastifyContextConfig {
    /** Counts the route's requests in slm_requests_total under this `endpoint` label. */
    metricsEndpoint?: string;
  }
}

/** A generation's tier label: its tier, with ":token" when each token chose its own neurons. */
function tierLabel(result: GenerationResult): string {
  if (!result.sparsity) return UNKNOWN_TIER;
  return result.sparsity.activationSource === 'token' ? `${result.sparsity.tier}:token` : result.sparsity.tier;
}

/** The status a request gets in the metrics when its client hung up first (nginx's 499). */
const CLIENT_CLOSED = 499;

/** The tier label of a request that failed before any generation finished. */
export const NO_TIER = 'none';
/** The tier label of a generation whose engine reported no sparsity. */
export const UNKNOWN_TIER = 'unknown';
/** The model label of a request that named no served model. */
export const UNKNOWN_MODEL = 'unknown';

const TTFT_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
const TPOT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];
const REQUEST_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

export interface RequestLabels {
  model: string;
  tier: string;
  endpoint: string;
  status: number;
}

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly flopsDense: Counter<'model' | 'tier'>;
  private readonly flopsExecuted: Counter<'model' | 'tier'>;
  private readonly tokensGenerated: Counter<'model' | 'tier'>;
  private readonly promptTokens: Counter<'model' | 'tier'>;
  private readonly requests: Counter<'model' | 'tier' | 'endpoint' | 'status'>;
  private readonly requestDuration: Histogram<'model' | 'endpoint'>;
  private readonly timeToFirstToken: Histogram<'model' | 'tier'>;
  private readonly timePerOutputToken: Histogram<'model' | 'tier'>;
  private readonly cacheEvents: Counter<'event' | 'op'>;
  private readonly cacheErrors: Counter<'op' | 'reason'>;
  private cacheBackendWatched = false;
  private readonly queueDepth: Gauge<'model'>;
  /** The model and tier each request ran, for its slm_requests_total sample. */
  private readonly ran = new WeakMap<FastifyRequest, { model: string; tier: string }>();

  constructor() {
    const registers = [this.registry];
    const modelTier = ['model', 'tier'] as const;
    this.flopsDense = new Counter({
      name: 'slm_flops_dense_total',
      help: 'Analytic FLOPs of the generations had they run dense',
      labelNames: modelTier,
      registers,
    });
    this.flopsExecuted = new Counter({
      name: 'slm_flops_executed_total',
      help: 'Analytic FLOPs of the generations as executed',
      labelNames: modelTier,
      registers,
    });
    this.tokensGenerated = new Counter({ name: 'slm_tokens_generated_total', help: 'Tokens generated', labelNames: modelTier, registers });
    this.promptTokens = new Counter({
      name: 'slm_prompt_tokens_total',
      help: 'Prompt tokens processed (once per generation)',
      labelNames: modelTier,
      registers,
    });
    this.requests = new Counter({
      name: 'slm_requests_total',
      help: 'Requests to the generating endpoints, by the tier that ran and the HTTP status',
      labelNames: ['model', 'tier', 'endpoint', 'status'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'slm_request_duration_seconds',
      help: 'Time from request to the end of the response (queueing included)',
      labelNames: ['model', 'endpoint'],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.timeToFirstToken = new Histogram({
      name: 'slm_time_to_first_token_seconds',
      help: 'Time from the start of a generation to its first new token',
      labelNames: modelTier,
      buckets: TTFT_BUCKETS,
      registers,
    });
    this.timePerOutputToken = new Histogram({
      name: 'slm_time_per_output_token_seconds',
      help: 'Mean time per new token after the first, per generation',
      labelNames: modelTier,
      buckets: TPOT_BUCKETS,
      registers,
    });
    this.cacheEvents = new Counter({
      name: 'slm_activation_cache_events_total',
      help: 'Activation-set cache events: lookups (op="get": hit, miss or error, one per lookup) and failed writes (op="set": error)',
      labelNames: ['event', 'op'],
      registers,
    });
    this.cacheErrors = new Counter({
      name: 'slm_activation_cache_errors_total',
      help: 'Activation-set cache errors by operation and reason (timeout, unavailable, breaker_open, failed, invalid); each is also an event="error"',
      labelNames: ['op', 'reason'],
      registers,
    });
    this.queueDepth = new Gauge({ name: 'slm_queue_depth', help: 'Requests waiting for their turn on a model', labelNames: ['model'], registers });
    collectDefaultMetrics({ register: this.registry });
  }

  /** One finished generation of `request` on `model`. */
  recordGeneration(request: FastifyRequest, model: string, result: GenerationResult): void {
    const labels = { model, tier: tierLabel(result) };
    // The request is labelled with the tier of its first generation, as its response reports it.
    if (!this.ran.has(request)) this.ran.set(request, labels);
    if (result.flopsDense !== undefined) this.flopsDense.inc(labels, result.flopsDense);
    if (result.flopsExecuted !== undefined) this.flopsExecuted.inc(labels, result.flopsExecuted);
    this.tokensGenerated.inc(labels, result.completionTokens);
    this.promptTokens.inc(labels, result.promptTokens);
    const timings = result.timings;
    if (timings === undefined) return;
    if (result.completionTokens >= 1) this.timeToFirstToken.observe(labels, timings.firstTokenMs / 1000);
    if (result.completionTokens >= 2) {
      this.timePerOutputToken.observe(labels, (timings.totalMs - timings.firstTokenMs) / (result.completionTokens - 1) / 1000);
    }
  }

  /** One answered request; `seconds` is how long it took. */
  recordRequest(labels: RequestLabels, seconds: number): void {
    this.requests.inc({ model: labels.model, tier: labels.tier, endpoint: labels.endpoint, status: String(labels.status) });
    this.requestDuration.observe({ model: labels.model, endpoint: labels.endpoint }, seconds);
  }

  /** What the request's generations ran, once one finished. */
  ranBy(request: FastifyRequest): { model: string; tier: string } | undefined {
    return this.ran.get(request);
  }

  recordCacheEvent(event: CacheEvent, info: Pick<CacheEventInfo, 'op' | 'reason'> = { op: 'get' }): void {
    this.cacheEvents.inc({ event, op: info.op });
    if (event === 'error') this.cacheErrors.inc({ op: info.op, reason: info.reason ?? 'failed' });
  }

  /**
   * Exposes a remote cache backend's health, read at each scrape: `slm_cache_up` (1 while Redis
   * is connected and its breaker closed, else 0) and `slm_cache_breaker_opens_total`. Without a
   * Redis backend neither metric exists, so `slm_cache_up == 0` alerts only where Redis is
   * configured and not serving.
   */
  watchCacheBackend(status: () => CacheBackendStatus | undefined): void {
    if (this.cacheBackendWatched) return;
    this.cacheBackendWatched = true;
    const registers = [this.registry];
    new Gauge({
      name: 'slm_cache_up',
      help: "Whether the activation cache's Redis answers: 1 when connected and the circuit breaker is closed, 0 otherwise (absent without REDIS_URL)",
      registers,
      collect() {
        this.set(status()?.up === true ? 1 : 0);
      },
    });
    new Counter({
      name: 'slm_cache_breaker_opens_total',
      help: "Times the activation cache's circuit breaker opened (Redis skipped after consecutive failures or timeouts)",
      registers,
      collect() {
        // The store counts; mirror its (monotonic) total.
        this.reset();
        this.inc(status()?.breakerOpens ?? 0);
      },
    });
  }

  /**
   * Exposes continuous batching, read at each scrape from the models that batch:
   * `slm_decode_steps_total` (graph runs of decode steps) and `slm_decode_sequence_steps_total`
   * (the sequences those runs stepped); their rates' ratio is the mean batch size.
   */
  watchBatching(models: ReadonlyMap<string, ServedModel>): void {
    const registers = [this.registry];
    const mirror = (read: (stats: DecodeStats) => number) =>
      function (this: Counter<'model'>) {
        this.reset();
        for (const [id, model] of models) {
          const stats = model.batching?.();
          if (stats) this.inc({ model: id }, read(stats));
        }
      };
    new Counter({
      name: 'slm_decode_steps_total',
      help: 'Decode steps run: one graph run each, for every sequence in its batch',
      labelNames: ['model'],
      registers,
      collect: mirror((s) => s.steps),
    });
    new Counter({
      name: 'slm_decode_sequence_steps_total',
      help: 'Sequences stepped by the decode steps (each step counts its batch size)',
      labelNames: ['model'],
      registers,
      collect: mirror((s) => s.sequenceSteps),
    });
  }

  setQueueDepth(model: string, depth: number): void {
    this.queueDepth.set({ model }, depth);
  }

  /** The Prometheus text exposition of every metric. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

const metricsPlugin: FastifyPluginAsync = async (fastify) => {
  const metrics = new ServerMetrics();
  fastify.decorate('metrics', metrics);
  metrics.watchBatching(fastify.models);

  // Each request is counted once: when its answer is complete (onResponse), or, when its client
  // hung up first, as nginx logs it (499): a cut stream never reaches onResponse. A complete
  // answer's onResponse hooks are all microtasks after 'finish', so they have run by the
  // setImmediate after 'close'.
  const counted = new WeakSet<FastifyRequest>();
  const count = (request: FastifyRequest, reply: FastifyReply, status: number): void => {
    const endpoint = request.routeOptions.config.metricsEndpoint;
    if (endpoint === undefined || counted.has(request)) return;
    counted.add(request);
    const ran = metrics.ranBy(request);
    metrics.recordRequest(
      { model: ran?.model ?? requestedModel(request, fastify.models), tier: ran?.tier ?? NO_TIER, endpoint, status },
      reply.elapsedTime / 1000,
    );
  };
  fastify.addHook('onRequest', async (request, reply) => {
    reply.raw.once('close', () => setImmediate(() => count(request, reply, CLIENT_CLOSED)));
  });
  fastify.addHook('onResponse', async (request, reply) => count(request, reply, reply.statusCode));

  // The activation cache (plugins/activation-cache.ts) publishes its events; count them once
  // every plugin is loaded, whichever loaded first.
  let unsubscribe = (): void => {};
  fastify.addHook('onReady', async () => {
    if (!fastify.hasDecorator('activationCacheEvents')) return;
    const stop = fastify.activationCacheEvents.subscribe((event, info) => metrics.recordCacheEvent(event, info));
    const store = fastify.activationStore;
    if (store.status?.() !== undefined) metrics.watchCacheBackend(() => store.status?.());
    unsubscribe = () => {
      stop();
    };
  });

  fastify.addHook('onClose', async () => {
    unsubscribe();
    metrics.registry.clear();
  });
};

/** The body's `model` when it names a served model; anything else would let clients invent label values. */
function requestedModel(request: FastifyRequest, models: ReadonlyMap<string, unknown>): string {
  const body: unknown = request.body;
  if (typeof body !== 'object' || body === null || !('model' in body)) return UNKNOWN_MODEL;
  const name = body.model;
  return typeof name === 'string' && models.has(name) ? name : UNKNOWN_MODEL;
}

// fastify-plugin: the decoration and the hook must reach the routes in sibling contexts.
export default fp(metricsPlugin, { name: 'metrics', fastify: '5.x', dependencies: ['models'] });
