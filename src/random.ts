/** A source of uniform numbers in [0, 1). */
export type Rng = () => number;

/** A seeded source of uniform numbers in [0, 1). */
export function createRng(seed: number): Rng {
  const prng = new Prng(seed);
  return () => prng.next();
}

/** A seed for requests that give none. */
export function randomSeed(): number {
  return Math.floor(Math.random() * 2 ** 32);
}

/**
 * A small deterministic PRNG, for sampling with a request's seed and for test checkpoints: a Weyl sequence (step = 2^32 / golden
 * ratio) passed through MurmurHash3's 32-bit finaliser. Same seed, same numbers, on any
 * platform; statistical quality is ample for random initialisation.
 */
export class Prng {
  private state: number;
  private spare: number | null = null;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Seeds a generator from a base seed and a label (e.g. a tensor name), so each tensor's values do not depend on the others. */
  static forLabel(seed: number, label: string): Prng {
    // FNV-1a over the UTF-16 units of the label, mixed with the seed.
    let h = 0x811c9dc5;
    for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193);
    return new Prng((h ^ Math.imul(seed >>> 0, 0x9e3779b9)) >>> 0);
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    this.state = (this.state + 0x9e3779b9) >>> 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  }

  /** Uniform in [0, 1): for sampling and index draws. */
  next(): number {
    return this.nextUint32() / 4294967296;
  }

  /** Uniform in (0, 1]: never 0, so it is safe under a logarithm. */
  uniform(): number {
    return (this.nextUint32() + 1) / 4294967296;
  }

  /** Standard normal by the Box-Muller transform (which yields two; one is kept for the next call). */
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const r = Math.sqrt(-2 * Math.log(this.uniform()));
    const theta = 2 * Math.PI * this.uniform();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** `n` values of mean + std * N(0, 1). */
  normals(n: number, std: number, mean = 0): Float32Array {
    const out = new Float32Array(n);
    for (let i = 0; i < n; i++) out[i] = mean + std * this.normal();
    return out;
  }
}
