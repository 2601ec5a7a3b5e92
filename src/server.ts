/**
 * Entry point (`npm start`): reads the configuration, opens the port (answering /health 200 and
 * /ready 503 while loading: src/http/loading-server.ts), loads every MODEL_DIR, serves them, and
 * shuts down gracefully on SIGTERM/SIGINT (src/http/shutdown.ts): on SIGTERM /ready turns 503
 * for DRAIN_DELAY_MS while requests are still served; then new requests get 503, running and
 * queued ones get SHUTDOWN_TIMEOUT_MS to finish, and what is left is ended with a 503 or a
 * stream error event. The models are closed and the process exits 0.
 */
import { pino } from 'pino';
import { buildApp, type App } from './app.js';
import { isLoopbackHost, LOG_REDACT } from './openai/auth.js';
import { ConfigError, loadConfig, readChatTemplateFile, type Config } from './config.js';
import { loadServedModel } from './serve/engine.js';
import { startLoadingServer, type LoadingServer } from './http/loading-server.js';
import { drainAndClose } from './http/shutdown.js';
import { openActivationStore } from './cache/index.js';
import { SessionPool } from './runtime/pool.js';
import type { ServedModel } from './runtime/types.js';

async function main(): Promise<void> {
  let config: Config;
  let chatTemplate: string | undefined;
  try {
    config = loadConfig();
    if (config.chatTemplateFile !== undefined) chatTemplate = readChatTemplateFile(config.chatTemplateFile);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.message);
    process.exit(1);
  }
  const log = pino({ level: config.logLevel, redact: LOG_REDACT });
  if (config.apiKeys.length === 0 && !isLoopbackHost(config.host)) {
    log.warn(
      { host: config.host },
      `no API_KEYS: anyone who can reach ${config.host}:${config.port} may use every route; set API_KEYS, or HOST=127.0.0.1 behind a proxy that authenticates`,
    );
  }

  let loading: LoadingServer;
  try {
    loading = await startLoadingServer(config.port, config.host);
  } catch (err) {
    log.fatal({ err }, `cannot listen on ${config.host}:${config.port} (HOST, PORT): ${(err as Error).message}`);
    process.exit(1);
  }
  log.info({ port: loading.port }, 'listening while the models load: /health 200, /ready 503');

  // What the models are built with: one pool for every model's sessions, so that one memory
  // budget covers them all, and the activation store of their per-prompt neuron sets.
  const pool = new SessionPool(config.poolMemoryBytes);
  const { store, events: cacheEvents } = await openActivationStore(
    {
      redisUrl: config.redisUrl,
      prefix: config.cachePrefix,
      ttlSeconds: config.cacheTtlSeconds,
      timeoutMs: config.cacheTimeoutMs,
      breakerThreshold: config.cacheBreakerThreshold,
      breakerCooldownMs: config.cacheBreakerCooldownMs,
    },
    log.child({ component: 'activation-cache' }),
  );
  const models: ServedModel[] = [];
  for (const [i, dir] of config.modelDirs.entries()) {
    const started = Date.now();
    try {
      models.push(
        await loadServedModel(dir, {
          intraOpThreads: config.ortIntraOpThreads,
          interOpThreads: config.ortInterOpThreads,
          spinning: config.ortSpinning,
          pool,
          store,
          preload: config.poolPreload,
          chatTemplate,
          maxBatchSize: config.maxBatchSize,
          prefillChunkTokens: config.prefillChunkTokens,
          quant: config.quant[i] === 'none' ? undefined : config.quant[i],
        }),
      );
    } catch (err) {
      log.fatal({ err, dir }, `cannot load the model in ${dir} (MODEL_DIR)`);
      await Promise.allSettled([...models.map((m) => m.close()), store.close()]);
      process.exit(1);
    }
    const model = models[models.length - 1];
    log.info({ model: model.id, dir, quant: config.quant[i], contextLength: model.contextLength, ms: Date.now() - started }, 'model loaded');
  }

  const app = await buildApp({
    models,
    loggerInstance: log,
    bodyLimit: config.bodyLimitBytes,
    maxConcurrentPerModel: config.maxConcurrentPerModel,
    maxQueuePerModel: config.maxQueuePerModel,
    rejectDelayMs: config.rejectDelayMs,
    activationStore: store,
    activationCacheEvents: cacheEvents,
    auth: { apiKeys: config.apiKeys, metrics: config.authMetrics, docs: config.authDocs },
    rateLimitPerMinute: config.rateLimitPerMinute,
    corsOrigins: config.corsOrigins,
    tokenizerThreads: config.tokenizerThreads,
    limits: { maxRequestTokens: config.maxRequestTokens, requestTimeoutMs: config.requestTimeoutMs },
    connections: { receiveTimeoutMs: config.receiveTimeoutMs, maxConnections: config.maxConnections, maxRequestsPerSocket: config.maxRequestsPerSocket },
  });
  await loading.close();
  const address = await app.listen({ port: loading.port, host: config.host });
  log.info({ address, models: models.map((m) => m.id) }, `serving ${models.map((m) => m.id).join(', ')} at ${address}`);

  let stopping = false;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    void shutdown(app, models, [pool, store], config, signal);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** Drains and closes the app, then the models and what they were built with. */
async function shutdown(app: App, models: ServedModel[], shared: { close(): Promise<void> }[], config: Config, signal: NodeJS.Signals): Promise<void> {
  app.log.info({ signal }, 'shutting down');
  try {
    await drainAndClose(app, {
      // Ctrl-C in a terminal has no balancer to tell: only SIGTERM waits for one.
      drainDelayMs: signal === 'SIGTERM' ? config.drainDelayMs : 0,
      timeoutMs: config.shutdownTimeoutMs,
      log: (level, message) => app.log[level](message),
    });
  } catch (err) {
    app.log.error({ err }, 'error while closing the server');
  }
  const closed = await Promise.allSettled([...models.map((m) => m.close()), ...shared.map((s) => s.close())]);
  for (const result of closed) {
    if (result.status === 'rejected') app.log.error({ err: result.reason }, 'error while closing a model');
  }
  app.log.info('stopped');
  process.exit(0);
}

await main();
