/**
 * The layering, checked by `npm test` (`npm run lint:deps`). Imports point down:
 *   routes/, plugins/ -> src/app, src/http -> src/openai -> src/serve -> src/runtime, src/sparsity
 *   -> src/arch -> src/graph, src/model
 * with src/train, src/eval and src/cli as applications on top of the library. src/ never imports
 * Fastify (src/app.ts, which assembles it, excepted).
 */
const layer = (name) => `^src/${name}/`;

/** A rule that files under `from` import nothing under any of `to`. */
const forbid = (name, comment, from, to) => ({
  name,
  comment,
  severity: 'error',
  from: { path: from },
  to: { path: to },
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'A cycle makes two modules one: neither can be read or changed alone (a cycle closed by a type-only import loads fine and is allowed).',
      severity: 'error',
      from: {},
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    forbid('src-without-fastify', 'src/ is the library; only src/app.ts assembles Fastify.', '^src/(?!app\\.ts$)', '^node_modules/(fastify|@fastify/|fastify-plugin)'),
    forbid('src-below-routes-and-plugins', 'The library does not reach up into the HTTP application (src/app.ts may name plugin option types).', '^src/(?!app\\.ts$)', '^(routes|plugins)/'),
    forbid('graph-is-the-bottom', 'The graph builder knows nothing of models.', layer('graph'), '^src/(?!graph/)'),
    forbid('model-is-the-bottom', 'Formats and tokenizers know nothing of graphs, sessions or serving.', layer('model'), '^src/(?!model/|project\\.ts$|random\\.ts$)'),
    forbid('arch-on-graph-and-model', 'Architectures are written on the graph builder and the model formats only (and the seeded generator their random checkpoints draw from).', layer('arch'), '^src/(?!arch/|graph/|model/|random\\.ts$)'),
    forbid('runtime-below-sparsity-and-serve', 'Sessions, caches and decoding run any graph; choosing neurons and serving requests sit above them.', layer('runtime'), '^src/(sparsity|serve|openai|http|train|eval|cli)/'),
    forbid('sparsity-below-serve', 'Attribution, masks and selectors do not know how requests are served.', layer('sparsity'), '^src/(serve|openai|http|eval|cli)/'),
    forbid('serve-below-the-api', 'The engine and its batches know nothing of the HTTP API.', layer('serve'), '^src/(openai|http|eval|cli)/'),
    forbid('openai-below-http', 'API shapes do not depend on the HTTP edge.', layer('openai'), '^src/(http|eval|cli|train)/'),
    forbid('library-below-applications', 'Training, evaluation and the CLIs use the library, never the reverse.', '^src/(graph|model|arch|runtime|sparsity|serve|cache|openai|http)/', '^src/(eval|cli)/'),
    forbid('no-test-code-in-the-product', 'Test helpers serve tests and benchmarks, never the product.', '^(src|routes|plugins)/', '^test/'),
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'], extensions: ['.ts', '.js', '.json'] },
  },
};
