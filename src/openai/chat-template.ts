/**
 * Chat messages to prompt text with the model's Jinja chat template, as transformers'
 * `apply_chat_template` renders it: `messages`, `add_generation_prompt`, `bos_token` and
 * `eos_token` (the library provides `raise_exception`, for templates that refuse a conversation).
 */
import { Template } from '@huggingface/jinja';

export interface TemplateMessage {
  role: string;
  content: string;
  name?: string;
}

export interface ChatTemplateInput {
  messages: TemplateMessage[];
  bosToken: string | null;
  eosToken: string | null;
  addGenerationPrompt?: boolean;
}

/** The template does not parse: the server's configuration, not the request, is at fault. */
export class TemplateSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateSyntaxError';
  }
}

/** Parsing is the costly part and a server has a template or two: parse each once. */
const parsed = new Map<string, Template>();

export function renderChatTemplate(template: string, input: ChatTemplateInput): string {
  let compiled = parsed.get(template);
  if (compiled === undefined) {
    try {
      compiled = new Template(template);
    } catch (err) {
      throw new TemplateSyntaxError((err as Error).message);
    }
    parsed.set(template, compiled);
  }
  return compiled.render({
    messages: input.messages,
    add_generation_prompt: input.addGenerationPrompt ?? true,
    // transformers passes the special tokens' strings; a template that uses a missing one gets ''.
    bos_token: input.bosToken ?? '',
    eos_token: input.eosToken ?? '',
  });
}
