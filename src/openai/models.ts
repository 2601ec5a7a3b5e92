/** GET /v1/models: OpenAI's model card, plus vLLM's max_model_len and the sparsity tiers served. */
import type { ServedModel, TierInfo } from '../runtime/types.js';
import type { ModelCard, TierCard } from './schemas.js';

export function modelCard(model: ServedModel): ModelCard {
  const token = model.tokenActivation?.();
  return {
    id: model.id,
    object: 'model',
    created: model.created,
    owned_by: 'sparse-slm-server',
    max_model_len: model.contextLength,
    quantization: model.quant ?? 'none',
    tiers: model.tiers().map(tierCard),
    ...(token && { per_token: { selector: token.selector, selectors: token.selectors, block: token.block, tiers: token.tiers.map(tierCard) } }),
  };
}

export function tierCard(tier: TierInfo): TierCard {
  return {
    name: tier.name,
    sparsity: tier.sparsity,
    neurons_per_layer: tier.neuronsPerLayer,
    traffic_bound: tier.trafficBound,
    profile:
      tier.profile === null
        ? null
        : { prefill_ms_per_token: tier.profile.prefillMsPerToken, decode_ms_per_token: tier.profile.decodeMsPerToken, samples: tier.profile.samples },
    loaded: tier.loaded,
    memory_bytes: tier.memoryBytes,
  };
}
