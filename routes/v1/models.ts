/** GET /v1/models: the served models in OpenAI's list shape, plus vLLM's max_model_len and each model's tiers. */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { modelCard } from '../../src/openai/models.js';
import { ModelList } from '../../src/openai/schemas.js';

const models: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get(
    '/models',
    { schema: { tags: ['models'], summary: 'List the served models and their sparsity tiers', response: { 200: ModelList } } },
    async (): Promise<ModelList> => ({ object: 'list', data: [...fastify.models.values()].map(modelCard) }),
  );
};

export default models;
