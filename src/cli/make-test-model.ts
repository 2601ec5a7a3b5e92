/**
 * Writes a random-initialised LLaMA-family checkpoint in Hugging Face layout.
 *
 *   npm run make-test-model -- --out models/test-tiny --preset tiny --seed 1
 *   npm run make-test-model -- --out /tmp/smol --preset smollm2-135m --dtype BF16 --layers 4
 */
import { writeTestModel } from '../model/testmodel.js';
import { parseMakeTestModelArgs, USAGE, UsageError } from './test-model-args.js';

async function main(): Promise<void> {
  const { out, options, help } = parseMakeTestModelArgs(process.argv.slice(2));
  if (help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const started = Date.now();
  const { config: c } = await writeTestModel(out, options);
  process.stdout.write(
    `wrote ${out}: ${c.architecture}, ${c.numLayers} layers, hidden ${c.hiddenSize}, ${c.numHeads}/${c.numKvHeads} heads x ${c.headDim}, ` +
      `intermediate ${c.intermediateSize}, vocab ${c.vocabSize}, ${options.dtype}, seed ${options.seed} (${Date.now() - started} ms)\n`,
  );
}

main().catch((err: unknown) => {
  if (err instanceof UsageError) {
    process.stderr.write(`make-test-model: ${err.message}\n${USAGE}\n`);
    process.exit(2);
  }
  process.stderr.write(`make-test-model: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
