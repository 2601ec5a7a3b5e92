/**
 * Probes. /health answers while the process lives (liveness); /ready answers 200 only while
 * the server has a model and is not shutting down (readiness), so traffic goes elsewhere.
 */
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ApiError } from '../src/openai/errors.js';
import { ErrorResponse } from '../src/openai/schemas.js';

const health: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get(
    '/health',
    {
      schema: {
        tags: ['health'],
        summary: 'Liveness: 200 while the process runs',
        response: { 200: Type.Object({ status: Type.Literal('ok') }, { description: 'The process is alive' }) },
      },
    },
    async () => ({ status: 'ok' as const }),
  );

  fastify.get(
    '/ready',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness: 200 when models are loaded and the server takes requests, else 503',
        response: {
          200: Type.Object({ status: Type.Literal('ready'), models: Type.Integer() }, { description: 'Ready for traffic' }),
          503: ErrorResponse,
        },
      },
    },
    async () => {
      if (fastify.models.size === 0) throw new ApiError(503, 'No model is loaded.', 'service_unavailable', null, 'not_ready');
      if (!fastify.readiness.ready) throw new ApiError(503, 'The server is not taking requests (shutting down).', 'service_unavailable', null, 'not_ready');
      return { status: 'ready' as const, models: fastify.models.size };
    },
  );
};

export default health;
