import { OPS, type OutputType } from './ops.js';
import type { AttrValue, DType, Initializer, Node, Shape, TypedData, Value } from './types.js';

const ARRAYS: Record<DType, (n: number[]) => TypedData> = {
  float32: (n) => Float32Array.from(n),
  float64: (n) => Float64Array.from(n),
  int64: (n) => BigInt64Array.from(n, (v) => BigInt(v)),
  int32: (n) => Int32Array.from(n),
  bool: (n) => Uint8Array.from(n, (v) => (v ? 1 : 0)),
  uint8: (n) => Uint8Array.from(n),
  int8: (n) => Int8Array.from(n),
};

/**
 * Records ops on typed values. Each method appends one ONNX node and returns its output with
 * the inferred dtype and shape; the record is what `toOnnx` serialises and what autodiff walks.
 */
export class Graph {
  readonly nodes: Node[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly initializers = new Map<string, Initializer>();
  private counter = 0;

  constructor(readonly name = 'graph') {}

  private fresh(hint: string): string {
    return `${hint}_${this.counter++}`;
  }

  input(name: string, dtype: DType, shape: Shape): Value {
    const v = { name, dtype, shape };
    this.inputs.push(v);
    return v;
  }

  /** Marks `v` as a graph output under `name` (an Identity keeps internal names free). */
  output(v: Value, name: string): Value {
    const out = this.apply('Identity', [v], {}, name)[0];
    this.outputs.push(out);
    return out;
  }

  /** A constant tensor; `data` is taken as is (not copied). */
  constant(data: TypedData, shape: Shape, dtype: DType, name?: string): Value {
    const v = { name: name ?? this.fresh('const'), dtype, shape };
    this.initializers.set(v.name, { value: v, data });
    return v;
  }

  /** A rank-0 constant of a float or int dtype. */
  scalar(value: number, dtype: DType = 'float32'): Value {
    return this.constant(ARRAYS[dtype]([value]), [], dtype);
  }

  /** Small constants (axes, shapes, scalars) from plain numbers. */
  const(values: number[] | number, dtype: DType = 'int64'): Value {
    const list = typeof values === 'number' ? [values] : values;
    return this.constant(ARRAYS[dtype](list), typeof values === 'number' ? [] : [list.length], dtype);
  }

  constantData(v: Value): TypedData | null {
    return this.initializers.get(v.name)?.data ?? null;
  }

  /**
   * Records `op`. Output types come from the op table's rule, or from `types` where the rule
   * cannot see them (a shape known only as another value's shape).
   */
  apply(op: string, inputs: Value[], attrs: Record<string, AttrValue> = {}, outName?: string, types?: OutputType[]): Value[] {
    const def = OPS[op];
    if (!def) throw new Error(`op ${op} is not in the op table`);
    types ??= def.infer({ inputs, attrs, constant: (i) => this.constantData(inputs[i]) });
    const outputs = types.map((t, i) => ({
      name: outName && i === 0 ? outName : this.fresh(op.toLowerCase()),
      dtype: t.dtype,
      shape: t.shape,
    }));
    this.nodes.push({ op, inputs, outputs, attrs });
    return outputs;
  }

  /**
   * An ONNX Runtime kernel outside the op table, `domain.Op` for a non-default domain (e.g.
   * `com.microsoft.SkipSimplifiedLayerNormalization`), with its output types given; a null input
   * or type leaves that optional input or output out. For serving graphs only: autodiff has no
   * rule for it.
   */
  kernel(op: string, inputs: (Value | null)[], types: (OutputType | null)[], attrs: Record<string, AttrValue> = {}): Value[] {
    if (OPS[op]) throw new Error(`${op} is in the op table: record it with apply`);
    const hint = op.slice(op.lastIndexOf('.') + 1).toLowerCase();
    // ONNX names an omitted optional input or output with the empty string.
    const omitted: Value = { name: '', dtype: 'float32', shape: [] };
    const outputs = types.map((t) => (t ? { name: this.fresh(hint), dtype: t.dtype, shape: t.shape } : omitted));
    this.nodes.push({ op, inputs: inputs.map((v) => v ?? omitted), outputs, attrs });
    return outputs;
  }

  private one(op: string, inputs: Value[], attrs: Record<string, AttrValue> = {}): Value {
    return this.apply(op, inputs, attrs)[0];
  }

  // Elementwise arithmetic (NumPy broadcasting).
  add(a: Value, b: Value) {
    return this.one('Add', [a, b]);
  }
  sub(a: Value, b: Value) {
    return this.one('Sub', [a, b]);
  }
  mul(a: Value, b: Value) {
    return this.one('Mul', [a, b]);
  }
  div(a: Value, b: Value) {
    return this.one('Div', [a, b]);
  }
  neg(x: Value) {
    return this.one('Neg', [x]);
  }
  sqrt(x: Value) {
    return this.one('Sqrt', [x]);
  }
  reciprocal(x: Value) {
    return this.one('Reciprocal', [x]);
  }
  exp(x: Value) {
    return this.one('Exp', [x]);
  }
  log(x: Value) {
    return this.one('Log', [x]);
  }
  sigmoid(x: Value) {
    return this.one('Sigmoid', [x]);
  }

  tanh(x: Value) {
    return this.one('Tanh', [x]);
  }
  cast(x: Value, to: DType) {
    return this.one('Cast', [x], { to });
  }
  lessOrEqual(a: Value, b: Value) {
    return this.one('LessOrEqual', [a, b]);
  }
  equal(a: Value, b: Value) {
    return this.one('Equal', [a, b]);
  }
  where(cond: Value, a: Value, b: Value) {
    return this.one('Where', [cond, a, b]);
  }

  // Linear algebra and reductions.
  matmul(a: Value, b: Value) {
    return this.one('MatMul', [a, b]);
  }
  softmax(x: Value, axis = -1) {
    return this.one('Softmax', [x], { axis });
  }
  reduceMean(x: Value, axes: number[], keepdims = true) {
    return this.one('ReduceMean', [x, this.const(axes)], { keepdims: keepdims ? 1 : 0 });
  }
  reduceSum(x: Value, axes: number[], keepdims = true) {
    return this.one('ReduceSum', [x, this.const(axes)], { keepdims: keepdims ? 1 : 0 });
  }
  reduceMax(x: Value, axes: number[], keepdims = true) {
    return this.one('ReduceMax', [x, this.const(axes)], { keepdims: keepdims ? 1 : 0 });
  }
  reduceProd(x: Value, axes: number[], keepdims = true) {
    return this.one('ReduceProd', [x, this.const(axes)], { keepdims: keepdims ? 1 : 0 });
  }
  /** x unchanged, but no gradient flows back through it. */
  stopGradient(x: Value) {
    return this.one('StopGradient', [x]);
  }

  // Shape manipulation.
  reshape(x: Value, shape: number[]) {
    return this.one('Reshape', [x, this.const(shape)]);
  }
  /** x reshaped to `like`'s shape, read at run time (for shapes with symbolic dims). */
  reshapeAs(x: Value, like: Value) {
    return this.apply('Reshape', [x, this.shape(like)], {}, undefined, [{ dtype: x.dtype, shape: like.shape }])[0];
  }
  /** x broadcast to `like`'s shape, read at run time. */
  expandAs(x: Value, like: Value) {
    return this.apply('Expand', [x, this.shape(like)], {}, undefined, [{ dtype: x.dtype, shape: like.shape }])[0];
  }
  transpose(x: Value, perm: number[]) {
    return this.one('Transpose', [x], { perm });
  }
  concat(xs: Value[], axis: number) {
    return this.one('Concat', xs, { axis });
  }
  unsqueeze(x: Value, axes: number[]) {
    return this.one('Unsqueeze', [x, this.const(axes)]);
  }
  gather(data: Value, indices: Value, axis = 0) {
    return this.one('Gather', [data, indices], { axis });
  }
  shape(x: Value) {
    return this.one('Shape', [x]);
  }
  range(start: Value, limit: Value, delta: Value) {
    return this.one('Range', [start, limit, delta]);
  }
  /** x[..., starts:ends, ...] on `axes`; starts/ends may be run-time values (1-D int64). */
  slice(x: Value, starts: number[] | Value, ends: number[] | Value, axes: number[]) {
    const s = Array.isArray(starts) ? this.const(starts) : starts;
    const e = Array.isArray(ends) ? this.const(ends) : ends;
    return this.one('Slice', [x, s, e, this.const(axes)]);
  }
}
