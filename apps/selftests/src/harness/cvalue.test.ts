import { describe, expect, it } from 'vitest';
import { compareC, formatCValue, ptr, signed, stringify, u32, u64, unsigned } from './cvalue.js';

describe('C value formatting', () => {
  it('prints signed values as %lld and unsigned ones as %llu', () => {
    expect(formatCValue(-1)).toBe('-1');
    expect(formatCValue(u64(-1))).toBe('18446744073709551615');
    expect(formatCValue(u64(-1n))).toBe('18446744073709551615');
    expect(formatCValue(u32(-1))).toBe('4294967295');
    expect(formatCValue(unsigned(-1, 8))).toBe('255');
    expect(formatCValue(signed(0xffffffff, 32))).toBe('-1');
    expect(formatCValue(2n ** 64n + 5n)).toBe('5');
    expect(formatCValue(true)).toBe('1');
    expect(formatCValue(null)).toBe('0');
    expect(formatCValue(undefined)).toBe('0');
    expect(formatCValue(ptr(4096))).toBe('4096');
    expect(formatCValue(2.9)).toBe('2');
    expect(formatCValue(-2.9)).toBe('-2');
  });

  it('compares with promotions and usual arithmetic conversions', () => {
    expect(compareC(u64(-1), '==', -1)).toBe(true);
    expect(compareC(-1, '<', u64(0))).toBe(false);
    expect(compareC(-1, '<', 0)).toBe(true);
    expect(compareC(u32(-1), '==', signed(-1, 32))).toBe(true);
    expect(compareC(u32(-1), '==', -1)).toBe(false);
    expect(compareC(unsigned(-1, 16), '==', signed(-1, 8))).toBe(false);
    expect(compareC(true, '==', 1)).toBe(true);
    expect(compareC(null, '==', ptr(0))).toBe(true);
    expect(compareC(0.5, '<', 1)).toBe(true);
    expect(compareC(Number.NaN, '==', Number.NaN)).toBe(false);
    expect(compareC(Number.NaN, '!=', 0)).toBe(true);
    expect(compareC(5, '>=', 5n)).toBe(true);
    expect(compareC(5, '>', 5n)).toBe(false);
    expect(compareC(4, '<=', 5)).toBe(true);
  });

  it('stringifies source text like the preprocessor', () => {
    expect(stringify('  ret  ')).toBe('ret');
    expect(stringify('a ,\n\t b')).toBe('a , b');
    expect(stringify('"two  spaces"  x')).toBe('"two  spaces" x');
    expect(stringify("'\\''  y")).toBe("'\\'' y");
  });
});
