/** A dense float32 tensor in row-major order, as loaded from a checkpoint. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

export type Architecture = 'LlamaForCausalLM' | 'MistralForCausalLM' | 'Qwen2ForCausalLM' | 'Phi3ForCausalLM';

/** The fields of a Hugging Face config.json that the LLaMA family's forward needs. */
export interface LlamaConfig {
  architecture: Architecture;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (always for Qwen2, `attention_bias` for LLaMA). */
  attentionBias: boolean;
  vocabSize: number;
  /** max_position_embeddings, or a shorter sliding window (see config.ts `readMaxPositions`). */
  maxPositions: number;
  bosTokenId: number | null;
  /** From config.json and generation_config.json together; generation stops at any of them. */
  eosTokenIds: number[];
}

/** Weights of one decoder layer, each as stored by Hugging Face: linear weights are [out, in]. */
export interface LayerWeights {
  inputNorm: HostTensor; // [hidden]
  q: HostTensor; // [heads*headDim, hidden]
  k: HostTensor; // [kvHeads*headDim, hidden]
  v: HostTensor; // [kvHeads*headDim, hidden]
  o: HostTensor; // [hidden, heads*headDim]
  qBias?: HostTensor;
  kBias?: HostTensor;
  vBias?: HostTensor;
  postNorm: HostTensor; // [hidden]
  gate: HostTensor; // [intermediate, hidden]
  up: HostTensor; // [intermediate, hidden]
  down: HostTensor; // [hidden, intermediate]
}

export interface LlamaWeights {
  embed: HostTensor; // [vocab, hidden]
  layers: LayerWeights[];
  norm: HostTensor; // [hidden]
  /** [vocab, hidden]; the same object as `embed` when embeddings are tied. */
  lmHead: HostTensor;
}

/** Defaults for sampling read from generation_config.json, when present. */
export interface GenerationDefaults {
  temperature?: number;
  topP?: number;
  topK?: number;
}
