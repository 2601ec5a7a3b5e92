/**
 * The entry point as `npm start` runs it: configuration errors stop it with a clear message;
 * SIGTERM lets in-flight requests finish, then the process exits 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
// The small real model the repository ships.
const MODEL_DIR = join(ROOT, 'models', 'stories260K');

/** Runs the server the way `npm start` does (tsx src/server.ts). */
function start(env: Record<string, string>): ChildProcess {
  return spawn(join(ROOT, 'node_modules/.bin/tsx'), ['src/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Resolves with the address from the "serving" log line. */
function listening(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    child.stdout?.on('data', (data: Buffer) => {
      buffered += data.toString();
      for (const line of buffered.split('\n')) {
        const match = /"address":"(http:[^"]+)"/.exec(line);
        if (match !== null) resolve(match[1]);
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited (${code}) before listening:\n${buffered}`)));
  });
}

t.test('an invalid variable stops the server with a message naming it', async (t) => {
  const child = start({ PORT: 'not-a-port' });
  let stderr = '';
  child.stderr?.on('data', (data: Buffer) => (stderr += data.toString()));
  t.equal(await exited(child), 1);
  t.match(stderr, /PORT/);
});

t.test('a model directory that cannot be loaded stops the server, naming it', async (t) => {
  const child = start({ MODEL_DIR: '/nonexistent/model-dir', PORT: '0', HOST: '127.0.0.1' });
  let stdout = '';
  child.stdout?.on('data', (data: Buffer) => (stdout += data.toString()));
  t.equal(await exited(child), 1);
  t.match(stdout, /nonexistent\/model-dir/);
});

t.test('the port opens before the models load, and the app takes it over', async (t) => {
  const child = start({ MODEL_DIR, PORT: '0', HOST: '127.0.0.1', DRAIN_DELAY_MS: '0' });
  const exit = exited(child);
  let stdout = '';
  child.stdout?.on('data', (data: Buffer) => (stdout += data.toString()));
  const base = await listening(child);
  // SIGTERM, which tsx passes on to the server (a SIGKILL to tsx would leave the server running).
  t.teardown(async () => {
    child.kill('SIGTERM');
    await exit;
  });
  const events = stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as { msg: string; port?: number });
  const order = events.map((event) => event.msg).filter((msg) => /^(listening while|model loaded|serving)/.test(msg));
  t.match(order, [/^listening while the models load/, 'model loaded', /^serving/]);
  t.equal(`http://127.0.0.1:${events.find((event) => event.port !== undefined)?.port}`, base, 'the app listens on the port the loading server held');
  t.equal((await fetch(`${base}/ready`)).status, 200);
});

t.test('a port in use stops the server, naming it', async (t) => {
  const holder = createServer();
  holder.listen(0, '127.0.0.1');
  await once(holder, 'listening');
  t.teardown(() => holder.close());
  const port = String((holder.address() as AddressInfo).port);
  const child = start({ MODEL_DIR, PORT: port, HOST: '127.0.0.1' });
  let stdout = '';
  child.stdout?.on('data', (data: Buffer) => (stdout += data.toString()));
  t.equal(await exited(child), 1);
  t.match(stdout, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}.*EADDRINUSE`));
});

t.test('SIGTERM finishes in-flight requests, then exits 0', async (t) => {
  const child = start({ MODEL_DIR, PORT: '0', HOST: '127.0.0.1', SHUTDOWN_TIMEOUT_MS: '20000' });
  const exit = exited(child);
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const base = await listening(child);
  t.equal((await fetch(`${base}/ready`)).status, 200);

  const res = await fetch(`${base}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'stories260K', prompt: 'Once upon a time', max_tokens: 200, stream: true }),
  });
  const reader = res.body?.getReader();
  if (reader === undefined) throw new Error('no body');
  const first = await reader.read();
  t.notOk(first.done, 'the stream has started');
  child.kill('SIGTERM');

  let body = new TextDecoder().decode(first.value);
  for (let step = await reader.read(); !step.done; step = await reader.read()) body += new TextDecoder().decode(step.value);
  t.ok(body.endsWith('data: [DONE]\n\n'), 'the in-flight stream ran to its end');
  t.equal(await exit, 0, 'exit code 0');
});

t.test('SIGTERM under load: /ready turns 503 while requests are still served, then what is cut is told so, never reset', async (t) => {
  // One request runs at a time, so that the later ones wait in the queue.
  const child = start({
    MODEL_DIR,
    PORT: '0',
    HOST: '127.0.0.1',
    DRAIN_DELAY_MS: '1500',
    SHUTDOWN_TIMEOUT_MS: '1000',
    MAX_CONCURRENT_PER_MODEL: '1',
    MAX_QUEUE_PER_MODEL: '4',
  });
  const exit = exited(child);
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const base = await listening(child);
  const post = (body: Record<string, unknown>): Promise<Response> =>
    fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'stories260K', ...body }),
    });

  // 16 choices of 400 tokens: several seconds of work, longer than drain and timeout together.
  const long = await post({ prompt: 'Once upon a time', n: 16, max_tokens: 400, stream: true, temperature: 1, seed: 1 });
  const reader = long.body?.getReader();
  if (reader === undefined) throw new Error('no body');
  t.notOk((await reader.read()).done, 'the long stream has started');
  const queued = post({ prompt: 'Lily', max_tokens: 8 });

  child.kill('SIGTERM');
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.equal((await fetch(`${base}/ready`)).status, 503, 'during the drain delay, /ready answers 503');
  t.equal((await fetch(`${base}/health`)).status, 200, '/health still answers');
  const duringDrain = post({ prompt: 'Tim', max_tokens: 4 });

  let body = '';
  for (let step = await reader.read(); !step.done; step = await reader.read()) body += new TextDecoder().decode(step.value);
  t.ok(body.endsWith('data: [DONE]\n\n'), 'the cut stream still ends with [DONE]');
  t.match(body, /data: \{"error":\{[^\n]*"code":"shutting_down"/, 'after an error event that says the server is shutting down');
  for (const [what, pending] of [
    ['queued before SIGTERM', queued],
    ['sent during the drain', duringDrain],
  ] as const) {
    const res = await pending;
    const answer = (await res.json()) as { error?: { code: string } };
    t.equal(res.status, 503, `the request ${what} and cut at the timeout gets a 503`);
    t.equal(answer.error?.code, 'shutting_down');
  }
  t.equal(await exit, 0, 'exit code 0');
});
