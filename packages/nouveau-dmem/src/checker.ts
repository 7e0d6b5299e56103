import { dumpFolio, PG_locked, ScratchBytes } from '@hmm-model/mm-core';
import { DMEM_CHUNK_NPAGES, DMEM_FOLIO_ORDER } from './constants.js';
import { nouveauPageToChunk } from './dmem.js';
import type { NouveauDrm } from './types.js';

const hex = (n: number) => `0x${n.toString(16)}`;

/** Marks of listed pages (checkNouveau()). */
const marksScratch = new ScratchBytes();

/**
 * Models nouveau_dmem_fini()'s WARN_ON(chunk->callocated), generalised into a check_mm()-style
 * audit of the driver-side invariants of kernel-mechanics §9 (items 1, 2 and 19):
 *  - every free_pages entry is an order-0, unreferenced, unlocked page of one of our chunks;
 *  - every free_folios entry is an unreferenced, unlocked, 512-aligned head of 512 free pages
 *    (order 9 once freed, order 0 while never initialised);
 *  - no page is listed twice or lies inside a listed free folio;
 *  - per chunk, callocated equals the number of allocated folios (refcount > 0) and the
 *    pagemap holds one reference per allocated page.
 * Returns one string per violation.
 */
export function checkNouveau(drm: NouveauDrm): string[] {
  const out: string[] = [];
  const dmem = drm.dmem;
  if (!dmem) return out;
  const core = drm.core;
  const m = core.map;
  // Marks of listed pages, by offset in the span of all chunks (no per-page objects).
  let lo = Number.POSITIVE_INFINITY;
  let hi = 0;
  for (const c of dmem.chunks) {
    lo = Math.min(lo, c.pagemap.startPfn);
    hi = Math.max(hi, c.pagemap.endPfn);
  }
  const marks = marksScratch.take(Math.max(0, hi - lo));
  const audit = new FreeListAudit(drm, out, marks, lo, hi);
  audit.walk('free_pages', dmem.freePages, false);
  audit.walk('free_folios', dmem.freeFolios, true);
  // A listed page: inside the span and marked (no closure: see FreeListAudit).
  for (let f = dmem.freeFolios; f !== 0 && f >= lo && f < hi && marks[f - lo] === 1; f = m.priv[f]) {
    for (let k = 1; k < DMEM_CHUNK_NPAGES; k++) {
      if (f + k < hi && marks[f + k - lo] === 1)
        out.push(`nouveau: pfn ${hex(f + k)} is on free_pages inside free folio ${hex(f)}`);
      if (m.refcount[f + k] !== 0)
        out.push(`nouveau: pfn ${hex(f + k)} inside free folio ${hex(f)} is allocated`);
    }
    if (out.length > 50) break;
  }
  for (const chunk of dmem.chunks) {
    let live = 0;
    let livePages = 0;
    for (let p = chunk.pagemap.startPfn; p < chunk.pagemap.endPfn; ) {
      const isHead = m.head[p] === p;
      const n = isHead ? m.folioNrPages(p) : 1;
      if (isHead && m.refcount[p] > 0) {
        live++;
        livePages += n;
      }
      p += n;
    }
    if (chunk.callocated !== live)
      out.push(
        `nouveau chunk pgmap ${chunk.pagemap.id}: callocated ${chunk.callocated} but ${live} allocated folio(s)`,
      );
    if (chunk.pagemap.refs !== livePages)
      out.push(
        `nouveau chunk pgmap ${chunk.pagemap.id}: pgmap refs ${chunk.pagemap.refs} but ${livePages} allocated page(s)`,
      );
  }
  return out;
}

/**
 * One free list's walk for {@link checkNouveau} (a class, not a closure: a closure made per check
 * would be optimized again for every check).
 */
class FreeListAudit {
  private last: ReturnType<typeof nouveauPageToChunk>;
  constructor(
    private readonly drm: NouveauDrm,
    private readonly out: string[],
    private readonly marks: Uint8Array,
    private readonly lo: number,
    private readonly hi: number,
  ) {}

  walk(name: string, head: number, large: boolean): void {
    const { drm, out, marks, lo, hi } = this;
    const core = drm.core;
    const m = core.map;
    for (let p = head; p !== 0; p = m.priv[p]) {
      const last = this.last;
      const chunk =
        last && p >= last.pagemap.startPfn && p < last.pagemap.endPfn
          ? last
          : (this.last = nouveauPageToChunk(drm, p));
      if (!chunk || p < lo || p >= hi) {
        out.push(`nouveau ${name}: pfn ${hex(p)} is not a page of a live chunk`);
        return;
      }
      if (marks[p - lo]) {
        out.push(`nouveau ${name}: pfn ${hex(p)} listed twice (or the list has a cycle)`);
        return;
      }
      marks[p - lo] = 1;
      // A fresh free folio from chunk_alloc was never initialised (order 0); a freed one keeps order 9.
      const order = m.head[p] === p ? m.folioOrder(p) : -1;
      if (large ? order !== 0 && order !== DMEM_FOLIO_ORDER : order !== 0)
        out.push(`nouveau ${name}: pfn ${hex(p)} has order ${order}: ${dumpFolio(core, p)}`);
      if (m.refcount[p] !== 0) out.push(`nouveau ${name}: pfn ${hex(p)} is allocated: ${dumpFolio(core, p)}`);
      if (m.flags[p] & PG_locked) out.push(`nouveau ${name}: pfn ${hex(p)} is locked: ${dumpFolio(core, p)}`);
      if (large && (p - chunk.pagemap.startPfn) % DMEM_CHUNK_NPAGES !== 0)
        out.push(`nouveau ${name}: folio ${hex(p)} is not ${DMEM_CHUNK_NPAGES}-page aligned in its chunk`);
      if (out.length > 50) return;
    }
  }
}

const installed = new WeakSet<NouveauDrm>();

/** Models enabling debug checks (CONFIG_DEBUG_VM-like) for nouveau_dmem: adds {@link checkNouveau} to kernel.checkers once. */
export function installNouveauChecker(drm: NouveauDrm): void {
  if (installed.has(drm)) return;
  installed.add(drm);
  drm.kernel.checkers.push(() => checkNouveau(drm));
}
