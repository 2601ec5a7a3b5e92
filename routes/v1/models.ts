/** GET /v1/models: the served models in OpenAI's list shape, plus vLLM's max_model_len. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { ModelList } from '../../src/openai/schemas.js';

const models: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get(
    '/models',
    { schema: { tags: ['models'], summary: 'List the served models', response: { 200: ModelList } } },
    async (): Promise<ModelList> => ({
      object: 'list',
      data: [...fastify.models.values()].map((model) => ({
        id: model.id,
        object: 'model' as const,
        created: model.created,
        owned_by: 'sparse-slm-server',
        max_model_len: model.contextLength,
      })),
    }),
  );
};

export default models;
