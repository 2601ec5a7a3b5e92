/**
 * Entry point (`npm start`): reads the configuration, loads every MODEL_DIR, serves them, and
 * shuts down gracefully on SIGTERM/SIGINT: /ready turns 503 at once, no new connections are
 * accepted, in-flight requests get SHUTDOWN_TIMEOUT_MS to finish (then their connections are
 * cut, which aborts their generations), the models are closed, and the process exits 0.
 */
import { pino } from 'pino';
import { buildApp, type App } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { loadServedModel } from './serve/engine.js';
import { SessionPool } from './runtime/pool.js';
import type { ServedModel } from './runtime/types.js';

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    process.exit(1);
  }
  const log = pino({ level: config.logLevel });

  const models: ServedModel[] = [];
  // One pool for every model's sessions, so that one memory budget covers them all.
  const pool = new SessionPool(config.poolMemoryBytes);
  for (const dir of config.modelDirs) {
    const started = Date.now();
    try {
      models.push(await loadServedModel(dir, {
        intraOpThreads: config.ortIntraOpThreads,
        interOpThreads: config.ortInterOpThreads,
        spinning: config.ortSpinning,
        pool,
        preload: config.poolPreload,
      }));
    } catch (err) {
      log.fatal({ err, dir }, `cannot load the model in ${dir} (MODEL_DIR)`);
      await Promise.allSettled(models.map((m) => m.close()));
      process.exit(1);
    }
    const model = models[models.length - 1];
    log.info({ model: model.id, dir, contextLength: model.contextLength, ms: Date.now() - started }, 'model loaded');
  }

  const app = await buildApp({
    models,
    loggerInstance: log,
    bodyLimit: config.bodyLimitBytes,
    maxConcurrentPerModel: config.maxConcurrentPerModel,
    maxQueuePerModel: config.maxQueuePerModel,
    cache: { redisUrl: config.redisUrl, prefix: config.cachePrefix, ttlSeconds: config.cacheTtlSeconds },
  });
  const address = await app.listen({ port: config.port, host: config.host });
  log.info({ address, models: models.map((m) => m.id) }, `serving ${models.map((m) => m.id).join(', ')} at ${address}`);

  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    void shutdown(app, models, pool, config.shutdownTimeoutMs, signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

async function shutdown(app: App, models: ServedModel[], pool: SessionPool, timeoutMs: number, signal: NodeJS.Signals): Promise<void> {
  app.log.info({ signal, timeoutMs }, 'shutting down: finishing in-flight requests');
  const deadline = setTimeout(() => {
    app.log.warn('shutdown timeout: closing the remaining connections');
    app.server.closeAllConnections();
  }, timeoutMs);
  try {
    await app.close();
  } catch (err) {
    app.log.error({ err }, 'error while closing the server');
  } finally {
    clearTimeout(deadline);
  }
  const closed = await Promise.allSettled([...models.map((m) => m.close()), pool.close()]);
  for (const result of closed) {
    if (result.status === 'rejected') app.log.error({ err: result.reason }, 'error while closing a model');
  }
  app.log.info('stopped');
  process.exit(0);
}

await main();
