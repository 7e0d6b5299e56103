/**
 * The model's fix switches: kernel behaviour that looks wrong and has no upstream fix (yet),
 * found with the model and written up in the owning package's README ("Findings"). By default
 * the model is faithful to v6.19; a switch turns on the behaviour the finding argues for. The
 * explorer runs with every fix on so that its campaigns hunt for new findings rather than
 * rediscovering these (`pnpm fuzz --faithful` turns them off).
 */

/** Model-only: one finding and the fixed behaviour its switch selects. */
export interface ModelFixSwitch {
  /** Id (K = a kernel finding of this model). */
  readonly id: string;
  /** The kernel function whose behaviour the switch changes. */
  readonly fn: string;
  /** The package whose code carries the switch (and whose README explains the finding). */
  readonly pkg: string;
  /** One line: what v6.19 does and what the fix does instead. */
  readonly title: string;
}

/** Model-only: every fix switch the model has. */
export const MODEL_FIXES: readonly ModelFixSwitch[] = [
  {
    id: 'K1',
    fn: 'migrate_vma_collect_huge_pmd',
    pkg: 'migrate-vma',
    title:
      'a PMD-mapped device-coherent THP is collected by MIGRATE_VMA_SELECT_SYSTEM (the PTE path skips device-coherent pages unless SELECT_DEVICE_COHERENT and the owner match); fixed: the same rule at PMD level',
  },
  {
    id: 'K2',
    fn: 'dmirror_migrate_finalize_and_map',
    pkg: 'test-hmm',
    title:
      "MIGRATE_TO_DEV maps the migrated pages into the mirror without checking the interval notifier sequence, so an invalidation during the migration (MADV_DONTNEED of a page of it) leaves a stale mirror entry; fixed: the mirror counts the invalidations it takes (its own device's migrations aside) and maps nothing if one happened since migrate_vma_setup()",
  },
  {
    id: 'K3',
    fn: 'dmirror_interval_invalidate',
    pkg: 'test-hmm',
    title:
      'the mirror ignores every MMU_NOTIFY_MIGRATE of its own device, so a READ/WRITE ioctl racing a migration of the same range uses the source page the migration already copied: a device write is lost; fixed: own-device migrations invalidate the mirror too',
  },
  {
    id: 'K4',
    fn: 'nouveau_dmem_migrate_chunk',
    pkg: 'nouveau-dmem',
    title:
      'the GPU entries are built before migrate_vma_pages() and mapped after it unchecked, so a slot it refuses (the CPU populated a hole meanwhile) is mapped to VRAM that migrate_vma_finalize() frees: the GPU reads zeros; fixed: refused slots are not mapped',
  },
  {
    id: 'K5',
    fn: 'dmirror_fops_release',
    pkg: 'test-hmm',
    title:
      'the CVE-2026-46280 fix evicts each chunk once, and migrate_device_range() skips pages it cannot trylock: a page a racing CPU fault or migration holds stays on the device naming the freed mirror (use-after-free in dmirror_devmem_fault); fixed: wait for such pages and evict again',
  },
  {
    id: 'K6',
    fn: '__split_folio_to_order',
    pkg: 'mm-core',
    title:
      'splitting a device-coherent large folio (a partial MADV_COLD of a PMD-mapped coherent THP) leaves the new folios without their pgmap (zone_device_private_split_cb() handles device-private folios only), and the next page_pgmap() dereferences NULL; fixed: the pgmap is copied to every new folio',
  },
  {
    id: 'K7',
    fn: 'migrate_vma_split_unmapped_folio',
    pkg: 'migrate-vma',
    title:
      "the reference it takes is dropped by split_huge_pmd_address(freeze) only if that still finds the folio's PMD migration entry; a racing partial zap, mprotect or mremap that split the PMD first leaves it held, folio_split_unmapped() then fails on the extra reference and the THP leaks; fixed: the reference is dropped when the split did not consume it",
  },
  {
    id: 'K8',
    fn: 'dmirror_migrate_alloc_and_copy',
    pkg: 'test-hmm',
    title:
      'when a large device allocation fails (or FAIL_ALLOC makes it fail), the fallback to 512 small pages uses each allocation unchecked: with no free small device page and no new chunk (a coherent device has one), BACKING_PAGE(NULL) is a NULL dereference; fixed: the unit gives back what it got and stays in system memory',
  },
  {
    id: 'K9',
    fn: 'nouveau_pfns_map',
    pkg: 'nouveau-dmem',
    title:
      'the migration to VRAM maps its new pages into the GPU without checking for invalidations since migrate_vma_setup(): a page zapped meanwhile (MADV_DONTNEED, munmap) has no CPU mapping left, migrate_vma_finalize() frees its VRAM and the GPU keeps reading it; fixed: the svmm counts the invalidations it takes and, if one happened, maps none of the new pages and unmaps the range instead',
  },
  {
    id: 'K10',
    fn: 'nouveau_svmm_invalidate_range_start',
    pkg: 'nouveau-dmem',
    title:
      "the svmm ignores the MMU_NOTIFY_MIGRATE of its own device's migrations, so the GPU keeps its writable mapping of the source pages while the copy engine copies them: a GPU write in that window lands in the old page and is lost when the copy replaces it (nouveau's K3); fixed: own-device migrations unmap the range from the GPU too, so a GPU access faults and waits on the migration entry",
  },
  {
    id: 'K11',
    fn: 'dmirror_do_write',
    pkg: 'test-hmm',
    title:
      "a device WRITE copies into the mirrored system page with memcpy_to_page() and never dirties it: a page mapped writable but clean (swapped in by a read fault of an exclusive swap entry, or after MADV_FREE) stays a clean swap-cache or lazy-free folio, and the next reclaim drops it without writeback: the device's write is lost; fixed: folio_mark_dirty() after the copy",
  },
  {
    id: 'K12',
    fn: 'nouveau_range_fault',
    pkg: 'nouveau-dmem',
    title:
      'a GPU fault maps a system page writable whenever hmm_range_fault() reports it writable (a read fault too) and nothing ever dirties it, so GPU writes to a writable but clean page (a clean swap-cache or lazy-free folio) are lost at the next reclaim; fixed: a system page is mapped writable only for a GPU write fault, and its folio is marked dirty when it is mapped',
  },
  {
    id: 'K13',
    fn: 'migrate_vma_collect_pmd',
    pkg: 'migrate-vma',
    title:
      "fault_folio is read once, before the walk's `again:` label, so after migrate_vma_split_folio() splits the fault folio it still names the first piece, which the split unlocked; a walk over more than the fault page takes that piece for the fault folio (collected without its lock) and __migrate_device_finalize() unlocks it: VM_BUG_ON in folio_unlock(). Latent in v6.19 (test_hmm and nouveau migrate only the fault page on a PTE fault); reached by the model's mTHP extension; fixed: read fault_folio again after a split",
  },
  {
    id: 'K14',
    fn: 'migrate_device_coherent_folio',
    pkg: 'migrate-vma',
    title:
      "a long-term pin (check_and_migrate_movable_folios()) of a large device-coherent folio reaches migrate_device_coherent_folio(), which handles small folios only: WARN_ON_ONCE(folio_test_large()), then the head slot alone fails to migrate and the pin fails. Latent in v6.19 (test_hmm gives coherent devices small pages only); reached by the model's mTHP extension; fixed: migrate the folio whole to a system folio of its order (MIGRATE_PFN_COMPOUND), -EBUSY when none can be allocated",
  },
  {
    id: 'K15',
    fn: 'migrate_vma_split_folio',
    pkg: 'migrate-vma',
    title:
      "split_folio() leaves the split folio's first piece with the fault handler's reference, and migrate_vma_split_folio() then folio_get()s the fault page's new folio; if the fault page was unmapped (MADV_DONTNEED by another thread) after migrate_vma_collect_pmd() dropped the PTE lock, the split freed that folio: folio_get() on a free folio (VM_BUG_ON with DEBUG_VM), then do_swap_page()'s put_page() frees it again (a device page freed twice). Fixed: split at the fault page (split_huge_page(fault_page)), which hands the reference and lock to its folio",
  },
  {
    id: 'K16',
    fn: 'dmirror_devmem_fault_alloc_and_copy',
    pkg: 'test-hmm',
    title:
      "a failed system-page allocation returns VM_FAULT_OOM with the destination pages of the earlier slots still in dst[], and the caller's migrate_vma_finalize() then treats those slots as migrated although migrate_vma_pages() never ran: remove_migration_ptes() walks the new folio's rmap, which has no mapping, so the migration entries stay, pointing at the device page finalize frees (and the small-page fallback of a large unit locks a failed allocation unchecked: lock_page(NULL)). Fixed: every failure gives back the destination pages of the whole range and empties their slots, so finalize restores the range",
  },
  {
    id: 'K17',
    fn: 'nouveau_dmem_migrate_to_ram',
    pkg: 'nouveau-dmem',
    title:
      'a CPU fault on a PMD-mapped device THP needs a system folio of order 9 and has no fallback: while none can be had (memory fragmented, compaction fails) it returns VM_FAULT_OOM, which the #PF handler retries (pagefault_out_of_memory() kills nothing since v5.16), so the access faults again for ever; the test driver falls back to small pages. Fixed: 512 small pages, as test_hmm does (with K18 the device folio then splits and moves whole)',
  },
  {
    id: 'K18',
    fn: 'migrate_vma_split_unmapped_folio',
    pkg: 'migrate-vma',
    title:
      "in a CPU fault the device THP is the fault folio, which carries the fault handler's reference (do_huge_pmd_device_private()), but folio_split_unmapped() requires the migration's reference alone (can_split_folio(folio, 1, ...)): the split for small destination pages always fails with -EAGAIN, after split_huge_pmd_address() has split the PMD, so the fault copies 512 pages for nothing and the unit stays on the device, PTE-mapped, to be faulted back one page per fault. Fixed: the fault handler's reference is allowed for, and the whole folio migrates into the small pages",
  },
  {
    id: 'K19',
    fn: 'dmirror_device_evict_chunk',
    pkg: 'test-hmm',
    title:
      'evicting a device THP takes a system folio of its order with folio_alloc() and locks it unchecked ("TODO Support splitting here"): when no such folio can be had (memory fragmented, compaction fails) at HMM_DMIRROR_RELEASE or when the last file is closed, lock_page(NULL) oopses. Fixed: a small __GFP_NOFAIL page per subpage, and migrate_device_pages() splits the unmapped device folio (found through the rmap: the pfn API has no VMA)',
  },
  {
    id: 'K20',
    fn: '__mmu_notifier_invalidate_range_start',
    pkg: 'mm-core',
    title:
      "a non-blockable invalidation (the OOM reaper's) whose interval notifiers all went through but whose hlist notifier refuses (-EAGAIN, as nouveau's svmm always does for a non-blockable range) returns without ending the interval part, and the reaper does not end the range: active_invalidate_ranges never returns to zero, invalidate_seq stays odd once odd, and mmu_interval_read_begin() of every subscription hit since (or inserted since) waits for ever. Fixed: the interval part is ended (mn_itree_inv_end()) before -EAGAIN is returned",
  },
  {
    id: 'K21',
    fn: 'out_of_memory',
    pkg: 'mm-core',
    title:
      "with vm.oom_kill_allocating_task=1 the allocating task is chosen again after it became a victim whose mm the OOM reaper gave up on (MMF_OOM_SKIP: task_will_free_mem() is false, and the allocating-task branch does not look at tsk_is_oom_victim()): a __GFP_NOFAIL allocation in it (a driver's eviction at release) kills it again and again and never gets a page while other processes hold the memory. Fixed: such a victim is not chosen again, and select_bad_process(), which skips it, picks another process",
  },
  {
    id: 'K22',
    fn: 'nouveau_svmm_init',
    pkg: 'nouveau-dmem',
    title:
      "nouveau_mn_ops has no ->release: exit_mmap()'s mmu_notifier_release() unhashes the svmm's subscription before the unmaps, so the GPU page tables keep the pfns of every page exit_mmap() frees until the DRM file is released; a GPU job of the client (a channel a forked child shares through the fd, or work queued before the kill) reads and writes pages that now belong to other processes. Fixed: a ->release that clears the svmm's GPU page tables (NVIF_VMM_V0_PFNCLR of the whole range under svmm->mutex); the GPU then faults, and a fault on the dead mm fails",
  },
];

/** Model-only: an unknown fix id (a one-line message listing the known ids). */
export class UnknownFixError extends Error {
  constructor(id: string) {
    super(`unknown fix id '${id}' (known: ${MODEL_FIXES.map((b) => b.id).join(', ')})`);
    this.name = 'UnknownFixError';
  }
}

/** Model-only: validates fix ids; returns them, or throws {@link UnknownFixError} for the first unknown one. */
export function checkFixIds(ids: readonly string[]): readonly string[] {
  if (!Array.isArray(ids)) throw new UnknownFixError(String(ids));
  for (const id of ids) if (!MODEL_FIXES.some((b) => b.id === id)) throw new UnknownFixError(String(id));
  return ids;
}
