/**
 * Who may call the server, in the order the checks run on every request, all in `onRequest`
 * (before the body is read, so a refused request costs no parsing) and all before the
 * admission check of plugins/backpressure.ts:
 *
 * 1. CORS (@fastify/cors, when `corsOrigins` is not empty): preflights are answered here,
 *    before the key check, because browsers send no Authorization header on a preflight; the
 *    other responses, 401 and 429 included, carry the CORS headers so a browser page can read
 *    them.
 * 2. Bearer keys (when `auth.apiKeys` is not empty): every route needs one except /health and
 *    /ready, and /metrics and the docs unless `auth.metrics` / `auth.docs`; unknown URLs too
 *    (401 without a valid key, 404 with one). A missing or wrong key gets 401 in OpenAI's
 *    shape with `WWW-Authenticate`. A hook of our own rather than @fastify/bearer-auth: that
 *    plugin guards a whole encapsulation context, not a list of routes, answers in its own
 *    shape without `WWW-Authenticate`, logs every refusal at error level, and its comparison
 *    returns early on a length mismatch; here SHA-256 digests make every comparison the same
 *    length.
 * 3. A rate limit (@fastify/rate-limit, when `rateLimitPerMinute` > 0) per API key, or per
 *    client address without keys; /health and /ready are exempt. Beyond it, 429 in OpenAI's
 *    shape with Retry-After. The counters are in process, so with several replicas the limit
 *    holds per replica. They are keyed by the index of the matching key, so no key or hash of
 *    one sits in the counters' map. @fastify/rate-limit's `redis` option would share them, but
 *    not on the activation cache's connection: that one is tuned to give up within
 *    milliseconds and fail open, so a limiter on it would either stop limiting whenever Redis
 *    stalls or put Redis's stalls in front of every request.
 *
 * They share one plugin (fastify-plugin name 'auth') so that this order is fixed by
 * registration and other plugins can depend on all three by one name.
 */
import fp from 'fastify-plugin';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { ApiKeys, needsKey, type AuthScope } from '../src/openai/auth.js';
import { invalidApiKey, rateLimitExceeded } from '../src/openai/errors.js';

export interface AuthSettings extends Partial<AuthScope> {
  /** Bearer keys accepted; empty: no authentication. */
  apiKeys: string[];
}

export interface AuthPluginOptions {
  /** API keys and which optional routes need one (API_KEYS, AUTH_METRICS, AUTH_DOCS); without: no authentication. */
  auth?: AuthSettings;
  /** Requests per minute per key (per client address without keys); 0 or absent: no limit. */
  rateLimitPerMinute?: number;
  /** Origins allowed by CORS, '*' for any; empty or absent: no CORS headers. */
  corsOrigins?: string[];
}

/** Clients kept apart by the in-process rate limiter; the least recently seen beyond this are forgotten. */
const RATE_LIMIT_CLIENTS = 10_000;
const WINDOW_MS = 60_000;

const isProbe = (request: FastifyRequest): boolean => request.routeOptions.url === '/health' || request.routeOptions.url === '/ready';

const authPlugin: FastifyPluginAsync<AuthPluginOptions> = async (fastify, opts) => {
  const corsOrigins = opts.corsOrigins ?? [];
  // Imported only when used: together they add a noticeable share of an idle app's start-up.
  if (corsOrigins.length > 0) {
    const { default: cors } = await import('@fastify/cors');
    await fastify.register(cors, {
      origin: corsOrigins.includes('*') ? '*' : corsOrigins,
      methods: ['GET', 'HEAD', 'POST'],
      // Requested headers are reflected (allowedHeaders unset): OpenAI's browser client sends
      // its own x-stainless-* headers besides Authorization.
      exposedHeaders: ['x-request-id', 'retry-after', 'x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset'],
      maxAge: 600,
    });
  }

  // Which client a request counts against: `key:<index>` once authenticated.
  const clients = new WeakMap<FastifyRequest, string>();

  const apiKeys = opts.auth?.apiKeys ?? [];
  if (apiKeys.length > 0) {
    const keys = new ApiKeys(apiKeys);
    const scope: AuthScope = { metrics: opts.auth?.metrics ?? false, docs: opts.auth?.docs ?? false };
    fastify.addHook('onRequest', async (request, reply) => {
      if (!needsKey(request.routeOptions.url, scope)) return;
      const checked = keys.check(request.headers.authorization);
      if (checked.ok) {
        clients.set(request, `key:${checked.index}`);
        return;
      }
      // Debug, not info: a flood of bad requests must not become a flood of log lines.
      request.log.debug({ reason: checked.reason }, 'unauthorized');
      const err = invalidApiKey(checked.reason !== 'missing');
      return reply.status(err.statusCode).headers(err.headers).send(err.toBody());
    });
  }

  const perMinute = opts.rateLimitPerMinute ?? 0;
  if (perMinute > 0) {
    // global: false, because its per-route hooks would run after every app-wide onRequest hook
    // (admission included); the limiter is called from our own hook instead.
    const { default: rateLimit } = await import('@fastify/rate-limit');
    await fastify.register(rateLimit, {
      global: false,
      max: perMinute,
      timeWindow: WINDOW_MS,
      cache: RATE_LIMIT_CLIENTS,
      keyGenerator: (request) => clients.get(request) ?? `ip:${request.ip}`,
    });
    const limit = fastify.createRateLimit();
    fastify.addHook('onRequest', async (request, reply) => {
      if (isProbe(request)) return;
      const state = await limit(request);
      if (state.isAllowed) return;
      reply.header('x-ratelimit-limit', state.max).header('x-ratelimit-remaining', state.remaining).header('x-ratelimit-reset', state.ttlInSeconds);
      if (!state.isExceeded) return;
      request.log.debug({ client: state.key }, 'rate limit exceeded');
      const err = rateLimitExceeded(perMinute, Math.max(1, state.ttlInSeconds));
      return reply.status(err.statusCode).headers(err.headers).send(err.toBody());
    });
  }
};

export default fp(authPlugin, { name: 'auth', fastify: '5.x' });
