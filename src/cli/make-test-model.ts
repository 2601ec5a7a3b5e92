/**
 * Writes a random-initialised checkpoint of any supported architecture in Hugging Face layout.
 *
 *   npm run make-test-model -- --out models/test-tiny --preset tiny --seed 1
 *   npm run make-test-model -- --out /tmp/smol --preset smollm2-135m --dtype BF16 --layers 4
 */
import { writeTestModel } from '../arch/testmodel.js';
import { exitWithError } from './options.js';
import { parseMakeTestModelArgs, USAGE } from './test-model-args.js';

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

main().catch(exitWithError);
