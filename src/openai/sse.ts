/**
 * Server-sent events as OpenAI streams them: `data: <json>\n\n` per event, `data: [DONE]\n\n`
 * last. Written straight to the Node response so each event leaves as soon as it exists.
 */
import { once } from 'node:events';
import type { ServerResponse } from 'node:http';
import type { ApiErrorBody } from './errors.js';

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
export async function writeSse(res: ServerResponse, events: AsyncIterable<unknown>, toErrorBody: (err: unknown) => ApiErrorBody): Promise<void> {
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
