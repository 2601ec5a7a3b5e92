/**
 * A small GGUF writer for the tests, written from the format description (llama.cpp's
 * docs/gguf.md and gguf-py), independent of src/model/gguf.ts except for the type numbers:
 * metadata of every value type, tensors in F32, F16, BF16, Q8_0 and Q4_0 (with quantisers),
 * and `ggufFromHfDir`, which writes what llama.cpp's convert_hf_to_gguf.py writes for a
 * LLaMA model directory: the `llama.*` hyperparameters, the tensors under ggml's names with
 * q and k rows permuted for llama.cpp's RoPE, and the tokenizer as `tokenizer.ggml.*`.
 */
import { writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { SafetensorsCheckpoint } from '../../src/model/checkpoint.js';
import { f16ToF32, f32ToBf16, f32ToF16, f32ToF16Bits } from '../../src/model/float16.js';
import { GgmlType, GgufType, type GgufKv, type GgufValue, type SupportedGgmlType } from '../../src/model/gguf.js';
import { readJsonFile } from '../../src/model/json.js';

/** Metadata values by type. */
export const kv = {
  u8: (value: number): GgufKv => ({ type: GgufType.UINT8, value }),
  i8: (value: number): GgufKv => ({ type: GgufType.INT8, value }),
  u16: (value: number): GgufKv => ({ type: GgufType.UINT16, value }),
  i16: (value: number): GgufKv => ({ type: GgufType.INT16, value }),
  u32: (value: number): GgufKv => ({ type: GgufType.UINT32, value }),
  i32: (value: number): GgufKv => ({ type: GgufType.INT32, value }),
  f32: (value: number): GgufKv => ({ type: GgufType.FLOAT32, value }),
  f64: (value: number): GgufKv => ({ type: GgufType.FLOAT64, value }),
  u64: (value: bigint): GgufKv => ({ type: GgufType.UINT64, value }),
  i64: (value: bigint): GgufKv => ({ type: GgufType.INT64, value }),
  bool: (value: boolean): GgufKv => ({ type: GgufType.BOOL, value }),
  str: (value: string): GgufKv => ({ type: GgufType.STRING, value }),
  arr: (itemType: GgufType, items: GgufValue[]): GgufKv => ({ type: GgufType.ARRAY, value: { itemType, items } }),
};

export interface GgufTensor {
  name: string;
  /** ggml order: dims[0] is the contiguous dimension (a [rows, cols] matrix is [cols, rows]). */
  dims: number[];
  type: number;
  bytes: Uint8Array;
}

export interface GgufContents {
  metadata: [string, GgufKv][];
  tensors: GgufTensor[];
  /** Written as general.alignment when given (and then used); 32 otherwise. */
  alignment?: number;
  version?: number;
}

/** Little-endian bytes, appended. */
class Sink {
  private chunks: Buffer[] = [];
  length = 0;

  push(b: Buffer | Uint8Array): void {
    const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
    this.chunks.push(buf);
    this.length += buf.length;
  }

  private fixed(n: number, write: (b: Buffer) => void): void {
    const b = Buffer.alloc(n);
    write(b);
    this.push(b);
  }

  u32(v: number): void {
    this.fixed(4, (b) => b.writeUInt32LE(v));
  }
  u64(v: number | bigint): void {
    this.fixed(8, (b) => b.writeBigUInt64LE(BigInt(v)));
  }
  string(s: string): void {
    const bytes = Buffer.from(s, 'utf8');
    this.u64(bytes.length);
    this.push(bytes);
  }

  pad(alignment: number): void {
    const n = (alignment - (this.length % alignment)) % alignment;
    if (n > 0) this.push(Buffer.alloc(n));
  }

  value(type: number, v: GgufValue): void {
    switch (type) {
      case GgufType.UINT8:
        this.fixed(1, (b) => b.writeUInt8(v as number));
        return;
      case GgufType.INT8:
        this.fixed(1, (b) => b.writeInt8(v as number));
        return;
      case GgufType.UINT16:
        this.fixed(2, (b) => b.writeUInt16LE(v as number));
        return;
      case GgufType.INT16:
        this.fixed(2, (b) => b.writeInt16LE(v as number));
        return;
      case GgufType.UINT32:
        this.fixed(4, (b) => b.writeUInt32LE(v as number));
        return;
      case GgufType.INT32:
        this.fixed(4, (b) => b.writeInt32LE(v as number));
        return;
      case GgufType.FLOAT32:
        this.fixed(4, (b) => b.writeFloatLE(v as number));
        return;
      case GgufType.FLOAT64:
        this.fixed(8, (b) => b.writeDoubleLE(v as number));
        return;
      case GgufType.UINT64:
        this.fixed(8, (b) => b.writeBigUInt64LE(v as bigint));
        return;
      case GgufType.INT64:
        this.fixed(8, (b) => b.writeBigInt64LE(v as bigint));
        return;
      case GgufType.BOOL:
        this.fixed(1, (b) => b.writeUInt8(v ? 1 : 0));
        return;
      case GgufType.STRING:
        this.string(v as string);
        return;
      case GgufType.ARRAY: {
        const { itemType, items } = v as { itemType: number; items: GgufValue[] };
        this.u32(itemType);
        this.u64(items.length);
        for (const item of items) this.value(itemType, item);
        return;
      }
      default:
        throw new Error(`gguf writer: unknown value type ${type}`);
    }
  }

  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/** The file's bytes. */
export function ggufBytes(contents: GgufContents): Buffer {
  const alignment = contents.alignment ?? 32;
  const metadata = contents.alignment === undefined ? contents.metadata : [...contents.metadata, ['general.alignment', kv.u32(alignment)] as [string, GgufKv]];
  const s = new Sink();
  s.push(Buffer.from('GGUF', 'latin1'));
  s.u32(contents.version ?? 3);
  s.u64(contents.tensors.length);
  s.u64(metadata.length);
  for (const [key, value] of metadata) {
    s.string(key);
    s.u32(value.type);
    s.value(value.type, value.value);
  }
  let offset = 0;
  for (const t of contents.tensors) {
    s.string(t.name);
    s.u32(t.dims.length);
    for (const d of t.dims) s.u64(d);
    s.u32(t.type);
    s.u64(offset);
    offset += Math.ceil(t.bytes.length / alignment) * alignment;
  }
  s.pad(alignment);
  for (const t of contents.tensors) {
    s.push(t.bytes);
    s.pad(alignment);
  }
  return s.bytes();
}

export function writeGguf(path: string, contents: GgufContents): void {
  writeFileSync(path, ggufBytes(contents));
}

/** Rounds half away from zero, as C's roundf (ggml's quantisers use it). */
function roundAway(x: number): number {
  return Math.sign(x) * Math.floor(Math.abs(x) + 0.5);
}

function scaleBits(d: number): { bits: number; stored: number } {
  const bits = f32ToF16Bits(d);
  return { bits, stored: f16ToF32(Uint16Array.of(bits))[0] };
}

/**
 * Q8_0 as ggml lays it out: per 32 values, the f16 scale d = max|x| / 127 and q = round(x / d).
 * q is computed with the scale as stored (rounded to f16), so that every value is within d/2
 * of d * q for the d a reader sees.
 */
export function quantizeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % 32 !== 0) throw new Error(`Q8_0: ${x.length} values are not whole blocks of 32`);
  const out = new Uint8Array((x.length / 32) * 34);
  const q = new Int8Array(out.buffer);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]));
    const { bits, stored } = scaleBits(amax / 127);
    out[b * 34] = bits & 0xff;
    out[b * 34 + 1] = bits >> 8;
    const inv = stored === 0 ? 0 : 1 / stored;
    for (let j = 0; j < 32; j++) q[b * 34 + 2 + j] = Math.max(-128, Math.min(127, roundAway(x[b * 32 + j] * inv)));
  }
  return out;
}

/**
 * Q4_0 as ggml's reference quantiser: per 32 values, m is the value of largest magnitude,
 * d = m / -8, q = min(15, trunc(x / d + 8.5)); value j in the low nibble of byte j, value
 * j + 16 in its high nibble. The grid is d * (q - 8): -8d = m is exact, and values beyond 7d
 * on the other side clamp to it.
 */
export function quantizeQ4_0(x: Float32Array): Uint8Array {
  if (x.length % 32 !== 0) throw new Error(`Q4_0: ${x.length} values are not whole blocks of 32`);
  const out = new Uint8Array((x.length / 32) * 18);
  for (let b = 0; b < x.length / 32; b++) {
    let amax = 0;
    let max = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[b * 32 + j];
      if (Math.abs(v) > amax) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const { bits, stored } = scaleBits(max / -8);
    out[b * 18] = bits & 0xff;
    out[b * 18 + 1] = bits >> 8;
    const inv = stored === 0 ? 0 : 1 / stored;
    const q = (j: number) => Math.max(0, Math.min(15, Math.trunc(x[b * 32 + j] * inv + 8.5)));
    for (let j = 0; j < 16; j++) out[b * 18 + 2 + j] = q(j) | (q(j + 16) << 4);
  }
  return out;
}

/** The bytes of `data` stored as `type`. */
export function encodeTensor(type: SupportedGgmlType, data: Float32Array): Uint8Array {
  switch (type) {
    case 'F32':
      return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    case 'F16':
      return new Uint8Array(f32ToF16(data).buffer);
    case 'BF16':
      return new Uint8Array(f32ToBf16(data).buffer);
    case 'Q8_0':
      return quantizeQ8_0(data);
    case 'Q4_0':
      return quantizeQ4_0(data);
  }
}

/**
 * llama.cpp's LlamaModel.permute: within each head of d rows, HF row `half * d/2 + i` moves to
 * row `2 i + half` (w.reshape(heads, 2, d/2, cols).swapaxes(1, 2)).
 */
export function permuteForLlamaCpp(data: Float32Array, rows: number, cols: number, heads: number): Float32Array {
  const d = rows / heads;
  const out = new Float32Array(data.length);
  for (let h = 0; h < heads; h++) {
    for (let half = 0; half < 2; half++) {
      for (let i = 0; i < d / 2; i++) {
        const from = (h * d + half * (d / 2) + i) * cols;
        out.set(data.subarray(from, from + cols), (h * d + 2 * i + half) * cols);
      }
    }
  }
  return out;
}

export interface FromHfOptions {
  /** Type of the 2-D tensors (1-D ones are F32, as llama.cpp writes them); default F32. */
  type?: SupportedGgmlType;
  /** Metadata to add or replace; null removes a key. */
  metadata?: Record<string, GgufKv | null>;
  /** Replaces the stored form of tensors by GGUF name (e.g. a type this project cannot read). */
  tensors?: Record<string, { type: number; bytes: Uint8Array }>;
  alignment?: number;
}

const LAYER_NAMES: [string, string][] = [
  ['input_layernorm.weight', 'attn_norm.weight'],
  ['self_attn.q_proj.weight', 'attn_q.weight'],
  ['self_attn.k_proj.weight', 'attn_k.weight'],
  ['self_attn.v_proj.weight', 'attn_v.weight'],
  ['self_attn.o_proj.weight', 'attn_output.weight'],
  ['self_attn.q_proj.bias', 'attn_q.bias'],
  ['self_attn.k_proj.bias', 'attn_k.bias'],
  ['self_attn.v_proj.bias', 'attn_v.bias'],
  ['post_attention_layernorm.weight', 'ffn_norm.weight'],
  ['mlp.gate_proj.weight', 'ffn_gate.weight'],
  ['mlp.up_proj.weight', 'ffn_up.weight'],
  ['mlp.down_proj.weight', 'ffn_down.weight'],
];

function ggufTensorName(hf: string): string {
  if (hf === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (hf === 'model.norm.weight') return 'output_norm.weight';
  if (hf === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hf);
  const suffix = m && LAYER_NAMES.find(([h]) => h === m[2])?.[1];
  if (!m || !suffix) throw new Error(`gguf writer: no GGUF name for ${hf}`);
  return `blk.${m[1]}.${suffix}`;
}

type Json = Record<string, unknown>;

/** What convert_hf_to_gguf.py writes for a LLaMA model directory with a tokenizer.json. */
export function ggufFromHfDir(dir: string, out: string, options: FromHfOptions = {}): void {
  const config = readJsonFile(join(dir, 'config.json')) as Json;
  const hidden = config.hidden_size as number;
  const heads = config.num_attention_heads as number;
  const kvHeads = (config.num_key_value_heads as number | undefined) ?? heads;
  const headDim = (config.head_dim as number | undefined) ?? hidden / heads;
  const metadata = new Map<string, GgufKv>([
    ['general.architecture', kv.str('llama')],
    ['general.name', kv.str(basename(dir))],
    ['general.quantization_version', kv.u32(2)],
    ['llama.vocab_size', kv.u32(config.vocab_size as number)],
    ['llama.context_length', kv.u32(config.max_position_embeddings as number)],
    ['llama.embedding_length', kv.u32(hidden)],
    ['llama.block_count', kv.u32(config.num_hidden_layers as number)],
    ['llama.feed_forward_length', kv.u32(config.intermediate_size as number)],
    ['llama.attention.head_count', kv.u32(heads)],
    ['llama.attention.head_count_kv', kv.u32(kvHeads)],
    ['llama.rope.freq_base', kv.f32((config.rope_theta as number | undefined) ?? 10000)],
    ['llama.attention.layer_norm_rms_epsilon', kv.f32(config.rms_norm_eps as number)],
    ['llama.rope.dimension_count', kv.u32(headDim)],
  ]);
  if (config.head_dim !== undefined) {
    metadata.set('llama.attention.key_length', kv.u32(headDim));
    metadata.set('llama.attention.value_length', kv.u32(headDim));
  }
  for (const [key, value] of tokenizerMetadata(dir)) metadata.set(key, value);
  for (const [key, value] of Object.entries(options.metadata ?? {})) {
    if (value === null) metadata.delete(key);
    else metadata.set(key, value);
  }

  const type = options.type ?? 'F32';
  const checkpoint = SafetensorsCheckpoint.open(dir);
  const tensors: GgufTensor[] = [];
  try {
    for (const hf of checkpoint.names()) {
      if (hf === 'lm_head.weight' && config.tie_word_embeddings === true) continue;
      const name = ggufTensorName(hf);
      const t = checkpoint.read(hf);
      let data = t.data;
      const [rows, cols] = [t.shape[0], t.shape.length > 1 ? t.shape[1] : 1];
      if (/attn_q\.(weight|bias)$/.test(name)) data = permuteForLlamaCpp(data, rows, cols, heads);
      if (/attn_k\.(weight|bias)$/.test(name)) data = permuteForLlamaCpp(data, rows, cols, kvHeads);
      const dims = [...t.shape].reverse();
      // As convert_hf_to_gguf.py: 1-D tensors stay F32; rows that are not whole blocks fall back to F16.
      let tensorType: SupportedGgmlType = t.shape.length < 2 ? 'F32' : type;
      if ((tensorType === 'Q8_0' || tensorType === 'Q4_0') && dims[0] % 32 !== 0) tensorType = 'F16';
      const override = options.tensors?.[name];
      tensors.push(override ? { name, dims, ...override } : { name, dims, type: GgmlType[tensorType], bytes: encodeTensor(tensorType, data) });
    }
  } finally {
    checkpoint.close();
  }
  writeGguf(out, { metadata: [...metadata], tensors, alignment: options.alignment });
}

/** The tokenizer of an HF directory as `tokenizer.ggml.*`: SentencePiece-style BPE as "llama", byte-level BPE as "gpt2". */
function tokenizerMetadata(dir: string): [string, GgufKv][] {
  const tok = readJsonFile(join(dir, 'tokenizer.json')) as Json;
  const tokConfig = readJsonFile(join(dir, 'tokenizer_config.json')) as Json;
  const model = tok.model as Json;
  const byId: string[] = [];
  for (const [token, id] of Object.entries(model.vocab as Record<string, number>)) byId[id] = token;
  const special = new Set<number>();
  for (const a of tok.added_tokens as { id: number; content: string; special: boolean }[]) {
    byId[a.id] = a.content;
    if (a.special) special.add(a.id);
  }
  for (let i = 0; i < byId.length; i++) if (byId[i] === undefined) throw new Error(`gguf writer: ${dir}: no token with id ${i}`);
  const idOf = (name: unknown) => (typeof name === 'string' ? byId.indexOf(name) : -1);
  const out: [string, GgufKv][] = [];
  const idKey = (key: string, token: unknown) => {
    const id = idOf(token);
    if (id >= 0) out.push([`tokenizer.ggml.${key}`, kv.u32(id)]);
  };
  const merges = (model.merges as (string | [string, string])[]).map((m) => (typeof m === 'string' ? m : m.join(' ')));

  if (model.byte_fallback === true) {
    // SentencePiece BPE: pieces sorted by score, score = -(rank among the normal pieces); 0 for the others.
    const unk = idOf(model.unk_token);
    let rank = 0;
    const types = byId.map((t, id) => (special.has(id) ? (id === unk ? 2 : 3) : /^<0x[0-9A-F]{2}>$/.test(t) ? 6 : 1));
    const scores = types.map((type) => (type === 1 ? -rank++ : 0));
    out.push(
      ['tokenizer.ggml.model', kv.str('llama')],
      ['tokenizer.ggml.pre', kv.str('default')],
      ['tokenizer.ggml.tokens', kv.arr(GgufType.STRING, byId)],
      ['tokenizer.ggml.scores', kv.arr(GgufType.FLOAT32, scores)],
      ['tokenizer.ggml.token_type', kv.arr(GgufType.INT32, types)],
    );
    idKey('unknown_token_id', model.unk_token);
  } else {
    const pre = tok.pre_tokenizer as Json;
    const name = pre.type === 'ByteLevel' && pre.use_regex === true ? 'gpt-2' : null;
    if (name === null) throw new Error(`gguf writer: ${dir}: no GGUF name for pre-tokenizer ${JSON.stringify(pre)}`);
    out.push(
      ['tokenizer.ggml.model', kv.str('gpt2')],
      ['tokenizer.ggml.pre', kv.str(name)],
      ['tokenizer.ggml.tokens', kv.arr(GgufType.STRING, byId)],
      [
        'tokenizer.ggml.token_type',
        kv.arr(
          GgufType.INT32,
          byId.map((_, id) => (special.has(id) ? 3 : 1)),
        ),
      ],
      ['tokenizer.ggml.merges', kv.arr(GgufType.STRING, merges)],
    );
  }
  idKey('bos_token_id', tokConfig.bos_token);
  idKey('eos_token_id', tokConfig.eos_token);
  idKey('padding_token_id', tokConfig.pad_token);
  if (typeof tokConfig.add_bos_token === 'boolean') out.push(['tokenizer.ggml.add_bos_token', kv.bool(tokConfig.add_bos_token)]);
  if (typeof tokConfig.add_eos_token === 'boolean') out.push(['tokenizer.ggml.add_eos_token', kv.bool(tokConfig.add_eos_token)]);
  if (typeof tokConfig.chat_template === 'string') out.push(['tokenizer.chat_template', kv.str(tokConfig.chat_template)]);
  return out;
}
