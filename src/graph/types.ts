/** Element types the builder knows, named as ONNX Runtime's JS tensors name them. */
export type DType = 'float32' | 'float64' | 'int64' | 'int32' | 'bool' | 'uint8' | 'int8';

/** A dimension: a number when known while building, a symbol (e.g. "batch", "seq") otherwise. */
export type Dim = number | string;
export type Shape = Dim[];

/** A tensor flowing through the graph. Shapes are inferred as ops are recorded. */
export interface Value {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: Shape;
}

export type AttrValue = number | number[] | string | DType;

/** One recorded op: what autodiff walks backwards and what serialises to an ONNX NodeProto. */
export interface Node {
  readonly op: string;
  readonly inputs: Value[];
  readonly outputs: Value[];
  readonly attrs: Record<string, AttrValue>;
}

export type TypedData = Float32Array | Float64Array | BigInt64Array | Int32Array | Uint8Array | Int8Array;

/** A constant tensor stored in the model (weights, tables, shape vectors). */
export interface Initializer {
  readonly value: Value;
  readonly data: TypedData;
}
