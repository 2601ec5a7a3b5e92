/**
 * The session pool: ONNX Runtime sessions by key (model, tier, kind), built on first use, kept
 * by least-recent use within a memory budget. A session in use is never evicted; the budget may
 * be exceeded while everything is in use, and is restored as uses end.
 */
export interface Releasable {
  release(): Promise<void>;
}

interface Entry {
  key: string;
  bytes: number;
  value: Promise<Releasable>;
  uses: number;
  lastUsed: number;
}

export interface Lease<T> {
  value: T;
  /** Ends this use; the pool may then evict the session. */
  done(): void;
}

export interface PoolEntryInfo {
  key: string;
  bytes: number;
  inUse: boolean;
}

export class SessionPool {
  private readonly entries = new Map<string, Entry>();
  private clock = 0;

  /** `budgetBytes`: total estimated weight bytes the pool may hold (Infinity: no limit). */
  constructor(readonly budgetBytes = Infinity) {}

  /** The session under `key`, built by `build` when absent. `bytes` is its estimated size. */
  async acquire<T extends Releasable>(key: string, bytes: number, build: () => Promise<T>): Promise<Lease<T>> {
    let entry = this.entries.get(key);
    if (!entry) {
      entry = { key, bytes, value: build(), uses: 0, lastUsed: 0 };
      this.entries.set(key, entry);
      // A failed build leaves no entry behind: the next request tries again.
      entry.value.catch(() => this.entries.get(key) === entry && this.entries.delete(key));
    }
    entry.uses++;
    entry.lastUsed = ++this.clock;
    const e = entry;
    try {
      const value = (await e.value) as T;
      this.evict();
      let ended = false;
      return {
        value,
        done: () => {
          if (ended) return;
          ended = true;
          e.uses--;
          this.evict();
        },
      };
    } catch (err) {
      e.uses--;
      throw err;
    }
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Estimated bytes held under `key` (0 when absent). */
  bytesOf(key: string): number {
    return this.entries.get(key)?.bytes ?? 0;
  }

  get bytes(): number {
    let sum = 0;
    for (const e of this.entries.values()) sum += e.bytes;
    return sum;
  }

  info(): PoolEntryInfo[] {
    return [...this.entries.values()].map((e) => ({ key: e.key, bytes: e.bytes, inUse: e.uses > 0 }));
  }

  private evict(): void {
    const idle = [...this.entries.values()].filter((e) => e.uses === 0).sort((a, b) => a.lastUsed - b.lastUsed);
    while (this.bytes > this.budgetBytes && idle.length > 0) {
      const e = idle.shift()!;
      this.entries.delete(e.key);
      void e.value.then((s) => s.release()).catch(() => {});
    }
  }

  /** Releases every session (shutdown). */
  async close(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    await Promise.all(all.map((e) => e.value.then((s) => s.release()).catch(() => {})));
  }
}
