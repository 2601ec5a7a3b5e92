/**
 * Makes the served models available to every route: `fastify.models` by id,
 * `fastify.resolveModel(name)` (404 in OpenAI's shape for an unknown name) and
 * `fastify.readiness`, which /ready reports. While the app closes (graceful shutdown), it is
 * not ready and refuses new requests with 503, letting the in-flight ones finish.
 */
import fp from 'fastify-plugin';
import type { FastifyPluginAsync } from 'fastify';
import { modelNotFound, shuttingDown } from '../src/openai/errors.js';
import type { ServedModel } from '../src/runtime/types.js';

export interface ModelsPluginOptions {
  models?: ServedModel[];
  /** False while the server should not get traffic (e.g. draining); defaults to true. */
  ready?: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    models: ReadonlyMap<string, ServedModel>;
    resolveModel(name: string): ServedModel;
    /** Ready means: willing to serve (`ready`) and at least one model loaded. */
    readiness: { ready: boolean };
  }
}

const modelsPlugin: FastifyPluginAsync<ModelsPluginOptions> = async (fastify, opts) => {
  const models = new Map<string, ServedModel>();
  for (const model of opts.models ?? []) {
    if (models.has(model.id)) throw new Error(`Two models are served under the same id '${model.id}'`);
    models.set(model.id, model);
  }
  // Per-prompt activation sets are cached in the app's store (plugins/activation-cache.ts).
  fastify.decorate('models', models);
  fastify.decorate('resolveModel', (name: string): ServedModel => {
    const model = models.get(name);
    if (model === undefined) throw modelNotFound(name);
    return model;
  });
  fastify.decorate('readiness', { ready: opts.ready ?? true });

  // Fastify's own 503-while-closing answers in its shape, not OpenAI's: do it here instead.
  let closing = false;
  fastify.addHook('preClose', async () => {
    closing = true;
    fastify.readiness.ready = false;
  });
  fastify.addHook('onRequest', async (request, reply) => {
    // Liveness stays true while draining: the process is alive, just not taking work.
    if (!closing || request.routeOptions.url === '/health') return;
    reply.header('connection', 'close');
    return reply.status(503).send(shuttingDown().toBody());
  });
};

// fastify-plugin: the decorations must reach the routes, which live in sibling contexts.
export default fp(modelsPlugin, { name: 'models', fastify: '5.x', dependencies: ['activation-cache'] });
