/**
 * OpenAPI 3.1 document built by @fastify/swagger from the routes' TypeBox schemas (3.1, not
 * 3.0, because nullable fields are `anyOf [..., {type: null}]`). Served at /openapi.json, with
 * a browsable UI at /docs; `npm run openapi` writes the same document to openapi.yaml.
 */
import fp from 'fastify-plugin';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyPluginAsync } from 'fastify';

import { packageInfo as pkg } from '../src/project.js';

const swaggerPlugin: FastifyPluginAsync = async (fastify) => {
  await fastify.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'Sparse SLM inference server', description: pkg.description, version: pkg.version },
      tags: [
        { name: 'completions', description: 'OpenAI-compatible text completions' },
        { name: 'scoring', description: 'Log-likelihoods of continuations (ranking, multiple choice, perplexity)' },
        { name: 'models', description: 'Served models and their sparsity tiers' },
        { name: 'tokenizer', description: "vLLM's tokenizer endpoints, as lm-evaluation-harness uses them" },
        { name: 'metrics', description: 'Prometheus metrics' },
        { name: 'health', description: 'Liveness and readiness probes' },
      ],
    },
  });
  await fastify.register(swaggerUi, { routePrefix: '/docs' });
  fastify.get('/openapi.json', { schema: { hide: true } }, async () => fastify.swagger());
};

// fastify-plugin: swagger's onRoute hook must see the routes registered in sibling contexts.
export default fp(swaggerPlugin, { name: 'swagger', fastify: '5.x' });
