/**
 * The sparse-serving request fields (`sparsity`, `latency_budget_ms`, `activation`,
 * `sparse_prefill`) as the engine's ExecutionOptions, checked by the model before any work,
 * and the engine's SparsityReport / FLOP counts as the response's `sparsity` object and usage.
 */
import { ParameterError, type ExecutionOptions, type GenerationResult, type ServedModel, type SparsityReport } from '../runtime/types.js';
import { invalidRequest } from './errors.js';
import type { SparsityInfo, Usage } from './schemas.js';

/** The request fields, as both completions and scoring accept them (null means not given). */
export interface ExecutionRequestFields {
  sparsity?: number | string | null;
  latency_budget_ms?: number | null;
  activation?: 'static' | 'prompt' | 'token' | null;
  sparse_prefill?: boolean | null;
}

/** Request fields to ExecutionOptions; `sparsePrefillDefault` applies when the request does not say. */
export function executionOptions(fields: ExecutionRequestFields, sparsePrefillDefault?: boolean): ExecutionOptions {
  const execution: ExecutionOptions = {};
  if (fields.sparsity != null) execution.sparsity = fields.sparsity;
  if (fields.latency_budget_ms != null) execution.latencyBudgetMs = fields.latency_budget_ms;
  if (fields.activation != null) execution.activation = fields.activation;
  const sparsePrefill = fields.sparse_prefill ?? sparsePrefillDefault;
  if (sparsePrefill !== undefined) execution.sparsePrefill = sparsePrefill;
  return execution;
}

/**
 * Asks the model whether it can honour `execution`; its ParameterError becomes OpenAI's 400
 * naming the request field (the engine may name it in camelCase, as ExecutionOptions does).
 */
export function checkExecution(model: ServedModel, execution: ExecutionOptions): void {
  try {
    model.checkExecution(execution);
  } catch (err) {
    if (err instanceof ParameterError) throw invalidRequest(err.message, requestField(err.param), err.code);
    throw err;
  }
}

/** `latencyBudgetMs` -> `latency_budget_ms`; snake_case names pass unchanged. */
export function requestField(param: string): string {
  return param.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

export function sparsityInfo(report: SparsityReport): SparsityInfo {
  const info: SparsityInfo = {
    tier: report.tier,
    sparsity: report.sparsity,
    activation_source: report.activationSource,
    flop_ratio: report.flopRatio,
    sparse_prefill: report.sparsePrefill,
  };
  if (report.selector !== undefined) info.selector = report.selector;
  if (report.block !== undefined) info.block = report.block;
  if (report.budgetMs !== undefined) info.budget_ms = report.budgetMs;
  if (report.predictedMs !== undefined) info.predicted_ms = report.predictedMs;
  if (report.budgetMet !== undefined) info.budget_met = report.budgetMet;
  return info;
}

/**
 * What a request's generations ran: the first one's sparsity report (every generation of a
 * request gets the same options, so the same tier, unless a latency budget's profile changed
 * between them) and the FLOPs summed over all of them.
 */
export class ExecutionSummary {
  private first: SparsityReport | null = null;
  private flopsDense = 0;
  private flopsExecuted = 0;
  private cachedTokens = 0;
  private counted = false;

  add(result: GenerationResult): void {
    if (this.first === null && result.sparsity !== undefined) this.first = result.sparsity;
    if (result.flopsDense !== undefined && result.flopsExecuted !== undefined) {
      this.flopsDense += result.flopsDense;
      this.flopsExecuted += result.flopsExecuted;
      this.cachedTokens += result.cachedPromptTokens ?? 0;
      this.counted = true;
    }
  }

  /** The response's `sparsity` object; undefined when the engine reported none. */
  sparsity(): SparsityInfo | undefined {
    return this.first === null ? undefined : sparsityInfo(this.first);
  }

  /** Adds flops_dense / flops_executed to `usage` when the engine counted them. */
  addTo(usage: Usage): Usage {
    if (this.counted) {
      usage.flops_dense = this.flopsDense;
      usage.flops_executed = this.flopsExecuted;
      usage.prompt_tokens_details = { cached_tokens: this.cachedTokens };
    }
    return usage;
  }
}
