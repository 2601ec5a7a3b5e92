/**
 * Authentication as `npm start` configures it from the environment: API_KEYS guard the API,
 * the key never reaches the log, and a server open to the network says so at start-up.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MODEL_DIR = join(ROOT, 'models', 'stories260K');
const KEY = 'sk-server-test-0123456789abcdef';

interface Started {
  base: string;
  /** Everything the server has logged so far. */
  output: () => string;
}

/**
 * Starts src/server.ts and resolves once it listens. Node runs it directly with tsx as a
 * loader, not through the tsx command, which would put a second process in between that a
 * SIGKILL in the teardown would not reach.
 */
function start(t: Test, env: Record<string, string>): Promise<Started> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    cwd: ROOT,
    env: { ...process.env, MODEL_DIR, PORT: '0', LOG_LEVEL: 'debug', POOL_PRELOAD: 'false', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
  });
  let output = '';
  return new Promise((resolve, reject) => {
    const collect = (data: Buffer): void => {
      output += data.toString();
      const match = /"address":"(http:[^"]+)"/.exec(output);
      if (match !== null) resolve({ base: match[1].replace('0.0.0.0', '127.0.0.1'), output: () => output });
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.once('exit', (code) => reject(new Error(`server exited (${code}) before listening:\n${output}`)));
  });
}

const NO_KEYS_WARNING = /no API_KEYS: anyone who can reach/;

t.test('API_KEYS guard /v1, the probes stay open, and the key is never logged', async (t) => {
  const server = await start(t, { HOST: '127.0.0.1', API_KEYS: `${KEY},sk-second-key-0123456789` });
  t.equal((await fetch(`${server.base}/v1/models`)).status, 401);
  t.equal((await fetch(`${server.base}/v1/models`, { headers: { authorization: `Bearer ${KEY}` } })).status, 200);
  t.equal((await fetch(`${server.base}/health`)).status, 200);
  t.equal((await fetch(`${server.base}/ready`)).status, 200);
  // The log is written asynchronously; give the last lines a moment to arrive.
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.match(server.output(), /"status(Code)?":401/, 'the requests were logged');
  t.notOk(server.output().includes(KEY), 'the key is not in the log');
  t.notMatch(server.output(), NO_KEYS_WARNING);
});

t.test('without API_KEYS on a non-loopback address, start-up warns', async (t) => {
  const server = await start(t, { HOST: '0.0.0.0', API_KEYS: '' });
  t.match(server.output(), NO_KEYS_WARNING);
  t.equal((await fetch(`${server.base}/v1/models`)).status, 200, 'and the API is indeed open');
});

t.test('without API_KEYS on loopback, no warning', async (t) => {
  const server = await start(t, { HOST: '127.0.0.1', API_KEYS: '' });
  t.notMatch(server.output(), NO_KEYS_WARNING);
});
