/**
 * vLLM's tokenizer endpoints (GET /tokenizer_info, POST /tokenize, POST /detokenize), which
 * lm-evaluation-harness uses as a remote tokenizer. The model is the one named by `model`, or
 * the first served model.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { abortOnDisconnect } from '../src/openai/disconnect.js';
import { ApiError } from '../src/openai/errors.js';
import {
  DetokenizeRequest,
  DetokenizeResponse,
  ErrorResponse,
  TokenizeRequest,
  TokenizeResponse,
  TokenizerInfo,
  TokenizerInfoQuery,
} from '../src/openai/schemas.js';
import { detokenize, tokenize, tokenizerInfo } from '../src/openai/tokenization.js';
import type { ServedModel } from '../src/runtime/types.js';

const tokenizer: FastifyPluginAsyncTypebox = async (fastify) => {
  /** The named model (404 when unknown), or the first one. */
  const pick = (name: string | null | undefined): ServedModel => {
    if (name != null) return fastify.resolveModel(name);
    const first = fastify.models.values().next();
    if (first.done === true) throw new ApiError(503, 'No model is loaded.', 'service_unavailable', null, 'not_ready');
    return first.value;
  };
  const errors = { '4xx': ErrorResponse, '5xx': ErrorResponse };

  fastify.get(
    '/tokenizer_info',
    {
      schema: {
        tags: ['tokenizer'],
        summary: "The tokenizer's special tokens and limits (vLLM's /tokenizer_info)",
        querystring: TokenizerInfoQuery,
        response: { 200: TokenizerInfo, ...errors },
      },
    },
    async (request) => tokenizerInfo(pick(request.query.model)),
  );

  fastify.post(
    '/tokenize',
    {
      schema: {
        tags: ['tokenizer'],
        summary: "Token ids of a text (vLLM's /tokenize)",
        body: TokenizeRequest,
        response: { 200: TokenizeResponse, ...errors },
      },
    },
    async (request, reply) => {
      const model = pick(request.body.model);
      return tokenize(model, request.body, fastify.encoder(model, abortOnDisconnect(reply.raw)));
    },
  );

  fastify.post(
    '/detokenize',
    {
      schema: {
        tags: ['tokenizer'],
        summary: "The text of token ids (vLLM's /detokenize)",
        body: DetokenizeRequest,
        response: { 200: DetokenizeResponse, ...errors },
      },
    },
    async (request) => detokenize(pick(request.body.model), request.body),
  );
};

export default tokenizer;
