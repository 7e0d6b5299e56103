/** The glibc printf() conversions the ported selftests use, for values the model passes as numbers. */

/** Models `%p` (glibc): `(nil)` for NULL, else `0x` and the lower-case hex of the 64-bit value. */
export function fmtPtr(p: number): string {
  if (p === 0) return '(nil)';
  return `0x${BigInt.asUintN(64, BigInt(p)).toString(16)}`;
}

/** Models `%lx` of an unsigned long. */
export function fmtLx(v: number): string {
  return BigInt.asUintN(64, BigInt(v)).toString(16);
}

/** Models `%#x` of an unsigned int: `0x` and the hex digits, but a plain `0` for zero. */
export function fmtHashX(v: number): string {
  const u = v >>> 0;
  return u === 0 ? '0' : `0x${u.toString(16)}`;
}

/** Models `%<width>lld`: right-aligned in `width` columns. */
export function fmtWidth(v: number | bigint, width: number): string {
  return String(v).padStart(width);
}

/** Models the `(char)` conversion of x86-64 (signed char) of a byte or an int. */
export function schar(v: number): number {
  return (v << 24) >> 24;
}
