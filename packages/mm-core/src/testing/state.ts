/**
 * Test-only: a fingerprint of everything a syscall can change in a machine (excluded from the
 * build), so a test can assert that a refused call changed nothing.
 */
import { walkPageTables } from '../invariants-walk.js';
import type { Kernel } from '../kernel.js';
import { Process } from '../process.js';

/**
 * The VMAs, page-table entries and rss of every live process, the tmpfs files' sizes and pages,
 * the free memory and the anonymous-page count, as one string. Reads only (no faults, no TLB fill).
 */
export function machineState(k: Kernel): string {
  const parts: string[] = [`free ${k.core.zone.nrFree} anon ${k.core.vmstat.nr_anon_pages}`];
  for (const t of k.tasks.values()) {
    if (!(t instanceof Process)) continue;
    parts.push(`pid ${t.pid} ${t.state} fds ${[...t.fds.keys()].join(',')}`);
    if (t.mm.pgd < 0) continue;
    for (const v of t.mm.vmas) parts.push(`  vma ${v.start}-${v.end} ${v.flags} ${v.pgoff}`);
    parts.push(`  rss ${JSON.stringify(t.mm.rss)}`);
    walkPageTables(k.core, t.mm, {
      pmdLeaf: (a, lo, hi) => parts.push(`  pmd ${a} ${lo} ${hi}`),
      pte: (a, lo, hi) => parts.push(`  pte ${a} ${lo} ${hi}`),
    });
  }
  for (const [path, inode] of k.tmpfs) parts.push(`file ${path} ${inode.size} ${inode.pages.size}`);
  return parts.join('\n');
}
