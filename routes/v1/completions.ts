/**
 * POST /v1/completions, OpenAI's legacy completions, JSON or streamed as server-sent events.
 * The route validates (schema), resolves the model, waits for its turn on the model (429 when
 * the model's queue is full), and hands over to src/openai; a client that disconnects aborts
 * its generation in both modes, or leaves the queue if it was still waiting.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { prepareCompletion } from '../../src/openai/completion-request.js';
import { completionMeta, createCompletion, streamCompletion } from '../../src/openai/completion-run.js';
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
          "a chunk with `finish_reason` (and that choice's `sparsity`) per choice, a usage chunk when " +
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
      const meta = completionMeta(model);
      return fastify.serveGeneration(request, reply, model, {
        what: 'completion',
        prepare: (encode) => prepareCompletion(model, request.body, fastify.limits, encode),
        create: (prepared, signal, onResult) => createCompletion(model, prepared, signal, meta, onResult),
        stream: (prepared, signal, onResult) => streamCompletion(model, prepared, signal, meta, onResult),
      });
    },
  );
};

export default completions;
