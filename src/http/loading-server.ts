/**
 * What the port answers while the models load, so that probes see the server as it is: /health
 * 200 (the process lives; a liveness probe must not kill a slow load), /ready 503, and every other
 * request a 503 with Retry-After in OpenAI's error shape. Without it the port would open only
 * after loading, and a probe could not tell a loading server from a dead one.
 *
 * It is a bare node:http server, not the app: the app needs its models to be built. When they are
 * loaded, `close` frees the port for the app (a connection made in the moment between the two is
 * refused, as it would be by a restarting server).
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApiError } from '../openai/errors.js';

export interface LoadingServer {
  /** The port it listens on (the one asked for, or the one given for port 0). */
  readonly port: number;
  /** Stops listening and closes every connection, so that the app can listen on the same port. */
  close(): Promise<void>;
}

/** How long clients are told to wait before retrying. */
const RETRY_AFTER_SECONDS = 5;

function answer(request: IncomingMessage, response: ServerResponse): void {
  const path = (request.url ?? '/').split('?')[0];
  const [status, body] =
    path === '/health'
      ? [200, { status: 'ok' }]
      : path === '/ready'
        ? [503, new ApiError(503, 'The models are loading.', 'service_unavailable', null, 'not_ready').toBody()]
        : [503, new ApiError(503, 'The server is loading its models; retry shortly.', 'service_unavailable', null, 'model_loading').toBody()];
  const text = JSON.stringify(body);
  // The request body is not read: it is refused whatever it holds, and `connection: close` makes
  // the client open a fresh connection, which will reach the app once it listens.
  response.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    connection: 'close',
    ...(status === 503 && path !== '/ready' && { 'retry-after': String(RETRY_AFTER_SECONDS) }),
  });
  response.end(text);
}

export async function startLoadingServer(port: number, host: string): Promise<LoadingServer> {
  const server = createServer(answer);
  server.listen(port, host);
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([err]) => Promise.reject(err))]);
  return {
    port: (server.address() as AddressInfo).port,
    async close() {
      const closed = once(server, 'close');
      server.close();
      server.closeAllConnections();
      await closed;
    },
  };
}
