/**
 * Writes openapi.yaml from the routes' schemas (the same document the server serves at
 * /openapi.json). Run after changing a schema: `npm run openapi`; a test fails on drift.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildApp } from '../src/app.js';

export const OPENAPI_PATH = fileURLToPath(new URL('../openapi.yaml', import.meta.url));

/** The document as YAML; building the app needs no model. */
export async function generateOpenApiYaml(): Promise<string> {
  const app = await buildApp({ models: [] });
  try {
    await app.ready();
    return app.swagger({ yaml: true });
  } finally {
    await app.close();
  }
}

// Only write when run as a script, so the drift test can import the generator.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(OPENAPI_PATH, await generateOpenApiYaml());
  console.log(`wrote ${OPENAPI_PATH}`);
}
