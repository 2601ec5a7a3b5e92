/**
 * Test helpers: a private redis-server child process (to kill and restart without touching
 * the shared Redis on 6379), and a unique key prefix on the shared one, removed afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Test } from 'tap';
import { Redis } from 'ioredis';

const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** Whether something accepts TCP connections at `url`'s host and port (within half a second). */
async function listening(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname, port: Number(port || 6379), timeout: 500 }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/**
 * The Redis that tests share: TEST_REDIS_URL, else the one on 127.0.0.1:6379, else a
 * redis-server of this test process's own (stopped when it exits), so that a machine without a
 * running Redis runs the suite instead of stalling on it.
 */
async function sharedRedisUrl(): Promise<string> {
  if (process.env.TEST_REDIS_URL !== undefined) return process.env.TEST_REDIS_URL;
  if (await listening(DEFAULT_REDIS_URL)) return DEFAULT_REDIS_URL;
  const own = await RedisChild.startForProcess();
  return own.url;
}

/** A port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no TCP address');
  return address.port;
}

/** Polls `check` every `everyMs` until it returns true or `timeoutMs` passes; returns the last answer. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await sleep(everyMs);
  }
}

/** A redis-server of our own, with persistence off, that a test may kill and start again. */
export class RedisChild {
  private child: ChildProcess | undefined;

  private constructor(readonly port: number) {}

  static async start(t: Test): Promise<RedisChild> {
    const server = new RedisChild(await freePort());
    t.teardown(() => server.stop());
    await server.restart();
    return server;
  }

  /** One that lives as long as this process. */
  static async startForProcess(): Promise<RedisChild> {
    const server = new RedisChild(await freePort());
    process.once('exit', () => server.child?.kill('SIGKILL'));
    await server.restart();
    // It must not keep the test process alive: the process ends when its tests do, and kills it.
    server.child?.unref();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts (again) on the same port; resolves once it answers PING. */
  async restart(): Promise<void> {
    if (this.child !== undefined) throw new Error('already running');
    const child = spawn(REDIS_SERVER, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
      stdio: 'ignore',
    });
    this.child = child;
    let failed: Error | undefined;
    child.once('error', (err) => (failed = err));
    child.once('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    const probe = new Redis(this.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      retryStrategy: () => null,
      // A failed attempt leaves a dead socket whose 2 s close timer would hold the test open.
      disconnectTimeout: 10,
    });
    probe.on('error', () => {});
    const up = await waitFor(async () => {
      if (failed !== undefined) return false;
      try {
        if (probe.status !== 'ready') await probe.connect();
        return (await probe.ping()) === 'PONG';
      } catch {
        probe.disconnect();
        return false;
      }
    }, 5000);
    probe.disconnect();
    if (failed !== undefined) {
      throw new Error(
        `cannot start ${REDIS_SERVER} (${failed.message}): the tests need Debian's redis-server package, a Redis on 127.0.0.1:6379, or TEST_REDIS_URL`,
      );
    }
    if (!up) throw new Error(`redis-server on port ${this.port} did not start`);
  }

  /** Kills the server as a crash would (SIGKILL), or pauses it (SIGSTOP) to make it slow. */
  signal(signal: 'SIGSTOP' | 'SIGCONT'): void {
    this.child?.kill(signal);
  }

  async stop(): Promise<void> {
    const child = this.child;
    if (child === undefined) return;
    const exited = once(child, 'exit');
    child.kill('SIGKILL');
    await exited;
  }
}

/** A unique prefix on the shared Redis; its keys are deleted when the test ends. */
export function uniquePrefix(t: Test): string {
  const prefix = `sparse-slm-test:${randomUUID()}:`;
  t.teardown(async () => {
    const client = new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      const keys = await client.keys(`${prefix}*`);
      if (keys.length > 0) await client.del(...keys);
    } finally {
      client.disconnect();
    }
  });
  return prefix;
}

const REDIS_SERVER = 'redis-server';

export const SHARED_REDIS_URL = await sharedRedisUrl();
