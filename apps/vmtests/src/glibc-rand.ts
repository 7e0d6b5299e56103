/**
 * glibc's rand()/srand() (stdlib/random_r.c, the default TYPE_3 additive feedback generator of
 * degree 31 and separation 3), so that a test's random byte pattern, and the bytes it prints when
 * a check fails, are those of the C binary for the same seed.
 */

const DEG = 31;
const SEP = 3;

/** Models the struct random_data behind rand() (glibc's unsafe_state). */
export class GlibcRandom {
  readonly #state = new Int32Array(DEG);
  #f = SEP;
  #r = 0;

  constructor(seed = 1) {
    this.srand(seed);
  }

  /** Models srand(seed) (__srandom_r()): the LCG fill, then 310 outputs discarded. */
  srand(seed: number): void {
    let s = seed >>> 0;
    if (s === 0) s = 1;
    const st = this.#state;
    let word = s | 0;
    st[0] = word;
    for (let i = 1; i < DEG; i++) {
      // state[i] = (16807 * state[i - 1]) % 2147483647 without overflowing 31 bits.
      const hi = Math.trunc(word / 127773);
      const lo = word % 127773;
      word = (16807 * lo - 2836 * hi) | 0;
      if (word < 0) word = (word + 2147483647) | 0;
      st[i] = word;
    }
    this.#f = SEP;
    this.#r = 0;
    for (let k = DEG * 10; k > 0; k--) this.rand();
  }

  /** Models rand() (__random_r()): a value in [0, RAND_MAX]. */
  rand(): number {
    const st = this.#state;
    const val = (st[this.#f] + st[this.#r]) | 0;
    st[this.#f] = val;
    const result = (val >>> 0) >>> 1;
    if (++this.#f >= DEG) {
      this.#f = 0;
      ++this.#r;
    } else if (++this.#r >= DEG) {
      this.#r = 0;
    }
    return result;
  }

  /** Models `for (i = 0; i < n; i++) buf[i] = (char) rand();` into a host buffer. */
  fillBytes(buf: Uint8Array): void {
    for (let i = 0; i < buf.length; i++) buf[i] = this.rand() & 0xff;
  }
}
