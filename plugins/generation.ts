/**
 * `fastify.serveGeneration(request, reply, model, steps)`: the life of a generating request, the
 * same for completions and chat completions. Under the request's deadline (plugins/limits.ts):
 * prepare it (validate, tokenize, on a worker when long), wait for its turn on the model
 * (plugins/backpressure.ts; a deadline passed in the queue is a 504, not a 499), then either
 * create the whole answer or stream it as server-sent events (src/openai/sse.ts).
 *
 * A stream waits for its first chunk before committing to the 200: most engine failures happen
 * in prefill, and until then they can still get a proper error status. After its last chunk
 * comes the deadline's error event if the deadline ended it.
 */
import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Encoder } from '../src/openai/encoding.js';
import { ApiError, internalError } from '../src/openai/errors.js';
import type { Deadline } from '../src/openai/limits.js';
import { SSE_HEADERS, writeSse } from '../src/openai/sse.js';
import type { GenerationResult, ServedModel } from '../src/runtime/types.js';
import type { Release } from '../src/http/admission.js';

/** What a generating route supplies: how to prepare its request, and how to answer it whole or streamed. */
export interface GenerationSteps<P extends { stream: boolean }, A> {
  /** Names the stream in logs ("completion"). */
  what: string;
  prepare(encode: Encoder): Promise<P>;
  create(prepared: P, signal: AbortSignal, onResult: (result: GenerationResult) => void): Promise<A>;
  stream(prepared: P, signal: AbortSignal, onResult: (result: GenerationResult) => void): AsyncGenerator<unknown, void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** The whole answer, or the reply once its stream has ended. */
    serveGeneration<P extends { stream: boolean }, A>(
      request: FastifyRequest,
      reply: FastifyReply,
      model: ServedModel,
      steps: GenerationSteps<P, A>,
    ): Promise<A | FastifyReply>;
  }
}

async function serveGeneration<P extends { stream: boolean }, A>(
  this: FastifyInstance,
  request: FastifyRequest,
  reply: FastifyReply,
  model: ServedModel,
  steps: GenerationSteps<P, A>,
): Promise<A | FastifyReply> {
  const deadline = this.deadline(request, reply);
  const signal = deadline.signal;
  const onResult = (result: GenerationResult): void => this.metrics.recordGeneration(request, model.id, result);
  let release: Release | undefined;
  try {
    const prepared = await steps.prepare(this.encoder(model, signal));
    release = await this.admit(request, model.id, signal).catch((err: unknown) => {
      deadline.check();
      throw err;
    });
    if (!prepared.stream) {
      const answer = await steps.create(prepared, signal, onResult);
      deadline.check();
      return answer;
    }
    return await sendEvents(reply, steps.stream(prepared, signal, onResult), deadline, steps.what);
  } finally {
    release?.();
    deadline.dispose();
  }
}

async function sendEvents(reply: FastifyReply, chunks: AsyncGenerator<unknown, void>, deadline: Deadline, what: string): Promise<FastifyReply> {
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
      if (!(err instanceof ApiError)) reply.request.log.error({ err }, `${what} stream failed`);
      return (err instanceof ApiError ? err : internalError()).toBody();
    });
  } finally {
    // Whatever happened, the generation behind the stream must not stay suspended.
    await chunks.return();
  }
  reply.request.log.info({ aborted: deadline.signal.aborted, deadlineExceeded: deadline.exceeded }, `${what} stream ended`);
  return reply;
}

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

const generationPlugin: FastifyPluginAsync = async (fastify) => {
  fastify.decorate('serveGeneration', serveGeneration);
};

export default fp(generationPlugin, { name: 'generation', fastify: '5.x', dependencies: ['limits', 'backpressure', 'tokenizer-pool', 'metrics'] });
