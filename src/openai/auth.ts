/**
 * API keys: which routes need one, and matching a presented Bearer key against the configured
 * ones in constant time. plugins/auth.ts wires this into the request lifecycle.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

/** Which of the optional routes need a key too (when keys are configured). */
export interface AuthScope {
  /** /metrics */
  metrics: boolean;
  /** /docs, /docs/* and /openapi.json */
  docs: boolean;
}

/**
 * Whether a request to the route `url` (Fastify's route pattern; undefined for an unknown route)
 * needs a key. Everything needs one except the probes and, by configuration, /metrics and the
 * docs: a route added later is protected without anyone remembering to list it, and an
 * unauthenticated client cannot tell which URLs exist (an unknown URL answers 401 to it, 404
 * only with a valid key).
 */
export function needsKey(url: string | undefined, scope: AuthScope): boolean {
  if (url === '/health' || url === '/ready') return false;
  if (url === '/metrics') return scope.metrics;
  if (url === '/openapi.json' || url === '/docs' || url?.startsWith('/docs/') === true) return scope.docs;
  return true;
}

export type KeyCheck =
  | { ok: true /** Index of the matching configured key: an id that says nothing about the key. */; index: number }
  | { ok: false; reason: 'missing' | 'malformed' | 'unknown' };

const digest = (key: string): Buffer => createHash('sha256').update(key, 'utf8').digest();

/** The configured keys, kept only as SHA-256 digests. */
export class ApiKeys {
  private readonly digests: Buffer[];

  constructor(keys: readonly string[]) {
    if (keys.length === 0) throw new RangeError('ApiKeys needs at least one key');
    // Duplicates would only make two indexes (two rate-limit buckets) of one key.
    this.digests = [...new Set(keys)].map(digest);
  }

  get size(): number {
    return this.digests.length;
  }

  /**
   * Checks an Authorization header value. Comparing digests makes every comparison the same
   * length, so neither a key's content nor its length leaks through timing; every configured
   * key is compared, so neither does which one matched.
   */
  check(authorization: string | undefined): KeyCheck {
    if (authorization === undefined || authorization === '') return { ok: false, reason: 'missing' };
    // RFC 7235: the scheme is case-insensitive.
    const match = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    if (match === null) return { ok: false, reason: 'malformed' };
    const presented = digest(match[1]);
    let index = -1;
    for (let i = 0; i < this.digests.length; i++) {
      if (timingSafeEqual(presented, this.digests[i])) index = i;
    }
    return index >= 0 ? { ok: true, index } : { ok: false, reason: 'unknown' };
  }
}

/**
 * Whether listening on `host` reaches only this machine: without keys, any other address
 * serves everyone who can route to it.
 */
export function isLoopbackHost(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase();
  if (bare === 'localhost') return true;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1' || /^::ffff:127\./.test(bare);
  return false;
}

/**
 * pino's redaction for the server's logger: Fastify logs no headers by default, but any log
 * line that ever includes them (a serializer change, a debug statement) must not carry a key.
 */
export const LOG_REDACT = {
  paths: ['req.headers.authorization', 'request.headers.authorization', 'headers.authorization', 'authorization'],
  censor: '[redacted]',
};
