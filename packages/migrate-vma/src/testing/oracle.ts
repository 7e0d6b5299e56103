import { PAGE_SIZE } from '@hmm-model/mm-core';

/**
 * The reference model of the model-based test (test-only): per process, a flat map from virtual
 * page number to the bytes it must read (absent: zeros). It knows nothing about folios, page
 * tables or devices; every operation of the model must keep what processes read equal to it.
 */
export class FlatMemory {
  private readonly pages = new Map<number, Uint8Array>();

  /** A copy (fork: the child starts with the parent's contents). */
  clone(): FlatMemory {
    const c = new FlatMemory();
    for (const [vpn, b] of this.pages) c.pages.set(vpn, b.slice());
    return c;
  }

  /** The bytes [addr, addr + len) must hold. */
  read(addr: number, len: number): Uint8Array {
    const out = new Uint8Array(len);
    for (let done = 0; done < len; ) {
      const a = addr + done;
      const off = a % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, len - done);
      const pg = this.pages.get((a - off) / PAGE_SIZE);
      if (pg) out.set(pg.subarray(off, off + n), done);
      done += n;
    }
    return out;
  }

  /** A store of data at addr. */
  write(addr: number, data: Uint8Array): void {
    for (let done = 0; done < data.length; ) {
      const a = addr + done;
      const off = a % PAGE_SIZE;
      const n = Math.min(PAGE_SIZE - off, data.length - done);
      const vpn = (a - off) / PAGE_SIZE;
      let pg = this.pages.get(vpn);
      if (!pg) {
        pg = new Uint8Array(PAGE_SIZE);
        this.pages.set(vpn, pg);
      }
      pg.set(data.subarray(done, done + n), off);
      done += n;
    }
  }

  /** munmap / MADV_DONTNEED / a fresh mapping: [addr, addr + len) reads zeros. */
  zero(addr: number, len: number): void {
    for (let a = addr; a < addr + len; a += PAGE_SIZE) this.pages.delete(a / PAGE_SIZE);
  }

  /** mremap: the contents of [from, from + len) now live at [to, to + len). */
  move(from: number, to: number, len: number): void {
    const moved: [number, Uint8Array][] = [];
    for (let a = from; a < from + len; a += PAGE_SIZE) {
      const pg = this.pages.get(a / PAGE_SIZE);
      if (pg) moved.push([(to + (a - from)) / PAGE_SIZE, pg]);
      this.pages.delete(a / PAGE_SIZE);
    }
    this.zero(to, len);
    for (const [vpn, pg] of moved) this.pages.set(vpn, pg);
  }
}

/** The index of the first byte where a and b differ, or -1. */
export function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)) return -1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}
