/**
 * memcpy()/memcmp() and byte-pattern fills on the program's memory, a chunk at a time in
 * ascending address order (the C loops fault pages in the same order, without one model call
 * per byte).
 */

import type { ProgramEnv } from '../program.js';

/** Bytes moved per model call. */
const CHUNK = 256 * 1024;

/** Models memcpy(dst, src, n) between two user ranges. */
export function copyUser(env: ProgramEnv, dst: number, src: number, n: number): void {
  for (let off = 0; off < n; off += CHUNK) {
    const len = Math.min(CHUNK, n - off);
    env.proc.writeBytes(dst + off, env.proc.readBytes(src + off, len));
  }
}

/** Models memcmp(a, b, n) != 0 on two user ranges. */
export function memcmpUser(env: ProgramEnv, a: number, b: number, n: number): boolean {
  for (let off = 0; off < n; off += CHUNK) {
    const len = Math.min(CHUNK, n - off);
    const x = env.proc.readBytes(a + off, len);
    const y = env.proc.readBytes(b + off, len);
    for (let i = 0; i < len; i++) if (x[i] !== y[i]) return true;
  }
  return false;
}

/** Models `for (i = 0; i < n; ++i) addr[i] = (char) rand();` with the program's rand() state. */
export function fillRand(env: ProgramEnv, addr: number, n: number): void {
  const buf = new Uint8Array(Math.min(CHUNK, n));
  for (let off = 0; off < n; off += CHUNK) {
    const len = Math.min(CHUNK, n - off);
    const part = len === buf.length ? buf : buf.subarray(0, len);
    env.rand.fillBytes(part);
    env.proc.writeBytes(addr + off, part);
  }
}
