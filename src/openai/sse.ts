/**
 * Server-sent events as OpenAI streams them: `data: <json>\n\n` per event, `data: [DONE]\n\n`
 * last. Written straight to the Node response so each event leaves as soon as it exists.
 */
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, internalError, type ApiErrorBody } from './errors.js';
import type { Deadline } from './limits.js';

export const SSE_HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
  // Stops nginx-style proxies from buffering the stream into one late response.
  'x-accel-buffering': 'no',
} as const;

export function sseEvent(data: unknown): string {
  return `data: ${JSON.stringify(data)}\n\n`;
}

export const SSE_DONE = 'data: [DONE]\n\n';

/**
 * Writes every event then `[DONE]`, waiting for the socket to drain when the client reads
 * slowly. Stops as soon as the connection is gone, which closes `events` (and with it the
 * generation behind it). An error thrown by `events` is sent as a last `{"error": ...}` event
 * (headers are gone, so the status cannot change any more), then `[DONE]`.
 */
export async function writeSse(
  res: ServerResponse,
  events: AsyncIterable<unknown>,
  toErrorBody: (err: unknown) => ApiErrorBody,
): Promise<void> {
  try {
    for await (const event of events) {
      if (!(await write(res, sseEvent(event)))) return;
    }
  } catch (err) {
    if (!(await write(res, sseEvent(toErrorBody(err))))) return;
  }
  if (await write(res, SSE_DONE)) res.end();
}

/** False when the connection is closed and nothing more can be sent. */
async function write(res: ServerResponse, text: string): Promise<boolean> {
  if (res.destroyed || res.writableEnded) return false;
  if (res.write(text)) return true;
  // Cancel the losing listener, or a long slow stream would pile them up.
  const settled = new AbortController();
  try {
    await Promise.race([once(res, 'drain', { signal: settled.signal }), once(res, 'close', { signal: settled.signal })]);
  } finally {
    settled.abort();
  }
  return !res.destroyed;
}

/**
 * Answers with `chunks` as a 200 event stream, or throws before anything is sent. It waits
 * for the first chunk before committing to the 200: most engine failures happen in prefill,
 * and until then they can still get a proper error status. `what` names the stream in logs.
 */
export async function replyWithStream(
  request: FastifyRequest,
  reply: FastifyReply,
  chunks: AsyncGenerator<unknown, void>,
  deadline: Deadline,
  what: string,
): Promise<FastifyReply> {
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
      if (!(err instanceof ApiError)) request.log.error({ err }, `${what} stream failed`);
      return (err instanceof ApiError ? err : internalError()).toBody();
    });
  } finally {
    // Whatever happened, the generation behind the stream must not stay suspended.
    await chunks.return();
  }
  request.log.info({ aborted: deadline.signal.aborted, deadlineExceeded: deadline.exceeded }, `${what} stream ended`);
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
