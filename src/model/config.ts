/**
 * Reading a Hugging Face `generation_config.json`, and the token-id fields every config shares
 * (each architecture's config.json: src/arch/config.ts). Every refusal names the file, the
 * field and what was expected.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { GenerationDefaults, ModelConfig } from './types.js';
import { FieldReader, readJsonFile } from './json.js';

/** What generation_config.json contributes. */
export interface GenerationConfig {
  bosTokenId: number | null;
  eosTokenIds: number[];
  defaults: GenerationDefaults;
}

/**
 * Reads the optional `dir/generation_config.json`; null when absent. `vocabSize`, when given,
 * bounds the token ids it may name.
 */
export function readGenerationConfig(dir: string, vocabSize?: number): GenerationConfig | null {
  const file = join(dir, 'generation_config.json');
  if (!existsSync(file)) return null;
  return parseGenerationConfig(readJsonFile(file), file, vocabSize);
}

export function parseGenerationConfig(json: unknown, file: string, vocabSize?: number): GenerationConfig {
  const f = new FieldReader(json, file);
  const bound = vocabSize ?? Number.MAX_SAFE_INTEGER;
  const defaults: GenerationDefaults = {};
  // do_sample is not read: whether a request samples is the request's choice (OpenAI's API),
  // these are only the values used when a request does not name them.
  const temperature = f.optional('temperature', () => f.number('temperature', 'a number >= 0', (x) => x >= 0));
  if (temperature !== undefined) defaults.temperature = temperature;
  const topP = f.optional('top_p', () => f.number('top_p', 'a number in (0, 1]', (x) => x > 0 && x <= 1));
  if (topP !== undefined) defaults.topP = topP;
  const topK = f.optional('top_k', () => f.nonNegativeInt('top_k'));
  if (topK !== undefined) defaults.topK = topK;
  return {
    bosTokenId: readTokenId(f, 'bos_token_id', bound),
    eosTokenIds: readTokenIds(f, 'eos_token_id', bound),
    defaults,
  };
}

/** config.json's ids win for bos; eos becomes the union, since generation should stop at any. */
export function mergeGenerationConfig(config: ModelConfig, generation: GenerationConfig): ModelConfig {
  const eos = [...config.eosTokenIds];
  for (const id of generation.eosTokenIds) if (!eos.includes(id)) eos.push(id);
  return {
    ...config,
    bosTokenId: config.bosTokenId ?? generation.bosTokenId,
    eosTokenIds: eos,
  };
}

export function readTokenId(f: FieldReader, field: string, vocabSize: number): number | null {
  return f.optional(field, () => f.int(field, `a token id in [0, ${vocabSize})`, (x) => x >= 0 && x < vocabSize)) ?? null;
}

export function readTokenIds(f: FieldReader, field: string, vocabSize: number): number[] {
  const value = f.raw(field);
  if (value === undefined || value === null) return [];
  const expected = `a token id in [0, ${vocabSize}) or an array of them`;
  const list = Array.isArray(value) ? value : [value];
  const ids: number[] = [];
  for (const id of list) {
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= vocabSize) throw f.error(field, expected, value);
    if (!ids.includes(id)) ids.push(id);
  }
  return ids;
}
