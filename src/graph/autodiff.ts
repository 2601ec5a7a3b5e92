/**
 * Reverse-mode autodiff over the recorded graph: walks the forward nodes backwards from the
 * loss, asking each op's VJP (src/graph/ops.ts) for its inputs' gradients, and appends those
 * nodes to the same graph, so one ONNX model computes the forward pass and the gradients.
 */
import type { Graph } from './graph.js';
import { OPS } from './ops.js';
import type { Value } from './types.js';

/** Appends the gradient of `loss` (a scalar) with respect to each of `wrt` and returns them. */
export function grad(g: Graph, loss: Value, wrt: Value[]): Value[] {
  if (loss.shape.length !== 0) throw new Error(`the loss must be a scalar, got shape [${loss.shape}]`);
  const forward = [...g.nodes];

  // Only values that depend on `wrt` through differentiable ops need a gradient.
  const needed = new Set(wrt.map((v) => v.name));
  for (const node of forward) {
    if (OPS[node.op].vjp && node.inputs.some((v) => needed.has(v.name))) {
      for (const out of node.outputs) needed.add(out.name);
    }
  }
  if (!needed.has(loss.name)) throw new Error('the loss does not depend on any of the values asked for');

  const grads = new Map<string, Value>([[loss.name, g.scalar(1, loss.dtype)]]);
  for (let i = forward.length - 1; i >= 0; i--) {
    const node = forward[i];
    const dy = grads.get(node.outputs[0].name);
    const vjp = OPS[node.op].vjp;
    if (!dy || !vjp) continue;
    const thunks = vjp({ g, node, dy });
    node.inputs.forEach((x, j) => {
      const thunk = thunks[j];
      if (!thunk || !needed.has(x.name)) return;
      const d = thunk();
      const sum = grads.get(x.name);
      grads.set(x.name, sum ? g.add(sum, d) : d);
    });
  }
  return wrt.map((v) => {
    const d = grads.get(v.name);
    if (!d) throw new Error(`the loss does not depend on ${v.name}`);
    return d;
  });
}
