/**
 * GET /v1/models and GET /v1/models/{model}: the served models in OpenAI's list and model shapes,
 * plus vLLM's max_model_len and each model's tiers.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { modelCard } from '../../src/openai/models.js';
import { ErrorResponse, ModelCard, ModelList, ModelParams } from '../../src/openai/schemas.js';

const models: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.get(
    '/models',
    { schema: { tags: ['models'], summary: 'List the served models and their sparsity tiers', response: { 200: ModelList } } },
    async (): Promise<ModelList> => ({ object: 'list', data: [...fastify.models.values()].map(modelCard) }),
  );

  fastify.get(
    '/models/:model',
    {
      schema: {
        tags: ['models'],
        summary: 'One served model and its sparsity tiers',
        params: ModelParams,
        response: { 200: ModelCard, 404: ErrorResponse },
      },
    },
    async (request): Promise<ModelCard> => modelCard(fastify.resolveModel(request.params.model)),
  );
};

export default models;
