import { readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { SafetensorsCheckpoint } from '../../src/model/checkpoint.js';
import { readSafetensors, SafetensorsFile, writeSafetensors, type SafetensorsDtype } from '../../src/model/safetensors.js';
import type { HostTensor } from '../../src/model/types.js';
import { throwsWith } from '../helpers/errors.js';

const tensor = (shape: number[], values: number[]): HostTensor => ({ shape, data: Float32Array.from(values) });

/** A file built by hand, for headers the writer would never produce. */
function rawFile(header: Record<string, unknown>, data: Uint8Array): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([length, json, data]);
}

const KNOWN = [1.5, -2, 0.333, 0, 1e-3, 100];

/**
 * What each dtype stores for KNOWN. 1.5, -2, 0 and 100 are exact in all three. 0.333 and 1e-3
 * become the nearest representable value: relative error at most half an ulp, 2^-24 for F32
 * (23 stored mantissa bits), 2^-11 for F16 (10 bits), 2^-8 for BF16 (7 bits).
 */
const PRECISION: Record<SafetensorsDtype, { relTol: number; stored0333: number }> = {
  F32: { relTol: 2 ** -24, stored0333: Math.fround(0.333) },
  F16: { relTol: 2 ** -11, stored0333: 0.3330078125 },
  BF16: { relTol: 2 ** -8, stored0333: 0.33203125 },
};

for (const dtype of ['F32', 'F16', 'BF16'] as const) {
  t.test(`${dtype}: write then read gives the values back within the dtype's precision`, async (t) => {
    const path = join(t.testdir(), 'm.safetensors');
    writeSafetensors(path, { 'a.weight': tensor([2, 3], KNOWN), 'b.bias': tensor([1], [-7.25]) }, dtype);
    const back = readSafetensors(path);
    t.same(Object.keys(back).sort(), ['a.weight', 'b.bias']);
    t.same(back['a.weight'].shape, [2, 3]);
    t.ok(back['a.weight'].data instanceof Float32Array, 'converted to float32');
    const { relTol, stored0333 } = PRECISION[dtype];
    KNOWN.forEach((x, i) => {
      const got = back['a.weight'].data[i];
      t.ok(Math.abs(got - x) <= relTol * Math.abs(x), `${x} -> ${got} within ${relTol} relative`);
    });
    t.equal(back['a.weight'].data[2], stored0333, '0.333 is stored as the nearest representable value');
    t.same(
      [...back['a.weight'].data].filter((_, i) => [0, 1, 3, 5].includes(i)),
      [1.5, -2, 0, 100],
      'exact values stay exact',
    );
    t.same([...back['b.bias'].data], [-7.25]);

    const file = SafetensorsFile.open(path);
    t.equal(file.tensors.get('a.weight')?.dtype, dtype, 'the header records the dtype');
    file.close();
  });
}

t.test('the written layout is standard safetensors', async (t) => {
  const path = join(t.testdir(), 'm.safetensors');
  writeSafetensors(path, { x: tensor([3], [1, 2, 3]), y: tensor([2, 1], [4, 5]) });
  const bytes = readFileSync(path);
  const n = Number(bytes.readBigUInt64LE(0));
  t.equal((8 + n) % 8, 0, 'data section starts 8-byte aligned');
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  t.same(header, {
    __metadata__: { format: 'pt' },
    x: { dtype: 'F32', shape: [3], data_offsets: [0, 12] },
    y: { dtype: 'F32', shape: [2, 1], data_offsets: [12, 20] },
  });
  t.equal(bytes.length, 8 + n + 20, 'no bytes beyond the last tensor');
  t.equal(bytes.readFloatLE(8 + n + 12), 4, 'little-endian float32 data');
});

t.test('the writer refuses data that does not fill the shape', async (t) => {
  const path = join(t.testdir(), 'm.safetensors');
  throwsWith(t, () => writeSafetensors(path, { x: tensor([2, 2], [1, 2, 3]) }), [path, '"x"', '3 values', '[2, 2]']);
});

t.test('a sharded checkpoint reads through its index', async (t) => {
  const dir = t.testdir({
    'model.safetensors.index.json': JSON.stringify({
      metadata: { total_size: 24 },
      weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors', c: 'model-00002-of-00002.safetensors' },
    }),
  });
  writeSafetensors(join(dir, 'model-00001-of-00002.safetensors'), { a: tensor([2], [1, 2]) });
  writeSafetensors(join(dir, 'model-00002-of-00002.safetensors'), { b: tensor([1], [3]), c: tensor([1, 3], [4, 5, 6]) }, 'BF16');
  const ckpt = SafetensorsCheckpoint.open(dir);
  t.teardown(() => ckpt.close());
  t.same(ckpt.names().sort(), ['a', 'b', 'c']);
  t.same(ckpt.files, [join(dir, 'model-00001-of-00002.safetensors'), join(dir, 'model-00002-of-00002.safetensors')]);
  t.equal(ckpt.source, join(dir, 'model.safetensors.index.json'));
  t.same([...ckpt.read('a').data], [1, 2]);
  t.same(ckpt.read('c'), { shape: [1, 3], data: Float32Array.from([4, 5, 6]) });
  t.equal(ckpt.info('b')?.file, join(dir, 'model-00002-of-00002.safetensors'), 'each tensor knows its shard');
});

t.test('a broken index fails naming the index and the shard', async (t) => {
  const index = (map: unknown): Record<string, string> => ({ 'model.safetensors.index.json': JSON.stringify({ weight_map: map }) });
  let dir = t.testdir(index({ a: 'missing.safetensors' }));
  throwsWith(t, () => SafetensorsCheckpoint.open(dir), [join(dir, 'model.safetensors.index.json'), 'missing.safetensors', 'not found', '"a"']);

  dir = t.testdir(index({ a: 'one.safetensors', z: 'one.safetensors' }));
  writeSafetensors(join(dir, 'one.safetensors'), { a: tensor([1], [1]) });
  throwsWith(t, () => SafetensorsCheckpoint.open(dir), ['model.safetensors.index.json', '"z"', 'does not contain it']);

  dir = t.testdir(index({ a: '../elsewhere.safetensors' }));
  throwsWith(t, () => SafetensorsCheckpoint.open(dir), ['model.safetensors.index.json', 'same directory']);

  dir = t.testdir(index(['not', 'a', 'map']));
  throwsWith(t, () => SafetensorsCheckpoint.open(dir), ['model.safetensors.index.json', '"weight_map"']);

  dir = t.testdir({});
  throwsWith(t, () => SafetensorsCheckpoint.open(dir), [dir, 'model.safetensors', 'model.safetensors.index.json']);
});

t.test('a truncated file fails saying so', async (t) => {
  const dir = t.testdir();
  const path = join(dir, 'm.safetensors');
  writeSafetensors(path, { 'w.weight': tensor([4, 4], new Array<number>(16).fill(1)) });
  const full = readFileSync(path).length;

  truncateSync(path, full - 4);
  throwsWith(t, () => SafetensorsFile.open(path), [path, '"w.weight"', 'truncated']);

  truncateSync(path, 20);
  throwsWith(t, () => SafetensorsFile.open(path), [path, 'header length', 'truncated']);

  truncateSync(path, 5);
  throwsWith(t, () => SafetensorsFile.open(path), [path, 'too short']);
});

t.test('malformed headers fail naming the file and the tensor', async (t) => {
  const dir = t.testdir();
  const cases: [string, Buffer, string[]][] = [
    ['header not JSON', Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{{{{')]), ['not valid JSON']],
    [
      'byte size not matching the shape',
      rawFile({ x: { dtype: 'F32', shape: [2, 2], data_offsets: [0, 12] } }, new Uint8Array(12)),
      ['"x"', 'span 12 bytes', '[2, 2]', 'needs 16'],
    ],
    ['offsets reversed', rawFile({ x: { dtype: 'F32', shape: [0], data_offsets: [8, 0] } }, new Uint8Array(8)), ['"x"', 'end before they begin']],
    ['unknown dtype', rawFile({ x: { dtype: 'Q4_K', shape: [2], data_offsets: [0, 1] } }, new Uint8Array(1)), ['"x"', 'unknown dtype "Q4_K"']],
    ['bad shape', rawFile({ x: { dtype: 'F32', shape: [-1], data_offsets: [0, 4] } }, new Uint8Array(4)), ['"x"', 'shape must be']],
  ];
  for (const [name, bytes, fragments] of cases) {
    const path = join(dir, `${name.replaceAll(' ', '-')}.safetensors`);
    writeFileSync(path, bytes);
    throwsWith(t, () => SafetensorsFile.open(path), [path, ...fragments], name);
  }
});

t.test('a dtype other than F32/F16/BF16 fails on read, naming file, tensor and dtype', async (t) => {
  const path = join(t.testdir(), 'ids.safetensors');
  writeFileSync(
    path,
    rawFile(
      {
        __metadata__: { format: 'pt' },
        'pos.ids': { dtype: 'I64', shape: [2], data_offsets: [0, 16] },
        ok: { dtype: 'F32', shape: [1], data_offsets: [16, 20] },
      },
      new Uint8Array(20),
    ),
  );
  const file = SafetensorsFile.open(path);
  t.teardown(() => file.close());
  t.same([...file.read('ok').data], [0], 'other tensors of the file still read');
  throwsWith(t, () => file.read('pos.ids'), [path, '"pos.ids"', 'I64', 'only F32, F16 and BF16']);
  throwsWith(t, () => file.read('nope'), [path, '"nope"']);
});
