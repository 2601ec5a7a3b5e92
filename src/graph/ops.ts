/**
 * The op table: every ONNX op the builder records, with its output-type rule and, beside it,
 * its vector-Jacobian product (VJP) for reverse-mode autodiff (src/graph/autodiff.ts).
 *
 * A VJP gets the output's gradient `dy` and returns, for each input, a thunk that builds that
 * input's gradient, or null where none flows (integer inputs, shapes, masks). Thunks let
 * autodiff build only the gradients a path to `wrt` needs.
 */
import type { Graph } from './graph.js';
import { addDims, broadcastShapes, freshDim, normAxis } from './shape.js';
import type { AttrValue, DType, Node, Shape, TypedData, Value } from './types.js';

/** What an op's type rule may look at: inputs, attributes and the data of constant inputs. */
export interface InferContext {
  inputs: Value[];
  attrs: Record<string, AttrValue>;
  /** The values of a constant input (an initializer), or null when computed at run time. */
  constant(i: number): TypedData | null;
}

export interface OutputType {
  dtype: DType;
  shape: Shape;
}

export interface VjpContext {
  g: Graph;
  node: Node;
  /** Gradient of the loss with respect to the node's (single) output. */
  dy: Value;
}

export type GradThunk = (() => Value) | null;

export interface OpDef {
  infer(ctx: InferContext): OutputType[];
  /** Absent for ops no gradient flows through (comparisons, shapes, integer arithmetic). */
  vjp?(ctx: VjpContext): GradThunk[];
}

function intList(data: TypedData | null, what: string): number[] {
  if (!data) throw new Error(`${what} must be a constant`);
  return Array.from(data as BigInt64Array, (v) => Number(v));
}

/**
 * Sums a broadcast gradient back to the shape of the input it flowed from: over the leading axes
 * the input lacked, and over the axes where the input had size 1. Decided at build time.
 */
export function unbroadcast(g: Graph, grad: Value, to: Shape): Value {
  const extra = grad.shape.length - to.length;
  let out = grad;
  if (extra > 0) out = g.reduceSum(out, [...Array(extra).keys()], false);
  const ones = to.flatMap((d, i) => (d === 1 && out.shape[i] !== 1 ? [i] : []));
  if (ones.length > 0) out = g.reduceSum(out, ones, true);
  return out;
}

// Type rules shared by several ops.
const same = (ctx: InferContext): OutputType[] => [{ dtype: ctx.inputs[0].dtype, shape: ctx.inputs[0].shape }];
const broadcast = (ctx: InferContext): OutputType[] => [{ dtype: ctx.inputs[0].dtype, shape: broadcastShapes(...ctx.inputs.map((v) => v.shape)) }];
const compare = (ctx: InferContext): OutputType[] => [{ dtype: 'bool', shape: broadcastShapes(ctx.inputs[0].shape, ctx.inputs[1].shape) }];
function reduce(ctx: InferContext): OutputType[] {
  const x = ctx.inputs[0];
  const axes = intList(ctx.constant(1), 'reduce axes').map((a) => normAxis(a, x.shape.length));
  const keep = ctx.attrs.keepdims !== 0;
  return [{ dtype: x.dtype, shape: x.shape.flatMap((d, i) => (axes.includes(i) ? (keep ? [1] : []) : [d])) }];
}

/** The reduced axes of a Reduce node, normalised, and its keepdims flag. */
function reduction(g: Graph, node: Node): { axes: number[]; keep: boolean } {
  const x = node.inputs[0];
  const axes = intList(g.constantData(node.inputs[1]), 'reduce axes').map((a) => normAxis(a, x.shape.length));
  return { axes, keep: node.attrs.keepdims !== 0 };
}

/** dy of a reduction, brought back to the input's shape. */
function spread(g: Graph, node: Node, dy: Value): Value {
  const { axes, keep } = reduction(g, node);
  return g.expandAs(keep ? dy : g.unsqueeze(dy, axes), node.inputs[0]);
}

const lastTwo = (rank: number) => [...Array(rank - 2).keys(), rank - 1, rank - 2];

export const OPS: Record<string, OpDef> = {
  Add: {
    infer: broadcast,
    vjp: ({
      g,
      node: {
        inputs: [a, b],
      },
      dy,
    }) => [() => unbroadcast(g, dy, a.shape), () => unbroadcast(g, dy, b.shape)],
  },
  Sub: {
    infer: broadcast,
    vjp: ({
      g,
      node: {
        inputs: [a, b],
      },
      dy,
    }) => [() => unbroadcast(g, dy, a.shape), () => unbroadcast(g, g.neg(dy), b.shape)],
  },
  Mul: {
    infer: broadcast,
    vjp: ({
      g,
      node: {
        inputs: [a, b],
      },
      dy,
    }) => [() => unbroadcast(g, g.mul(dy, b), a.shape), () => unbroadcast(g, g.mul(dy, a), b.shape)],
  },
  Div: {
    infer: broadcast,
    // y = a / b: dy/da = 1 / b, dy/db = -y / b.
    vjp: ({
      g,
      node: {
        inputs: [a, b],
        outputs: [y],
      },
      dy,
    }) => [() => unbroadcast(g, g.div(dy, b), a.shape), () => unbroadcast(g, g.neg(g.div(g.mul(dy, y), b)), b.shape)],
  },
  Neg: { infer: same, vjp: ({ g, dy }) => [() => g.neg(dy)] },
  Identity: { infer: same, vjp: ({ dy }) => [() => dy] },
  // Identity in ONNX; autodiff treats it as a constant (e.g. the max subtracted in logsumexp).
  StopGradient: { infer: same },
  Sqrt: {
    infer: same,
    vjp: ({
      g,
      node: {
        outputs: [y],
      },
      dy,
    }) => [() => g.div(dy, g.mul(y, g.scalar(2, y.dtype)))],
  },
  Reciprocal: {
    infer: same,
    vjp: ({
      g,
      node: {
        outputs: [y],
      },
      dy,
    }) => [() => g.neg(g.mul(dy, g.mul(y, y)))],
  },
  Exp: {
    infer: same,
    vjp: ({
      g,
      node: {
        outputs: [y],
      },
      dy,
    }) => [() => g.mul(dy, y)],
  },
  Log: {
    infer: same,
    vjp: ({
      g,
      node: {
        inputs: [x],
      },
      dy,
    }) => [() => g.div(dy, x)],
  },
  Sigmoid: {
    infer: same,
    vjp: ({
      g,
      node: {
        outputs: [y],
      },
      dy,
    }) => [() => g.mul(dy, g.mul(y, g.sub(g.scalar(1, y.dtype), y)))],
  },
  Tanh: {
    infer: same,
    // The tanh-approximated GELU (GPT-2's and Phi's gelu_new) is built from it.
    vjp: ({
      g,
      node: {
        outputs: [y],
      },
      dy,
    }) => [() => g.mul(dy, g.sub(g.scalar(1, y.dtype), g.mul(y, y)))],
  },
  Softmax: {
    infer: same,
    // dx = y * (dy - sum(dy * y)) along the softmax axis.
    vjp: ({
      g,
      node: {
        outputs: [y],
        attrs,
      },
      dy,
    }) => [() => g.mul(y, g.sub(dy, g.reduceSum(g.mul(dy, y), [attrs.axis as number], true)))],
  },
  Cast: {
    infer: ({ inputs, attrs }) => [{ dtype: attrs.to as DType, shape: inputs[0].shape }],
    vjp: ({
      g,
      node: {
        inputs: [x],
        outputs: [y],
      },
      dy,
    }) => [x.dtype.startsWith('float') && y.dtype.startsWith('float') ? () => g.cast(dy, x.dtype) : null],
  },
  Where: {
    infer: (ctx) => [{ dtype: ctx.inputs[1].dtype, shape: broadcastShapes(...ctx.inputs.map((v) => v.shape)) }],
    vjp: ({
      g,
      node: {
        inputs: [cond, a, b],
      },
      dy,
    }) => {
      const zero = () => g.scalar(0, dy.dtype);
      return [null, () => unbroadcast(g, g.where(cond, dy, zero()), a.shape), () => unbroadcast(g, g.where(cond, zero(), dy), b.shape)];
    },
  },
  LessOrEqual: { infer: compare },
  Equal: { infer: compare },
  ReduceSum: { infer: reduce, vjp: ({ g, node, dy }) => [() => spread(g, node, dy), null] },
  ReduceMean: {
    infer: reduce,
    vjp: ({ g, node, dy }) => [
      () => {
        const x = node.inputs[0];
        const { axes } = reduction(g, node);
        const dims = axes.map((a) => x.shape[a]);
        const count = dims.every((d) => typeof d === 'number')
          ? g.scalar(
              (dims as number[]).reduce((p, d) => p * d, 1),
              x.dtype,
            )
          : g.cast(g.reduceProd(g.gather(g.shape(x), g.const(axes)), [0], false), x.dtype);
        return g.div(spread(g, node, dy), count);
      },
      null,
    ],
  },
  ReduceMax: { infer: reduce },
  ReduceProd: { infer: reduce },
  MatMul: {
    infer: ({ inputs: [a, b] }) => {
      if (a.shape.length < 2 || b.shape.length < 2) throw new Error('MatMul operands must have rank >= 2');
      const k1 = a.shape[a.shape.length - 1];
      const k2 = b.shape[b.shape.length - 2];
      if (typeof k1 === 'number' && typeof k2 === 'number' && k1 !== k2) throw new Error(`MatMul inner dims differ: ${k1} vs ${k2}`);
      const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
      return [{ dtype: a.dtype, shape: [...batch, a.shape[a.shape.length - 2], b.shape[b.shape.length - 1]] }];
    },
    // y = a @ b: da = dy @ b^T, db = a^T @ dy, each summed over the batch axes it was broadcast on.
    vjp: ({
      g,
      node: {
        inputs: [a, b],
      },
      dy,
    }) => [
      () => unbroadcast(g, g.matmul(dy, g.transpose(b, lastTwo(b.shape.length))), a.shape),
      () => unbroadcast(g, g.matmul(g.transpose(a, lastTwo(a.shape.length)), dy), b.shape),
    ],
  },
  Transpose: {
    infer: ({ inputs: [x], attrs }) => [{ dtype: x.dtype, shape: (attrs.perm as number[]).map((p) => x.shape[p]) }],
    vjp: ({ g, node: { attrs }, dy }) => {
      const perm = attrs.perm as number[];
      const inverse = perm.map((_, i) => perm.indexOf(i));
      return [() => g.transpose(dy, inverse)];
    },
  },
  Reshape: {
    infer: (ctx) => {
      const x = ctx.inputs[0];
      const target = intList(ctx.constant(1), 'Reshape shape');
      const shape: Shape = target.map((d, i) => (d === 0 ? x.shape[i] : d));
      const inferred = shape.indexOf(-1);
      if (inferred >= 0) {
        const known = shape.filter((d, i): d is number => i !== inferred && typeof d === 'number');
        const symbolic = [...x.shape, ...shape].some((d) => typeof d === 'string');
        const total = symbolic ? null : (x.shape as number[]).reduce((p, d) => p * d, 1);
        shape[inferred] = total !== null ? total / known.reduce((p, d) => p * d, 1) : freshDim('reshape');
      }
      return [{ dtype: x.dtype, shape }];
    },
    vjp: ({
      g,
      node: {
        inputs: [x],
      },
      dy,
    }) => [() => g.reshapeAs(dy, x), null],
  },
  Unsqueeze: {
    infer: (ctx) => {
      const x = ctx.inputs[0];
      const given = intList(ctx.constant(1), 'Unsqueeze axes');
      const rank = x.shape.length + given.length;
      const axes = given.map((a) => normAxis(a, rank));
      const rest = [...x.shape];
      return [{ dtype: x.dtype, shape: Array.from({ length: rank }, (_, i) => (axes.includes(i) ? 1 : rest.shift()!)) }];
    },
    vjp: ({
      g,
      node: {
        inputs: [x],
      },
      dy,
    }) => [() => g.reshapeAs(dy, x), null],
  },
  Concat: {
    infer: ({ inputs, attrs }) => {
      const axis = normAxis(attrs.axis as number, inputs[0].shape.length);
      const shape = [...inputs[0].shape];
      for (const v of inputs.slice(1)) shape[axis] = addDims(shape[axis], v.shape[axis]);
      return [{ dtype: inputs[0].dtype, shape }];
    },
    // Each input's gradient is its slice of dy; offsets are read off the inputs' shapes at run
    // time, since a concatenated dim may be symbolic (the KV cache's length).
    vjp: ({ g, node: { inputs, attrs }, dy }) => {
      const axis = normAxis(attrs.axis as number, dy.shape.length);
      const offsets: Value[] = [];
      let offset = g.const([0]);
      for (const x of inputs) {
        offsets.push(offset);
        offset = g.add(offset, g.gather(g.shape(x), g.const([axis])));
      }
      return inputs.map(
        (x, i) => () =>
          g.apply('Slice', [dy, offsets[i], i + 1 < inputs.length ? offsets[i + 1] : offset, g.const([axis])], {}, undefined, [
            { dtype: dy.dtype, shape: x.shape },
          ])[0],
      );
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
    // The gradient is dy padded with zeros back to x's shape; needs constant bounds on known dims.
    vjp: ({
      g,
      node: {
        inputs: [x, s, e, a],
      },
      dy,
    }) => {
      const starts = intList(g.constantData(s), 'Slice starts (for its gradient)');
      const ends = intList(g.constantData(e), 'Slice ends (for its gradient)');
      const axes = intList(g.constantData(a), 'Slice axes').map((ax) => normAxis(ax, x.shape.length));
      const rank = x.shape.length;
      const pads = new Array<number>(2 * rank).fill(0);
      axes.forEach((axis, i) => {
        const dim = x.shape[axis];
        if (typeof dim !== 'number') throw new Error('the gradient of Slice needs the sliced dim known at build time');
        const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + dim : v, 0), dim);
        pads[axis] = clamp(starts[i]);
        pads[rank + axis] = dim - clamp(ends[i]);
      });
      return [() => g.apply('Pad', [dy, g.const(pads)], {}, undefined, [{ dtype: dy.dtype, shape: x.shape }])[0], null, null, null];
    },
  },
  Pad: {
    infer: () => {
      throw new Error('Pad is only built with an explicit output type');
    },
  },
  Gather: {
    infer: ({ inputs: [data, indices], attrs }) => {
      const axis = normAxis((attrs.axis as number | undefined) ?? 0, data.shape.length);
      return [{ dtype: data.dtype, shape: [...data.shape.slice(0, axis), ...indices.shape, ...data.shape.slice(axis + 1)] }];
    },
    // Rows gathered more than once (a repeated token) get the sum of their gradients.
    vjp: ({
      g,
      node: {
        inputs: [data, indices],
        attrs,
      },
      dy,
    }) => {
      if (((attrs.axis as number | undefined) ?? 0) !== 0) throw new Error('the gradient of Gather is built for axis 0 only');
      return [() => g.apply('ScatterND', [g.expandAs(g.scalar(0, data.dtype), data), g.unsqueeze(indices, [-1]), dy], { reduction: 'add' })[0], null];
    },
  },
  ScatterND: { infer: same },
  Expand: {
    infer: () => {
      throw new Error('Expand is only built with an explicit output type');
    },
  },
  Shape: { infer: ({ inputs: [x] }) => [{ dtype: 'int64', shape: [x.shape.length] }] },
  Range: { infer: ({ inputs: [start] }) => [{ dtype: start.dtype, shape: [freshDim('range')] }] },
};
