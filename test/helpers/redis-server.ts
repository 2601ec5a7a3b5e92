/**
 * Test helpers: a private redis-server child process (to kill and restart without touching
 * the shared Redis on 6379), and a unique key prefix on the shared one, removed afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Test } from 'tap';
import { Redis } from 'ioredis';

export const SHARED_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

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

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts (again) on the same port; resolves once it answers PING. */
  async restart(): Promise<void> {
    if (this.child !== undefined) throw new Error('already running');
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
      stdio: 'ignore',
    });
    this.child = child;
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
      try {
        if (probe.status !== 'ready') await probe.connect();
        return (await probe.ping()) === 'PONG';
      } catch {
        probe.disconnect();
        return false;
      }
    }, 5000);
    probe.disconnect();
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
