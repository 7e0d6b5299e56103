/**
 * The run_vmtests.sh runs a v6.19 kernel passes and the model fails today, each with the mm-core
 * feature it needs (the per-case list, MODEL_GAPS, is in testing/run.ts), and the runs that fail
 * on a v6.19 kernel as well. A CI run sets VMTESTS_ALLOW_MODEL_GAPS=1: the script's output and
 * summary stay the kernel script's, and the exit code is 0 only when exactly these runs failed
 * (see cli.ts).
 */

/** Failing runs (run_vmtests.sh's test name: the command line without `./`) and why: none today. */
export const MODEL_GAP_RUNS: Readonly<Record<string, string>> = {};

/**
 * Runs that fail on a v6.19 kernel too, with the kernel's reason: the model prints what the C
 * program prints there, failures included. VMTESTS_ALLOW_MODEL_GAPS=1 tolerates them as well.
 */
export const KERNEL_FAILING_RUNS: Readonly<Record<string, string>> = {
  'khugepaged all:shmem':
    'v6.19 fails it too: wait_for_scan() ends with MADV_NOHUGEPAGE, and khugepaged leaves the collapsed shmem range with its PMD cleared (retract_page_tables(); collapse_pte_mapped_thp() without install_pmd), so the refault in khugepaged_collapse() maps the THP by PTEs: do_set_pmd() refuses a VM_NOHUGEPAGE VMA (vma_thp_disabled(), since commit 2b0f922323cc, v6.12). collapse_full, collapse_single_pte_entry and collapse_full_of_compound print "Fail" in the khugepaged context (exit 3); every madvise case passes',
  'khugepaged -s 4 all:shmem':
    'as all:shmem: memfd VMAs are not anonymous shmem, so the per-size shmem_enabled controls (-s 4) do not apply to them (shmem_allowable_huge_orders())',
};

/**
 * The exit code for a CI run that allows the documented gaps: the script's own when it passed
 * (or failed for other reasons too), 0 when the failed runs are exactly those of MODEL_GAP_RUNS and
 * KERNEL_FAILING_RUNS that ran.
 * `ran` lists every run's test name, `failed` the failed ones.
 */
export function exitAllowingModelGaps(
  code: number,
  ran: readonly string[],
  failed: readonly string[],
): number {
  if (code === 0 || failed.length === 0) return code;
  const expected = ran.filter((t) => t in MODEL_GAP_RUNS || t in KERNEL_FAILING_RUNS);
  const same = failed.length === expected.length && failed.every((t) => expected.includes(t));
  return same ? 0 : code;
}
