/** GET /health (liveness) and GET /ready (readiness). */
import t from 'tap';
import { testApp } from '../helpers/app.js';
import { testServedModel } from '../helpers/served-model.js';

const model = await testServedModel();
t.teardown(() => model.close());

t.test('/health answers 200 {status: "ok"} whether or not models are loaded', async (t) => {
  for (const models of [[model], []]) {
    const app = await testApp(t, { models });
    const res = await app.inject({ method: 'GET', url: '/health' });
    t.equal(res.statusCode, 200);
    t.same(res.json(), { status: 'ok' });
  }
});

t.test('/ready answers 200 once models are loaded', async (t) => {
  const app = await testApp(t, { models: [model] });
  const res = await app.inject({ method: 'GET', url: '/ready' });
  t.equal(res.statusCode, 200);
  t.same(res.json(), { status: 'ready', models: 1 });
});

t.test('/ready answers 503 without a model', async (t) => {
  const app = await testApp(t, { models: [] });
  const res = await app.inject({ method: 'GET', url: '/ready' });
  t.equal(res.statusCode, 503);
  t.equal(res.json().error.code, 'not_ready');
});

t.test('/ready answers 503 when the app is not ready (e.g. shutting down), and 200 again after', async (t) => {
  const app = await testApp(t, { models: [model], ready: false });
  t.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 503);
  app.readiness.ready = true;
  t.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 200);
  app.readiness.ready = false;
  t.equal((await app.inject({ method: 'GET', url: '/ready' })).statusCode, 503);
  t.equal((await app.inject({ method: 'GET', url: '/health' })).statusCode, 200, 'still alive');
});
