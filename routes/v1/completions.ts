/**
 * POST /v1/completions, OpenAI's legacy completions, JSON or streamed as server-sent events.
 * The route validates (schema), resolves the model, waits for its turn on the model (429 when
 * the model's queue is full), and hands over to src/openai; a client that disconnects aborts
 * its generation in both modes, or leaves the queue if it was still waiting.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { GenerationResult } from '../../src/runtime/types.js';
import { prepareCompletion } from '../../src/openai/completion-request.js';
import { completionMeta, createCompletion, streamCompletion } from '../../src/openai/completion-run.js';
import type { Release } from '../../src/serve/admission.js';
import { Completion, CompletionChunk, CompletionRequest, ErrorResponse } from '../../src/openai/schemas.js';

const completions: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post(
    '/completions',
    {
      config: { metricsEndpoint: 'completions', admission: true },
      schema: {
        tags: ['completions'],
        summary: 'Create a completion (OpenAI legacy completions API)',
        description:
          'With `stream: true` the answer is `text/event-stream`: one `data: <chunk>` event per piece of text, ' +
          'a chunk with `finish_reason` (and that choice\'s `sparsity`) per choice, a usage chunk when ' +
          '`stream_options.include_usage` (with the FLOPs and the `sparsity` object), then `data: [DONE]`. ' +
          '`sparsity`, `latency_budget_ms`, `activation` and `sparse_prefill` choose how sparse it runs; ' +
          'a model whose queue is full answers 429 with Retry-After.',
        body: CompletionRequest,
        response: {
          200: {
            description: 'The completion, or with `stream: true` a stream of completion chunks',
            content: {
              'application/json': { schema: Completion },
              'text/event-stream': { schema: CompletionChunk },
            },
          },
          '4xx': ErrorResponse,
          '5xx': ErrorResponse,
        },
      },
    },
    async (request, reply) => {
      const model = fastify.resolveModel(request.body.model);
      const deadline = fastify.deadline(request, reply);
      const signal = deadline.signal;
      const meta = completionMeta(model);
      const onResult = (result: GenerationResult): void => fastify.metrics.recordGeneration(request, model.id, result);
      let release: Release | undefined;
      try {
        const prepared = await prepareCompletion(model, request.body, fastify.limits, fastify.encoder(model, signal));
        release = await fastify.admit(request, model.id, signal).catch((err: unknown) => {
          deadline.check();
          throw err;
        });
        if (!prepared.stream) {
          const completion = await createCompletion(model, prepared, signal, meta, onResult);
          deadline.check();
          return completion;
        }
        return await reply.sendEvents(streamCompletion(model, prepared, signal, meta, onResult), deadline, 'completion');
      } finally {
        release?.();
        deadline.dispose();
      }
    },
  );
};

export default completions;
