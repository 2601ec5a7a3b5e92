/**
 * Per-request limits (src/openai/limits.ts) for every route: `fastify.limits`, and
 * `fastify.deadline(request, reply)`, the request's deadline counted from its arrival, whose
 * signal also aborts when the client hangs up or when `fastify.cutRequests()` ends every
 * running request at the end of a shutdown. The route disposes of it when it is done.
 */
import fp from 'fastify-plugin';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { abortOnDisconnect } from '../src/openai/disconnect.js';
import { Deadline, DEFAULT_LIMITS, type RequestLimits } from '../src/openai/limits.js';

export interface LimitsPluginOptions {
  limits?: Partial<RequestLimits>;
}

declare module 'fastify' {
  interface FastifyInstance {
    limits: RequestLimits;
    deadline(request: FastifyRequest, reply: FastifyReply): Deadline;
    /** Ends every request still waiting or running: each answers 503, or a stream its error event. */
    cutRequests(): void;
  }
}

const limitsPlugin: FastifyPluginAsync<LimitsPluginOptions> = async (fastify, opts) => {
  const limits: RequestLimits = { ...DEFAULT_LIMITS, ...opts.limits };
  fastify.decorate('limits', limits);
  const cut = new AbortController();
  fastify.decorate(
    'deadline',
    (_request: FastifyRequest, reply: FastifyReply): Deadline =>
      new Deadline(abortOnDisconnect(reply.raw), limits.requestTimeoutMs - reply.elapsedTime, limits.requestTimeoutMs, cut.signal),
  );
  fastify.decorate('cutRequests', () => cut.abort());
};

export default fp(limitsPlugin, { name: 'limits', fastify: '5.x' });
