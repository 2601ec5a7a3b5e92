/**
 * Loading a whole model directory (Hugging Face layout): config, weights, tokenizer,
 * sampling defaults, and a hash that identifies the model for caches.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { SafetensorsCheckpoint } from '../model/checkpoint.js';
import { mergeGenerationConfig, readGenerationConfig } from '../model/config.js';
import { parseConfig } from './config.js';
import { readJsonFile } from '../model/json.js';
import { ModelTokenizer } from '../model/tokenizer.js';
import type { GenerationDefaults, ModelConfig, ModelWeights } from '../model/types.js';
import { loadWeights } from './checkpoints.js';

export interface LoadedModel {
  /** Absolute path of the model directory. */
  dir: string;
  config: ModelConfig;
  weights: ModelWeights;
  tokenizer: ModelTokenizer;
  generationDefaults: GenerationDefaults;
  /** sha256 (hex) over config.json and the safetensors files: the model's identity for caches. */
  weightsHash: string;
}

export async function loadModelDir(dir: string): Promise<LoadedModel> {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new Error(`${root}: model directory not found`);

  const configFile = join(root, 'config.json');
  let config = parseConfig(readJsonFile(configFile), configFile);
  const generation = readGenerationConfig(root, config.vocabSize);
  if (generation !== null) config = mergeGenerationConfig(config, generation);

  const tokenizer = ModelTokenizer.fromDir(root, config);
  if (tokenizer.vocabSize > config.vocabSize) {
    throw new Error(`${join(root, 'tokenizer.json')}: the tokenizer knows ${tokenizer.vocabSize} ids but ${configFile} has vocab_size ${config.vocabSize}`);
  }
  if (config.eosTokenIds.length === 0 && tokenizer.eosToken !== null) {
    // Without any eos id generation could only stop at max_tokens; the tokenizer's eos is the
    // one transformers would fall back to.
    const id = tokenizer.tokenToId(tokenizer.eosToken);
    if (id !== undefined && id < config.vocabSize) config = { ...config, eosTokenIds: [id] };
  }

  const weights = loadWeights(root, config);
  const weightsHash = await hashFiles([configFile, ...safetensorsFiles(root)]);
  return { dir: root, config, weights, tokenizer, generationDefaults: generation?.defaults ?? {}, weightsHash };
}

function safetensorsFiles(dir: string): string[] {
  const checkpoint = SafetensorsCheckpoint.open(dir);
  try {
    return checkpoint.files;
  } finally {
    checkpoint.close();
  }
}

/** Each file is framed by its name and size so that moving bytes between files changes the hash. */
export async function hashFiles(files: readonly string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const file of files) {
    hash.update(`${basename(file)}\0${statSync(file).size}\0`);
    for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}
