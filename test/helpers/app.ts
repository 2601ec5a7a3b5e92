/** Builds the app for route tests and listens on a real socket when a test needs one. */
import type { Test } from 'tap';
import type { ActivationCacheSettings } from '../../plugins/activation-cache.js';
import { buildApp, type App, type AppOptions } from '../../src/app.js';
import { openActivationStore, type OpenedActivationStore } from '../../src/cache/index.js';

export async function testApp(t: Test, options: AppOptions): Promise<App> {
  const app = await buildApp(options);
  t.teardown(() => app.close());
  await app.ready();
  return app;
}

/**
 * An activation store as src/server.ts opens one (its models are built with it, and the app is
 * given it with its events), closed at teardown.
 */
export async function testStore(t: Test, cache: ActivationCacheSettings): Promise<OpenedActivationStore> {
  const quiet = { warn() {}, info() {}, error() {} };
  const opened = await openActivationStore(cache, quiet);
  t.teardown(() => opened.store.close());
  return opened;
}

/** Listens on 127.0.0.1 on a free port; returns the base URL. */
export async function listen(app: App): Promise<string> {
  return app.listen({ port: 0, host: '127.0.0.1' });
}

export interface SseStream {
  /** Parsed JSON of every `data:` event before `[DONE]`. */
  events: unknown[];
  /** Whether the last event was `data: [DONE]`. */
  done: boolean;
  /** Whether every event was framed as `data: ...` followed by a blank line. */
  wellFramed: boolean;
}

/** Parses an OpenAI-style server-sent event stream. */
export function parseSse(body: string): SseStream {
  const blocks = body.split('\n\n');
  const trailing = blocks.pop();
  const wellFramed = trailing === '' && blocks.every((b) => b.startsWith('data: ') && !b.includes('\n'));
  const data = blocks.map((b) => b.slice('data: '.length));
  const done = data[data.length - 1] === '[DONE]';
  const events = (done ? data.slice(0, -1) : data).map((d) => JSON.parse(d) as unknown);
  return { events, done, wellFramed };
}
