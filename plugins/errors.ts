/**
 * Every error leaves in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`:
 * schema violations, malformed or oversized bodies, unknown routes, errors the routes throw
 * on purpose (ApiError), request parameters the engine refuses (ParameterError), and unexpected failures (500, logged; the process keeps serving).
 */
import fp from 'fastify-plugin';
import type { FastifyError, FastifyPluginAsync, FastifyRequest } from 'fastify';
import { ApiError, excerpt, internalError, invalidRequest } from '../src/openai/errors.js';
import { requestField } from '../src/openai/execution.js';
import { ParameterError } from '../src/runtime/types.js';
import { schemaViolationError, type Expectations } from '../src/openai/validation.js';

const errorsPlugin: FastifyPluginAsync = async (fastify) => {
  fastify.setErrorHandler((err: FastifyError, request, reply) => {
    const apiError = toApiError(err, request, fastify.initialConfig.bodyLimit ?? 0);
    if (apiError.statusCode >= 500) {
      request.log.error({ err }, 'request failed');
    } else {
      // Refusals under load (429) and hang-ups (499) come in floods; each is counted in metrics.
      const level = apiError.statusCode === 429 || apiError.statusCode === 499 ? 'debug' : 'info';
      request.log[level]({ status: apiError.statusCode, param: apiError.param, code: apiError.code }, apiError.message);
    }
    return reply.status(apiError.statusCode).headers(apiError.headers).send(apiError.toBody());
  });

  fastify.setNotFoundHandler((request, reply) => {
    const err = invalidRequest(`Invalid URL (${request.method} ${excerpt(request.url, 256)}).`, null, 'unknown_url');
    return reply.status(404).send(err.toBody());
  });
};

function toApiError(err: FastifyError, request: FastifyRequest, bodyLimit: number): ApiError {
  if (err instanceof ApiError) return err;
  // Routes check execution options up front; one the engine finds only while planning is still the client's.
  if (err instanceof ParameterError) return invalidRequest(err.message, requestField(err.param), err.code);
  if (err.validation !== undefined) return schemaViolationError(err.validation, bodyExpectations(request));
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, `The request body is too large; the limit is ${bodyLimit} bytes.`, 'invalid_request_error', null, 'request_too_large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(
        415,
        `Unsupported content type '${excerpt(request.headers['content-type'] ?? '')}'; send application/json.`,
        'invalid_request_error',
        null,
        'unsupported_media_type',
      );
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return invalidRequest('The request body is not valid JSON.', null, 'invalid_json');
  }
  // Fastify's own client errors (bad content type or length...) keep their status and text.
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) return new ApiError(status, err.message, 'invalid_request_error', null, err.code ?? null);
  return internalError();
}

/** The body properties' descriptions of the route's schema, for "expected ..." messages. */
function bodyExpectations(request: FastifyRequest): Expectations {
  const body: unknown = request.routeOptions.schema?.body;
  if (typeof body !== 'object' || body === null || !('properties' in body)) return {};
  const properties = body.properties;
  if (typeof properties !== 'object' || properties === null) return {};
  const expected: Expectations = {};
  for (const [name, schema] of Object.entries(properties)) {
    expected[name] = describe(schema);
  }
  return expected;
}

function describe(schema: unknown): string | undefined {
  if (typeof schema !== 'object' || schema === null) return undefined;
  if ('description' in schema && typeof schema.description === 'string') return schema.description;
  // Nullable fields are anyOf [the field, null]: the description sits on the field.
  if ('anyOf' in schema && Array.isArray(schema.anyOf)) {
    for (const branch of schema.anyOf) {
      const found = describe(branch);
      if (found !== undefined) return found;
    }
  }
  return undefined;
}

export default fp(errorsPlugin, { name: 'errors', fastify: '5.x' });
