/**
 * Reading a checkpoint's tensors by name (each architecture's names: src/arch/checkpoints.ts).
 * Shapes are checked against the config from the headers before any data is read, so a
 * mismatched checkpoint fails fast and says which tensor, where, and both shapes. Values are
 * checked as they are read: one NaN or infinity poisons every logit downstream, so such a
 * model is refused.
 */
import { SafetensorsCheckpoint } from './checkpoint.js';
import type { HostTensor } from './types.js';

export interface TensorSpec {
  name: string;
  shape: number[];
}

/**
 * Reads the tensors `specs` names from the checkpoint in `dir`, every shape checked before any
 * data is read and every value as it is read, and hands them to `assemble` by name.
 */
export function readCheckpoint<T>(dir: string, specs: readonly TensorSpec[], assemble: (read: (name: string) => HostTensor) => T): T {
  const checkpoint = SafetensorsCheckpoint.open(dir);
  try {
    // Check every shape first: reading gigabytes before finding a mistake helps nobody.
    for (const spec of specs) checkShape(checkpoint, spec.name, spec.shape);
    return assemble((name) => checkFinite(checkpoint.read(name), checkpoint.info(name)!.file, name));
  } finally {
    checkpoint.close();
  }
}

function checkShape(checkpoint: SafetensorsCheckpoint, name: string, expected: number[]): void {
  const info = checkpoint.info(name);
  if (info === undefined) {
    throw new Error(`${checkpoint.source}: tensor "${name}" is missing (expected shape [${expected.join(', ')}])`);
  }
  if (info.shape.length !== expected.length || info.shape.some((d, i) => d !== expected[i])) {
    throw new Error(`${info.file}: tensor "${name}" has shape [${info.shape.join(', ')}], expected [${expected.join(', ')}]`);
  }
}

/**
 * Returns `tensor` when every value is finite; otherwise throws naming the file, the tensor,
 * the first bad value's index (flat and per dimension) and how many there are. One pass over
 * the data, after F16/BF16 have been widened (their NaN and infinities widen to float32's).
 */
export function checkFinite(tensor: HostTensor, file: string, name: string): HostTensor {
  const { data, shape } = tensor;
  let first = -1;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) {
      first = i;
      break;
    }
  }
  if (first < 0) return tensor;
  let count = 0;
  for (let i = first; i < data.length; i++) if (!Number.isFinite(data[i])) count++;
  const at: number[] = [];
  for (let d = shape.length - 1, rest = first; d >= 0; d--) {
    at.unshift(rest % shape[d]);
    rest = Math.floor(rest / shape[d]);
  }
  throw new Error(
    `${file}: tensor "${name}" holds ${String(data[first])} at index ${first} ([${at.join(', ')}] of shape [${shape.join(', ')}])` +
      `${count > 1 ? ` and ${count - 1} more non-finite values` : ''}; the checkpoint is corrupt or diverged in training, and the model cannot serve it`,
  );
}
