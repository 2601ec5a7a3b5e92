/**
 * The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
 * (`{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {...}}`, offsets relative
 * to the data section), then the data section. Tensors are read one at a time with positioned
 * reads, so a checkpoint never has to fit in one Buffer (Node caps those at 2 GiB).
 */
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './float16.js';
import { describe, isRecord } from './json.js';
import type { HostTensor } from './types.js';

/** The dtypes this project reads and writes. */
export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';

/** Every dtype of the format, with its size in bytes, so headers can be checked even for those we cannot convert. */
const DTYPE_SIZES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** The reference implementation refuses larger headers; so do we, before allocating one. */
const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte range in `file`. */
  begin: number;
  end: number;
  file: string;
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

/** One open .safetensors file; `close()` it when done. */
export class SafetensorsFile {
  private constructor(
    readonly path: string,
    private fd: number | null,
    readonly tensors: ReadonlyMap<string, TensorInfo>,
    readonly metadata: Readonly<Record<string, unknown>>,
  ) {}

  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      throw new Error(`${path}: cannot open safetensors file (${(err as Error).message})`);
    }
    try {
      const { tensors, metadata } = readHeader(fd, path);
      return new SafetensorsFile(path, fd, tensors, metadata);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  read(name: string): HostTensor {
    const info = this.tensors.get(name);
    if (info === undefined) throw new Error(`${this.path}: no tensor "${name}"`);
    if (this.fd === null) throw new Error(`${this.path}: file already closed`);
    return readTensor(this.fd, info);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

function readHeader(fd: number, path: string): { tensors: Map<string, TensorInfo>; metadata: Record<string, unknown> } {
  const size = fstatSync(fd).size;
  if (size < 8) throw new Error(`${path}: not a safetensors file: ${size} bytes, too short for the 8-byte header length`);
  const lengthBytes = Buffer.alloc(8);
  readFully(fd, lengthBytes, 0, path);
  const headerLength = lengthBytes.readBigUInt64LE(0);
  if (headerLength > BigInt(Math.min(MAX_HEADER_BYTES, size - 8))) {
    throw new Error(
      `${path}: header length ${headerLength} does not fit in the file (${size} bytes) or exceeds ${MAX_HEADER_BYTES}: truncated or not a safetensors file`,
    );
  }
  const n = Number(headerLength);
  const headerBytes = Buffer.alloc(n);
  readFully(fd, headerBytes, 8, path);
  let header: unknown;
  try {
    header = JSON.parse(headerBytes.toString('utf8')) as unknown;
  } catch (err) {
    throw new Error(`${path}: header is not valid JSON (${(err as Error).message})`);
  }
  if (!isRecord(header)) throw new Error(`${path}: header must be a JSON object, got ${describe(header)}`);

  const dataStart = 8 + n;
  const dataSize = size - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, unknown> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      if (isRecord(entry)) metadata = entry;
      continue;
    }
    tensors.set(name, parseEntry(path, name, entry, dataStart, dataSize));
  }
  return { tensors, metadata };
}

function parseEntry(path: string, name: string, entry: unknown, dataStart: number, dataSize: number): TensorInfo {
  const where = `${path}: tensor "${name}"`;
  if (!isRecord(entry)) throw new Error(`${where}: header entry must be an object, got ${describe(entry)}`);
  const { dtype, shape, data_offsets: offsets } = entry;
  if (typeof dtype !== 'string' || DTYPE_SIZES[dtype] === undefined) {
    throw new Error(`${where}: unknown dtype ${describe(dtype)} (expected one of ${Object.keys(DTYPE_SIZES).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every((d): d is number => Number.isSafeInteger(d) && d >= 0)) {
    throw new Error(`${where}: shape must be an array of non-negative integers, got ${describe(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o): o is number => Number.isSafeInteger(o) && o >= 0)) {
    throw new Error(`${where}: data_offsets must be [begin, end] byte offsets, got ${describe(offsets)}`);
  }
  const [begin, end] = offsets;
  if (begin > end) throw new Error(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataSize) {
    throw new Error(`${where}: data_offsets [${begin}, ${end}] run past the data section (${dataSize} bytes): the file is truncated or corrupt`);
  }
  const expected = elementCount(shape) * DTYPE_SIZES[dtype];
  if (end - begin !== expected) {
    throw new Error(`${where}: data_offsets span ${end - begin} bytes but shape [${shape.join(', ')}] of ${dtype} needs ${expected}`);
  }
  return { name, dtype, shape: [...shape], begin: dataStart + begin, end: dataStart + end, file: path };
}

function readTensor(fd: number, info: TensorInfo): HostTensor {
  if (endianness() !== 'LE') throw new Error('safetensors data is little-endian; big-endian hosts are not supported');
  const count = elementCount(info.shape);
  const shape = [...info.shape];
  switch (info.dtype) {
    case 'F32': {
      const data = new Float32Array(count);
      readFully(fd, new Uint8Array(data.buffer), info.begin, info.file);
      return { shape, data };
    }
    case 'F16':
    case 'BF16': {
      const raw = new Uint16Array(count);
      readFully(fd, new Uint8Array(raw.buffer), info.begin, info.file);
      return { shape, data: info.dtype === 'F16' ? f16ToF32(raw) : bf16ToF32(raw) };
    }
    default:
      throw new Error(`${info.file}: tensor "${info.name}" has dtype ${info.dtype}; only F32, F16 and BF16 are supported`);
  }
}

/** Fills `into` from `position`; a short read means the file ended early. */
function readFully(fd: number, into: Uint8Array, position: number, path: string): void {
  let done = 0;
  while (done < into.length) {
    const n = readSync(fd, into, done, into.length - done, position + done);
    if (n === 0) throw new Error(`${path}: unexpected end of file at byte ${position + done}: the file is truncated`);
    done += n;
  }
}

/** Reads every tensor of one file. */
export function readSafetensors(path: string): Record<string, HostTensor> {
  const file = SafetensorsFile.open(path);
  try {
    const out: Record<string, HostTensor> = {};
    for (const name of file.tensors.keys()) out[name] = file.read(name);
    return out;
  } finally {
    file.close();
  }
}

/** A tensor to write whose data is produced only when its turn comes (keeps big checkpoints out of memory). */
export interface TensorSource {
  name: string;
  shape: number[];
  data: () => Float32Array;
}

/** `metadata` goes into the header's `__metadata__` (string values, as the format requires) beside `format: pt`. */
export function writeSafetensors(
  path: string,
  tensors: Record<string, HostTensor>,
  dtype: SafetensorsDtype = 'F32',
  metadata: Record<string, string> = {},
): void {
  writeSafetensorsFrom(
    path,
    Object.entries(tensors).map(([name, t]) => ({ name, shape: t.shape, data: () => t.data })),
    dtype,
    metadata,
  );
}

/** Writes tensors in the given order, converting float32 data to `dtype`. */
export function writeSafetensorsFrom(
  path: string,
  sources: readonly TensorSource[],
  dtype: SafetensorsDtype = 'F32',
  metadata: Record<string, string> = {},
): void {
  const size = DTYPE_SIZES[dtype];
  const header: Record<string, unknown> = { __metadata__: { format: 'pt', ...metadata } };
  let offset = 0;
  for (const s of sources) {
    if (s.name === '__metadata__') throw new Error(`${path}: "__metadata__" cannot be a tensor name`);
    const bytes = elementCount(s.shape) * size;
    header[s.name] = { dtype, shape: s.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  // Padding with spaces to a multiple of 8 keeps the data section 8-byte aligned, as the format recommends.
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));

  const fd = openSync(path, 'w');
  try {
    writeFully(fd, prefix);
    writeFully(fd, headerBytes);
    for (const s of sources) {
      const data = s.data();
      if (data.length !== elementCount(s.shape)) {
        throw new Error(`${path}: tensor "${s.name}" has ${data.length} values but shape [${s.shape.join(', ')}] needs ${elementCount(s.shape)}`);
      }
      writeFully(fd, encode(data, dtype));
    }
  } finally {
    closeSync(fd);
  }
}

/** writeSync may write less than asked; loop until all of it is out. */
function writeFully(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
}

function encode(data: Float32Array, dtype: SafetensorsDtype): Uint8Array {
  if (endianness() !== 'LE') throw new Error('safetensors data is little-endian; big-endian hosts are not supported');
  const typed = dtype === 'F32' ? data : dtype === 'F16' ? f32ToF16(data) : f32ToBf16(data);
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}
