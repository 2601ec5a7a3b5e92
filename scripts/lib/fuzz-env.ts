/**
 * The server's limits under fuzzing, set small so that a valid generated request is quick
 * (read by src/config.ts; honoured as the server's limits work lands).
 */
export const FUZZ_SERVER_ENV = { MAX_REQUEST_TOKENS: '256', REQUEST_TIMEOUT_MS: '5000' };
