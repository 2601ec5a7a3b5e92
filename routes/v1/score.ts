/**
 * POST /v1/score: log-probabilities, their sum and the perplexity of continuations after a
 * prompt, at any tier (src/openai/score.ts). Waits for its turn on the model like completions.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { clientClosed } from '../../src/openai/errors.js';
import { ErrorResponse, ScoreRequest, ScoreResponse } from '../../src/openai/schemas.js';
import { prepareScore, runScore, scoreMeta } from '../../src/openai/score.js';
import type { GenerationResult } from '../../src/runtime/types.js';
import type { Release } from '../../src/http/admission.js';

const score: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post(
    '/score',
    {
      config: { metricsEndpoint: 'score', admission: true },
      schema: {
        tags: ['scoring'],
        summary: 'Score continuations of a prompt: per-token logprobs, their sum and perplexity',
        description:
          'Each continuation is scored after the prompt as one sequence; string continuations after a string prompt are ' +
          'tokenized as part of the joined text. The prompt is processed sparse too unless `sparse_prefill: false`.',
        body: ScoreRequest,
        response: { 200: ScoreResponse, '4xx': ErrorResponse, '5xx': ErrorResponse },
      },
    },
    async (request, reply) => {
      const model = fastify.resolveModel(request.body.model);
      const deadline = fastify.deadline(request, reply);
      const signal = deadline.signal;
      const meta = scoreMeta(model);
      let release: Release | undefined;
      try {
        const prepared = await prepareScore(model, request.body, fastify.encoder(model, signal));
        release = await fastify.admit(request, model.id, signal).catch((err: unknown) => {
          deadline.check();
          throw err;
        });
        const onResult = (result: GenerationResult): void => fastify.metrics.recordGeneration(request, model.id, result);
        const scored = await runScore(model, prepared, signal, meta, onResult);
        deadline.check();
        if (scored === null) throw clientClosed();
        return scored;
      } finally {
        release?.();
        deadline.dispose();
      }
    },
  );
};

export default score;
