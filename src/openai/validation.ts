/**
 * Turns JSON-schema validation failures (Ajv's error objects, as Fastify reports them) into
 * one OpenAI-style 400 that names the offending parameter and says what was expected.
 */
import { type ApiError, excerpt, invalidRequest } from './errors.js';

/** The part of an Ajv error object we read. */
export interface SchemaViolation {
  instancePath: string;
  keyword: string;
  params: Record<string, unknown>;
  message?: string;
}

/** Top-level body properties' `description`s, used as "expected ..." text. */
export type Expectations = Record<string, string | undefined>;

export function schemaViolationError(violations: readonly SchemaViolation[], expected: Expectations = {}): ApiError {
  const missing = violations.find((v) => v.keyword === 'required');
  if (missing !== undefined && missing.instancePath === '') {
    const name = String(missing.params.missingProperty);
    return invalidRequest(`Missing required parameter: '${name}'.`, name, 'missing_required_parameter');
  }
  const detail = mostSpecific(violations);
  if (detail === undefined || detail.instancePath === '') {
    return invalidRequest('The request body must be a JSON object.', null, 'invalid_type');
  }
  const segments = detail.instancePath.split('/').slice(1).map(unescapePointer);
  const param = segments[0];
  // Paths name the client's own keys, which can be of any length.
  const location = excerpt(
    param +
      segments
        .slice(1)
        .map((s) => (/^\d+$/.test(s) ? `[${s}]` : `.${s}`))
        .join(''),
    128,
  );
  // When no alternative of a union got further than the parameter itself, Ajv's per-branch
  // complaints ("must be string", "must be array") mislead; the documented form does not.
  const unionFailed = violations.some((v) => v.keyword === 'anyOf' && v.instancePath === detail.instancePath);
  const wanted = expected[param];
  if (unionFailed && wanted !== undefined && segments.length === 1) {
    return invalidRequest(`Invalid value for '${param}': expected ${wanted}.`, param, 'invalid_value');
  }
  const suffix = wanted !== undefined ? ` (expected ${wanted})` : '';
  return invalidRequest(`Invalid value for '${location}': ${detail.message ?? 'invalid'}${suffix}.`, param, 'invalid_value');
}

/**
 * The violation closest to what the client got wrong: the deepest in the document and, at
 * equal depth, a broken constraint ("must be >= 0") over a type mismatch, which only says
 * that some alternative of a union did not apply.
 */
function mostSpecific(violations: readonly SchemaViolation[]): SchemaViolation | undefined {
  let best: SchemaViolation | undefined;
  for (const v of violations) {
    if (v.keyword === 'anyOf') continue;
    if (best === undefined || depth(v) > depth(best) || (depth(v) === depth(best) && best.keyword === 'type' && v.keyword !== 'type')) {
      best = v;
    }
  }
  return best ?? violations[0];
}

function depth(v: SchemaViolation): number {
  return v.instancePath === '' ? 0 : v.instancePath.split('/').length - 1;
}

/** JSON pointer escapes (RFC 6901). */
function unescapePointer(segment: string): string {
  return segment.replaceAll('~1', '/').replaceAll('~0', '~');
}
