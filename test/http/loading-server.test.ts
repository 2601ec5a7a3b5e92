/**
 * While the models load, the port already answers: /health 200 so that a liveness probe lets a
 * slow load finish, /ready 503 so that no traffic is sent, and anything else a 503 in OpenAI's
 * error shape with Retry-After. Closing it frees the port for the app.
 */
import { createServer } from 'node:net';
import { once } from 'node:events';
import t from 'tap';
import { startLoadingServer } from '../../src/http/loading-server.js';

t.test('answers probes and refuses requests until closed', async (t) => {
  const loading = await startLoadingServer(0, '127.0.0.1');
  const base = `http://127.0.0.1:${loading.port}`;

  const health = await fetch(`${base}/health`);
  t.equal(health.status, 200);
  t.same(await health.json(), { status: 'ok' });

  const ready = await fetch(`${base}/ready?verbose=1`);
  t.equal(ready.status, 503);
  t.same(await ready.json(), { error: { message: 'The models are loading.', type: 'service_unavailable', param: null, code: 'not_ready' } });

  const completion = await fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'default', prompt: 'hi' }),
  });
  t.equal(completion.status, 503);
  t.equal(completion.headers.get('retry-after'), '5');
  t.equal(completion.headers.get('connection'), 'close', 'the client reconnects, and so reaches the app once it listens');
  t.match(await completion.json(), { error: { type: 'service_unavailable', code: 'model_loading' } });

  // A keep-alive connection left open must not hold the port.
  const idle = await fetch(`${base}/health`, { keepalive: true });
  await idle.text();
  await loading.close();
  await t.rejects(fetch(`${base}/health`), 'closed: nothing answers');

  const next = createServer();
  next.listen(loading.port, '127.0.0.1');
  await once(next, 'listening');
  t.pass('the port is free for the app');
  next.close();
});

t.test('a port in use is an error, not a silent second server', async (t) => {
  const holder = createServer();
  holder.listen(0, '127.0.0.1');
  await once(holder, 'listening');
  t.teardown(() => holder.close());
  const port = (holder.address() as { port: number }).port;
  await t.rejects(startLoadingServer(port, '127.0.0.1'), { code: 'EADDRINUSE' });
});
