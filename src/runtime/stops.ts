/**
 * Stop strings over streamed text. Text is released only once no stop string can still begin
 * in it, so a stop string split across tokens is never streamed out before it is recognised.
 */
export class StopMatcher {
  constructor(private readonly stops: string[]) {}

  /** Index of the earliest complete stop string in `text`, or -1. */
  find(text: string): number {
    let first = -1;
    for (const s of this.stops) {
      const i = text.indexOf(s);
      if (i >= 0 && (first < 0 || i < first)) first = i;
    }
    return first;
  }

  /** Length of the prefix of `text` that no stop string can extend into. */
  safeLength(text: string): number {
    let held = 0;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, text.length); n > held; n--) {
        if (text.endsWith(s.slice(0, n))) {
          held = n;
          break;
        }
      }
    }
    return text.length - held;
  }
}
