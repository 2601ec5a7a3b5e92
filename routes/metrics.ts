/** GET /metrics: every metric in the Prometheus text format (plugins/metrics.ts). */
import { Type, type FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';

const metrics: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get(
    '/metrics',
    {
      schema: {
        tags: ['metrics'],
        summary: 'Prometheus metrics: FLOPs dense and executed, tokens, requests, latency histograms, cache events, queue depth',
        response: {
          200: {
            description: 'Prometheus text exposition format',
            content: { 'text/plain': { schema: Type.String() } },
          },
        },
      },
    },
    async (_request, reply) => {
      const { contentType, body } = await fastify.metrics.exposition();
      return reply.type(contentType).send(body);
    },
  );
};

export default metrics;
