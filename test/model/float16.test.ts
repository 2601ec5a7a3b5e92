import t from 'tap';
import { bf16ToF32, f16ToF32, f32ToBf16Bits, f32ToF16Bits } from '../../src/model/float16.js';

const half = (bits: number): number => f16ToF32(Uint16Array.of(bits))[0];
const bfloat = (bits: number): number => bf16ToF32(Uint16Array.of(bits))[0];
/** The float32 whose bit pattern is `bits`. */
const f32Bits = (bits: number): number => new Float32Array(Uint32Array.of(bits).buffer)[0];

t.test('F16 bit patterns of known values', async (t) => {
  const cases: [number, number][] = [
    [1, 0x3c00],
    [-2, 0xc000],
    [1.5, 0x3e00],
    [0.333, 0x3554], // 0.3330078125, the nearest half
    [65504, 0x7bff], // the largest finite half
    [65519, 0x7bff], // just below the halfway point to 65536: rounds down
    [65520, 0x7c00], // halfway to 65536 rounds to even, which overflows to infinity
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
    [-0, 0x8000],
    [2 ** -14, 0x0400], // smallest normal
    [2 ** -24, 0x0001], // smallest subnormal
    [2 ** -25, 0x0000], // exactly half of it: ties to even (zero)
    [1.5 * 2 ** -25, 0x0001],
    [1 + 2 ** -11, 0x3c00], // tie between 1 and 1+2^-10: to even
    [1 + 3 * 2 ** -11, 0x3c02], // tie between odd and even mantissa: to even
  ];
  for (const [x, bits] of cases) t.equal(f32ToF16Bits(x), bits, `${x} -> 0x${bits.toString(16)}`);
  t.ok(Number.isNaN(half(f32ToF16Bits(NaN))), 'NaN stays NaN');
});

t.test('every finite F16 value survives F16 -> F32 -> F16', async (t) => {
  let bad = 0;
  for (let h = 0; h < 65536; h++) {
    const x = half(h);
    if (Number.isNaN(x)) continue;
    if (f32ToF16Bits(x) !== h) bad++;
  }
  t.equal(bad, 0, 'no bit pattern changes');
  t.equal(half(0x0001), 2 ** -24);
  t.equal(half(0x7bff), 65504);
  t.equal(half(0xfc00), -Infinity);
});

t.test('BF16 is the top half of F32, rounded to nearest even', async (t) => {
  t.equal(f32ToBf16Bits(1), 0x3f80);
  t.equal(f32ToBf16Bits(-2), 0xc000);
  t.equal(f32ToBf16Bits(f32Bits(0x3f808000)), 0x3f80, 'tie, even below: down');
  t.equal(f32ToBf16Bits(f32Bits(0x3f818000)), 0x3f82, 'tie, odd below: up');
  t.equal(f32ToBf16Bits(f32Bits(0x3f808001)), 0x3f81, 'above the tie: up');
  t.equal(f32ToBf16Bits(f32Bits(0x7f7fffff)), 0x7f80, 'the largest float rounds to infinity');
  t.ok(Number.isNaN(bfloat(f32ToBf16Bits(NaN))), 'NaN stays NaN');
  t.equal(bfloat(0x3eaa), 0.33203125);
});
