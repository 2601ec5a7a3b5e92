/**
 * vLLM's tokenizer endpoints, which lm-evaluation-harness's `local-completions` model uses as
 * a remote tokenizer: GET /tokenizer_info (it requires `eos_token`), POST /tokenize
 * (`{"prompt", "add_special_tokens"}` -> `{"tokens"}`) and POST /detokenize (`{"tokens"}` ->
 * `{"prompt"}`).
 */
import type { ServedModel } from '../runtime/types.js';
import { textEncoder, type Encoder } from './encoding.js';
import { invalidRequest } from './errors.js';
import type { DetokenizeRequest, DetokenizeResponse, TokenizeRequest, TokenizeResponse, TokenizerInfo } from './schemas.js';

/** Models are loaded from tokenizer.json, which is what transformers' fast tokenizer reads. */
const TOKENIZER_CLASS = 'PreTrainedTokenizerFast';

export function tokenizerInfo(model: ServedModel): TokenizerInfo {
  return {
    tokenizer_class: TOKENIZER_CLASS,
    model: model.id,
    eos_token: model.eosToken,
    bos_token: model.bosToken,
    model_max_length: model.contextLength,
    max_model_len: model.contextLength,
    vocab_size: model.vocabSize,
  };
}

/** Special tokens' text in the prompt (e.g. "</s>") becomes their ids, as Hugging Face tokenizers do. */
export async function tokenize(model: ServedModel, body: TokenizeRequest, encode: Encoder = textEncoder(model)): Promise<TokenizeResponse> {
  const [tokens] = await encode([body.prompt], body.add_special_tokens ?? true);
  return { tokens, count: tokens.length, max_model_len: model.contextLength };
}

export function detokenize(model: ServedModel, body: DetokenizeRequest): DetokenizeResponse {
  const bad = body.tokens.findIndex((id) => id >= model.vocabSize);
  if (bad >= 0) {
    throw invalidRequest(
      `Token id ${body.tokens[bad]} at position ${bad} is outside the vocabulary; ids must be in [0, ${model.vocabSize}).`,
      'tokens',
      'invalid_token_id',
    );
  }
  return { prompt: model.decode(body.tokens) };
}
