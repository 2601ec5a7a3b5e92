/**
 * Cache keys: `${prefix}v1:${modelHash}:${metric}:${sha256 of the tokens}`.
 *
 * - `v1` versions the key space: a change of what is stored (or of this scheme) moves to new
 *   keys instead of reading old values under the new meaning.
 * - The prompt is hashed (its tokens as int32 little-endian bytes) so keys stay short however
 *   long the prompt is; sha256 makes a collision between two prompts a non-issue.
 * - modelHash and metric are percent-encoded (a no-op for hex hashes and plain metric names) so
 *   a ':' inside one of them cannot make two different keys spell the same string.
 */
import { createHash } from 'node:crypto';
import type { ActivationKey } from './types.js';

export const KEY_VERSION = 'v1';

/** sha256 (hex) of the token ids as int32 LE; throws a RangeError for a non-int32 token. */
export function hashTokens(tokens: readonly number[]): string {
  const bytes = Buffer.allocUnsafe(4 * tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    // Token ids are non-negative, but any int32 is accepted: the rule is "exactly representable".
    if (!Number.isInteger(t) || t < -0x8000_0000 || t > 0x7fff_ffff) {
      throw new RangeError(`Token ${i} (${t}) is not a 32-bit integer`);
    }
    bytes.writeInt32LE(t, 4 * i);
  }
  return createHash('sha256').update(bytes).digest('hex');
}

export function cacheKey(prefix: string, key: ActivationKey): string {
  return `${prefix}${KEY_VERSION}:${encodeURIComponent(key.modelHash)}:${encodeURIComponent(key.metric)}:${hashTokens(key.tokens)}`;
}
