/**
 * OpenAI's legacy `logprobs` object, built token by token so that streamed chunks and the
 * final response agree: `text_offset` keeps counting across chunks of the same choice.
 * Every logprob that goes out is finite (checkFinite).
 */
import type { TokenInfo } from '../runtime/types.js';
import { nonFiniteLogits } from './errors.js';
import type { CompletionLogprobs } from './schemas.js';

export class LogprobsBuilder {
  /**
   * Offsets count code points, as Python's `len` does (OpenAI's and vLLM's clients index the
   * text that way), not UTF-16 units.
   */
  private offset = 0;

  /** Logprobs of `tokens`, positioned after everything passed before. */
  next(tokens: readonly TokenInfo[]): CompletionLogprobs {
    const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    for (const token of tokens) {
      checkFinite(token);
      out.tokens.push(token.text);
      out.token_logprobs.push(token.logprob);
      out.top_logprobs.push(topObject(token));
      out.text_offset.push(this.offset);
      this.offset += codePoints(token.text);
    }
    return out;
  }
}

/** Appends `more` to `into` in place (the final response gathers every chunk's logprobs). */
export function appendLogprobs(into: CompletionLogprobs, more: CompletionLogprobs): void {
  into.tokens.push(...more.tokens);
  into.token_logprobs.push(...more.token_logprobs);
  into.top_logprobs.push(...more.top_logprobs);
  into.text_offset.push(...more.text_offset);
}

export function emptyLogprobs(): CompletionLogprobs {
  return { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
}

/**
 * OpenAI's top_logprobs maps token text to logprob. Two ids can share a text; the first
 * (most likely) wins. The engine already lists the sampled token among the alternatives
 * (OpenAI's "up to logprobs + 1"), spelled as the tokenizer spells it, which can differ from
 * its contribution to the text (a partial UTF-8 byte contributes ''), so nothing is added here.
 */
function topObject(token: TokenInfo): Record<string, number> | null {
  if (token.top === null) return null;
  // No prototype: a token spelled "__proto__" must be a key like any other.
  const top = Object.create(null) as Record<string, number>;
  for (const alt of token.top) {
    if (!Object.hasOwn(top, alt.token)) top[alt.token] = alt.logprob;
  }
  return top;
}

/**
 * Throws nonFiniteLogits unless the token's logprob and its alternatives' are finite (or
 * absent). JSON has no NaN or infinity: a serializer would fail on NaN and write null for
 * infinity, and either way the client would get no honest number.
 */
export function checkFinite(token: TokenInfo): void {
  const bad = (x: number | null) => x !== null && !Number.isFinite(x);
  if (bad(token.logprob)) throw nonFiniteLogits(`logprob ${String(token.logprob)} for token ${token.id}`);
  const alt = token.top?.find((a) => bad(a.logprob));
  if (alt !== undefined) throw nonFiniteLogits(`logprob ${String(alt.logprob)} for the alternative ${JSON.stringify(alt.token)} of token ${token.id}`);
}

function codePoints(text: string): number {
  let count = 0;
  for (const _ of text) count++;
  return count;
}
