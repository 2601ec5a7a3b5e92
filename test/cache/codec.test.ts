/** The binary value format of cached scores: exact round trips, compact, and loud on damage. */
import t from 'tap';
import { decodeScores, encodedSize, encodeScores, FORMAT_VERSION, MAX_LAYERS } from '../../src/cache/codec.js';
import type { LayerScores } from '../../src/cache/types.js';

function bits(scores: LayerScores): number[][] {
  return scores.map((layer) => Array.from(new Uint32Array(layer.buffer.slice(layer.byteOffset, layer.byteOffset + layer.byteLength))));
}

const sample: LayerScores = [
  Float32Array.from([1, -2.5, 0.1, 3.4028234663852886e38]),
  new Float32Array(0),
  Float32Array.from([NaN, Infinity, -Infinity, -0, 1e-45, 7]),
];

t.test('round trip is bit-exact, special values and empty layers included', async (t) => {
  const decoded = decodeScores(encodeScores(sample));
  t.equal(decoded.length, 3);
  t.ok(decoded.every((layer) => layer instanceof Float32Array));
  t.same(bits(decoded), bits(sample));
});

t.test('no layers at all round-trips too', async (t) => {
  t.same(decodeScores(encodeScores([])), []);
});

t.test('size is an 8-byte header, 4 bytes per layer length, 4 bytes per score', async (t) => {
  const buf = encodeScores(sample);
  t.equal(buf.length, 8 + 4 * 3 + 4 * 10);
  t.equal(encodedSize(sample), buf.length);
});

t.test('layout: magic, version, dtype, little-endian counts and float32 data', async (t) => {
  const buf = encodeScores([Float32Array.from([1])]);
  t.same([...buf], [0x53, 0x41, FORMAT_VERSION, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0x00, 0x00, 0x80, 0x3f]);
});

t.test('decodes from an unaligned view and copies out of it', async (t) => {
  const encoded = encodeScores(sample);
  const backing = Buffer.alloc(encoded.length + 1);
  encoded.copy(backing, 1);
  const decoded = decodeScores(backing.subarray(1));
  t.same(bits(decoded), bits(sample));
  backing.fill(0);
  t.equal(decoded[0][0], 1, 'the decoded arrays do not alias the input buffer');
});

t.test('encodes from views into larger buffers', async (t) => {
  const big = Float32Array.from([9, 8, 7, 6]);
  t.same(Array.from(decodeScores(encodeScores([big.subarray(1, 3)]))[0]), [8, 7]);
});

t.test('rejects values that are not well-formed score blobs', async (t) => {
  const good = encodeScores(sample);
  const withByte = (at: number, value: number): Buffer => {
    const b = Buffer.from(good);
    b[at] = value;
    return b;
  };
  const withLayers = (n: number): Buffer => {
    const b = Buffer.from(good);
    b.writeUInt32LE(n, 4);
    return b;
  };
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['empty', Buffer.alloc(0), /shorter than the 8-byte header/],
    ['text', Buffer.from('hello world, not scores'), /magic/],
    ['wrong magic', withByte(0, 0x54), /magic/],
    ['a future version', withByte(2, FORMAT_VERSION + 1), /version 2, expected 1/],
    ['an unknown dtype', withByte(3, 7), /dtype 7/],
    ['more layers than the header holds', withLayers(1000), /truncated header|bytes/],
    ['an absurd layer count', withLayers(MAX_LAYERS + 1), /layers \(at most/],
    ['one byte of data missing', good.subarray(0, good.length - 1), /the header describes/],
    ['a trailing byte', Buffer.concat([good, Buffer.from([0])]), /the header describes/],
    ['a layer length that overstates the data', withByte(8, 5), /the header describes/],
  ];
  for (const [what, buf, why] of cases) {
    t.throws(() => decodeScores(buf), { message: why }, what);
  }
  // Every possible truncation is caught, not just the ones above.
  for (let n = 0; n < good.length; n++) {
    t.throws(() => decodeScores(good.subarray(0, n)), `truncated to ${n} bytes`);
  }
});
