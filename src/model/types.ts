/** A dense float32 tensor in row-major order, as loaded from a checkpoint. */
export interface HostTensor {
  shape: number[];
  data: Float32Array;
}

export type Architecture =
  | 'LlamaForCausalLM'
  | 'MistralForCausalLM'
  | 'Qwen2ForCausalLM'
  | 'Phi3ForCausalLM'
  | 'MobiLlamaForCausalLM'
  | 'PhiForCausalLM'
  | 'GPT2LMHeadModel';

/**
 * The fields of a Hugging Face config.json that a decoder's forward needs, in one vocabulary
 * for every architecture (each family's reader: src/arch/config.ts).
 */
export interface ModelConfig {
  architecture: Architecture;
  hiddenSize: number;
  intermediateSize: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** RMSNorm (the LLaMA family) or LayerNorm with a bias (Phi, GPT-2). */
  norm: 'rms' | 'layer';
  normEps: number;
  /** SwiGLU: down(silu(gate x) * up x); or GELU (tanh approximation, `gelu_new`): down(gelu(up x + b) + b). */
  mlp: 'swiglu' | 'gelu';
  /**
   * RoPE rotates the first `rotaryDim` dimensions of each head (all of them but in Phi, whose
   * `partial_rotary_factor` rotates part); 0: learned absolute positions are added to the
   * embeddings instead (GPT-2).
   */
  rotaryDim: number;
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

/**
 * Weights of one decoder layer, in one vocabulary for every architecture (each family's names:
 * src/arch/checkpoints.ts). Linear weights are [out, in], as torch.nn.Linear stores them; a
 * bias is present where the architecture has it.
 */
export interface LayerWeights {
  inputNorm: HostTensor; // [hidden]
  inputNormBias?: HostTensor;
  q: HostTensor; // [heads*headDim, hidden]
  k: HostTensor; // [kvHeads*headDim, hidden]
  v: HostTensor; // [kvHeads*headDim, hidden]
  o: HostTensor; // [hidden, heads*headDim]
  qBias?: HostTensor;
  kBias?: HostTensor;
  vBias?: HostTensor;
  oBias?: HostTensor;
  /** The MLP's own norm; absent in a parallel block, where the MLP reads the input norm's output. */
  postNorm?: HostTensor; // [hidden]
  postNormBias?: HostTensor;
  /** SwiGLU only. */
  gate?: HostTensor; // [intermediate, hidden]
  /** The MLP's input projection (SwiGLU's up, Phi's fc1, GPT-2's c_fc). */
  up: HostTensor; // [intermediate, hidden]
  upBias?: HostTensor; // [intermediate]
  /** The MLP's output projection (down, fc2, c_proj). */
  down: HostTensor; // [hidden, intermediate]
  downBias?: HostTensor; // [hidden]
}

export interface ModelWeights {
  embed: HostTensor; // [vocab, hidden]
  /** Learned absolute positions, [maxPositions, hidden] (GPT-2). */
  positions?: HostTensor;
  layers: LayerWeights[];
  norm: HostTensor; // [hidden]
  normBias?: HostTensor;
  /** [vocab, hidden]; the same object as `embed` when embeddings are tied. */
  lmHead: HostTensor;
  lmHeadBias?: HostTensor; // [vocab]
}

/** Defaults for sampling read from generation_config.json, when present. */
export interface GenerationDefaults {
  temperature?: number;
  topP?: number;
  topK?: number;
}
