import { addDims, broadcastShapes, freshDim, normAxis } from './shape.js';
import type { AttrValue, DType, Shape, TypedData, Value } from './types.js';

/** What an op's shape rule may look at: its inputs, attributes and the data of constant inputs. */
export interface InferContext {
  inputs: Value[];
  attrs: Record<string, AttrValue>;
  /** The values of a constant input (an initializer), or null when it is computed at run time. */
  constant(i: number): TypedData | null;
}

export interface OutputType {
  dtype: DType;
  shape: Shape;
}

/**
 * The op table: each ONNX op the architectures use, with its output type rule. Reverse-mode
 * autodiff adds each op's vector-Jacobian product beside its rule.
 */
export interface OpDef {
  infer(ctx: InferContext): OutputType[];
}

const same: OpDef = { infer: ({ inputs }) => [{ dtype: inputs[0].dtype, shape: inputs[0].shape }] };
const broadcast: OpDef = {
  infer: ({ inputs }) => [{ dtype: inputs[0].dtype, shape: broadcastShapes(...inputs.map((v) => v.shape)) }],
};
const compare: OpDef = {
  infer: ({ inputs }) => [{ dtype: 'bool', shape: broadcastShapes(inputs[0].shape, inputs[1].shape) }],
};

function intList(data: TypedData | null, what: string): number[] {
  if (!data) throw new Error(`${what} must be a constant`);
  return Array.from(data as BigInt64Array, (v) => Number(v));
}

function reduce(ctx: InferContext): OutputType[] {
  const x = ctx.inputs[0];
  const axes = intList(ctx.constant(1), 'reduce axes').map((a) => normAxis(a, x.shape.length));
  const keep = ctx.attrs.keepdims !== 0;
  const shape = x.shape.flatMap((d, i) => (axes.includes(i) ? (keep ? [1] : []) : [d]));
  return [{ dtype: x.dtype, shape }];
}

export const OPS: Record<string, OpDef> = {
  Add: broadcast,
  Sub: broadcast,
  Mul: broadcast,
  Div: broadcast,
  Pow: broadcast,
  Neg: same,
  Sqrt: same,
  Reciprocal: same,
  Exp: same,
  Log: same,
  Sigmoid: same,
  Softmax: same,
  LessOrEqual: compare,
  Identity: same,
  Cast: { infer: ({ inputs, attrs }) => [{ dtype: attrs.to as DType, shape: inputs[0].shape }] },
  Where: {
    infer: ({ inputs }) => [{ dtype: inputs[1].dtype, shape: broadcastShapes(...inputs.map((v) => v.shape)) }],
  },
  ReduceMean: { infer: reduce },
  ReduceSum: { infer: reduce },
  MatMul: {
    infer: ({ inputs: [a, b] }) => {
      if (a.shape.length < 2 || b.shape.length < 2) throw new Error('MatMul operands must have rank >= 2');
      const k1 = a.shape[a.shape.length - 1];
      const k2 = b.shape[b.shape.length - 2];
      if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2) {
        throw new Error(`MatMul inner dims differ: ${k1} vs ${k2}`);
      }
      const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
      return [{ dtype: a.dtype, shape: [...batch, a.shape[a.shape.length - 2], b.shape[b.shape.length - 1]] }];
    },
  },
  Transpose: {
    infer: ({ inputs: [x], attrs }) => [{ dtype: x.dtype, shape: (attrs.perm as number[]).map((p) => x.shape[p]) }],
  },
  Reshape: {
    infer: (ctx) => {
      const x = ctx.inputs[0];
      const target = intList(ctx.constant(1), 'Reshape shape');
      const shape: Shape = target.map((d, i) => (d === 0 ? x.shape[i] : d));
      const known = shape.filter((d): d is number => typeof d === 'number' && d !== -1);
      const inferred = shape.indexOf(-1);
      if (inferred >= 0) {
        const total = x.shape.every((d) => typeof d === 'number')
          ? (x.shape as number[]).reduce((p, d) => p * d, 1)
          : null;
        const symbolic = shape.some((d, i) => i !== inferred && typeof d === 'string');
        shape[inferred] = total !== null && !symbolic ? total / known.reduce((p, d) => p * d, 1) : freshDim('reshape');
      }
      return [{ dtype: x.dtype, shape }];
    },
  },
  Concat: {
    infer: ({ inputs, attrs }) => {
      const axis = normAxis(attrs.axis as number, inputs[0].shape.length);
      const shape = [...inputs[0].shape];
      for (const v of inputs.slice(1)) shape[axis] = addDims(shape[axis], v.shape[axis]);
      return [{ dtype: inputs[0].dtype, shape }];
    },
  },
  Slice: {
    infer: (ctx) => {
      const x = ctx.inputs[0];
      const shape = [...x.shape];
      const axes = intList(ctx.constant(3), 'Slice axes').map((a) => normAxis(a, x.shape.length));
      const starts = ctx.constant(1);
      const ends = ctx.constant(2);
      axes.forEach((axis, i) => {
        const dim = x.shape[axis];
        if (!starts || !ends || typeof dim !== 'number') {
          shape[axis] = freshDim('slice');
          return;
        }
        const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
        shape[axis] = Math.max(0, clamp(Number(ends[i])) - clamp(Number(starts[i])));
      });
      return [{ dtype: x.dtype, shape }];
    },
  },
  Gather: {
    infer: ({ inputs: [data, indices], attrs }) => {
      const axis = normAxis((attrs.axis as number | undefined) ?? 0, data.shape.length);
      return [{ dtype: data.dtype, shape: [...data.shape.slice(0, axis), ...indices.shape, ...data.shape.slice(axis + 1)] }];
    },
  },
  Unsqueeze: {
    infer: (ctx) => {
      const x = ctx.inputs[0];
      const rank = x.shape.length + intList(ctx.constant(1), 'Unsqueeze axes').length;
      const axes = intList(ctx.constant(1), 'Unsqueeze axes').map((a) => normAxis(a, rank));
      const rest = [...x.shape];
      const shape: Shape = [];
      for (let i = 0; i < rank; i++) shape.push(axes.includes(i) ? 1 : rest.shift()!);
      return [{ dtype: x.dtype, shape }];
    },
  },
  Shape: { infer: ({ inputs: [x] }) => [{ dtype: 'int64', shape: [x.shape.length] }] },
  Range: { infer: ({ inputs: [start] }) => [{ dtype: start.dtype, shape: [freshDim('range')] }] },
};
