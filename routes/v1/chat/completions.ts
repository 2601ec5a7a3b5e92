/**
 * POST /v1/chat/completions, OpenAI's chat completions, JSON or streamed as server-sent
 * events. The messages are rendered with the model's chat template (400 chat_template_missing
 * without one), then the request runs as /v1/completions runs: resolve the model, wait for
 * its turn (429 when its queue is full), generate; a client that disconnects aborts it.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { prepareChat } from '../../../src/openai/chat-request.js';
import { chatCompletionMeta, createChatCompletion, streamChatCompletion } from '../../../src/openai/chat-run.js';
import { ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ErrorResponse } from '../../../src/openai/schemas.js';

const chatCompletions: FastifyPluginAsyncTypebox = async (fastify) => {
  fastify.post(
    '/completions',
    {
      config: { metricsEndpoint: 'chat_completions', admission: true },
      schema: {
        tags: ['completions'],
        summary: 'Create a chat completion (OpenAI chat completions API)',
        description:
          "The messages are rendered into a prompt by the model's chat template (`chat_template` in its " +
          'tokenizer_config.json, or the CHAT_TEMPLATE file the server was started with); a model without one ' +
          'answers 400 `chat_template_missing`. With `stream: true` the answer is `text/event-stream`: per choice ' +
          'a chunk with `delta: {role: "assistant", content: ""}`, `delta: {content}` pieces, and a chunk with ' +
          "`delta: {}` and `finish_reason` (and that choice's `sparsity`); a usage chunk with no choices when " +
          '`stream_options.include_usage`; then `data: [DONE]`. `sparsity`, `latency_budget_ms`, `activation` and ' +
          '`sparse_prefill` choose how sparse it runs; a model whose queue is full answers 429 with Retry-After.',
        body: ChatCompletionRequest,
        response: {
          200: {
            description: 'The chat completion, or with `stream: true` a stream of chat completion chunks',
            content: {
              'application/json': { schema: ChatCompletion },
              'text/event-stream': { schema: ChatCompletionChunk },
            },
          },
          '4xx': ErrorResponse,
          '5xx': ErrorResponse,
        },
      },
    },
    async (request, reply) => {
      const model = fastify.resolveModel(request.body.model);
      const meta = chatCompletionMeta(model);
      return fastify.serveGeneration(request, reply, model, {
        what: 'chat completion',
        prepare: (encode) => prepareChat(model, request.body, fastify.limits, encode),
        create: (prepared, signal, onResult) => createChatCompletion(model, prepared, signal, meta, onResult),
        stream: (prepared, signal, onResult) => streamChatCompletion(model, prepared, signal, meta, onResult),
      });
    },
  );
};

export default chatCompletions;
