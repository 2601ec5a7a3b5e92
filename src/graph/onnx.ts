import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import type { Graph } from './graph.js';
import type { AttrValue, DType, Node, Shape, TypedData, Value } from './types.js';

const { onnx } = onnxProto;

/** ONNX opset the builder targets: 18 takes reduction axes as inputs for every Reduce op. */
export const OPSET = 18;
const IR_VERSION = 8;

/** Builder ops that are ONNX ops under another name. */
const ONNX_OP: Record<string, string> = { StopGradient: 'Identity' };

const ELEM_TYPE: Record<DType, number> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float64: onnx.TensorProto.DataType.DOUBLE,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL,
  uint8: onnx.TensorProto.DataType.UINT8,
  int8: onnx.TensorProto.DataType.INT8,
};

function valueInfo(v: Value): OnnxTypes.IValueInfoProto {
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: ELEM_TYPE[v.dtype],
        shape: { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function bytes(data: TypedData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

function attribute(name: string, value: AttrValue): OnnxTypes.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (name === 'to') return { name, type: T.INT, i: ELEM_TYPE[value as DType] };
  if (Array.isArray(value)) return { name, type: T.INTS, ints: value };
  if (typeof value === 'number') {
    return Number.isInteger(value) ? { name, type: T.INT, i: value } : { name, type: T.FLOAT, f: value };
  }
  return { name, type: T.STRING, s: new TextEncoder().encode(value) };
}

function dims(shape: Shape): number[] {
  return shape.map((d) => {
    if (typeof d !== 'number') throw new Error(`initializer dims must be known, got ${d}`);
    return d;
  });
}

/**
 * Graph outputs are recorded as Identity nodes (`Graph.output`), which ONNX Runtime executes as
 * copies: every serving step would copy the whole KV cache once more. Serialised, an output's
 * Identity is dropped and the node producing its input writes the output name directly, unless
 * that value is a graph input or initializer, is an output already, or feeds another output's
 * Identity first (those keep their copy). Returns the renames and the Identity nodes dropped.
 */
function elideOutputIdentities(graph: Graph): { rename: Map<string, string>; dropped: Set<Node> } {
  const outputs = new Set(graph.outputs.map((v) => v.name));
  const notProduced = new Set([...graph.inputs.map((v) => v.name), ...graph.initializers.keys()]);
  const rename = new Map<string, string>();
  const dropped = new Set<Node>();
  for (const node of graph.nodes) {
    if (node.op !== 'Identity' || !outputs.has(node.outputs[0].name)) continue;
    const source = node.inputs[0].name;
    if (notProduced.has(source) || outputs.has(source) || rename.has(source)) continue;
    rename.set(source, node.outputs[0].name);
    dropped.add(node);
  }
  return { rename, dropped };
}

/** ONNX op type and domain of a recorded op (`domain.Op` for kernels outside the default domain). */
function opType(op: string): { opType: string; domain: string } {
  const dot = op.lastIndexOf('.');
  return dot < 0 ? { opType: ONNX_OP[op] ?? op, domain: '' } : { opType: op.slice(dot + 1), domain: op.slice(0, dot) };
}

/** Serialises the graph as an ONNX ModelProto, ready for `InferenceSession.create(bytes)`. */
export function toOnnx(graph: Graph): Uint8Array {
  return encode(graph, () => null);
}

/**
 * Protobuf cannot encode a message of 2 GiB or more, so a model whose initializers approach it
 * keeps them in a data file beside the model (ONNX external data). Below this many bytes of
 * initializers, everything stays inline.
 */
const INLINE_LIMIT = 1.5 * 2 ** 30;
/** The data file's name, which the model's tensors reference (resolved beside the model file). */
export const EXTERNAL_DATA_FILE = 'weights.bin';
/** Offsets of external tensors are multiples of this (a page), so ONNX Runtime may map them. */
const EXTERNAL_ALIGNMENT = 4096;

export interface OnnxFiles {
  model: Uint8Array;
  /** With external data: the data file's pieces at their offsets (the gaps zero-filled); null when every initializer is inline. */
  external: { offset: number; bytes: Uint8Array }[] | null;
}

/**
 * Serialises the graph, its initializers inline while they total under `inlineLimit` bytes, else
 * every initializer of at least a page in EXTERNAL_DATA_FILE: load such a model from a file
 * path, with the data file beside it.
 */
export function toOnnxFiles(graph: Graph, inlineLimit = INLINE_LIMIT): OnnxFiles {
  let total = 0;
  for (const { data } of graph.initializers.values()) total += data.byteLength;
  if (total < inlineLimit) return { model: toOnnx(graph), external: null };
  const pieces: { offset: number; bytes: Uint8Array }[] = [];
  let end = 0;
  const model = encode(graph, (data) => {
    if (data.byteLength < EXTERNAL_ALIGNMENT) return null;
    const offset = Math.ceil(end / EXTERNAL_ALIGNMENT) * EXTERNAL_ALIGNMENT;
    pieces.push({ offset, bytes: bytes(data) });
    end = offset + data.byteLength;
    return [
      { key: 'location', value: EXTERNAL_DATA_FILE },
      { key: 'offset', value: String(offset) },
      { key: 'length', value: String(data.byteLength) },
    ];
  });
  return { model, external: pieces };
}

/** `external` decides where an initializer's bytes go: its external-data entries, or null to keep them inline. */
function encode(graph: Graph, external: (data: TypedData) => OnnxTypes.IStringStringEntryProto[] | null): Uint8Array {
  const { rename, dropped } = elideOutputIdentities(graph);
  const named = (v: Value) => rename.get(v.name) ?? v.name;
  const domains = new Set(graph.nodes.map((n) => opType(n.op).domain).filter((d) => d !== ''));
  const model: OnnxTypes.IModelProto = {
    irVersion: IR_VERSION,
    producerName: 'sparse-slm-server',
    opsetImport: [{ domain: '', version: OPSET }, ...[...domains].map((domain) => ({ domain, version: 1 }))],
    graph: {
      name: graph.name,
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
      initializer: [...graph.initializers.values()].map(({ value, data }) => {
        const tensor = { name: value.name, dims: dims(value.shape), dataType: ELEM_TYPE[value.dtype] };
        const entries = external(data);
        return entries ? { ...tensor, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData: entries } : { ...tensor, rawData: bytes(data) };
      }),
      node: graph.nodes
        .filter((n) => !dropped.has(n))
        .map((n, i) => ({
          name: `${n.op}_${i}`,
          ...opType(n.op),
          input: n.inputs.map(named),
          output: n.outputs.map(named),
          attribute: Object.entries(n.attrs).map(([k, v]) => attribute(k, v)),
        })),
    },
  };
  return onnx.ModelProto.encode(model).finish();
}
