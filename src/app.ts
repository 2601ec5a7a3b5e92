/**
 * Assembles the HTTP application: Fastify with TypeBox schemas, the plugins/ (models, errors,
 * OpenAPI, metrics, backpressure, activation cache) and the routes/ directories loaded by @fastify/autoload. Building the app loads no
 * model: the caller passes the served models in, so tests and the OpenAPI script can build it
 * cheaply and the server decides how models are loaded and closed.
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import autoload from '@fastify/autoload';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions, type RawServerDefault } from 'fastify';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ActivationCachePluginOptions, ActivationCacheSettings } from '../plugins/activation-cache.js';
import type { BackpressureOptions } from '../plugins/backpressure.js';
import type { ModelsPluginOptions } from '../plugins/models.js';
import type { ActivationStore } from './cache/types.js';
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
  /** Activation-cache settings (REDIS_URL...); without them, an in-process LRU. */
  cache?: ActivationCacheSettings;
  /** A ready-made activation store (tests); used instead of creating one, and not closed by the app. */
  activationStore?: ActivationStore;
}

export type App = FastifyInstance<RawServerDefault, IncomingMessage, ServerResponse, FastifyBaseLogger, TypeBoxTypeProvider>;

export const DEFAULT_BODY_LIMIT = 1024 * 1024;

/** An incoming id is reused only when it is short and plain, so it cannot garble the logs. */
const REQUEST_ID = /^[\w.:/+=-]{1,128}$/;

// When this file runs as TypeScript, some loader is compiling it, so plugins/ and routes/
// (also .ts) load the same way; autoload only recognises some loaders by name (not
// `node --import tsx`), and this is its documented switch.
if (import.meta.url.endsWith('.ts')) process.env.FASTIFY_AUTOLOAD_TYPESCRIPT ??= '1';

export async function buildApp(options: AppOptions): Promise<App> {
  const app = Fastify({
    ...(options.loggerInstance !== undefined ? { loggerInstance: options.loggerInstance } : { logger: options.logger ?? false }),
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    // plugins/models.ts answers 503 in OpenAI's shape while closing.
    return503OnClosing: false,
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

  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  // autoload hands the same options to every plugin; each reads its own fields.
  const pluginOptions: ModelsPluginOptions & ActivationCachePluginOptions & BackpressureOptions = {
    models: options.models,
    ready: options.ready,
    maxConcurrentPerModel: options.maxConcurrentPerModel,
    maxQueuePerModel: options.maxQueuePerModel,
    cache: options.cache,
    activationStore: options.activationStore,
  };
  await app.register(autoload, { dir: fileURLToPath(new URL('../plugins', import.meta.url)), options: pluginOptions });
  await app.register(autoload, { dir: fileURLToPath(new URL('../routes', import.meta.url)) });
  return app;
}
