import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import type { Graph } from './graph.js';
import type { AttrValue, DType, Shape, TypedData, Value } from './types.js';

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
  bool: onnx.TensorProto.DataType.BOOL,
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

/** Serialises the graph as an ONNX ModelProto, ready for `InferenceSession.create(bytes)`. */
export function toOnnx(graph: Graph): Uint8Array {
  const model: OnnxTypes.IModelProto = {
    irVersion: IR_VERSION,
    producerName: 'sparse-slm-server',
    opsetImport: [{ domain: '', version: OPSET }],
    graph: {
      name: graph.name,
      input: graph.inputs.map(valueInfo),
      output: graph.outputs.map(valueInfo),
      initializer: [...graph.initializers.values()].map(({ value, data }) => ({
        name: value.name,
        dims: dims(value.shape),
        dataType: ELEM_TYPE[value.dtype],
        rawData: bytes(data),
      })),
      node: graph.nodes.map((n, i) => ({
        name: `${n.op}_${i}`,
        opType: ONNX_OP[n.op] ?? n.op,
        input: n.inputs.map((v) => v.name),
        output: n.outputs.map((v) => v.name),
        attribute: Object.entries(n.attrs).map(([k, v]) => attribute(k, v)),
      })),
    },
  };
  return onnx.ModelProto.encode(model).finish();
}
