/**
 * In-process activation-score cache: an LRU bounded by total bytes and by age (TTL).
 *
 * It is the whole cache when no Redis is configured, and the front of the Redis store
 * otherwise (index.ts), where it keeps serving prompts this process has seen while Redis is
 * down. A JavaScript Map iterates in insertion order, so re-inserting an entry on every hit
 * keeps the least recently used entry first, which is the one evicted.
 *
 * Scores are copied in and out: callers may sort or overwrite the arrays they get (top-k
 * selection does), and that must not change what the next request reads. A copy of a model's
 * scores is a memcpy of a few hundred KiB, small beside the attribution it saves.
 */
import { emit, type CacheEventListener } from './events.js';
import { cacheKey } from './key.js';
import type { ActivationKey, ActivationStore, LayerScores } from './types.js';

export const DEFAULT_MEMORY_BYTES = 64 * 1024 * 1024;
export const DEFAULT_TTL_SECONDS = 3600;

/** Rough bookkeeping cost of an entry and of each array beside its data, so many tiny entries still count. */
const ENTRY_OVERHEAD_BYTES = 128;
const ARRAY_OVERHEAD_BYTES = 96;

export interface MemoryStoreOptions {
  /** Upper bound on the bytes held (score data plus a small per-entry overhead). */
  maxBytes?: number;
  /** Entries older than this are not served. */
  ttlSeconds?: number;
  onEvent?: CacheEventListener;
  /** The clock, in milliseconds; tests pass a fake one to expire entries without waiting. */
  now?: () => number;
}

interface Entry {
  scores: LayerScores;
  bytes: number;
  expiresAt: number;
}

/** Bytes an entry is charged: its key, its score data and the overheads above. */
export function entryBytes(key: string, scores: LayerScores): number {
  let bytes = ENTRY_OVERHEAD_BYTES + 2 * key.length;
  for (const layer of scores) bytes += ARRAY_OVERHEAD_BYTES + layer.byteLength;
  return bytes;
}

function copyScores(scores: LayerScores): LayerScores {
  return scores.map((layer) => layer.slice());
}

export class MemoryStore implements ActivationStore {
  readonly kind = 'memory';
  readonly maxBytes: number;
  readonly ttlMs: number;
  private readonly entries = new Map<string, Entry>();
  private totalBytes = 0;
  private readonly onEvent: CacheEventListener | undefined;
  private readonly now: () => number;

  constructor(options: MemoryStoreOptions = {}) {
    this.maxBytes = options.maxBytes ?? DEFAULT_MEMORY_BYTES;
    this.ttlMs = 1000 * (options.ttlSeconds ?? DEFAULT_TTL_SECONDS);
    if (!(this.maxBytes >= 0)) throw new RangeError(`maxBytes must be >= 0, got ${this.maxBytes}`);
    if (!(this.ttlMs > 0)) throw new RangeError(`ttlSeconds must be > 0, got ${options.ttlSeconds}`);
    this.onEvent = options.onEvent;
    this.now = options.now ?? Date.now;
  }

  /** Entries held (expired ones included until they are looked up or evicted). */
  get size(): number {
    return this.entries.size;
  }

  /** Bytes charged for the entries held; never above maxBytes. */
  get bytes(): number {
    return this.totalBytes;
  }

  async get(key: ActivationKey): Promise<LayerScores | null> {
    return this.lookup(key, true);
  }

  async set(key: ActivationKey, scores: LayerScores): Promise<void> {
    this.store(key, scores, true);
  }

  async close(): Promise<void> {
    this.entries.clear();
    this.totalBytes = 0;
  }

  /**
   * The synchronous core of get, for the layered store, which counts events itself (`report`
   * false) and must not have a memory miss counted as well as the Redis answer that follows.
   */
  lookup(key: ActivationKey, report: boolean): LayerScores | null {
    let id: string;
    try {
      id = cacheKey('', key);
    } catch {
      if (report) emit(this.onEvent, 'error', { op: 'get', backend: 'memory', reason: 'invalid' });
      return null;
    }
    const entry = this.entries.get(id);
    if (entry === undefined || entry.expiresAt <= this.now()) {
      if (entry !== undefined) this.remove(id, entry);
      if (report) emit(this.onEvent, 'miss', { op: 'get', backend: 'memory' });
      return null;
    }
    // Most recently used goes last, furthest from eviction.
    this.entries.delete(id);
    this.entries.set(id, entry);
    if (report) emit(this.onEvent, 'hit', { op: 'get', backend: 'memory' });
    return copyScores(entry.scores);
  }

  /** The synchronous core of set. An entry larger than the whole budget is not kept. */
  store(key: ActivationKey, scores: LayerScores, report: boolean): void {
    let id: string;
    try {
      id = cacheKey('', key);
    } catch {
      if (report) emit(this.onEvent, 'error', { op: 'set', backend: 'memory', reason: 'invalid' });
      return;
    }
    const old = this.entries.get(id);
    if (old !== undefined) this.remove(id, old);
    const bytes = entryBytes(id, scores);
    if (bytes > this.maxBytes) return;
    while (this.totalBytes + bytes > this.maxBytes) {
      const oldest = this.entries.entries().next();
      if (oldest.done === true) break;
      this.remove(oldest.value[0], oldest.value[1]);
    }
    this.entries.set(id, { scores: copyScores(scores), bytes, expiresAt: this.now() + this.ttlMs });
    this.totalBytes += bytes;
  }

  private remove(id: string, entry: Entry): void {
    this.entries.delete(id);
    this.totalBytes -= entry.bytes;
  }
}
