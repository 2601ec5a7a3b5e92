/**
 * Backpressure (src/http/admission.ts): a bounded queue per model, decided before the
 * expensive work. Routes that generate set `config.admission`; for them
 * - onRequest, before the body is read: when every served model's queue is full, 429 at once;
 * - preValidation, once the JSON is parsed but before schema validation and tokenization: the
 *   named model's place is reserved, or 429 when its queue is full;
 * - the handler calls `fastify.admit(request, modelId, signal)` when it is ready to generate,
 *   and the returned release function when done (a streamed answer releases when it ends).
 * A reservation the request never used (a 4xx, a hang-up) is given back when it ends.
 *
 * A refusal is answered after its Retry-After, up to `rejectDelayMs`. Clients that do not back
 * off send their next request as soon as the 429 arrives, so an immediate answer lets a few
 * thousand connections keep the event loop busy with refusals, and every token of the requests
 * being served waits behind them. Held for 2 s, each such connection costs one refusal per 2 s;
 * a client that honours Retry-After loses nothing, since it would wait that long anyway.
 */
import fp from 'fastify-plugin';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { ApiError, queueFull } from '../src/openai/errors.js';
import { Admission, type Release, type Ticket } from '../src/http/admission.js';
import { DEFAULT_MAX_BATCH_SIZE } from '../src/serve/decode-batch.js';

export interface BackpressureOptions {
  /** Requests generating at once on one model; default 1. */
  maxConcurrentPerModel?: number;
  /** Requests waiting per model beyond those; default 32 (0: none wait, all beyond get 429). */
  maxQueuePerModel?: number;
  /** Longest a refused request waits before its 429 is sent (REJECT_DELAY_MS; never beyond its Retry-After); default 2000. */
  rejectDelayMs?: number;
}

export const DEFAULT_MAX_CONCURRENT_PER_MODEL = DEFAULT_MAX_BATCH_SIZE;
export const DEFAULT_MAX_QUEUE_PER_MODEL = 32;
export const DEFAULT_REJECT_DELAY_MS = 2000;

declare module 'fastify' {
  interface FastifyInstance {
    admission: Admission;
    /** Waits for the request's turn on `model` (its reservation if it has one); resolves with the release. */
    admit(request: FastifyRequest, model: string, signal: AbortSignal): Promise<Release>;
  }
  interface FastifyContextConfig {
    /** The route generates on a model: admission applies before its body is validated. */
    admission?: boolean;
  }
}

const backpressurePlugin: FastifyPluginAsync<BackpressureOptions> = async (fastify, opts) => {
  const admission = new Admission(
    opts.maxConcurrentPerModel ?? DEFAULT_MAX_CONCURRENT_PER_MODEL,
    opts.maxQueuePerModel ?? DEFAULT_MAX_QUEUE_PER_MODEL,
    (model, depth) => fastify.metrics.setQueueDepth(model, depth),
  );
  // Every served model shows in slm_queue_depth from the start, at 0.
  for (const id of fastify.models.keys()) fastify.metrics.setQueueDepth(id, 0);
  fastify.decorate('admission', admission);

  const rejectDelayMs = opts.rejectDelayMs ?? DEFAULT_REJECT_DELAY_MS;
  const refuse = async (err: ApiError): Promise<never> => {
    // Never longer than the Retry-After it carries: a client that honours it waits that long anyway.
    const delayMs = Math.min(rejectDelayMs, 1000 * Number(err.headers['retry-after'] ?? 0));
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    throw err;
  };

  const tickets = new WeakMap<FastifyRequest, Ticket>();
  fastify.decorate('admit', (request: FastifyRequest, model: string, signal: AbortSignal): Promise<Release> => {
    const ticket = tickets.get(request);
    tickets.delete(request);
    return ticket !== undefined ? ticket.acquire(signal) : admission.acquire(model, signal);
  });

  fastify.addHook('onRequest', async (request) => {
    if (request.routeOptions.config.admission !== true) return;
    const ids = [...fastify.models.keys()];
    if (ids.length === 0 || !ids.every((id) => admission.full(id))) return;
    // Which model the body names is unknown yet, but none has room.
    if (ids.length === 1) {
      const { waiting, reserved } = admission.load(ids[0]);
      return refuse(queueFull(ids[0], waiting + reserved, admission.retryAfterSeconds(ids[0])));
    }
    const retryAfter = Math.min(...ids.map((id) => admission.retryAfterSeconds(id)));
    return refuse(
      new ApiError(429, `Every model is busy. Retry in about ${retryAfter} s.`, 'rate_limit_error', null, 'queue_full', { 'retry-after': String(retryAfter) }),
    );
  });

  fastify.addHook('preValidation', async (request) => {
    if (request.routeOptions.config.admission !== true) return;
    const body: unknown = request.body;
    if (typeof body !== 'object' || body === null || !('model' in body)) return;
    const name = body.model;
    // Unknown or malformed names are left to validation and resolveModel, which say what is wrong.
    if (typeof name !== 'string' || !fastify.models.has(name)) return;
    try {
      tickets.set(request, admission.reserve(name));
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      return refuse(err);
    }
  });

  const giveBack = async (request: FastifyRequest): Promise<void> => {
    tickets.get(request)?.cancel();
    tickets.delete(request);
  };
  fastify.addHook('onResponse', giveBack);
  fastify.addHook('onRequestAbort', giveBack);
};

export default fp(backpressurePlugin, { name: 'backpressure', fastify: '5.x', dependencies: ['models', 'metrics', 'auth'] });
