/**
 * C integer semantics for the ASSERT_* / EXPECT_* comparisons: signedness for `%lld` / `%llu`
 * printing (is_signed_type() in kselftest_harness.h) and the usual arithmetic conversions for the
 * comparison itself.
 *
 * Untagged JS values behave like these C types:
 *  - number / bigint: a signed 64-bit integer (`long`); non-integral numbers act as `double`;
 *  - boolean: `bool` (unsigned, prints 0 or 1);
 *  - null / undefined: a NULL pointer (unsigned, prints 0).
 * Wrap a value with {@link u64}, {@link u32}, {@link ptr}, {@link unsigned} or {@link signed} to give
 * it another C type, e.g. `u64(-1)` prints 18446744073709551615.
 */

/** Models a C integer value of a declared type (the `__typeof__(_expected)` of __EXPECT()). */
export class CInt {
  readonly value: number | bigint;
  readonly signed: boolean;
  readonly bits: number;
  constructor(value: number | bigint, signed: boolean, bits: number) {
    if (!Number.isInteger(bits) || bits < 1 || bits > 64) throw new RangeError(`bad C integer width ${bits}`);
    this.value = value;
    this.signed = signed;
    this.bits = bits;
  }
}

/** Models a value accepted by ASSERT_EQ() and friends (kselftest_harness.h __EXPECT()). */
export type CValue = number | bigint | boolean | null | undefined | CInt;

/** Models an unsigned C integer of `bits` width (is_signed_type() false in kselftest_harness.h). */
export function unsigned(value: number | bigint, bits = 64): CInt {
  return new CInt(value, false, bits);
}

/** Models a signed C integer of `bits` width (is_signed_type() true in kselftest_harness.h). */
export function signed(value: number | bigint, bits = 64): CInt {
  return new CInt(value, true, bits);
}

/** Models a `uint64_t` / `unsigned long` operand of __EXPECT() (kselftest_harness.h), printed `%llu`. */
export function u64(value: number | bigint): CInt {
  return new CInt(value, false, 64);
}

/** Models an `unsigned int` operand of __EXPECT() (kselftest_harness.h): -1 prints 4294967295. */
export function u32(value: number | bigint): CInt {
  return new CInt(value, false, 32);
}

/** Models a pointer operand of __EXPECT() (kselftest_harness.h): unsigned, NULL (null) is 0. */
export function ptr(value: number | bigint | null | undefined): CInt {
  return new CInt(value ?? 0, false, 64);
}

/** Models the run-time check that a value can be an __EXPECT() operand (kselftest_harness.h). */
export function isCValue(x: unknown): x is CValue {
  return (
    x === null ||
    x === undefined ||
    typeof x === 'number' ||
    typeof x === 'bigint' ||
    typeof x === 'boolean' ||
    x instanceof CInt
  );
}

/**
 * Models the pointer/integer conversion of ASSERT_TRUE/FALSE/NULL's operand (kselftest_harness.h):
 * numeric values keep their type; any other non-null value is a non-NULL pointer (printed as 1,
 * as the model has no addresses).
 */
export function truthOperand(x: unknown): CValue {
  return isCValue(x) ? x : ptr(1);
}

interface Norm {
  /** Integral value in range of its type, or null for a `double`. */
  readonly int: bigint | null;
  readonly float: number;
  readonly signed: boolean;
  readonly bits: number;
}

function toBig(v: number | bigint): bigint {
  return typeof v === 'bigint' ? v : BigInt(Math.trunc(v));
}

function normalize(v: CValue): Norm {
  if (v instanceof CInt) {
    if (typeof v.value === 'number' && !Number.isFinite(v.value)) {
      return { int: null, float: v.value, signed: v.signed, bits: v.bits };
    }
    const big = toBig(v.value);
    const int = v.signed ? BigInt.asIntN(v.bits, big) : BigInt.asUintN(v.bits, big);
    return { int, float: Number(int), signed: v.signed, bits: v.bits };
  }
  if (v === null || v === undefined) return { int: 0n, float: 0, signed: false, bits: 64 };
  if (typeof v === 'boolean') return { int: v ? 1n : 0n, float: v ? 1 : 0, signed: false, bits: 1 };
  if (typeof v === 'bigint') {
    const int = BigInt.asIntN(64, v);
    return { int, float: Number(int), signed: true, bits: 64 };
  }
  if (Number.isInteger(v)) {
    const int = BigInt.asIntN(64, BigInt(v));
    return { int, float: Number(int), signed: true, bits: 64 };
  }
  return { int: null, float: v, signed: true, bits: 64 };
}

/** Models the `%lld` / `%llu` rendering of one __EXPECT() operand (kselftest_harness.h). */
export function formatCValue(v: CValue): string {
  const n = normalize(v);
  if (n.int === null) return String(Math.trunc(n.float));
  return n.signed ? BigInt.asIntN(64, n.int).toString() : BigInt.asUintN(64, n.int).toString();
}

/** Models the comparison operators of __EXPECT() (kselftest_harness.h). */
export type CompareOp = '==' | '!=' | '<' | '<=' | '>' | '>=';

function promote(n: Norm): Norm {
  return n.int !== null && n.bits < 32 ? { ...n, signed: true, bits: 32 } : n;
}

/**
 * Models `__exp _t __seen` in __EXPECT() (kselftest_harness.h) with C's integer promotions and
 * usual arithmetic conversions: when an unsigned operand is at least as wide as the signed one,
 * both are compared as unsigned (so `u64(x) == -1` holds for x = 2^64 - 1).
 */
export function compareC(a: CValue, op: CompareOp, b: CValue): boolean {
  const x = promote(normalize(a));
  const y = promote(normalize(b));
  let cmp: number;
  if (x.int === null || y.int === null) {
    const xf = x.int === null ? x.float : Number(x.int);
    const yf = y.int === null ? y.float : Number(y.int);
    if (Number.isNaN(xf) || Number.isNaN(yf)) return op === '!=';
    cmp = xf < yf ? -1 : xf > yf ? 1 : 0;
  } else {
    let xi = x.int;
    let yi = y.int;
    if (x.signed !== y.signed) {
      const u = x.signed ? y : x;
      const s = x.signed ? x : y;
      if (u.bits >= s.bits) {
        xi = BigInt.asUintN(u.bits, xi);
        yi = BigInt.asUintN(u.bits, yi);
      }
    }
    cmp = xi < yi ? -1 : xi > yi ? 1 : 0;
  }
  switch (op) {
    case '==':
      return cmp === 0;
    case '!=':
      return cmp !== 0;
    case '<':
      return cmp < 0;
    case '<=':
      return cmp <= 0;
    case '>':
      return cmp > 0;
    case '>=':
      return cmp >= 0;
  }
}

/**
 * Models the preprocessor's `#x` stringification used for the Expected line (kselftest_harness.h
 * __EXPECT()): trims the source text and collapses whitespace runs outside string and character
 * literals to one space.
 */
export function stringify(source: string): string {
  let out = '';
  let quote: string | null = null;
  let pendingSpace = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (quote !== null) {
      out += c;
      if (c === '\\' && i + 1 < source.length) out += source[++i];
      else if (c === quote) quote = null;
      continue;
    }
    if (/\s/.test(c)) {
      pendingSpace = out.length > 0;
      continue;
    }
    if (pendingSpace) out += ' ';
    pendingSpace = false;
    out += c;
    if (c === '"' || c === "'") quote = c;
  }
  return out;
}
