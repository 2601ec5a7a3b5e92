/**
 * `reply.sendEvents(chunks, deadline, what)`: answers a streaming request with `chunks` as a 200
 * server-sent event stream (src/openai/sse.ts), or throws before anything is sent. It waits for
 * the first chunk before committing to the 200: most engine failures happen in prefill, and
 * until then they can still get a proper error status. After the last chunk, the deadline's
 * error event if the deadline ended the stream; `what` names the stream in logs.
 */
import fp from 'fastify-plugin';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';
import { ApiError, internalError } from '../src/openai/errors.js';
import type { Deadline } from '../src/openai/limits.js';
import { SSE_HEADERS, writeSse } from '../src/openai/sse.js';

declare module 'fastify' {
  interface FastifyReply {
    sendEvents(chunks: AsyncGenerator<unknown, void>, deadline: Deadline, what: string): Promise<FastifyReply>;
  }
}

async function sendEvents(this: FastifyReply, chunks: AsyncGenerator<unknown, void>, deadline: Deadline, what: string): Promise<FastifyReply> {
  const first = await chunks.next();
  deadline.check();
  this.hijack();
  try {
    // Hijacked replies skip Fastify's header handling: carry over what hooks set (x-request-id).
    for (const [name, value] of Object.entries(this.getHeaders())) {
      if (value !== undefined) this.raw.setHeader(name, value);
    }
    this.raw.writeHead(200, SSE_HEADERS);
    await writeSse(this.raw, untilDeadline(resume(first, chunks), deadline), (err) => {
      if (!(err instanceof ApiError)) this.request.log.error({ err }, `${what} stream failed`);
      return (err instanceof ApiError ? err : internalError()).toBody();
    });
  } finally {
    // Whatever happened, the generation behind the stream must not stay suspended.
    await chunks.return();
  }
  this.request.log.info({ aborted: deadline.signal.aborted, deadlineExceeded: deadline.exceeded }, `${what} stream ended`);
  return this;
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

const eventStreamPlugin: FastifyPluginAsync = async (fastify) => {
  fastify.decorateReply('sendEvents', sendEvents);
};

export default fp(eventStreamPlugin, { name: 'event-stream', fastify: '5.x' });
