/**
 * A count-based baseline on the same tokens: an interpolated bigram model,
 *   p(w | v) = lambda * c(v, w) / c(v) + (1 - lambda) * p1(w),   p1(w) = (c(w) + 1) / (N + V)
 * (add-one unigram, so no token has probability 0), with lambda chosen on held-out tokens.
 */
export class BigramModel {
  private readonly pairs = new Map<number, Map<number, number>>();
  private readonly unigram: Float64Array;
  private readonly contexts: Float64Array;
  private total = 0;
  lambda = 0.5;

  constructor(
    readonly vocab: number,
    stream: Int32Array,
  ) {
    this.unigram = new Float64Array(vocab);
    this.contexts = new Float64Array(vocab);
    for (let i = 0; i < stream.length; i++) {
      this.unigram[stream[i]]++;
      this.total++;
      if (i + 1 < stream.length) {
        const v = stream[i];
        this.contexts[v]++;
        let row = this.pairs.get(v);
        if (!row) {
          row = new Map();
          this.pairs.set(v, row);
        }
        row.set(stream[i + 1], (row.get(stream[i + 1]) ?? 0) + 1);
      }
    }
  }

  prob(v: number, w: number): number {
    const p1 = (this.unigram[w] + 1) / (this.total + this.vocab);
    const c = this.contexts[v];
    const p2 = c > 0 ? (this.pairs.get(v)?.get(w) ?? 0) / c : p1;
    return this.lambda * p2 + (1 - this.lambda) * p1;
  }

  /** Summed negative log-likelihood (nats) of every token after the first. */
  nats(stream: Int32Array): number {
    let sum = 0;
    for (let i = 1; i < stream.length; i++) sum -= Math.log(this.prob(stream[i - 1], stream[i]));
    return sum;
  }

  /** Picks lambda from a grid by held-out likelihood. */
  tune(heldOut: Int32Array): number {
    let best = { lambda: 0.5, nats: Infinity };
    for (let l = 0.05; l < 1; l += 0.05) {
      this.lambda = l;
      const n = this.nats(heldOut);
      if (n < best.nats) best = { lambda: l, nats: n };
    }
    this.lambda = best.lambda;
    return best.lambda;
  }
}

/** Bits per byte of a summed loss in nats over text of `bytes` UTF-8 bytes. */
export const bitsPerByte = (nats: number, bytes: number) => nats / Math.LN2 / bytes;
