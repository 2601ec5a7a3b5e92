/**
 * The server's limits under fuzzing: few tokens per request, so that a valid generated request is
 * quick; a deadline long enough that a valid request (64 continuations scored, on a busy machine)
 * never meets it, because a 504 would be a 5xx the fuzzer reports. The deadline itself is
 * tested in test/plugins/limits.test.ts.
 */
export const FUZZ_SERVER_ENV = { MAX_REQUEST_TOKENS: '256', REQUEST_TIMEOUT_MS: '30000' };
