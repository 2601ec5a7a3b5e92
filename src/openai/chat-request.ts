/**
 * Turns a schema-valid chat completions request into what the engine runs: the messages
 * rendered by the model's chat template, tokenized as transformers' `apply_chat_template`
 * does (no special tokens added: the template writes its own BOS), and SamplingParams. The
 * checks are those of completions (src/openai/completion-request.ts), with chat's fields.
 */
import type { SamplingParams, ServedModel } from '../runtime/types.js';
import { renderChatTemplate, TemplateSyntaxError, type TemplateMessage } from './chat-template.js';
import { checkPrompt, rejectUnsupportedSampling, type PreparedCompletion } from './completion-request.js';
import { checkTextFits, textEncoder, type Encoder } from './encoding.js';
import { ApiError, invalidRequest } from './errors.js';
import { checkExecution, executionOptions } from './execution.js';
import { checkRequestTokens, DEFAULT_LIMITS, type RequestLimits } from './limits.js';
import { COMPLETION_DEFAULTS, type ChatCompletionRequest, type ChatMessage } from './schemas.js';

export interface PreparedChat extends PreparedCompletion {
  /** The rendered prompt, the one entry of `prompts` before tokenization. */
  promptText: string;
}

export async function prepareChat(
  model: ServedModel,
  body: ChatCompletionRequest,
  limits: Pick<RequestLimits, 'maxRequestTokens'> = DEFAULT_LIMITS,
  encode: Encoder = textEncoder(model),
): Promise<PreparedChat> {
  rejectUnsupported(body);
  const n = body.n ?? COMPLETION_DEFAULTS.n;
  const stream = body.stream ?? false;
  if (body.stream_options != null && !stream) {
    throw invalidRequest("'stream_options' is only allowed when 'stream' is true.", 'stream_options');
  }
  const logprobs = body.logprobs ?? false;
  if (body.top_logprobs != null && !logprobs) {
    throw invalidRequest("'top_logprobs' is only allowed when 'logprobs' is true.", 'top_logprobs');
  }
  // OpenAI deprecates max_tokens for max_completion_tokens; the newer one wins when both are sent.
  const maxTokensParam = body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
  const params: SamplingParams = {
    maxTokens: body.max_completion_tokens ?? body.max_tokens ?? COMPLETION_DEFAULTS.maxTokens,
    temperature: body.temperature ?? COMPLETION_DEFAULTS.temperature,
    topP: body.top_p ?? COMPLETION_DEFAULTS.topP,
    topK: COMPLETION_DEFAULTS.topK,
    seed: body.seed ?? undefined,
    stop: body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop,
    logprobs: logprobs ? (body.top_logprobs ?? 0) : null,
    echo: false,
  };
  // Before rendering and tokenizing: a refused request should cost nothing.
  checkRequestTokens(1, n, params.maxTokens, limits.maxRequestTokens);
  const execution = executionOptions(body);
  checkExecution(model, execution);
  const messages = body.messages.map(templateMessage);
  const promptText = render(model, messages);
  checkTextFits(model, promptText, 'messages', 'the rendered messages');
  const [ids] = await encode([promptText], false);
  checkPrompt(model, ids, params.maxTokens, 'the rendered messages', { prompt: 'messages', maxTokens: maxTokensParam });
  return { prompts: [ids], promptText, n, params, execution, stream, includeUsage: stream && body.stream_options?.include_usage === true };
}

function rejectUnsupported(body: ChatCompletionRequest): void {
  rejectUnsupportedSampling(body);
  for (const param of ['tools', 'functions'] as const) {
    const value = body[param];
    if (value != null && value.length > 0) {
      throw invalidRequest(`'${param}' is not supported by this server; omit it or send an empty array.`, param);
    }
  }
  for (const param of ['tool_choice', 'function_call'] as const) {
    const value = body[param];
    if (value != null && value !== 'none') {
      throw invalidRequest(`'${param}' is not supported by this server; omit it or send "none".`, param);
    }
  }
  if (body.response_format != null && body.response_format.type !== 'text') {
    throw invalidRequest('\'response_format\' is not supported by this server unless its type is "text".', 'response_format');
  }
}

/** What the template sees: content parts as one string, joined by newlines as vLLM joins them. */
function templateMessage(message: ChatMessage, i: number): TemplateMessage {
  const out: TemplateMessage = { role: message.role, content: contentText(message.content, i) };
  if (message.name != null) out.name = message.name;
  return out;
}

function contentText(content: ChatMessage['content'], i: number): string {
  if (typeof content === 'string') return content;
  return content
    .map((part, j) => {
      if (part.type !== 'text' || part.text === undefined) {
        throw invalidRequest(
          `Unsupported content part at 'messages[${i}].content[${j}]' (type ${JSON.stringify(part.type)}): this server accepts text parts {"type": "text", "text": string} only.`,
          `messages[${i}].content`,
        );
      }
      return part.text;
    })
    .join('\n');
}

function render(model: ServedModel, messages: TemplateMessage[]): string {
  const template = model.chatTemplate;
  if (template == null) {
    throw invalidRequest(
      `Model '${model.id}' has no chat template: set "chat_template" in its tokenizer_config.json, or start the server with CHAT_TEMPLATE=<file>.`,
      'model',
      'chat_template_missing',
    );
  }
  try {
    return renderChatTemplate(template, { messages, bosToken: model.bosToken, eosToken: model.eosToken });
  } catch (err) {
    const message = (err as Error).message;
    if (err instanceof TemplateSyntaxError) {
      throw new ApiError(500, `The chat template of model '${model.id}' does not parse: ${message}`, 'server_error', null, 'chat_template_error');
    }
    // Rendering fails on what the messages hold (most often the template's raise_exception, e.g.
    // "Conversation roles must alternate"): the request can be changed to pass.
    throw invalidRequest(`The chat template of model '${model.id}' cannot render these messages: ${message}`, 'messages', 'chat_template_error');
  }
}
