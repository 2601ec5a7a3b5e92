/** Turning a client's hang-up into an AbortSignal for the work done on its behalf. */
import type { ServerResponse } from 'node:http';

/** Aborts when the connection closes before the response was completely sent. */
export function abortOnDisconnect(res: ServerResponse): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}
