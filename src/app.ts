/**
 * Assembles the HTTP application: Fastify with TypeBox schemas, the plugins/ (models, errors,
 * OpenAPI, metrics, backpressure, activation cache, auth with CORS and rate limit) and the routes/ directories loaded by @fastify/autoload. Building the app loads no
 * model: the caller passes the served models in, so tests and the OpenAPI script can build it
 * cheaply and the server decides how models are loaded and closed.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import autoload from '@fastify/autoload';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions, type RawServerDefault } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ActivationCacheEvents, ActivationCachePluginOptions, ActivationCacheSettings } from '../plugins/activation-cache.js';
import type { AuthPluginOptions, AuthSettings } from '../plugins/auth.js';
import type { BackpressureOptions } from '../plugins/backpressure.js';
import type { LimitsPluginOptions } from '../plugins/limits.js';
import type { ModelsPluginOptions } from '../plugins/models.js';
import type { TokenizerPoolOptions } from '../plugins/tokenizer-pool.js';
import type { ActivationStore } from './cache/types.js';
import { ApiError } from './openai/errors.js';
import { DEFAULT_LIMITS, type RequestLimits } from './openai/limits.js';
import type { ServedModel } from './runtime/types.js';

export interface AppOptions {
  models: ServedModel[];
  /** Whether /ready may report ready (it also needs a model); defaults to true. */
  ready?: boolean;
  /** Fastify's `logger` option: false (the default) for none, or pino options. */
  logger?: FastifyServerOptions['logger'];
  /** An existing pino logger instead (the server's, which also logs model loading). */
  loggerInstance?: FastifyBaseLogger;
  /** Largest request body in bytes (413 beyond); defaults to 1 MiB. */
  bodyLimit?: number;
  /** Requests generating at once per model (default 1); more wait in its queue. */
  maxConcurrentPerModel?: number;
  /** Requests waiting per model (default 32); beyond, 429 with Retry-After. */
  maxQueuePerModel?: number;
  /** Longest a refused request is held before its 429, never beyond its Retry-After (default 2000 ms). */
  rejectDelayMs?: number;
  /** Activation-cache settings (REDIS_URL...); without them, an in-process LRU. */
  cache?: ActivationCacheSettings;
  /** The activation store the models were built with; used instead of creating one, and not closed by the app. */
  activationStore?: ActivationStore;
  /** That store's events, counted in /metrics. */
  activationCacheEvents?: ActivationCacheEvents;
  /** Bearer keys (API_KEYS) and whether /metrics and the docs need one too; without keys, no authentication. */
  auth?: AuthSettings;
  /** Requests per minute per API key, or per client address without keys (RATE_LIMIT_PER_MINUTE); 0 or absent: none. */
  rateLimitPerMinute?: number;
  /** Origins allowed by CORS ('*' for any; CORS_ORIGINS); empty or absent: no CORS. */
  corsOrigins?: string[];
  /** Per-request token cap and deadline (MAX_REQUEST_TOKENS, REQUEST_TIMEOUT_MS). */
  limits?: Partial<RequestLimits>;
  /** Worker threads that tokenize long texts (TOKENIZER_THREADS); default 1. */
  tokenizerThreads?: number;
  /** Connection-level limits; Node's defaults where absent. */
  connections?: ConnectionLimits;
}

export interface ConnectionLimits {
  /** How long receiving a request (headers and body) may take (RECEIVE_TIMEOUT_MS). */
  receiveTimeoutMs?: number;
  /** Open connections at most; beyond, new ones are closed at once (MAX_CONNECTIONS). */
  maxConnections?: number;
  /** Requests on one keep-alive connection before it closes; 0: no limit (MAX_REQUESTS_PER_SOCKET). */
  maxRequestsPerSocket?: number;
}

export type App = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/** Probes and scrapes, logged at debug: at info they would drown the requests that matter. */
const QUIET_ROUTES = new Set(['/health', '/ready', '/metrics']);
/** Refusals that come in floods (bad keys, overload), logged at debug; the metrics count them. */
const QUIET_STATUSES = new Set([401, 429]);

/** An incoming id is reused only when it is short and plain, so it cannot garble the logs. */
const REQUEST_ID = /^[\w.:/+=-]{1,128}$/;

/** Node's parser refused the request (or it came too slowly): answer on the raw socket and close it. */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  const [status, reason] = timeout ? [408, 'Request Timeout'] : [400, 'Bad Request'];
  const message = timeout ? 'The request was not received within the time allowed.' : 'The request is not valid HTTP.';
  const body = JSON.stringify(new ApiError(status, message, 'invalid_request_error', null, timeout ? 'request_timeout' : 'bad_request').toBody());
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

// When this file runs as TypeScript, some loader is compiling it, so plugins/ and routes/
// (also .ts) load the same way; autoload only recognises some loaders by name (not
// `node --import tsx`), and this is its documented switch.
if (import.meta.url.endsWith('.ts')) process.env.FASTIFY_AUTOLOAD_TYPESCRIPT ??= '1';

export async function buildApp(options: AppOptions): Promise<App> {
  const receiveTimeoutMs = options.connections?.receiveTimeoutMs;
  const requestTimeoutMs = options.limits?.requestTimeoutMs ?? DEFAULT_LIMITS.requestTimeoutMs;
  const app = Fastify({
    ...(receiveTimeoutMs !== undefined && {
      // A client that trickles its headers or body is cut after this; Node checks every
      // connectionsCheckingInterval (30 s by default), too coarse for a 10 s limit.
      requestTimeout: receiveTimeoutMs,
      http: { headersTimeout: receiveTimeoutMs, connectionsCheckingInterval: Math.min(1000, receiveTimeoutMs) },
    }),
    // An idle socket is closed after this. A non-streamed answer is silent until it is done,
    // so the idle limit must outlast the request deadline, or it would cut answers short.
    connectionTimeout: requestTimeoutMs + (receiveTimeoutMs ?? 10_000),
    maxRequestsPerSocket: options.connections?.maxRequestsPerSocket ?? 0,
    ...(options.loggerInstance !== undefined ? { loggerInstance: options.loggerInstance } : { logger: options.logger ?? false }),
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // Node's own answers to malformed or too slow requests, in OpenAI's shape like every other.
    clientErrorHandler: answerClientError,
    // plugins/models.ts answers 503 in OpenAI's shape while closing.
    return503OnClosing: false,
    // GET /v1/models/{model}: any model id, however long, reaches resolveModel (a 404 that quotes
    // an excerpt) instead of the router's 414 past 100 characters; Node's header limit still bounds URLs.
    routerOptions: { maxParamLength: 16 * 1024 },
    // One line per request, written below at a level that depends on what it was: Fastify's two
    // info lines per request would cost most of a cheap 429's time under overload.
    logController: new LogController({ disableRequestLogging: true }),
    // Loading plugins/ and routes/ compiles them first when run as TypeScript, which on a busy
    // 2-core machine can pass Fastify's 10 s default.
    pluginTimeout: 60_000,
    // Lets a proxy's or client's x-request-id follow the request through our logs.
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID();
    },
    ajv: {
      customOptions: {
        // OpenAI rejects "0.5" where a number is expected; coercing would hide client bugs.
        coerceTypes: false,
      },
    },
  }).withTypeProvider<TypeBoxTypeProvider>();
  if (options.connections?.maxConnections !== undefined) app.server.maxConnections = options.connections.maxConnections;

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.addHook('onResponse', async (request, reply) => {
    const quiet = QUIET_STATUSES.has(reply.statusCode) || QUIET_ROUTES.has(request.routeOptions.url ?? '');
    request.log[quiet ? 'debug' : 'info'](
      { method: request.method, url: request.routeOptions.url ?? 'unknown', status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      'request completed',
    );
  });

  // autoload hands the same options to every plugin; each reads its own fields.
  const pluginOptions: ModelsPluginOptions &
    ActivationCachePluginOptions &
    BackpressureOptions &
    AuthPluginOptions &
    LimitsPluginOptions &
    TokenizerPoolOptions = {
    models: options.models,
    ready: options.ready,
    maxConcurrentPerModel: options.maxConcurrentPerModel,
    maxQueuePerModel: options.maxQueuePerModel,
    rejectDelayMs: options.rejectDelayMs,
    cache: options.cache,
    activationStore: options.activationStore,
    activationCacheEvents: options.activationCacheEvents,
    auth: options.auth,
    rateLimitPerMinute: options.rateLimitPerMinute,
    corsOrigins: options.corsOrigins,
    limits: options.limits,
    tokenizerThreads: options.tokenizerThreads,
  };
  await app.register(autoload, { dir: fileURLToPath(new URL('../plugins', import.meta.url)), options: pluginOptions });
  await app.register(autoload, { dir: fileURLToPath(new URL('../routes', import.meta.url)) });
  return app;
}
