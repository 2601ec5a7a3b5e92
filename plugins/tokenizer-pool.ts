/**
 * Worker threads for tokenizing long texts (src/model/tokenizer-pool.ts), shared by every
 * route: `fastify.encoder(model, signal)` gives the Encoder a route hands to src/openai. The
 * threads start with the app and stop when it closes.
 */
import fp from 'fastify-plugin';
import type { FastifyPluginAsync } from 'fastify';
import { TokenizerPool } from '../src/model/tokenizer-pool.js';
import { textEncoder, type Encoder } from '../src/openai/encoding.js';
import type { ServedModel } from '../src/runtime/types.js';

export interface TokenizerPoolOptions {
  /** Worker threads that tokenize long texts (TOKENIZER_THREADS); default 1. */
  tokenizerThreads?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Tokenizes for `model`: inline when short, on a worker thread when long; `signal` drops the work. */
    encoder(model: ServedModel, signal?: AbortSignal): Encoder;
  }
}

const tokenizerPoolPlugin: FastifyPluginAsync<TokenizerPoolOptions> = async (fastify, opts) => {
  const pool = new TokenizerPool(opts.tokenizerThreads ?? 1);
  fastify.decorate('encoder', (model: ServedModel, signal?: AbortSignal): Encoder => textEncoder(model, pool, signal));
  fastify.addHook('onClose', async () => {
    await pool.close();
  });
};

export default fp(tokenizerPoolPlugin, { name: 'tokenizer-pool', fastify: '5.x' });
