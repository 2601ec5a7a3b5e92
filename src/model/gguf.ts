/**
 * Reading llama.cpp's GGUF files (versions 2 and 3, little-endian):
 *
 *   "GGUF" | u32 version | u64 tensor count | u64 metadata count
 *   metadata: key (u64 length + UTF-8) | u32 value type | value      (arrays: u32 item type, u64 count, items)
 *   tensor infos: name | u32 n_dims | u64 dims[n_dims] | u32 ggml type | u64 offset
 *   padding to `general.alignment` (default 32), then the data; each offset is relative to it
 *
 * Dimensions are ggml's: dims[0] is the contiguous one, so a [rows, cols] matrix is stored with
 * dims [cols, rows] and its quantisation blocks run along rows. `read` returns row-major float32
 * with the shape reversed (a linear weight comes back as [out, in], as Hugging Face stores it).
 * F32, F16, BF16, Q8_0 and Q4_0 are dequantised; any other type is refused by name.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { bf16ToF32, f16ToF32 } from './float16.js';
import type { HostTensor } from './types.js';

/** GGUF metadata value types, as numbered by the format. */
export const GgufType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;
export type GgufType = (typeof GgufType)[keyof typeof GgufType];

const TYPE_NAMES = Object.fromEntries(Object.entries(GgufType).map(([name, id]) => [id, name])) as Record<number, string>;

/** 64-bit integers are bigints (lossless); the other numeric types are numbers. */
export type GgufValue = number | bigint | boolean | string | GgufArray;
export interface GgufArray {
  itemType: GgufType;
  items: GgufValue[];
}
export interface GgufKv {
  type: GgufType;
  value: GgufValue;
}

export const GGUF_MAGIC = 'GGUF';
export const GGUF_DEFAULT_ALIGNMENT = 32;

/**
 * Every ggml tensor type with its block: `blockSize` elements are stored in `blockBytes`
 * bytes (ggml's GGML_QUANT_SIZES). Known so that an unsupported tensor is refused by name.
 */
export const GGML_TYPES: Readonly<Record<number, { name: string; blockSize: number; blockBytes: number }>> = {
  0: { name: 'F32', blockSize: 1, blockBytes: 4 },
  1: { name: 'F16', blockSize: 1, blockBytes: 2 },
  2: { name: 'Q4_0', blockSize: 32, blockBytes: 18 },
  3: { name: 'Q4_1', blockSize: 32, blockBytes: 20 },
  6: { name: 'Q5_0', blockSize: 32, blockBytes: 22 },
  7: { name: 'Q5_1', blockSize: 32, blockBytes: 24 },
  8: { name: 'Q8_0', blockSize: 32, blockBytes: 34 },
  9: { name: 'Q8_1', blockSize: 32, blockBytes: 40 },
  10: { name: 'Q2_K', blockSize: 256, blockBytes: 84 },
  11: { name: 'Q3_K', blockSize: 256, blockBytes: 110 },
  12: { name: 'Q4_K', blockSize: 256, blockBytes: 144 },
  13: { name: 'Q5_K', blockSize: 256, blockBytes: 176 },
  14: { name: 'Q6_K', blockSize: 256, blockBytes: 210 },
  15: { name: 'Q8_K', blockSize: 256, blockBytes: 292 },
  16: { name: 'IQ2_XXS', blockSize: 256, blockBytes: 66 },
  17: { name: 'IQ2_XS', blockSize: 256, blockBytes: 74 },
  18: { name: 'IQ3_XXS', blockSize: 256, blockBytes: 98 },
  19: { name: 'IQ1_S', blockSize: 256, blockBytes: 50 },
  20: { name: 'IQ4_NL', blockSize: 32, blockBytes: 18 },
  21: { name: 'IQ3_S', blockSize: 256, blockBytes: 110 },
  22: { name: 'IQ2_S', blockSize: 256, blockBytes: 82 },
  23: { name: 'IQ4_XS', blockSize: 256, blockBytes: 136 },
  24: { name: 'I8', blockSize: 1, blockBytes: 1 },
  25: { name: 'I16', blockSize: 1, blockBytes: 2 },
  26: { name: 'I32', blockSize: 1, blockBytes: 4 },
  27: { name: 'I64', blockSize: 1, blockBytes: 8 },
  28: { name: 'F64', blockSize: 1, blockBytes: 8 },
  29: { name: 'IQ1_M', blockSize: 256, blockBytes: 56 },
  30: { name: 'BF16', blockSize: 1, blockBytes: 2 },
  34: { name: 'TQ1_0', blockSize: 256, blockBytes: 54 },
  35: { name: 'TQ2_0', blockSize: 256, blockBytes: 66 },
  39: { name: 'MXFP4', blockSize: 32, blockBytes: 17 },
};

/** The ggml types this project dequantises. */
export const GgmlType = { F32: 0, F16: 1, Q4_0: 2, Q8_0: 8, BF16: 30 } as const;
export type SupportedGgmlType = keyof typeof GgmlType;
export const SUPPORTED_TYPES: readonly SupportedGgmlType[] = ['F32', 'F16', 'BF16', 'Q8_0', 'Q4_0'];

export function ggmlTypeName(type: number): string {
  return GGML_TYPES[type]?.name ?? `unknown type ${type}`;
}

export interface GgufTensorInfo {
  name: string;
  /** ggml order: dims[0] is contiguous. */
  dims: number[];
  /** Row-major (dims reversed), as Hugging Face and HostTensor have it. */
  shape: number[];
  type: number;
  typeName: string;
  /** Absolute byte offset of the data in the file. */
  offset: number;
  /** Bytes of data; null for a type this reader does not know. */
  bytes: number | null;
}

/** At most this many bytes of header are read; a larger count is a corrupt file, not a model. */
const MAX_HEADER_BYTES = 1 << 30;
const MAX_DIMS = 4;

/** Positioned, buffered reads of the header: only as much of the file is read as the header needs. */
class HeaderReader {
  private buf = Buffer.alloc(0);
  private start = 0;
  pos = 0;

  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly path: string,
  ) {}

  private ensure(n: number, what: string): void {
    if (this.pos + n <= this.start + this.buf.length) return;
    if (this.pos + n > this.size) {
      throw new Error(`${this.path}: ${what} at byte ${this.pos} runs past the end of the file (${this.size} bytes): the file is truncated or not GGUF`);
    }
    if (this.pos + n > MAX_HEADER_BYTES) throw new Error(`${this.path}: the header is larger than ${MAX_HEADER_BYTES} bytes: the file is corrupt`);
    const length = Math.min(this.size - this.pos, Math.max(n, 1 << 20));
    const next = Buffer.alloc(length);
    let done = 0;
    while (done < length) {
      const got = readSync(this.fd, next, done, length - done, this.pos + done);
      if (got === 0) throw new Error(`${this.path}: unexpected end of file at byte ${this.pos + done}`);
      done += got;
    }
    this.buf = next;
    this.start = this.pos;
  }

  private take(n: number, what: string): number {
    this.ensure(n, what);
    const at = this.pos - this.start;
    this.pos += n;
    return at;
  }

  u8(what: string): number {
    return this.buf.readUInt8(this.take(1, what));
  }
  i8(what: string): number {
    return this.buf.readInt8(this.take(1, what));
  }
  u16(what: string): number {
    return this.buf.readUInt16LE(this.take(2, what));
  }
  i16(what: string): number {
    return this.buf.readInt16LE(this.take(2, what));
  }
  u32(what: string): number {
    return this.buf.readUInt32LE(this.take(4, what));
  }
  i32(what: string): number {
    return this.buf.readInt32LE(this.take(4, what));
  }
  f32(what: string): number {
    return this.buf.readFloatLE(this.take(4, what));
  }
  f64(what: string): number {
    return this.buf.readDoubleLE(this.take(8, what));
  }
  u64(what: string): bigint {
    return this.buf.readBigUInt64LE(this.take(8, what));
  }
  i64(what: string): bigint {
    return this.buf.readBigInt64LE(this.take(8, what));
  }

  /** A u64 that must be a count or size within the file. */
  count(what: string, limit = this.size): number {
    const n = this.u64(what);
    if (n > BigInt(limit)) throw new Error(`${this.path}: ${what} is ${n}, more than the file can hold (${limit} bytes): the file is truncated or corrupt`);
    return Number(n);
  }

  string(what: string): string {
    const n = this.count(`length of ${what}`, this.size - this.pos);
    const at = this.take(n, what);
    return this.buf.toString('utf8', at, at + n);
  }

  magic(): string {
    const at = this.take(4, 'the magic number');
    return this.buf.toString('latin1', at, at + 4);
  }
}

function readValue(r: HeaderReader, type: number, what: string): GgufValue {
  switch (type) {
    case GgufType.UINT8:
      return r.u8(what);
    case GgufType.INT8:
      return r.i8(what);
    case GgufType.UINT16:
      return r.u16(what);
    case GgufType.INT16:
      return r.i16(what);
    case GgufType.UINT32:
      return r.u32(what);
    case GgufType.INT32:
      return r.i32(what);
    case GgufType.FLOAT32:
      return r.f32(what);
    case GgufType.FLOAT64:
      return r.f64(what);
    case GgufType.UINT64:
      return r.u64(what);
    case GgufType.INT64:
      return r.i64(what);
    case GgufType.BOOL: {
      const b = r.u8(what);
      if (b > 1) throw new Error(`${what}: a bool must be 0 or 1, got ${b}`);
      return b === 1;
    }
    case GgufType.STRING:
      return r.string(what);
    case GgufType.ARRAY: {
      const itemType = r.u32(`item type of ${what}`) as GgufType;
      if (TYPE_NAMES[itemType] === undefined) throw new Error(`${what}: unknown array item type ${itemType}`);
      // Every item takes at least one byte, so a count past the file's end is corruption.
      const n = r.count(`item count of ${what}`, r.size - r.pos);
      const items: GgufValue[] = new Array(n);
      for (let i = 0; i < n; i++) items[i] = readValue(r, itemType, what);
      return { itemType, items };
    }
    default:
      throw new Error(`${what}: unknown value type ${type}`);
  }
}

/** What a value is, for error messages: `UINT32 7`, `STRING "llama"`, `ARRAY of 3 STRING`. */
export function describeKv(kv: GgufKv): string {
  if (typeof kv.value === 'object') return `ARRAY of ${kv.value.items.length} ${TYPE_NAMES[kv.value.itemType]}`;
  return `${TYPE_NAMES[kv.type]} ${JSON.stringify(typeof kv.value === 'bigint' ? String(kv.value) : kv.value)}`;
}

export function ggufTypeName(type: number): string {
  return TYPE_NAMES[type] ?? `unknown type ${type}`;
}

/** One open GGUF file; `close()` it when done. */
export class GgufFile {
  private constructor(
    readonly path: string,
    private fd: number | null,
    readonly version: number,
    readonly metadata: ReadonlyMap<string, GgufKv>,
    readonly tensors: ReadonlyMap<string, GgufTensorInfo>,
    readonly alignment: number,
    /** Absolute byte offset of the data section. */
    readonly dataOffset: number,
  ) {}

  static open(path: string): GgufFile {
    if (endianness() !== 'LE') throw new Error('GGUF reading assumes a little-endian host');
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      throw new Error(`${path}: cannot open GGUF file (${(err as Error).message})`);
    }
    try {
      return GgufFile.parse(path, fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
  }

  private static parse(path: string, fd: number): GgufFile {
    const size = fstatSync(fd).size;
    const r = new HeaderReader(fd, size, path);
    if (size < 24) throw new Error(`${path}: not a GGUF file: ${size} bytes, too short for the header`);
    const magic = r.magic();
    if (magic !== GGUF_MAGIC) throw new Error(`${path}: not a GGUF file (starts with ${JSON.stringify(magic)}, expected "GGUF")`);
    const version = r.u32('the version');
    if (version !== 2 && version !== 3) {
      const swapped = ((version & 0xff) << 24) | ((version & 0xff00) << 8) | ((version >>> 8) & 0xff00) | (version >>> 24);
      if (swapped === 2 || swapped === 3) throw new Error(`${path}: a big-endian GGUF file; only little-endian files are supported`);
      throw new Error(`${path}: GGUF version ${version} is not supported (versions 2 and 3 are); re-convert the model with a current llama.cpp`);
    }
    const tensorCount = r.count('the tensor count');
    const kvCount = r.count('the metadata count');

    const metadata = new Map<string, GgufKv>();
    for (let i = 0; i < kvCount; i++) {
      const key = r.string(`metadata key ${i}`);
      if (metadata.has(key)) throw new Error(`${path}: metadata key "${key}" appears twice`);
      const type = r.u32(`type of metadata "${key}"`) as GgufType;
      const value = readValue(r, type, `${path}: metadata "${key}"`);
      metadata.set(key, { type, value });
    }

    const alignment = readAlignment(path, metadata.get('general.alignment'));
    const infos: Omit<GgufTensorInfo, 'offset'>[] = [];
    const offsets: number[] = [];
    const names = new Set<string>();
    for (let i = 0; i < tensorCount; i++) {
      const name = r.string(`name of tensor ${i}`);
      if (names.has(name)) throw new Error(`${path}: tensor "${name}" appears twice`);
      names.add(name);
      const where = `${path}: tensor "${name}"`;
      const nDims = r.u32(`${where}: dimension count`);
      if (nDims < 1 || nDims > MAX_DIMS) throw new Error(`${where}: ${nDims} dimensions (1 to ${MAX_DIMS} expected)`);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) {
        const n = r.u64(`${where}: dimension ${d}`);
        if (n < 1n || n > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${where}: dimension ${d} is ${n}`);
        dims.push(Number(n));
      }
      const type = r.u32(`${where}: type`);
      const offset = r.u64(`${where}: offset`);
      if (offset > BigInt(size)) throw new Error(`${where}: data offset ${offset} is past the end of the file (${size} bytes)`);
      if (offset % BigInt(alignment) !== 0n) throw new Error(`${where}: data offset ${offset} is not a multiple of the alignment ${alignment}`);
      const known = GGML_TYPES[type];
      const count = dims.reduce((a, b) => a * b, 1);
      let bytes: number | null = null;
      if (known !== undefined) {
        if (dims[0] % known.blockSize !== 0) {
          throw new Error(`${where}: rows of ${dims[0]} elements cannot hold whole ${known.name} blocks of ${known.blockSize}`);
        }
        bytes = (count / known.blockSize) * known.blockBytes;
      }
      infos.push({ name, dims, shape: [...dims].reverse(), type, typeName: ggmlTypeName(type), bytes });
      offsets.push(Number(offset));
    }

    const dataOffset = Math.ceil(r.pos / alignment) * alignment;
    const tensors = new Map<string, GgufTensorInfo>();
    infos.forEach((info, i) => {
      const offset = dataOffset + offsets[i];
      if (info.bytes !== null && offset + info.bytes > size) {
        throw new Error(
          `${path}: tensor "${info.name}" (${info.typeName} [${info.dims.join(', ')}]) needs bytes ${offset}..${offset + info.bytes} but the file has ${size}: the file is truncated`,
        );
      }
      tensors.set(info.name, { ...info, offset });
    });
    return new GgufFile(path, fd, version, metadata, tensors, alignment, dataOffset);
  }

  /** The tensor's bytes as stored. */
  readRaw(name: string): Uint8Array {
    const info = this.info(name);
    if (info.bytes === null) throw new Error(`${this.path}: tensor "${name}" has ${info.typeName}, whose size this reader does not know`);
    if (this.fd === null) throw new Error(`${this.path}: file already closed`);
    const out = new Uint8Array(info.bytes);
    let done = 0;
    while (done < out.length) {
      const n = readSync(this.fd, out, done, out.length - done, info.offset + done);
      if (n === 0) throw new Error(`${this.path}: unexpected end of file reading tensor "${name}": the file is truncated`);
      done += n;
    }
    return out;
  }

  /** The tensor as row-major float32, dequantised; shape is ggml's dims reversed. */
  read(name: string): HostTensor {
    const info = this.info(name);
    checkSupported(this.path, info);
    const count = info.dims.reduce((a, b) => a * b, 1);
    return { shape: [...info.shape], data: dequantize(info.type, this.readRaw(name), count) };
  }

  info(name: string): GgufTensorInfo {
    const info = this.tensors.get(name);
    if (info === undefined) throw new Error(`${this.path}: no tensor "${name}"`);
    return info;
  }

  /** A metadata value, or undefined when the key is absent. */
  get(key: string): GgufKv | undefined {
    return this.metadata.get(key);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}

/** Throws, naming the file, tensor and type, unless the tensor's type can be dequantised. */
export function checkSupported(path: string, info: GgufTensorInfo): void {
  if ((SUPPORTED_TYPES as readonly string[]).includes(info.typeName)) return;
  throw new Error(
    `${path}: tensor "${info.name}" has type ${info.typeName}, which cannot be imported (supported: ${SUPPORTED_TYPES.join(', ')}); ` +
      "re-quantise the model to one of these with llama.cpp's llama-quantize, or convert it from the original checkpoint",
  );
}

function readAlignment(path: string, kv: GgufKv | undefined): number {
  if (kv === undefined) return GGUF_DEFAULT_ALIGNMENT;
  const value = kv.value;
  if (kv.type !== GgufType.UINT32 || typeof value !== 'number' || value < 8 || value % 8 !== 0) {
    throw new Error(`${path}: metadata "general.alignment" must be a UINT32 multiple of 8, got ${describeKv(kv)}`);
  }
  return value;
}

/** `count` values of ggml type `type` from their stored bytes. */
export function dequantize(type: number, bytes: Uint8Array, count: number): Float32Array {
  switch (type) {
    case GgmlType.F32: {
      const out = new Float32Array(count);
      new Uint8Array(out.buffer).set(bytes.subarray(0, count * 4));
      return out;
    }
    case GgmlType.F16:
    case GgmlType.BF16: {
      const raw = new Uint16Array(count);
      new Uint8Array(raw.buffer).set(bytes.subarray(0, count * 2));
      return type === GgmlType.F16 ? f16ToF32(raw) : bf16ToF32(raw);
    }
    case GgmlType.Q8_0:
      return dequantizeQ8_0(bytes, count);
    case GgmlType.Q4_0:
      return dequantizeQ4_0(bytes, count);
    default:
      throw new Error(`cannot dequantise ${ggmlTypeName(type)} (supported: ${SUPPORTED_TYPES.join(', ')})`);
  }
}

/** The f16 scale at the start of each of `blocks` blocks of `blockBytes` bytes, widened. */
function blockScales(bytes: Uint8Array, blocks: number, blockBytes: number): Float32Array {
  const bits = new Uint16Array(blocks);
  for (let b = 0; b < blocks; b++) bits[b] = bytes[b * blockBytes] | (bytes[b * blockBytes + 1] << 8);
  return f16ToF32(bits);
}

function checkBlocks(type: string, bytes: Uint8Array, count: number, blockBytes: number): number {
  if (count % 32 !== 0) throw new Error(`${type}: ${count} values are not whole blocks of 32`);
  const blocks = count / 32;
  if (bytes.length < blocks * blockBytes) throw new Error(`${type}: ${count} values need ${blocks * blockBytes} bytes, got ${bytes.length}`);
  return blocks;
}

/** Q8_0: blocks of 34 bytes, an f16 scale d then 32 int8 q; value = d * q. */
export function dequantizeQ8_0(bytes: Uint8Array, count: number): Float32Array {
  const blocks = checkBlocks('Q8_0', bytes, count, 34);
  const scales = blockScales(bytes, blocks, 34);
  const q = new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length);
  const out = new Float32Array(count);
  for (let b = 0; b < blocks; b++) {
    const d = scales[b];
    const base = b * 34 + 2;
    for (let j = 0; j < 32; j++) out[b * 32 + j] = d * q[base + j];
  }
  return out;
}

/**
 * Q4_0: blocks of 18 bytes, an f16 scale d then 16 bytes; byte j holds value j in its low
 * nibble and value j + 16 in its high nibble, each as an unsigned 4-bit q; value = d * (q - 8).
 */
export function dequantizeQ4_0(bytes: Uint8Array, count: number): Float32Array {
  const blocks = checkBlocks('Q4_0', bytes, count, 18);
  const scales = blockScales(bytes, blocks, 18);
  const out = new Float32Array(count);
  for (let b = 0; b < blocks; b++) {
    const d = scales[b];
    const base = b * 18 + 2;
    for (let j = 0; j < 16; j++) {
      const byte = bytes[base + j];
      out[b * 32 + j] = d * ((byte & 0x0f) - 8);
      out[b * 32 + j + 16] = d * ((byte >> 4) - 8);
    }
  }
  return out;
}

const INTEGER_TYPES: readonly number[] = [
  GgufType.UINT8,
  GgufType.INT8,
  GgufType.UINT16,
  GgufType.INT16,
  GgufType.UINT32,
  GgufType.INT32,
  GgufType.UINT64,
  GgufType.INT64,
];
const FLOAT_TYPES: readonly number[] = [GgufType.FLOAT32, GgufType.FLOAT64];

/** Typed access to metadata; every refusal names the file, the key, what was expected and what is there. */
export class GgufFields {
  constructor(
    readonly path: string,
    private readonly metadata: ReadonlyMap<string, GgufKv>,
  ) {}

  has(key: string): boolean {
    return this.metadata.has(key);
  }

  error(key: string, expected: string): Error {
    const kv = this.metadata.get(key);
    return new Error(`${this.path}: metadata "${key}" must be ${expected}, ${kv === undefined ? 'but it is missing' : `got ${describeKv(kv)}`}`);
  }

  private required<T>(key: string, expected: string, read: (kv: GgufKv) => T | undefined): T {
    const kv = this.metadata.get(key);
    const value = kv === undefined ? undefined : read(kv);
    if (value === undefined) throw this.error(key, expected);
    return value;
  }

  private optional<T>(key: string, expected: string, read: (kv: GgufKv) => T | undefined): T | undefined {
    return this.metadata.has(key) ? this.required(key, expected, read) : undefined;
  }

  string(key: string): string {
    return this.required(key, 'a STRING', stringOf);
  }

  optionalString(key: string): string | undefined {
    return this.optional(key, 'a STRING', stringOf);
  }

  /** A non-negative integer of any integer type (64-bit ones within 2^53). */
  uint(key: string): number {
    return this.required(key, 'a non-negative integer', uintOf);
  }

  optionalUint(key: string): number | undefined {
    return this.optional(key, 'a non-negative integer', uintOf);
  }

  /** A finite number of any numeric type. */
  optionalNumber(key: string): number | undefined {
    return this.optional(key, 'a number', numberOf);
  }

  optionalBool(key: string): boolean | undefined {
    return this.optional(key, 'a BOOL', (kv) => (typeof kv.value === 'boolean' ? kv.value : undefined));
  }

  stringArray(key: string): string[] {
    return this.required(key, 'an ARRAY of STRING', (kv) => arrayOf(kv, GgufType.STRING, stringOf));
  }

  optionalStringArray(key: string): string[] | undefined {
    return this.optional(key, 'an ARRAY of STRING', (kv) => arrayOf(kv, GgufType.STRING, stringOf));
  }

  optionalNumberArray(key: string): number[] | undefined {
    return this.optional(key, 'an ARRAY of numbers', (kv) => arrayOf(kv, null, numberOf));
  }
}

function stringOf(kv: GgufKv): string | undefined {
  return typeof kv.value === 'string' ? kv.value : undefined;
}

function numberOf(kv: GgufKv): number | undefined {
  if (FLOAT_TYPES.includes(kv.type) && typeof kv.value === 'number') return Number.isFinite(kv.value) ? kv.value : undefined;
  if (!INTEGER_TYPES.includes(kv.type)) return undefined;
  const n = Number(kv.value);
  return Number.isSafeInteger(n) ? n : undefined;
}

function uintOf(kv: GgufKv): number | undefined {
  if (!INTEGER_TYPES.includes(kv.type)) return undefined;
  const n = numberOf(kv);
  return n !== undefined && n >= 0 ? n : undefined;
}

/** The items of an array whose item type is `itemType` (any, when null) and each of which `read` accepts. */
function arrayOf<T>(kv: GgufKv, itemType: number | null, read: (kv: GgufKv) => T | undefined): T[] | undefined {
  if (typeof kv.value !== 'object') return undefined;
  const { itemType: type, items } = kv.value;
  if (itemType !== null && type !== itemType) return undefined;
  const out: T[] = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const v = read({ type, value: items[i] });
    if (v === undefined) return undefined;
    out[i] = v;
  }
  return out;
}
