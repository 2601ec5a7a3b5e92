/**
 * Continuous batching: the sequences that decode through the same session with the same inputs
 * take each step together, in one graph run with one row per sequence, so that a step reads
 * every weight once for all of them (decode on a CPU is bound by those reads).
 *
 * A sequence joins with its prompt's cache after its prefill, asks for steps one token at a
 * time, and leaves when it finishes or is cancelled. A step runs for every member that has
 * asked by the time it starts; members join and leave between steps. Every graph run of a model
 * (these steps and the chunks of newcomers' prefills) goes through one RunQueue, so they take
 * turns on the cores instead of competing for them.
 */
import type * as ort from 'onnxruntime-node';
import { KvArena } from '../runtime/kv-arena.js';
import type { KvCache } from '../runtime/kv-cache.js';
import type { DecoderSession } from '../runtime/session.js';

/** Sequences per step at most, by default (MAX_BATCH_SIZE). */
export const DEFAULT_MAX_BATCH_SIZE = 8;
/**
 * Prompt tokens per prefill run at most, by default (PREFILL_CHUNK_TOKENS): a newcomer's prompt
 * holds the running sequences' next step back by one chunk's run at a time.
 */
export const DEFAULT_PREFILL_CHUNK_TOKENS = 64;

/**
 * What a graph run is for: the first chunk of a newcomer's prompt, a later chunk of a long
 * prompt, or a decode step of a batch.
 */
export type RunKind = 'first-chunk' | 'chunk' | 'step';

interface QueuedRun {
  job: () => Promise<unknown>;
  resolve(value: unknown): void;
  reject(err: unknown): void;
}

/**
 * One graph run at a time. A newcomer's first prompt chunk goes before anything else waiting, so
 * that a short prompt's first token waits only for the run in progress and the prompts ahead of
 * it (vLLM schedules prefills first too). A long prompt's later chunks take turns with the
 * waiting decode steps, so that the running sequences lose at most one chunk's time per step.
 */
export class RunQueue {
  private readonly waiting: Record<RunKind, QueuedRun[]> = { 'first-chunk': [], chunk: [], step: [] };
  private busy = false;
  private lastKind: RunKind = 'step';

  run<T>(job: () => Promise<T>, kind: RunKind): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting[kind].push({ job, resolve: resolve as (value: unknown) => void, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.busy) return;
    const waiting = (kind: RunKind) => this.waiting[kind].length > 0;
    let kind: RunKind | null = null;
    if (waiting('first-chunk')) kind = 'first-chunk';
    else if (waiting('chunk') && (this.lastKind === 'step' || !waiting('step'))) kind = 'chunk';
    else if (waiting('step')) kind = 'step';
    else if (waiting('chunk')) kind = 'chunk';
    if (kind === null) return;
    const run = this.waiting[kind].shift()!;
    this.busy = true;
    this.lastKind = kind;
    run
      .job()
      .then(run.resolve, run.reject)
      .finally(() => {
        this.busy = false;
        this.next();
      });
  }
}

interface PendingStep {
  token: number;
  resolve(logits: Float32Array): void;
  reject(err: unknown): void;
}

/** A sequence in a batch: its row of the arena once joined, and its length so far. */
export class BatchMember {
  /** Its row in the arena, or null until the next step loads its prompt cache. */
  row: number | null = null;
  pending: PendingStep | null = null;
  left = false;

  constructor(
    private readonly batch: DecodeBatch,
    /** The prompt's cache, until it is copied into the arena. */
    public cache: KvCache | null,
    /** Positions the sequence holds. */
    public length: number,
  ) {}

  /** The logits after `token`, which is appended to the sequence. */
  step(token: number): Promise<Float32Array> {
    if (this.left) return Promise.reject(new Error('the sequence has left its batch'));
    if (this.pending) return Promise.reject(new Error('a step is already pending'));
    return new Promise((resolve, reject) => {
      this.pending = { token, resolve, reject };
      this.batch.schedule();
    });
  }

  /** Frees its row at the next step. */
  leave(): void {
    this.left = true;
    this.cache = null;
    this.pending?.reject(new Error('the sequence left its batch'));
    this.pending = null;
    this.batch.schedule();
  }
}

export interface BatchStats {
  /** Rows of the step that just ran: its sequences, and any seated one that had not asked yet. */
  rows: number;
  /** Sequences it stepped. */
  stepped: number;
  /** How long the graph run took. */
  ms: number;
}

export class DecodeBatch {
  private members: BatchMember[] = [];
  private readonly arena: KvArena;
  private scheduled = false;

  constructor(
    private readonly session: DecoderSession,
    private readonly inputs: Record<string, ort.Tensor>,
    private readonly queue: RunQueue,
    /** Rows at most; later members wait for a row. */
    private readonly maxRows: number,
    private readonly vocabSize: number,
    /** Called when the batch has no member left, so that its owner can drop it. */
    private readonly onEmpty: () => void,
    /** Told the size of every step that runs. */
    private readonly onStep: (stats: BatchStats) => void = () => {},
  ) {
    this.arena = new KvArena(session.config);
  }

  get size(): number {
    return this.members.length;
  }

  join(cache: KvCache): BatchMember {
    const member = new BatchMember(this, cache, cache.length);
    this.members.push(member);
    return member;
  }

  /** Queues a step, unless one is queued that has not yet taken its members. */
  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    void this.queue.run(async () => {
      // The run's members are taken after the current macrotask: by then, members whose
      // previous step has just returned have sampled their next token and asked again, so
      // they share this run instead of forming a second batch that alternates with it.
      await new Promise((resolve) => setImmediate(resolve));
      this.scheduled = false;
      await this.runStep();
    }, 'step');
  }

  /** Rows for members that have joined since the last step, and the rows of the left ones closed up. */
  private arrange(): BatchMember[] {
    const staying = this.members.filter((m) => !m.left);
    this.members = staying;
    if (staying.length === 0) {
      this.onEmpty();
      return [];
    }
    const seated: BatchMember[] = [];
    for (const member of staying) {
      if (member.row === null && seated.length >= this.maxRows) continue;
      const row = seated.length;
      if (member.row === null) {
        this.arena.reserve(row + 1, member.length + 1);
        this.arena.load(row, member.cache!);
        member.cache = null;
      } else if (member.row !== row) {
        // Rows keep their order and only move up, into rows already vacated.
        this.arena.move(member.row, row, member.length);
      }
      member.row = row;
      seated.push(member);
    }
    return seated;
  }

  private async runStep(): Promise<void> {
    const seated = this.arrange();
    const asking = seated.filter((m) => m.pending !== null);
    if (asking.length === 0) return;
    // A seated member that has not asked yet (its client reads slowly) still needs a row: it
    // runs a placeholder token whose keys land past its length, where its next real step
    // overwrites them, and whose logits nobody reads.
    const steps = seated.map((m) => m.pending);
    for (const m of asking) m.pending = null;
    try {
      const t0 = performance.now();
      const logits = await this.session.step(
        steps.map((s) => s?.token ?? 0),
        seated.map((m) => m.length),
        this.arena,
        this.inputs,
      );
      this.onStep({ rows: seated.length, stepped: asking.length, ms: performance.now() - t0 });
      const V = this.vocabSize;
      seated.forEach((member, row) => {
        const step = steps[row];
        if (step === null) return;
        member.length++;
        step.resolve(logits.subarray(row * V, (row + 1) * V));
      });
    } catch (err) {
      for (const step of steps) step?.reject(err);
    }
    // Members left waiting for a row, or asking during this run, get the next step.
    if (this.members.some((m) => m.pending !== null)) this.schedule();
  }
}
