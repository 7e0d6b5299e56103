/**
 * @hmm-model/mm-core: the model of Linux core memory management (mm/, include/linux/mm*.h,
 * mm/hmm.c). See the README for the kernel-symbol table.
 */

export * from './bugs.js';
export * from './constants.js';
export * from './core.js';
export * from './cpu.js';
export * from './errors.js';
export * from './events.js';
export * from './fixes.js';
export * from './folio.js';
export * from './fs.js';
export * from './gup-test.js';
export * from './host.js';
export * from './invariants.js';
export * from './kernel.js';
export * from './kernel-bug.js';
export * from './mm/anon.js';
export * from './mm/counters.js';
export * from './mm/exit.js';
export * from './mm/fault.js';
export * from './mm/fork.js';
export * from './mm/gup.js';
export * from './mm/hmm.js';
export * from './mm/huge.js';
export * from './mm/hugetlb.js';
export * from './mm/insert.js';
export * from './mm/locking.js';
export * from './mm/madvise.js';
export * from './mm/mmap.js';
export * from './mm/mprotect.js';
export * from './mm/mremap.js';
export * from './mm/notifier.js';
export * from './mm/notifier-record.js';
export * from './mm/overcommit.js';
export * from './mm/pgtable.js';
export * from './mm/rmap.js';
export * from './mm/shmem.js';
export * from './mm/split.js';
export * from './mm/types.js';
export * from './mm/vma.js';
export * from './mm/zap.js';
export * from './oom.js';
export * from './pgtable/entry.js';
export * from './phys/buddy.js';
export * from './phys/frames.js';
export * from './phys/hostpool.js';
export * from './phys/memmap.js';
export * from './proc.js';
export * from './process.js';
export * from './report.js';
export * from './rw.js';
export * from './sched/index.js';
export * from './signal.js';
export * from './syscall-args.js';
export * from './vmstat.js';
