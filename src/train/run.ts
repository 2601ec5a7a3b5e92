/**
 * One whole training run of the default model, resumable: corpus -> BPE tokenizer -> token
 * streams -> training with periodic validation and checkpoints -> export in Hugging Face
 * layout, with the numbers a model card needs.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseConfig } from '../arch/config.js';
import { writeSafetensors } from '../model/safetensors.js';
import { initialValues } from '../arch/testmodel.js';
import { ModelTokenizer } from '../model/tokenizer.js';
import type { ModelConfig } from '../model/types.js';
import { assembleWeights, tensorSpecs } from '../arch/checkpoints.js';
import { BigramModel, bitsPerByte } from './baseline.js';
import { trainBpe, writeBpeTokenizer } from './bpe.js';
import { loadCorpus, splitCorpus, splitSizes, type CorpusDocument } from './corpus.js';
import { evaluationBatches, randomBatch, tokenStream } from './data.js';
import { Trainer, type HistoryPoint, type TrainSettings } from './trainer.js';

/** The default model's shape: what two CPU cores train in about an hour (see the model card). */
export const DEFAULT_SHAPE = {
  hidden: 256,
  layers: 6,
  heads: 8,
  kvHeads: 4,
  intermediate: 704,
  vocab: 4096,
  maxPositions: 512,
};

export interface RunOptions {
  work: string;
  out: string;
  settings: TrainSettings;
  evalEvery: number;
  threads: number;
  onProgress?: (p: HistoryPoint, phase: string) => void;
  log?: (line: string) => void;
}

export interface RunResult {
  config: ModelConfig;
  parameters: number;
  history: HistoryPoint[];
  validation: { tokens: number; bytes: number; loss: number; bitsPerByte: number; perplexity: number };
  baseline: { lambda: number; loss: number; bitsPerByte: number };
  corpus: ReturnType<typeof splitSizes>;
  trainTokens: number;
  seconds: number;
}

function configJson(): Record<string, unknown> {
  const s = DEFAULT_SHAPE;
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: s.hidden / s.heads,
    vocab_size: s.vocab,
    max_position_embeddings: s.maxPositions,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: null,
    tie_word_embeddings: true,
    attention_bias: false,
    mlp_bias: false,
    hidden_act: 'silu',
    bos_token_id: 0,
    eos_token_id: 1,
    torch_dtype: 'float32',
  };
}

const utf8Bytes = (docs: CorpusDocument[]) => docs.reduce((n, d) => n + Buffer.byteLength(d.text, 'utf8'), 0);

export async function trainDefaultModel(o: RunOptions): Promise<RunResult> {
  const log = o.log ?? (() => {});
  mkdirSync(o.work, { recursive: true });
  const split = splitCorpus(loadCorpus());
  const sizes = splitSizes(split);
  log(`corpus: ${JSON.stringify(sizes)}`);

  // The tokenizer is trained once per run; a resumed run reuses it.
  if (!existsSync(join(o.work, 'tokenizer.json'))) {
    const t0 = performance.now();
    const bpe = trainBpe(
      split.train.map((d) => d.text),
      { vocabSize: DEFAULT_SHAPE.vocab },
    );
    writeBpeTokenizer(o.work, bpe, { modelMaxLength: DEFAULT_SHAPE.maxPositions });
    log(`tokenizer: ${bpe.tokens.length} tokens in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  const configFile = join(o.work, 'config.json');
  writeFileSync(configFile, `${JSON.stringify(configJson(), null, 2)}\n`);
  const config = parseConfig(configJson(), configFile);
  const tokenizer = ModelTokenizer.fromDir(o.work, config);
  const eos = config.eosTokenIds[0];
  const encode = (docs: CorpusDocument[]) =>
    tokenStream(
      docs.map((d) => d.text),
      (t) => tokenizer.encode(t),
      eos,
    );
  const train = encode(split.train);
  const validation = encode(split.validation);
  const calibration = encode(split.calibration);
  log(`tokens: train ${train.length}, validation ${validation.length}, calibration ${calibration.length}`);

  const specs = new Map(tensorSpecs(config).map((s) => [s.name, s.shape]));
  const init = assembleWeights(config, (n) => ({ shape: specs.get(n)!, data: initialValues(n, specs.get(n)!, o.settings.seed) }));
  const trainer = await Trainer.create(config, init, o.settings, o.threads);
  const checkpoint = join(o.work, 'checkpoint');
  if (trainer.loadCheckpoint(checkpoint)) log(`resumed at step ${trainer.step}`);

  const { batch, seq, steps, seed } = o.settings;
  const valQuick = evaluationBatches(validation, batch, seq, 64);
  while (trainer.step < steps) {
    const point = await trainer.trainStep(randomBatch(train, batch, seq, seed, trainer.step));
    if (trainer.step % o.evalEvery === 0 || trainer.step === steps) {
      const { nats, tokens } = await trainer.evaluateLoss(valQuick);
      point.valLoss = nats / tokens;
      trainer.saveCheckpoint(checkpoint);
    }
    o.onProgress?.(point, 'train');
  }

  const full = await trainer.evaluateLoss(evaluationBatches(validation, batch, seq));
  const valBytes = utf8Bytes(split.validation);
  const bigram = new BigramModel(config.vocabSize, train);
  const lambda = bigram.tune(calibration);
  const bigramNats = bigram.nats(validation);

  mkdirSync(o.out, { recursive: true });
  writeSafetensors(join(o.out, 'model.safetensors'), trainer.exportTensors());
  writeFileSync(join(o.out, 'config.json'), readFileSync(configFile));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) writeFileSync(join(o.out, f), readFileSync(join(o.work, f)));
  writeFileSync(
    join(o.out, 'generation_config.json'),
    `${JSON.stringify({ bos_token_id: 0, eos_token_id: 1, max_length: DEFAULT_SHAPE.maxPositions }, null, 2)}\n`,
  );

  const result: RunResult = {
    config,
    parameters: trainer.parameterCount,
    history: trainer.history,
    validation: {
      tokens: full.tokens,
      bytes: valBytes,
      loss: full.nats / full.tokens,
      // Windows leave out the stream's last partial window (< seq of ~1e5 tokens): scale the
      // mean loss to every token so that model and bigram are measured over the same bytes.
      bitsPerByte: bitsPerByte((full.nats / full.tokens) * (validation.length - 1), valBytes),
      perplexity: Math.exp(full.nats / full.tokens),
    },
    baseline: { lambda, loss: bigramNats / (validation.length - 1), bitsPerByte: bitsPerByte(bigramNats, valBytes) },
    corpus: sizes,
    trainTokens: train.length,
    seconds: trainer.seconds,
  };
  await trainer.release();
  return result;
}

/** The calibration split as JSON lines for `npm run calibrate` (never the validation split). */
export function writeCalibrationSet(file: string): number {
  const { calibration } = splitCorpus(loadCorpus());
  writeFileSync(file, calibration.map((d) => `${JSON.stringify({ prompt: d.text.slice(0, 2000) })}\n`).join(''));
  return calibration.length;
}
