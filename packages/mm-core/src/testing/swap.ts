/**
 * Test-only helpers for swap tests: what MADV_PAGEOUT does until madvise.ts calls
 * reclaimPages() itself (madvise_cold_or_pageout_pte_range()'s isolation of the anonymous
 * folios mapped once in a range, then reclaim_pages()), and readers of swap state.
 */
import { PAGE_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import { folioGet, folioIsZoneDevice, folioMapcount } from '../folio.js';
import type { Kernel } from '../kernel.js';
import { mmapReadLock, mmapReadUnlock } from '../mm/locking.js';
import { pmdIndex, pmdTableOf, pteIndex, ptHi, ptLo } from '../mm/pgtable.js';
import { swapCount, swpEntryVal } from '../mm/swapfile.js';
import type { MmStruct } from '../mm/types.js';
import { reclaimPages } from '../mm/vmscan.js';
import {
  _PAGE_PSE,
  _PAGE_SPECIAL,
  entryNone,
  entryPfn,
  entryPresent,
  isSwapType,
  swpType,
} from '../pgtable/entry.js';
import { PG_anon, PG_lru } from '../phys/memmap.js';
import type { Process } from '../process.js';
import type { KGen } from '../sched/task.js';

/**
 * Isolates (folio_isolate_lru()) the anonymous folios mapped once in [addr, addr + len) of p,
 * as madvise_cold_or_pageout_pte_range() does for MADV_PAGEOUT, and hands them to
 * reclaimPages(). Returns the pages reclaimed. The invariant checker runs afterwards.
 */
export function pageout(k: Kernel, p: Process, addr: number, len: number): number {
  const n = k.core.sched.runSync(pageoutGen(k.core, p.mm, addr, len), 'pageout');
  k.afterSyscall('pageout');
  return n;
}

/** {@link pageout} as a kernel task body (for concurrent runs). */
export function* pageoutGen(core: Core, mm: MmStruct, addr: number, len: number): KGen<number> {
  const m = core.map;
  const run = function* (): KGen<number> {
    yield* mmapReadLock(core, mm, 'madvise_lock');
    try {
      const list: number[] = [];
      const isolate = (head: number) => {
        if (list.includes(head) || !(m.flags[head] & PG_lru)) return;
        m.flags[head] &= ~PG_lru;
        folioGet(core, head);
        list.push(head);
      };
      for (let a = addr; a < addr + len; a += PAGE_SIZE) {
        const pmdT = pmdTableOf(core, mm, a, false);
        if (pmdT < 0) continue;
        const lo = ptLo(core, pmdT, pmdIndex(a));
        const hi = ptHi(core, pmdT, pmdIndex(a));
        if (entryNone(lo, hi) || !entryPresent(lo)) continue;
        let pfn: number;
        if (lo & _PAGE_PSE) {
          pfn = entryPfn(lo, hi);
          if (pfn === core.hugeZeroPfn) continue;
          if (m.largeMapcount[m.head[pfn]] > 1) continue;
        } else {
          const t = entryPfn(lo, hi);
          const plo = ptLo(core, t, pteIndex(a));
          if (!entryPresent(plo) || plo & _PAGE_SPECIAL) continue;
          pfn = entryPfn(plo, ptHi(core, t, pteIndex(a)));
          // Mapped once per page and not more often than it has pages: not shared with another mm
          // (folio_maybe_mapped_shared(), for this single-process helper).
          if (m.mapcount[pfn] > 1 || folioMapcount(core, m.head[pfn]) > m.folioNrPages(m.head[pfn])) continue;
        }
        const head = m.head[pfn];
        if (folioIsZoneDevice(core, head) || !(m.flags[head] & PG_anon)) continue;
        isolate(head);
      }
      return yield* reclaimPages(core, list);
    } finally {
      mmapReadUnlock(core, mm, 'madvise_unlock');
    }
  };
  return yield* run();
}

/** The PTE at addr of p as [lo, hi], or [0, 0] without a PTE table (no THP PMD expected). */
export function pteAt(k: Kernel, p: Process, addr: number): [number, number] {
  const core = k.core;
  const pmdT = pmdTableOf(core, p.mm, addr, false);
  if (pmdT < 0) return [0, 0];
  const lo = ptLo(core, pmdT, pmdIndex(addr));
  const hi = ptHi(core, pmdT, pmdIndex(addr));
  if (entryNone(lo, hi) || !entryPresent(lo) || lo & _PAGE_PSE) return [0, 0];
  const t = entryPfn(lo, hi);
  return [ptLo(core, t, pteIndex(addr)), ptHi(core, t, pteIndex(addr))];
}

/** The swap entry value of the swap PTE at addr, or -1 when it holds none. */
export function swapEntryAt(k: Kernel, p: Process, addr: number): number {
  const [lo, hi] = pteAt(k, p, addr);
  if (entryNone(lo, hi) || entryPresent(lo) || !isSwapType(swpType(lo))) return -1;
  return swpEntryVal(swpType(lo), entryPfn(lo, hi));
}

/** The swap count of the entry at addr (0 when none). */
export function swapCountAt(k: Kernel, p: Process, addr: number): number {
  const e = swapEntryAt(k, p, addr);
  return e < 0 ? 0 : swapCount(k.core, e);
}

/** Reads one /proc/meminfo field in kB through p, as `grep Field /proc/meminfo` does. */
export function meminfoKb(p: Process, field: string): number {
  const fd = p.open('/proc/meminfo', 0);
  const buf = new Uint8Array(4096);
  const n = p.pread(fd, buf, buf.length, 0);
  p.close(fd);
  const text = new TextDecoder().decode(buf.subarray(0, n));
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text);
  if (!match) throw new Error(`no ${field} in /proc/meminfo`);
  return Number(match[1]);
}
