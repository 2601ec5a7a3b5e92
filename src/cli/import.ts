/**
 * A llama.cpp GGUF file of a LLaMA-family model -> a Hugging Face-layout model directory:
 *
 *   npm run import -- --from model.gguf --out models/imported [--force]
 *
 * Tensors in F32, F16, BF16, Q8_0 and Q4_0 are dequantised to float32; the tokenizer is rebuilt
 * from the file's tokenizer.ggml.* metadata (docs/gguf.md).
 */
import { statSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { importGguf } from '../arch/import-gguf.js';
import { runCli } from './options.js';

function parseFile(value: string): string {
  if (!statSync(value, { throwIfNoEntry: false })?.isFile()) throw new InvalidArgumentError('no such file');
  return value;
}

const program = new Command('import')
  .description('Write a Hugging Face-layout model directory from a llama.cpp GGUF file of a LLaMA-family model')
  .requiredOption('--from <file>', 'GGUF file (tensors in F32, F16, BF16, Q8_0 or Q4_0; tokenizer "llama" or "gpt2")', parseFile)
  .requiredOption('--out <dir>', 'model directory to write (config.json, model.safetensors, tokenizer files)')
  .option('--force', 'write into --out even when it exists and is not empty (its model files are replaced)')
  .action((opts: { from: string; out: string; force?: boolean }) => {
    const started = Date.now();
    const { config: c, tensorTypes, tokenizer } = importGguf(opts.from, opts.out, { force: opts.force === true });
    const types = Object.entries(tensorTypes)
      .map(([type, n]) => `${n} ${type}`)
      .join(', ');
    process.stdout.write(
      `wrote ${opts.out} from ${opts.from}: ${c.numLayers} layers, hidden ${c.hiddenSize}, ${c.numHeads}/${c.numKvHeads} heads x ${c.headDim}, ` +
        `intermediate ${c.intermediateSize}, vocab ${c.vocabSize}, context ${c.maxPositions}${c.tieWordEmbeddings ? ', tied embeddings' : ''}; ` +
        `tensors ${types} -> float32; tokenizer ${tokenizer.model} (${tokenizer.tokens} tokens, ${tokenizer.merges} merges) (${Date.now() - started} ms)\n`,
    );
  });

await runCli(program);
