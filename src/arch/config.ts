/**
 * Reading a Hugging Face `config.json` into the one vocabulary every forward reads
 * (`ModelConfig`), each family from its own field names (src/arch/families.ts). Every refusal
 * names the file, the field and what was expected: a wrong config otherwise shows up much later
 * as garbage text.
 */
import { join } from 'node:path';
import { mergeGenerationConfig, readGenerationConfig } from '../model/config.js';
import { FieldReader, readJsonFile } from '../model/json.js';
import type { Architecture, ModelConfig } from '../model/types.js';
import { ARCHITECTURES, familyOf } from './families.js';

export function parseConfig(json: unknown, file: string): ModelConfig {
  const f = new FieldReader(json, file);
  const architecture = readArchitecture(f);
  return familyOf(architecture).readConfig(f, architecture);
}

/** Reads `dir/config.json`, with the eos ids of `dir/generation_config.json` (if any) merged in. */
export function readConfig(dir: string): ModelConfig {
  const file = join(dir, 'config.json');
  const config = parseConfig(readJsonFile(file), file);
  const generation = readGenerationConfig(dir, config.vocabSize);
  return generation === null ? config : mergeGenerationConfig(config, generation);
}

function readArchitecture(f: FieldReader): Architecture {
  const list = f.raw('architectures');
  if (!Array.isArray(list) || list.length === 0 || typeof list[0] !== 'string') {
    throw f.error('architectures', `a non-empty array naming one of ${ARCHITECTURES.join(', ')}`, list);
  }
  const name = list[0];
  const found = ARCHITECTURES.find((a) => a === name);
  if (found === undefined) {
    throw f.error('architectures', `one of ${ARCHITECTURES.join(', ')} (unsupported architecture)`, name);
  }
  return found;
}
