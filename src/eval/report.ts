/**
 * From finished units to results: corpus BLEU, token agreement and first divergence of the
 * sparse generations against the dense ones; perplexity and bits per byte of held-out text;
 * written as results.json, a Markdown report and one SVG plot per prompt set and mode.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadedModel } from '../arch/load.js';
import { QUANT_SPECS } from '../model/quant.js';
import { lineChartSvg } from '../plot.js';
import { flopWeightedSparsity, tokenFlops } from '../sparsity/flops.js';
import { keptCount, REPORT_CONTEXT } from '../sparsity/masks.js';
import type { Metric } from '../sparsity/metrics.js';
import { bitsPerByte } from '../train/baseline.js';
import { firstDivergence, tokenAgreement } from './agreement.js';
import { corpusBleu } from './bleu.js';
import { setModes, tokenModeVariants, type SetMode, type UnitSettings } from './evaluator.js';
import type { Origin } from './progress.js';
import type { EvalInputs, EvalUnits } from './run.js';
import { tokenKeptNeurons, variantName } from './token.js';

export interface Provenance {
  command: string;
  /** The code that computed the units (when the first of them was started). */
  computed: Origin;
  /** The code that rendered this report from them. */
  rendered: { commit: string | null; dirty: boolean };
  finished: string;
  /** Wall time of this invocation (a resumed run counts only its own part). */
  seconds: number;
  node: string;
  onnxruntime: string;
}

export interface GenerationRow {
  set: string;
  mode: SetMode;
  metric: Metric;
  sparsity: number;
  /** Share of MLP neurons removed, as kept (rounded per layer). */
  mlpSparsity: number;
  /** Share of the prunable FLOPs removed (MLP and heads, at REPORT_CONTEXT). */
  flopSparsity: number;
  /** sacreBLEU-compatible corpus BLEU of the sparse generations against the dense ones. */
  bleu: number;
  /** Mean over prompts of the share of positions with the dense token. */
  tokenAgreement: number;
  /** Mean over prompts of the first position that differs from the dense output. */
  firstDivergence: number;
}

export interface PerplexityRow {
  mode: SetMode;
  metric: Metric;
  sparsity: number;
  mlpSparsity: number;
  flopSparsity: number;
  perplexity: number;
  bitsPerByte: number;
}

/** A per-token served variant's generations against the dense ones, as GenerationRow. */
export interface TokenGenerationRow {
  set: string;
  variant: string;
  sparsity: number;
  /** Share of MLP neurons each token leaves out (whole blocks kept, so near `sparsity`). */
  mlpSparsity: number;
  bleu: number;
  tokenAgreement: number;
  firstDivergence: number;
}

export interface TokenPerplexityRow {
  variant: string;
  sparsity: number;
  mlpSparsity: number;
  perplexity: number;
  bitsPerByte: number;
  /**
   * With the oracle mode: mean over the held-out passages' scored positions (weighted by
   * positions) and layers of |selected ∩ oracle Corrected GxO set| / |oracle set|.
   */
  recall?: number;
}

export interface EvalResults {
  model: { dir: string; weightsHash: string; layers: number; intermediateSize: number; hiddenSize: number; vocabSize: number };
  settings: UnitSettings;
  inputs: {
    promptSets: { name: string; file: string; sha256: string; prompts: number }[];
    passages: { file: string; sha256: string; passages: number; tokens: number; bytes: number };
    calibration: { file: string; sha256: string; samples: number };
  };
  provenance: Provenance;
  /** What each evaluated sparsity removes: per layer, of the prunable FLOPs, of all FLOPs per token. */
  sparsities: { sparsity: number; neuronsPerLayer: number; mlpSparsity: number; flopSparsity: number; tokenFlopReduction: number }[];
  dense: {
    generation: { set: string; meanPromptTokens: number; meanGeneratedTokens: number }[];
    perplexity: number;
    bitsPerByte: number;
  };
  generation: GenerationRow[];
  perplexity: PerplexityRow[];
  /** The token mode, when it ran. */
  token?: {
    variants: { name: string; selector: string; block: number }[];
    generation: TokenGenerationRow[];
    perplexity: TokenPerplexityRow[];
  };
}

export function summarize(
  model: LoadedModel,
  modelDir: string,
  settings: UnitSettings,
  inputs: EvalInputs,
  units: EvalUnits,
  provenance: Provenance,
): EvalResults {
  const { config, tokenizer } = model;
  const keptAt = (s: number) => Array.from({ length: config.numLayers }, () => ({ mlp: keptCount(config.intermediateSize, s) }));
  const sparsityOf = (s: number) => ({
    mlpSparsity: 1 - keptCount(config.intermediateSize, s) / config.intermediateSize,
    flopSparsity: flopWeightedSparsity(config, REPORT_CONTEXT, keptAt(s)),
  });
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

  const generation: GenerationRow[] = [];
  const denseGeneration: EvalResults['dense']['generation'] = [];
  for (const set of inputs.promptSets) {
    const prompts = units.prompts.filter((u) => u.set === set.name);
    const references = prompts.map((u) => tokenizer.decode(u.dense));
    denseGeneration.push({
      set: set.name,
      meanPromptTokens: mean(prompts.map((u) => u.promptTokens)),
      meanGeneratedTokens: mean(prompts.map((u) => u.dense.length)),
    });
    for (const mode of setModes(settings.modes)) {
      for (const metric of settings.metrics) {
        for (const sparsity of settings.sparsities) {
          const outputs = prompts.map((u) => u.runs.find((r) => r.mode === mode && r.metric === metric && r.sparsity === sparsity)!.tokens);
          generation.push({
            set: set.name,
            mode,
            metric,
            sparsity,
            ...sparsityOf(sparsity),
            bleu: corpusBleu(
              outputs.map((o) => tokenizer.decode(o)),
              [references],
            ).score,
            tokenAgreement: mean(outputs.map((o, i) => tokenAgreement(prompts[i].dense, o))),
            firstDivergence: mean(outputs.map((o, i) => firstDivergence(prompts[i].dense, o))),
          });
        }
      }
    }
  }

  const tokens = units.passages.reduce((n, u) => n + u.tokens, 0);
  const bytes = units.passages.reduce((n, u) => n + u.bytes, 0);
  const quality = (nats: number) => ({ perplexity: Math.exp(nats / tokens), bitsPerByte: bitsPerByte(nats, bytes) });
  const perplexity: PerplexityRow[] = [];
  for (const mode of setModes(settings.modes)) {
    for (const metric of settings.metrics) {
      for (const sparsity of settings.sparsities) {
        const nats = units.passages.reduce((n, u) => n + u.runs.find((r) => r.mode === mode && r.metric === metric && r.sparsity === sparsity)!.nats, 0);
        perplexity.push({ mode, metric, sparsity, ...sparsityOf(sparsity), ...quality(nats) });
      }
    }
  }

  const variants = tokenModeVariants(settings);
  let token: EvalResults['token'];
  if (variants.length > 0) {
    const I = config.intermediateSize;
    const tokenGeneration: TokenGenerationRow[] = [];
    const tokenPerplexity: TokenPerplexityRow[] = [];
    for (const v of variants) {
      const name = variantName(v);
      for (const sparsity of settings.sparsities) {
        const mlpSparsity = 1 - tokenKeptNeurons(I, v.block, sparsity) / I;
        for (const set of inputs.promptSets) {
          const prompts = units.prompts.filter((u) => u.set === set.name);
          const outputs = prompts.map((u) => u.tokenRuns.find((r) => r.variant === name && r.sparsity === sparsity)!.tokens);
          tokenGeneration.push({
            set: set.name,
            variant: name,
            sparsity,
            mlpSparsity,
            bleu: corpusBleu(
              outputs.map((o) => tokenizer.decode(o)),
              [prompts.map((u) => tokenizer.decode(u.dense))],
            ).score,
            tokenAgreement: mean(outputs.map((o, i) => tokenAgreement(prompts[i].dense, o))),
            firstDivergence: mean(outputs.map((o, i) => firstDivergence(prompts[i].dense, o))),
          });
        }
        const runs = units.passages.map((u) => ({ u, run: u.tokenRuns.find((r) => r.variant === name && r.sparsity === sparsity)! }));
        const row: TokenPerplexityRow = { variant: name, sparsity, mlpSparsity, ...quality(runs.reduce((n, x) => n + x.run.nats, 0)) };
        if (runs.every((x) => x.run.recall !== undefined)) row.recall = runs.reduce((n, x) => n + x.run.recall! * x.u.tokens, 0) / tokens;
        tokenPerplexity.push(row);
      }
    }
    token = { variants: variants.map((v) => ({ name: variantName(v), ...v })), generation: tokenGeneration, perplexity: tokenPerplexity };
  }

  return {
    model: {
      dir: modelDir,
      weightsHash: model.weightsHash,
      layers: config.numLayers,
      intermediateSize: config.intermediateSize,
      hiddenSize: config.hiddenSize,
      vocabSize: config.vocabSize,
    },
    settings,
    inputs: {
      promptSets: inputs.promptSets.map((s) => ({ name: s.name, file: s.file, sha256: s.sha256, prompts: s.prompts.length })),
      passages: { file: inputs.passages.file, sha256: inputs.passages.sha256, passages: inputs.passages.texts.length, tokens, bytes },
      calibration: { file: inputs.calibration.file, sha256: inputs.calibration.sha256, samples: inputs.calibration.samples.length },
    },
    provenance,
    sparsities: settings.sparsities.map((s) => ({
      sparsity: s,
      neuronsPerLayer: keptCount(config.intermediateSize, s),
      ...sparsityOf(s),
      tokenFlopReduction: 1 - tokenFlops(config, REPORT_CONTEXT, keptAt(s)).total / tokenFlops(config, REPORT_CONTEXT).total,
    })),
    dense: { generation: denseGeneration, ...quality(units.passages.reduce((n, u) => n + u.denseNats, 0)) },
    generation,
    perplexity,
    ...(token && { token }),
  };
}

const METRIC_LABELS: Record<Metric, string> = { magnitude: 'Magnitude', gradient: 'Gradient', gxo: 'GxO', snip: 'SNIP', ig: 'IG', cor_gxo: 'Corrected GxO' };
const pct = (x: number) => `${Math.round(x * 100)}%`;
/** One decimal; identical text scores 100 plus float rounding, so -0.0 is shown as 0.0. */
const f1 = (x: number) => (Math.abs(x) < 0.05 ? 0 : x).toFixed(1);

/** Writes results.json, README.md and the plots into `dir`; returns the files written. */
export async function writeReport(dir: string, r: EvalResults): Promise<string[]> {
  const files: string[] = [];
  const write = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    files.push(join(dir, name));
  };
  write('results.json', `${JSON.stringify(r, null, 2)}\n`);

  const { settings } = r;
  const sets = r.inputs.promptSets.map((s) => s.name);
  const modes = setModes(settings.modes);
  const at = (set: string, mode: SetMode, metric: Metric, s: number) =>
    r.generation.find((g) => g.set === set && g.mode === mode && g.metric === metric && g.sparsity === s);
  const nearest = (s: number) => settings.sparsities.reduce((best, x) => (Math.abs(x - s) < Math.abs(best - s) ? x : best));
  const headline = nearest(0.8);

  const plots: string[] = [];
  for (const set of sets) {
    for (const mode of modes) {
      const series = settings.metrics.map((metric) => ({
        name: METRIC_LABELS[metric],
        points: settings.sparsities.map((s) => ({ x: 1 - at(set, mode, metric, s)!.mlpSparsity, y: at(set, mode, metric, s)!.bleu })),
      }));
      const name = `bleu-${set}-${mode}.svg`;
      write(
        name,
        await lineChartSvg(`${set}, ${mode} activation: BLEU against the dense output`, 'activation ratio (MLP neurons kept)', 'BLEU', series, {
          xDomain: [0, 1],
          yDomain: [0, 100],
        }),
      );
      plots.push(name);
    }
  }
  for (const mode of modes) {
    const series = settings.metrics.map((metric) => ({
      name: METRIC_LABELS[metric],
      points: r.perplexity.filter((p) => p.mode === mode && p.metric === metric).map((p) => ({ x: 1 - p.mlpSparsity, y: p.bitsPerByte })),
    }));
    const name = `bits-per-byte-${mode}.svg`;
    write(
      name,
      await lineChartSvg(
        `held-out text, ${mode} activation: bits per byte (dense ${r.dense.bitsPerByte.toFixed(3)})`,
        'activation ratio (MLP neurons kept)',
        'bits per byte',
        series,
        { xDomain: [0, 1] },
      ),
    );
    plots.push(name);
  }

  const lines: string[] = [];
  const table = (header: string[], rows: string[][]) => {
    lines.push(`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`), '');
  };
  const p = r.provenance;
  lines.push(
    `# Accuracy against sparsity: ${r.model.dir}${settings.quant ? `, ${settings.quant} weights` : ''}`,
    '',
    'Written by `npm run eval`; do not edit by hand. The reading of these numbers is in [../README.md](../README.md).',
    '',
    `- Command: \`${p.command}\``,
    `- Computed by commit \`${p.computed.commit ?? 'unknown'}\`${p.computed.dirty ? ' (with uncommitted changes)' : ''} from ${p.computed.started}; rendered by commit \`${p.rendered.commit ?? 'unknown'}\`${p.rendered.dirty ? ' (with uncommitted changes)' : ''} at ${p.finished} (the last invocation took ${Math.round(p.seconds)} s); Node ${p.node}, onnxruntime-node ${p.onnxruntime}`,
    `- Model: ${r.model.layers} layers, MLP ${r.model.intermediateSize} neurons per layer, hidden ${r.model.hiddenSize}, vocabulary ${r.model.vocabSize}; weights sha256 \`${r.model.weightsHash.slice(0, 16)}…\``,
    `- Weights: ${settings.quant ? `${settings.quant} (\`--quant ${settings.quant}\`), blocks of ${QUANT_SPECS[settings.quant].block}, in the masked graph and the per-token sessions as served (constant weights quantised; the MLP rows per-token selection gathers stay float32); attribution, which chooses the neurons, uses the float32 weights` : 'float32'}`,
    `- Settings: up to ${settings.maxTokens} greedy tokens per prompt; ${settings.igSteps} Integrated Gradients steps; held-out passages of up to ${settings.passageTokens} tokens, the first ${settings.passageContext} dense context; calibration samples of up to ${settings.calibrationMaxLength} tokens`,
    `- Prompt sets: ${r.inputs.promptSets.map((s) => `\`${s.file}\` (${s.prompts} prompts)`).join(', ')}; held-out text: \`${r.inputs.passages.file}\` (${r.inputs.passages.passages} passages, ${r.inputs.passages.tokens} scored tokens); calibration: \`${r.inputs.calibration.file}\` (${r.inputs.calibration.samples} samples)`,
    '',
    "Every run generates greedily with the prompt pass dense and every decode step masked: **oracle** masks each step with the neurons that attribution of that step (against the dense model's next token) ranks highest; **prompt** uses one set per prompt from attribution on the prompt itself, as the server does with `activation: \"prompt\"`; **static** uses the calibrated set, as the server's tiers do. Each layer keeps the same share of neurons. BLEU is sacreBLEU-compatible corpus BLEU against the dense model's own output (dense = 100).",
    '',
    `Dense reference: ${r.dense.generation.map((g) => `${g.set}: ${g.meanPromptTokens.toFixed(1)} prompt tokens, ${g.meanGeneratedTokens.toFixed(1)} generated tokens on average`).join('; ')}. Held-out text: perplexity ${r.dense.perplexity.toFixed(2)}, ${r.dense.bitsPerByte.toFixed(3)} bits per byte.`,
    '',
    ...(bestTokenSummary(r) ? [bestTokenSummary(r)!, ''] : []),
    `A held-out passage is scored after ${settings.passageContext} tokens of dense context; that context is also the prompt its **prompt** sets are attributed on, and each scored position's **oracle** set is attributed against the dense model's prediction there.`,
    '',
    `## Sparsity`,
    '',
    `Each layer keeps the same number of MLP neurons. FLOP shares are per generated token at a context of ${REPORT_CONTEXT} tokens (\`src/sparsity/flops.ts\`): "prunable" counts MLP neurons and attention heads, each at its cost; "all" adds the K/V projections and the LM head, which sparsity leaves alone.`,
    '',
  );
  table(
    ['MLP sparsity', 'neurons kept per layer', 'prunable FLOPs removed', 'all FLOPs removed'],
    r.sparsities.map((x) => [pct(x.mlpSparsity), `${x.neuronsPerLayer} / ${r.model.intermediateSize}`, pct(x.flopSparsity), pct(x.tokenFlopReduction)]),
  );
  lines.push(`## Accuracy loss at ${pct(headline)} MLP sparsity (100 - BLEU)`, '');
  table(
    ['metric', ...sets.flatMap((set) => modes.map((mode) => `${set}, ${mode}`))],
    settings.metrics.map((metric) => [METRIC_LABELS[metric], ...sets.flatMap((set) => modes.map((mode) => f1(100 - at(set, mode, metric, headline)!.bleu)))]),
  );

  const sparsityHeader = settings.sparsities.map((s) => pct(s));
  for (const set of sets) {
    lines.push(`## ${set}`, '');
    for (const mode of modes) {
      lines.push(`### BLEU, ${mode} activation`, '', `![BLEU against activation ratio, ${set}, ${mode}](bleu-${set}-${mode}.svg)`, '');
      table(
        ['metric \\ MLP sparsity', ...sparsityHeader],
        settings.metrics.map((metric) => [METRIC_LABELS[metric], ...settings.sparsities.map((s) => f1(at(set, mode, metric, s)!.bleu))]),
      );
    }
    const shown = [0.5, 0.7, 0.8].map(nearest).filter((s, i, all) => all.indexOf(s) === i);
    lines.push(
      '### Token agreement and first divergence',
      '',
      'Share of positions with the dense token; in brackets the mean position of the first differing token.',
      '',
    );
    table(
      ['mode', 'metric', ...shown.map(pct)],
      modes.flatMap((mode) =>
        settings.metrics.map((metric) => [
          mode,
          METRIC_LABELS[metric],
          ...shown.map((s) => `${pct(at(set, mode, metric, s)!.tokenAgreement)} (${f1(at(set, mode, metric, s)!.firstDivergence)})`),
        ]),
      ),
    );
  }

  lines.push(
    '## Held-out text',
    '',
    `Dense: perplexity ${r.dense.perplexity.toFixed(2)}, ${r.dense.bitsPerByte.toFixed(3)} bits per byte. Each cell: perplexity.`,
    '',
  );
  for (const mode of modes) {
    lines.push(`### ${mode} activation`, '', `![bits per byte against activation ratio, ${mode}](bits-per-byte-${mode}.svg)`, '');
    table(
      ['metric \\ MLP sparsity', ...sparsityHeader],
      settings.metrics.map((metric) => [
        METRIC_LABELS[metric],
        ...settings.sparsities.map((s) => r.perplexity.find((x) => x.mode === mode && x.metric === metric && x.sparsity === s)!.perplexity.toFixed(2)),
      ]),
    );
  }
  if (r.token) tokenSection(r, lines, table);
  write('README.md', lines.join('\n'));
  return files;
}

const near = (a: number, b: number) => Math.abs(a - b) < 1e-9;

/** The per-token variant with the lowest held-out perplexity at `sparsity`, as one sentence. */
function bestTokenLine(r: EvalResults, sparsity: number): string | null {
  const rows = r.token!.perplexity.filter((p) => near(p.sparsity, sparsity));
  if (rows.length === 0) return null;
  const best = rows.reduce((a, b) => (b.perplexity < a.perplexity ? b : a));
  const rel = (best.perplexity / r.dense.perplexity - 1) * 100;
  return `at ${pct(sparsity)}, \`${best.variant}\` (perplexity ${best.perplexity.toFixed(2)}, ${rel >= 0 ? '+' : ''}${rel.toFixed(1)}% against dense)`;
}

/** The line naming the best per-token variant at 50% and 80% (or whatever of them ran). */
export function bestTokenSummary(r: EvalResults): string | null {
  if (!r.token) return null;
  const parts = [0.5, 0.8].map((s) => bestTokenLine(r, s)).filter((x): x is string => x !== null);
  return parts.length > 0 ? `Best per-token served variant by held-out perplexity: ${parts.join('; ')}.` : null;
}

function tokenSection(r: EvalResults, lines: string[], table: (header: string[], rows: string[][]) => void): void {
  const token = r.token!;
  const { settings } = r;
  const modes = setModes(settings.modes);
  const wanted = [0.25, 0.5, 0.7, 0.8, 0.9];
  let shown = settings.sparsities.filter((s) => wanted.some((w) => near(w, s)));
  if (shown.length === 0) shown = settings.sparsities.filter((s) => s > 0);
  if (shown.length === 0) shown = settings.sparsities;
  const compared = (['cor_gxo', 'magnitude'] as Metric[]).filter((m) => settings.metrics.includes(m));
  const header = ['', ...shown.map(pct)];
  const sets = r.inputs.promptSets.map((s) => s.name);
  const tokenCell = (name: string, s: number, f: (p: TokenPerplexityRow) => string) => {
    const row = token.perplexity.find((p) => p.variant === name && near(p.sparsity, s));
    return row ? f(row) : '';
  };
  const setCell = (mode: SetMode, metric: Metric, s: number, f: (p: PerplexityRow) => string) => {
    const row = r.perplexity.find((p) => p.mode === mode && p.metric === metric && near(p.sparsity, s));
    return row ? f(row) : '';
  };

  lines.push(
    '## Per-token served activation',
    '',
    'Each variant `token:<selector>/<block>` runs the serving graph with per-token selection inside it (`src/arch/token-mlp.ts`), as the server does with `activation: "token"`: the prompt pass runs dense, then every decode step (and every scored position of a held-out passage) keeps its own top blocks of `<block>` consecutive neurons per layer, scored by the gate projection (`gate`) or by a learned low-rank predictor trained on Corrected GxO or magnitude labels (`predictor-*`). The kept share is whole blocks, `keptBlocks` of `src/sparsity/selectors.ts`. Rows below the variants are the masked modes of the same metric at the same sparsity, for comparison.',
    '',
  );
  const best = bestTokenSummary(r);
  if (best) lines.push(best, '');

  const variantRows = (f: (p: TokenPerplexityRow) => string) => token.variants.map((v) => [`\`${v.name}\``, ...shown.map((s) => tokenCell(v.name, s, f))]);
  const modeRows = (f: (p: PerplexityRow) => string) =>
    modes.flatMap((mode) => compared.map((metric) => [`${mode}, ${METRIC_LABELS[metric]}`, ...shown.map((s) => setCell(mode, metric, s, f))]));
  lines.push(
    `### Held-out text: perplexity (bits per byte)`,
    '',
    `Dense: perplexity ${r.dense.perplexity.toFixed(2)}, ${r.dense.bitsPerByte.toFixed(3)} bits per byte.`,
    '',
  );
  const quality = (p: { perplexity: number; bitsPerByte: number }) => `${p.perplexity.toFixed(2)} (${p.bitsPerByte.toFixed(3)})`;
  table(['variant \\ MLP sparsity', ...header.slice(1)], [...variantRows(quality), ...modeRows(quality)]);

  for (const set of sets) {
    lines.push(`### ${set}: BLEU against dense (token agreement)`, '');
    const gen = (g: { bleu: number; tokenAgreement: number } | undefined) => (g ? `${f1(g.bleu)} (${pct(g.tokenAgreement)})` : '');
    table(
      ['variant \\ MLP sparsity', ...header.slice(1)],
      [
        ...token.variants.map((v) => [
          `\`${v.name}\``,
          ...shown.map((s) => gen(token.generation.find((g) => g.set === set && g.variant === v.name && near(g.sparsity, s)))),
        ]),
        ...modes.flatMap((mode) =>
          compared.map((metric) => [
            `${mode}, ${METRIC_LABELS[metric]}`,
            ...shown.map((s) => gen(r.generation.find((g) => g.set === set && g.mode === mode && g.metric === metric && near(g.sparsity, s)))),
          ]),
        ),
      ],
    );
  }

  if (token.perplexity.some((p) => p.recall !== undefined)) {
    lines.push(
      "### Recall of the oracle's Corrected GxO sets",
      '',
      "On the held-out passages' scored positions (teacher-forced, so every variant sees the same positions as the oracle): the share of the oracle's top Corrected GxO neurons at the same sparsity that the blocks a position selected cover, mean over positions and layers. A block counts as all of its neurons.",
      '',
    );
    table(
      ['variant \\ MLP sparsity', ...header.slice(1)],
      variantRows((p) => (p.recall === undefined ? '' : pct(p.recall))),
    );
  }
  const blocks = [...new Set(token.variants.map((v) => v.block))].filter((b) => b > 1);
  const removed = (block: number) => {
    const name = token.variants.find((v) => v.block === block)!.name;
    return shown.map((s) => `${pct(s)} → ${(100 * Number(tokenCell(name, s, (p) => String(p.mlpSparsity)))).toFixed(1)}%`).join(', ');
  };
  if (blocks.length > 0)
    lines.push(
      `Whole blocks are kept, so the share of MLP neurons a token leaves out is near the nominal sparsity: ${blocks.map((b) => `blocks of ${b}: ${removed(b)}`).join('; ')}.`,
      '',
    );
}
