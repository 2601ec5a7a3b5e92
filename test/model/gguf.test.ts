/**
 * The GGUF reader and its dequantisers, against files written by the test helper's independent
 * writer and against blocks whose values were worked out by hand.
 */
import { truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { f16ToF32 } from '../../src/model/float16.js';
import { dequantize, dequantizeQ4_0, dequantizeQ8_0, GgmlType, GgufFields, GgufFile, GgufType, type GgufKv } from '../../src/model/gguf.js';
import { unpermuteRows } from '../../src/arch/import-gguf.js';
import { throwsWith } from '../helpers/errors.js';
import { ggufBytes, kv, permuteForLlamaCpp, quantizeQ4_0, quantizeQ8_0, writeGguf } from '../helpers/gguf-writer.js';
import { uniform } from '../helpers/ort.js';

/** Every value type, with the edges of each range, and arrays of several item types (one nested). */
const EVERY_TYPE: [string, GgufKv][] = [
  ['t.u8', kv.u8(255)],
  ['t.i8', kv.i8(-128)],
  ['t.u16', kv.u16(65535)],
  ['t.i16', kv.i16(-32768)],
  ['t.u32', kv.u32(4294967295)],
  ['t.i32', kv.i32(-2147483648)],
  ['t.f32', kv.f32(Math.fround(0.1))],
  ['t.f64', kv.f64(1 / 3)],
  ['t.u64', kv.u64(18446744073709551615n)],
  ['t.i64', kv.i64(-9223372036854775808n)],
  ['t.bool.true', kv.bool(true)],
  ['t.bool.false', kv.bool(false)],
  ['t.string', kv.str('▁Once upon a time, 日本語 😀')],
  ['t.string.empty', kv.str('')],
  ['t.array.u8', kv.arr(GgufType.UINT8, [0, 1, 255])],
  ['t.array.i16', kv.arr(GgufType.INT16, [-1, 2, -32768])],
  ['t.array.f32', kv.arr(GgufType.FLOAT32, [Math.fround(-1.5), 0, Math.fround(3.25e-7)])],
  ['t.array.string', kv.arr(GgufType.STRING, ['<s>', '', 'Ġthe'])],
  ['t.array.bool', kv.arr(GgufType.BOOL, [true, false])],
  ['t.array.u64', kv.arr(GgufType.UINT64, [0n, 2n ** 63n])],
  ['t.array.empty', kv.arr(GgufType.INT32, [])],
  [
    't.array.nested',
    kv.arr(GgufType.ARRAY, [
      { itemType: GgufType.UINT32, items: [1, 2] },
      { itemType: GgufType.STRING, items: ['a'] },
    ]),
  ],
];

t.test('metadata of every value type round-trips', async (t) => {
  const path = join(t.testdir(), 'kv.gguf');
  writeGguf(path, { metadata: EVERY_TYPE, tensors: [] });
  const g = GgufFile.open(path);
  t.teardown(() => g.close());
  t.equal(g.version, 3);
  t.equal(g.alignment, 32, 'the default alignment without general.alignment');
  t.equal(g.tensors.size, 0);
  t.same(
    [...g.metadata.keys()],
    EVERY_TYPE.map(([k]) => k),
    'every key, in file order',
  );
  for (const [key, expected] of EVERY_TYPE) t.strictSame(g.get(key), expected, key);
});

t.test('typed access names the key and what is there', async (t) => {
  const path = join(t.testdir(), 'kv.gguf');
  writeGguf(path, { metadata: EVERY_TYPE, tensors: [] });
  const g = GgufFile.open(path);
  t.teardown(() => g.close());
  const f = new GgufFields(path, g.metadata);
  t.equal(f.uint('t.u32'), 4294967295);
  t.equal(f.uint('t.u8'), 255);
  t.equal(f.optionalNumber('t.f64'), 1 / 3);
  t.equal(f.optionalNumber('t.i8'), -128);
  t.equal(f.optionalUint('absent'), undefined);
  t.same(f.stringArray('t.array.string'), ['<s>', '', 'Ġthe']);
  t.same(f.optionalNumberArray('t.array.f32'), [-1.5, 0, Math.fround(3.25e-7)]);
  t.equal(f.optionalBool('t.bool.true'), true);
  throwsWith(t, () => f.uint('t.i8'), [path, '"t.i8"', 'non-negative integer', 'INT8 -128']);
  throwsWith(t, () => f.uint('t.u64'), ['"t.u64"', 'UINT64 "18446744073709551615"'], '64-bit values beyond 2^53 are refused, not rounded');
  throwsWith(t, () => f.string('missing.key'), ['"missing.key"', 'missing']);
  throwsWith(t, () => f.stringArray('t.array.u8'), ['"t.array.u8"', 'ARRAY of STRING', 'ARRAY of 3 UINT8']);
});

t.test('tensor infos: shapes, types, alignment and data offsets', async (t) => {
  const dir = t.testdir();
  const a = Float32Array.from({ length: 6 }, (_, i) => i - 2.5);
  const b = Float32Array.from(uniform(64, 3));
  const tensors = [
    { name: 'a', dims: [3, 2], type: GgmlType.F32, bytes: new Uint8Array(a.buffer) },
    { name: 'b', dims: [32, 2], type: GgmlType.Q8_0, bytes: quantizeQ8_0(b) },
    { name: 'c', dims: [5], type: 12, bytes: new Uint8Array(0) }, // a Q4_K tensor cannot have 5 values: refused on open
  ];
  const path = join(dir, 'bad-blocks.gguf');
  writeGguf(path, { metadata: [], tensors });
  throwsWith(t, () => GgufFile.open(path), [path, 'tensor "c"', 'Q4_K', 'blocks of 256']);

  for (const alignment of [32, 64, 8]) {
    const file = join(dir, `aligned-${alignment}.gguf`);
    writeGguf(file, { metadata: [['general.name', kv.str('x')]], tensors: tensors.slice(0, 2), alignment: alignment === 32 ? undefined : alignment });
    const g = GgufFile.open(file);
    t.equal(g.alignment, alignment);
    t.equal(g.dataOffset % alignment, 0, 'the data section starts aligned');
    const ia = g.info('a');
    t.match(ia, { dims: [3, 2], shape: [2, 3], typeName: 'F32', bytes: 24 });
    t.match(g.info('b'), { dims: [32, 2], shape: [2, 32], typeName: 'Q8_0', bytes: 68 });
    for (const info of g.tensors.values()) t.equal(info.offset % alignment, 0, `${info.name} starts at a multiple of ${alignment}`);
    t.same(g.read('a'), { shape: [2, 3], data: a }, 'F32 comes back exactly, row-major');
    t.same(g.readRaw('b'), tensors[1].bytes, 'the stored bytes as written');
    g.close();
  }

  const v2 = join(dir, 'v2.gguf');
  writeGguf(v2, { metadata: [], tensors: tensors.slice(0, 1), version: 2 });
  const g2 = GgufFile.open(v2);
  t.equal(g2.version, 2, 'version 2 has the same layout and is read too');
  t.same(g2.read('a').data, a);
  g2.close();
});

t.test('a broken file is refused with what is wrong', async (t) => {
  const dir = t.testdir();
  const good = ggufBytes({
    metadata: [['general.architecture', kv.str('llama')]],
    tensors: [{ name: 'w', dims: [4], type: GgmlType.F32, bytes: new Uint8Array(16) }],
  });
  const file = (name: string, bytes: Buffer) => {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    return path;
  };
  const notGguf = file('model.safetensors', Buffer.from('{"__metadata__": {}} padding padding'));
  throwsWith(t, () => GgufFile.open(notGguf), [notGguf, 'not a GGUF file']);
  const v1 = Buffer.from(good);
  v1.writeUInt32LE(1, 4);
  throwsWith(t, () => GgufFile.open(file('v1.gguf', v1)), ['GGUF version 1 is not supported']);
  const bigEndian = Buffer.from(good);
  bigEndian.writeUInt32BE(3, 4);
  throwsWith(t, () => GgufFile.open(file('be.gguf', bigEndian)), ['big-endian']);

  const truncatedData = file('short-data.gguf', good);
  truncateSync(truncatedData, good.length - 20); // 32 bytes of data and padding at the end, 16 of them the tensor's
  throwsWith(t, () => GgufFile.open(truncatedData), [truncatedData, 'tensor "w"', 'truncated']);
  const truncatedHeader = file('short-header.gguf', good);
  truncateSync(truncatedHeader, 40);
  throwsWith(t, () => GgufFile.open(truncatedHeader), [truncatedHeader, 'metadata key 0', 'truncated']);

  const badType = Buffer.from(good);
  // The first value's type follows magic, version, two counts and the key (8-byte length + 20 bytes).
  badType.writeUInt32LE(77, 24 + 8 + 'general.architecture'.length);
  throwsWith(t, () => GgufFile.open(file('bad-type.gguf', badType)), ['"general.architecture"', 'unknown value type 77']);

  const misaligned = file('alignment.gguf', ggufBytes({ metadata: [['general.alignment', kv.u32(12)]], tensors: [] }));
  throwsWith(t, () => GgufFile.open(misaligned), ['"general.alignment"', 'multiple of 8', 'UINT32 12']);
  const twice = file(
    'twice.gguf',
    ggufBytes({
      metadata: [
        ['a', kv.u8(1)],
        ['a', kv.u8(2)],
      ],
      tensors: [],
    }),
  );
  throwsWith(t, () => GgufFile.open(twice), ['"a" appears twice']);
  throwsWith(t, () => GgufFile.open(join(dir, 'absent.gguf')), ['absent.gguf', 'cannot open']);
});

t.test('F32, F16 and BF16 widen exactly', async (t) => {
  const values = [0, -0, 1, -2, 0.5, 65504, 2 ** -24, -3.75];
  const f16 = Uint16Array.of(0x0000, 0x8000, 0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0xc380);
  t.same(Array.from(dequantize(GgmlType.F16, new Uint8Array(f16.buffer), 8)), values, 'F16 bit patterns worked out by hand');
  const bf16 = Uint16Array.of(0x0000, 0x8000, 0x3f80, 0xc000, 0x3f00, 0x477f, 0x3380, 0xc070);
  t.same(
    Array.from(dequantize(GgmlType.BF16, new Uint8Array(bf16.buffer), 8)),
    [0, -0, 1, -2, 0.5, 65280, 2 ** -24, -3.75],
    'BF16 is the top half of a float32',
  );
  const f32 = Float32Array.from(values);
  t.same(dequantize(GgmlType.F32, new Uint8Array(f32.buffer), 8), f32);
});

t.test('Q8_0: a block worked out by hand', async (t) => {
  // d = 0.5 (f16 0x3800, little-endian 00 38), then 32 int8: 0, 1, -1, 127, -128, 2, -2, ... as laid out below.
  const q = [0, 1, -1, 127, -128, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 8, -8, 9, -9, 10, -10, 11, -11, 12, -12, 13, -13, 14, -14, 100];
  const block = Uint8Array.from([0x00, 0x38, ...q.map((v) => v & 0xff)]);
  const expected = [
    0, 0.5, -0.5, 63.5, -64, 1, -1, 1.5, -1.5, 2, -2, 2.5, -2.5, 3, -3, 3.5, -3.5, 4, -4, 4.5, -4.5, 5, -5, 5.5, -5.5, 6, -6, 6.5, -6.5, 7, -7, 50,
  ];
  t.same(Array.from(dequantizeQ8_0(block, 32)), expected);
  // Two blocks: the second's scale (f16 0xBC00 = -1) applies only to it.
  const two = Uint8Array.from([...block, 0x00, 0xbc, ...q.map((v) => v & 0xff)]);
  t.same(Array.from(dequantizeQ8_0(two, 64).subarray(32, 36)), [-0, -1, 1, -127]);
  throwsWith(t, () => dequantizeQ8_0(block, 64), ['Q8_0', '64 values need 68 bytes']);
  throwsWith(t, () => dequantizeQ8_0(block, 30), ['Q8_0', 'not whole blocks of 32']);
});

t.test('Q4_0: a block worked out by hand', async (t) => {
  // d = -0.25 (f16 0xB400); byte j holds q = j in its low nibble (value j) and 15 - j in its
  // high nibble (value j + 16): value = d * (q - 8).
  const block = Uint8Array.from([0x00, 0xb4, ...Array.from({ length: 16 }, (_, j) => j | ((15 - j) << 4))]);
  const low = [2, 1.75, 1.5, 1.25, 1, 0.75, 0.5, 0.25, -0, -0.25, -0.5, -0.75, -1, -1.25, -1.5, -1.75];
  const high = [-1.75, -1.5, -1.25, -1, -0.75, -0.5, -0.25, -0, 0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2];
  t.same(Array.from(dequantizeQ4_0(block, 32)), [...low, ...high]);
  throwsWith(t, () => dequantizeQ4_0(block, 64), ['Q4_0', '64 values need 36 bytes']);
});

/** Blocks of 32 with different scales: ordinary, tiny, large, all zero, one outlier, one negative outlier. */
function testBlocks(): Float32Array {
  const u = uniform(32 * 6, 7);
  const x = new Float32Array(32 * 6);
  const scales = [1, 1e-4, 300, 0, 0.01, 0.01];
  for (let i = 0; i < x.length; i++) x[i] = u[i] * scales[Math.floor(i / 32)];
  x[4 * 32 + 5] = 2;
  x[5 * 32 + 9] = -2;
  return x;
}

/** The stored scale of each block (the f16 at its start). */
function storedScales(bytes: Uint8Array, blockBytes: number): Float32Array {
  const bits = new Uint16Array(bytes.length / blockBytes);
  for (let b = 0; b < bits.length; b++) bits[b] = bytes[b * blockBytes] | (bytes[b * blockBytes + 1] << 8);
  return f16ToF32(bits);
}

t.test('Q8_0 against its quantiser: every value within d/2 of the original', async (t) => {
  // q = round(x / d) with d the stored scale and |x / d| <= 127 (1 + 2^-11) < 127.5, so no value
  // clamps and rounding errs by at most half a step: |x - d q| <= d/2. The product d * q is
  // exact in float32 (an 11-bit times an 8-bit integer significand), so the bound holds as is.
  const x = testBlocks();
  const bytes = quantizeQ8_0(x);
  t.equal(bytes.length, (x.length / 32) * 34);
  const y = dequantizeQ8_0(bytes, x.length);
  const d = storedScales(bytes, 34);
  for (let b = 0; b < d.length; b++) {
    let worst = 0;
    for (let j = 0; j < 32; j++) worst = Math.max(worst, Math.abs(x[b * 32 + j] - y[b * 32 + j]));
    t.ok(worst <= d[b] / 2, `block ${b}: max error ${worst.toExponential(3)} <= d/2 = ${(d[b] / 2).toExponential(3)}`);
  }
  t.same(Array.from(y.subarray(96, 128)), new Array(32).fill(0), 'an all-zero block stays zero');
  t.ok(Math.abs(y[4 * 32 + 5] - 2) <= d[4] / 2, 'the outlier is kept to within half a step');
});

t.test('Q4_0 against its quantiser: within d/2 inside the grid, clamped outside it', async (t) => {
  // The grid is d (q - 8) for q in 0..15, from -8d to 7d, with d = m / -8 for the block's value m
  // of largest magnitude. Inside the grid, trunc(x / d + 8.5) rounds to the nearest step:
  // error <= |d|/2. On the side opposite m the grid ends at 7|d| while values reach |m| = 8|d|
  // (to within f16 rounding of d, a relative 2^-11): those clamp to the end, error <= |d| (1 + 2^-8).
  const x = testBlocks();
  const bytes = quantizeQ4_0(x);
  t.equal(bytes.length, (x.length / 32) * 18);
  const y = dequantizeQ4_0(bytes, x.length);
  const d = storedScales(bytes, 18);
  let clamped = 0;
  for (let b = 0; b < d.length; b++) {
    const lo = Math.min(-8 * d[b], 7 * d[b]);
    const hi = Math.max(-8 * d[b], 7 * d[b]);
    let inside = 0;
    let outside = 0;
    for (let j = 0; j < 32; j++) {
      const v = x[b * 32 + j];
      const err = Math.abs(v - y[b * 32 + j]);
      if (v >= lo - Math.abs(d[b]) / 2 && v <= hi + Math.abs(d[b]) / 2) inside = Math.max(inside, err);
      else {
        clamped++;
        outside = Math.max(outside, err);
        t.equal(y[b * 32 + j], v < lo ? lo : hi, `block ${b} value ${j} clamps to the grid's end`);
      }
    }
    const step = Math.abs(d[b]);
    t.ok(inside <= step / 2, `block ${b}: max error inside the grid ${inside.toExponential(3)} <= |d|/2 = ${(step / 2).toExponential(3)}`);
    t.ok(outside <= step * (1 + 2 ** -8), `block ${b}: max error of clamped values ${outside.toExponential(3)} <= |d| (1 + 2^-8)`);
  }
  t.ok(clamped > 0, 'the test data reach the clamped side of some block');
  t.equal(y[4 * 32 + 5], 2, 'the value of largest magnitude is exact (-8d = m)');
  t.equal(y[5 * 32 + 9], -2);
});

t.test('types other than F32, F16, BF16, Q8_0 and Q4_0 are refused by name', async (t) => {
  const path = join(t.testdir(), 'k.gguf');
  writeGguf(path, {
    metadata: [],
    tensors: [
      { name: 'blk.0.ffn_up.weight', dims: [256, 2], type: 12, bytes: new Uint8Array(2 * 144) },
      { name: 'odd', dims: [4], type: 99, bytes: new Uint8Array(4) },
    ],
  });
  const g = GgufFile.open(path);
  t.teardown(() => g.close());
  t.match(g.info('blk.0.ffn_up.weight'), { typeName: 'Q4_K', bytes: 288 }, 'a known type is sized even when it cannot be read');
  throwsWith(t, () => g.read('blk.0.ffn_up.weight'), [path, 'tensor "blk.0.ffn_up.weight"', 'type Q4_K', 'F32, F16, BF16, Q8_0, Q4_0']);
  throwsWith(t, () => g.read('odd'), ['tensor "odd"', 'unknown type 99']);
  throwsWith(t, () => dequantize(14, new Uint8Array(210), 256), ['Q6_K']);
});

t.test("llama.cpp's q/k row permutation and its inverse", async (t) => {
  // One head of 4 rows: reshape(1, 2, 2, cols).swapaxes(1, 2) orders rows r0, r2, r1, r3.
  const rows = Float32Array.of(0, 0, 1, 1, 2, 2, 3, 3);
  t.same(Array.from(permuteForLlamaCpp(rows, 4, 2, 1)), [0, 0, 2, 2, 1, 1, 3, 3]);
  t.same(Array.from(unpermuteRows(Float32Array.of(0, 0, 2, 2, 1, 1, 3, 3), 4, 2, 1)), Array.from(rows));
  // Two heads of 8 rows, 3 columns: head 1's rows stay in head 1.
  const x = Float32Array.from({ length: 16 * 3 }, (_, i) => i);
  const p = permuteForLlamaCpp(x, 16, 3, 2);
  t.same(Array.from(p.subarray(8 * 3, 9 * 3)), [24, 25, 26], 'head 1 starts with its own row 0');
  t.same(Array.from(p.subarray(9 * 3, 10 * 3)), [36, 37, 38], 'then its row d/2 = 4');
  t.same(unpermuteRows(p, 16, 3, 2), x, 'unpermuting restores every row');
  t.same(unpermuteRows(permuteForLlamaCpp(x, 48, 1, 4), 48, 1, 4), x, 'a bias (one column) as well');
  throwsWith(t, () => unpermuteRows(x, 6, 8, 2), ['even number of rows']);
});
