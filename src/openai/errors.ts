/**
 * Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so that
 * OpenAI clients surface our messages the same way they surface OpenAI's.
 */

/**
 * OpenAI reports every client mistake (404 and 413 included) as `invalid_request_error`; a
 * full queue is a 429 `rate_limit_error` (the type OpenAI-compatible gateways use; OpenAI's
 * clients go by the status and its Retry-After header).
 */
export type ApiErrorType = 'invalid_request_error' | 'server_error' | 'service_unavailable' | 'rate_limit_error';

export interface ApiErrorBody {
  error: {
    message: string;
    type: ApiErrorType;
    param: string | null;
    code: string | null;
  };
}

/**
 * Longest message an error carries. Messages quote what the client sent (a model name, a
 * field path), and a 1 MB name must not come back as a 1 MB response and log line.
 */
export const MAX_MESSAGE_LENGTH = 1024;

/** At most `max` characters of client input, for quoting in a message. */
export function excerpt(text: string, max = 64): string {
  return text.length <= max ? text : `${text.slice(0, max)}… (${text.length} characters)`;
}

/** An error meant for the client: its message is safe to show and its status is final. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly type: ApiErrorType,
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Response headers that go with the error (Retry-After on a 429). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message.length <= MAX_MESSAGE_LENGTH ? message : `${message.slice(0, MAX_MESSAGE_LENGTH - 1)}…`);
    this.name = 'ApiError';
  }

  toBody(): ApiErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export function invalidRequest(message: string, param: string | null = null, code: string | null = null): ApiError {
  return new ApiError(400, message, 'invalid_request_error', param, code);
}

export function modelNotFound(name: string): ApiError {
  return new ApiError(404, `The model '${excerpt(name)}' does not exist.`, 'invalid_request_error', 'model', 'model_not_found');
}

/** What a client sees for a failure we did not foresee; details stay in the server log. */
export function internalError(): ApiError {
  return new ApiError(500, 'The server had an error while processing your request.', 'server_error', null, 'internal_error');
}

/**
 * The model computed NaN or infinite log-probabilities (`what` says which). The model is at
 * fault, not the request, and JSON cannot carry such numbers: a 500 that says so, instead of
 * nulls or a serializer failure.
 */
export function nonFiniteLogits(what: string): ApiError {
  return new ApiError(
    500,
    `The model produced non-finite values (${what}); it cannot be scored or served as it is.`,
    'server_error',
    null,
    'non_finite_logits',
  );
}

/** The model's queue is full: retry after about `retryAfterSeconds`. */
export function queueFull(model: string, waiting: number, retryAfterSeconds: number): ApiError {
  return new ApiError(
    429,
    `Model '${model}' is busy: ${waiting} requests are already waiting. Retry in about ${retryAfterSeconds} s.`,
    'rate_limit_error',
    null,
    'queue_full',
    { 'retry-after': String(retryAfterSeconds) },
  );
}

/** The server is draining: the balancer should send this request elsewhere. */
export function shuttingDown(): ApiError {
  return new ApiError(503, 'The server is shutting down; retry on another instance.', 'service_unavailable', null, 'shutting_down');
}

/**
 * The client hung up while its request waited in the queue: nobody reads this answer, but the
 * logs and the request metrics get a status (499, as nginx names it).
 */
export function clientClosed(): ApiError {
  return new ApiError(499, 'The client closed the connection before the request ran.', 'invalid_request_error', null, 'client_closed_request');
}

/**
 * A missing or wrong API key: 401 with `invalid_api_key`, as OpenAI answers, and the
 * `WWW-Authenticate` challenge RFC 6750 asks for (`invalid_token` when a key was presented).
 * The message never quotes the presented key: it would land in logs and proxies.
 */
export function invalidApiKey(presented: boolean): ApiError {
  return new ApiError(
    401,
    presented
      ? 'Incorrect API key provided. Send one of the configured keys as "Authorization: Bearer <key>".'
      : 'You didn\'t provide an API key. Send it as "Authorization: Bearer <key>".',
    'invalid_request_error',
    null,
    'invalid_api_key',
    { 'www-authenticate': presented ? 'Bearer error="invalid_token"' : 'Bearer' },
  );
}

/** The client (API key, or address without keys) used up its requests per minute. */
export function rateLimitExceeded(limitPerMinute: number, retryAfterSeconds: number): ApiError {
  return new ApiError(
    429,
    `Rate limit reached: ${limitPerMinute} requests per minute. Retry in ${retryAfterSeconds} s.`,
    'rate_limit_error',
    null,
    'rate_limit_exceeded',
    { 'retry-after': String(retryAfterSeconds) },
  );
}
