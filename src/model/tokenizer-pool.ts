/**
 * Tokenizing long texts on worker threads (piscina), so that the event loop keeps serving while
 * a megabyte is tokenized: @huggingface/tokenizers is plain JavaScript, and a SentencePiece-style
 * BPE without pre-tokenization is superlinear (1 MB of text takes seconds).
 */
import { Piscina } from 'piscina';
import type { EncodeTask } from './tokenizer-worker.js';

// Under a TypeScript loader (tsx, tap) the worker is the .ts file next to this one, which the
// worker thread loads with the same loader (workers inherit execArgv); compiled, the .js file.
const WORKER = new URL(import.meta.url.endsWith('.ts') ? './tokenizer-worker.ts' : './tokenizer-worker.js', import.meta.url).href;

/** Tasks waiting per thread before `encode` refuses more (TokenizerBusyError). */
const QUEUE_PER_THREAD = 16;

export class TokenizerBusyError extends Error {
  constructor() {
    super('every tokenizer thread is busy and their queue is full');
    this.name = 'TokenizerBusyError';
  }
}

export class TokenizerPool {
  private readonly pool: Piscina<EncodeTask, number[][]>;

  constructor(threads: number) {
    this.pool = new Piscina({ filename: WORKER, minThreads: 1, maxThreads: threads, maxQueue: threads * QUEUE_PER_THREAD, idleTimeout: 60_000 });
  }

  /** Token ids of each text; a task whose `signal` aborts is dropped (or its thread stopped). */
  async encode(dir: string, texts: string[], addSpecialTokens: boolean, signal?: AbortSignal): Promise<number[][]> {
    if (this.pool.queueSize >= (this.pool.options.maxQueue as number)) throw new TokenizerBusyError();
    return this.pool.run({ dir, texts, addSpecialTokens }, { signal });
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}
