/**
 * A tokenizer worker thread (src/model/tokenizer-pool.ts): encodes texts with the tokenizer of
 * a model directory, loaded once per directory and kept.
 */
import { ModelTokenizer } from './tokenizer.js';

export interface EncodeTask {
  dir: string;
  texts: string[];
  addSpecialTokens: boolean;
}

const tokenizers = new Map<string, ModelTokenizer>();

export default function encode(task: EncodeTask): number[][] {
  let tokenizer = tokenizers.get(task.dir);
  if (tokenizer === undefined) {
    tokenizer = ModelTokenizer.fromDir(task.dir);
    tokenizers.set(task.dir, tokenizer);
  }
  return task.texts.map((text) => tokenizer.encode(text, task.addSpecialTokens));
}
