/**
 * Errors in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so that
 * OpenAI clients surface our messages the same way they surface OpenAI's.
 */

/** OpenAI reports every client mistake (404 and 413 included) as `invalid_request_error`. */
export type ApiErrorType = 'invalid_request_error' | 'server_error' | 'service_unavailable';

export interface ApiErrorBody {
  error: {
    message: string;
    type: ApiErrorType;
    param: string | null;
    code: string | null;
  };
}

/** An error meant for the client: its message is safe to show and its status is final. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly type: ApiErrorType,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
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
  return new ApiError(404, `The model '${name}' does not exist.`, 'invalid_request_error', 'model', 'model_not_found');
}

/** What a client sees for a failure we did not foresee; details stay in the server log. */
export function internalError(): ApiError {
  return new ApiError(500, 'The server had an error while processing your request.', 'server_error', null, 'internal_error');
}
