/**
 * POST /v1/completions, OpenAI's legacy completions, JSON or streamed as server-sent events.
 * The route validates (schema), resolves the model, waits for its turn on the model (429 when
 * the model's queue is full), and hands over to src/openai; a client that disconnects aborts
 * its generation in both modes, or leaves the queue if it was still waiting.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { GenerationResult } from '../../src/runtime/types.js';
import { ApiError, internalError } from '../../src/openai/errors.js';
import { prepareCompletion } from '../../src/openai/completion-request.js';
import { completionMeta, createCompletion, streamCompletion } from '../../src/openai/completion-run.js';
import type { Deadline } from '../../src/openai/limits.js';
import type { Release } from '../../src/serve/admission.js';
import { Completion, CompletionChunk, CompletionRequest, ErrorResponse } from '../../src/openai/schemas.js';
import { SSE_HEADERS, writeSse } from '../../src/openai/sse.js';

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

        // Wait for the first chunk before committing to a 200: most engine failures happen in
        // prefill, and until now they can still get a proper error status.
        const chunks = streamCompletion(model, prepared, signal, meta, onResult);
        const first = await chunks.next();
        deadline.check();
        reply.hijack();
        try {
          // Hijacked replies skip Fastify's header handling: carry over what hooks set (x-request-id).
          for (const [name, value] of Object.entries(reply.getHeaders())) {
            if (value !== undefined) reply.raw.setHeader(name, value);
          }
          reply.raw.writeHead(200, SSE_HEADERS);
          await writeSse(reply.raw, untilDeadline(resume(first, chunks), deadline), (err) => {
            if (!(err instanceof ApiError)) request.log.error({ err }, 'completion stream failed');
            return (err instanceof ApiError ? err : internalError()).toBody();
          });
        } finally {
          // Whatever happened, the generation behind the stream must not stay suspended.
          await chunks.return();
        }
        request.log.info({ aborted: signal.aborted, deadlineExceeded: deadline.exceeded }, 'completion stream ended');
        return reply;
      } finally {
        release?.();
        deadline.dispose();
      }
    },
  );
};

/** The stream, then the deadline's error event if the deadline is what ended it. */
async function* untilDeadline<T>(events: AsyncGenerator<T, void>, deadline: Deadline): AsyncGenerator<T, void> {
  yield* events;
  deadline.check();
}

/** The stream again, its first (already taken) step included. */
async function* resume<T>(first: IteratorResult<T, void>, rest: AsyncGenerator<T, void>): AsyncGenerator<T, void> {
  if (first.done === true) return;
  yield first.value;
  yield* rest;
}

export default completions;
