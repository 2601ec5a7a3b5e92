/**
 * Chat templates as published with real models, rendered as transformers renders them
 * (trim_blocks and lstrip_blocks included). The expected strings are derived by hand from each
 * template's logic for one conversation: system, user, assistant, user, then the generation prompt.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { ModelTokenizer } from '../../src/model/tokenizer.js';
import { renderChatTemplate, TemplateSyntaxError, type TemplateMessage } from '../../src/openai/chat-template.js';

const conversation: TemplateMessage[] = [
  { role: 'system', content: 'You are helpful.' },
  { role: 'user', content: 'Hello' },
  { role: 'assistant', content: 'Hi there!' },
  { role: 'user', content: 'How are you?' },
];

// SmolLM2-Instruct's (Qwen's has the same shape): a default system message when none is given.
const CHATML =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}" +
  "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

// Llama-2-chat's, with its escaped newlines (\\n in tokenizer_config.json) and its raise_exception.
const LLAMA2 = String.raw`{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}`;

// Phi-3-mini-instruct's.
const PHI3 =
  "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}" +
  "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";

// Zephyr-7b-beta's: laid out over lines, so it relies on trim_blocks to drop the newline after each tag.
const ZEPHYR =
  "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n" +
  "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

const render = (template: string, messages = conversation, bosToken: string | null = '<s>', eosToken: string | null = '</s>') =>
  renderChatTemplate(template, { messages, bosToken, eosToken });

t.test('ChatML (SmolLM2, Qwen)', async (t) => {
  t.equal(
    render(CHATML, conversation, null, '<|im_end|>'),
    '<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there!<|im_end|>\n' +
      '<|im_start|>user\nHow are you?<|im_end|>\n<|im_start|>assistant\n',
  );
  t.equal(
    render(CHATML, conversation.slice(1, 2), null, '<|im_end|>'),
    '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n',
    'the default system message without one',
  );
});

t.test('LLaMA-2 chat', async (t) => {
  t.equal(render(LLAMA2), '<s>[INST] <<SYS>>\nYou are helpful.\n<</SYS>>\n\nHello [/INST] Hi there! </s><s>[INST] How are you? [/INST]');
  t.throws(
    () => render(LLAMA2, [conversation[1], conversation[3]]),
    { message: /Conversation roles must alternate/ },
    "the template's raise_exception reaches the caller",
  );
});

t.test('Phi-3', async (t) => {
  t.equal(
    render(PHI3, conversation, '<s>', '<|endoftext|>'),
    '<|system|>\nYou are helpful.<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there!<|end|>\n<|user|>\nHow are you?<|end|>\n<|assistant|>\n',
  );
});

t.test('Zephyr', async (t) => {
  t.equal(render(ZEPHYR), '<|system|>\nYou are helpful.</s>\n<|user|>\nHello</s>\n<|assistant|>\nHi there!</s>\n<|user|>\nHow are you?</s>\n<|assistant|>\n');
});

t.test('a template that does not parse is a TemplateSyntaxError', async (t) => {
  t.throws(() => render('{% for message in messages %}{{ message.content }}'), TemplateSyntaxError);
});

t.test('tokenizer_config.json: a template string, or the one named "default" in a list', async (t) => {
  const json: unknown = JSON.parse(readFileSync(new URL('../../models/stories260K/tokenizer.json', import.meta.url), 'utf8'));
  t.equal(ModelTokenizer.fromJson(json, { chat_template: PHI3 }).chatTemplate, PHI3);
  const listed = [
    { name: 'tool_use', template: ZEPHYR },
    { name: 'default', template: CHATML },
  ];
  t.equal(ModelTokenizer.fromJson(json, { chat_template: listed }).chatTemplate, CHATML);
  t.equal(ModelTokenizer.fromJson(json, { chat_template: [{ name: 'tool_use', template: ZEPHYR }] }).chatTemplate, null, 'no "default": none');
  t.equal(ModelTokenizer.fromJson(json, {}).chatTemplate, null);
});
