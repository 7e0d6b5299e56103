/**
 * The bug zoo's switches: historical kernel bugs of the device-private THP series (and of the
 * code around it) that the model can switch back on, one id per Fixes commit (the README's
 * "Bug switches" tables list every id). With a switch on, the model behaves as the kernel did
 * before the fix; the explorer must then find the bug. Each package implements the switches of
 * the code it models; this table is the single list, so that an unknown id is rejected early.
 */

/** Models one Fixes: entry: the bug the switch restores. */
export interface KernelBugSwitch {
  /** Id in series-bugs.md (R = found in review, F = fixed after merge). */
  readonly id: string;
  /** The commit the fix names (Fixes:), or the file for test-driver fixes. */
  readonly fixes: string;
  /** The package whose code carries the switch. */
  readonly pkg: string;
  /** True for races (found only by interleaving), false for sequential bugs. */
  readonly race: boolean;
  /** One line: the scenario and what went wrong. */
  readonly title: string;
}

/** Model-only: every switch the model has, in series-bugs.md order. */
export const KERNEL_BUGS: readonly KernelBugSwitch[] = [
  {
    id: 'R1',
    fixes: '368076f52ebe (v3 review)',
    pkg: 'mm-core',
    race: false,
    title: 'fork() copies a device-private PMD as a migration entry (copy_huge_pmd)',
  },
  {
    id: 'R3',
    fixes: 'a30b48bf1b24 (review)',
    pkg: 'migrate-vma',
    race: false,
    title:
      'collection trylocks the fault folio it already holds locked and skips it (migrate_vma_collect_huge_pmd)',
  },
  {
    id: 'R5',
    fixes: 'a30b48bf1b24 (review)',
    pkg: 'migrate-vma',
    race: false,
    title: 'a THP found in the middle of a PMD (after mremap) leaves a migration PTE behind',
  },
  {
    id: 'R7',
    fixes: 'd245f9b4ab80 (review)',
    pkg: 'mm-core',
    race: false,
    title: 'device-private large folios are put on the deferred-split queue',
  },
  {
    id: 'F5',
    fixes: '368076f52ebe',
    pkg: 'mm-core',
    race: true,
    title: 'MADV_FREE racing with a migration to device: VM_BUG_ON in madvise_free_huge_pmd',
  },
  {
    id: 'F6',
    fixes: '368076f52ebe',
    pkg: 'mm-core',
    race: true,
    title:
      'MADV_COLD/PAGEOUT racing with a migration to device: VM_BUG_ON in madvise_cold_or_pageout_pte_range',
  },
  {
    id: 'F10',
    fixes: 'rmap patch (folded in before merge)',
    pkg: 'mm-core',
    race: false,
    title: 'remove_migration_pmd() overwrites the migration entry with the device-private one, then tests it',
  },
  {
    id: 'F11',
    fixes: 'a30b48bf1b24',
    pkg: 'migrate-vma',
    race: true,
    title:
      'migrate_vma_insert_huge_pmd_page() aborts on an unstable address space without unlocking the PMD lock',
  },
  {
    id: 'F12',
    fixes: 'a30b48bf1b24',
    pkg: 'migrate-vma',
    race: true,
    title: "migrate_vma_insert_huge_pmd_page()'s unlock-and-abort path leaks the preallocated page table",
  },
  {
    id: 'F14',
    fixes: 'a30b48bf1b24',
    pkg: 'mm-core',
    race: false,
    title: 'pagemap over a device-private PMD: a stale WARN in pagemap_pmd_range_thp()',
  },
  {
    id: 'F15',
    fixes: 'a30b48bf1b24',
    pkg: 'mm-core',
    race: true,
    title: 'munmap racing with a PMD migration: the huge-PMD clear asserts on a non-present entry',
  },
  {
    id: 'F23',
    fixes: 'lib/test_hmm.c',
    pkg: 'test-hmm',
    race: false,
    title: 'closing the dmirror file does not evict its device pages: use-after-free (CVE-2026-46280)',
  },
  {
    id: 'F28',
    fixes: 'migrate_vma_split_folio (mm/migrate_device.c)',
    pkg: 'migrate-vma',
    race: true,
    title:
      'migrate_vma_split_folio() takes its folio reference after dropping the PTE lock: the folio can be freed first',
  },
  {
    id: 'F30',
    fixes: 'nouveau dmem THP',
    pkg: 'nouveau-dmem',
    race: false,
    title: 'a split device THP, then freed: chunk->callocated underflows (CVE-2026-93233)',
  },
];

/** Model-only: an unknown bug id passed as a switch (a one-line message listing the known ids). */
export class UnknownBugError extends Error {
  constructor(id: string) {
    super(`unknown bug id '${id}' (known: ${KERNEL_BUGS.map((b) => b.id).join(', ')})`);
    this.name = 'UnknownBugError';
  }
}

/** Model-only: validates bug ids; returns them, or throws {@link UnknownBugError} for the first unknown one. */
export function checkBugIds(ids: readonly string[]): readonly string[] {
  if (!Array.isArray(ids)) throw new UnknownBugError(String(ids));
  for (const id of ids) if (!KERNEL_BUGS.some((b) => b.id === id)) throw new UnknownBugError(String(id));
  return ids;
}
