/**
 * The run_vmtests.sh runs a v6.19 kernel passes and the model fails today, each with the mm-core
 * feature it needs (the per-case list, MODEL_GAPS, is in testing/run.ts). A CI run sets
 * VMTESTS_ALLOW_MODEL_GAPS=1: the script's output and summary stay the kernel script's, and the
 * exit code is 0 only when exactly these runs failed (see cli.ts).
 */

/** Failing runs (run_vmtests.sh's test name: the command line without `./`) and why. */
export const MODEL_GAP_RUNS: Readonly<Record<string, string>> = {
  'khugepaged all:shmem':
    'mm-core has no huge tmpfs (shmem THP) and no collapse_file(): khugepaged leaves shmem PTE-mapped ("Fail"), MADV_COLLAPSE of shmem is -EINVAL ("Fail: Bad return value"), and alloc_hpage() ends the program in collapse_full_of_compound (khugepaged:shmem)',
  'khugepaged -s 4 all:shmem':
    'as all:shmem (without per-size shmem_enabled files, -s 4 changes nothing for shmem)',
};

/**
 * The exit code for a CI run that allows the documented gaps: the script's own when it passed
 * (or failed for other reasons too), 0 when the failed runs are exactly MODEL_GAP_RUNS' that ran.
 * `ran` lists every run's test name, `failed` the failed ones.
 */
export function exitAllowingModelGaps(
  code: number,
  ran: readonly string[],
  failed: readonly string[],
): number {
  if (code === 0 || failed.length === 0) return code;
  const expected = ran.filter((t) => t in MODEL_GAP_RUNS);
  const same = failed.length === expected.length && failed.every((t) => expected.includes(t));
  return same ? 0 : code;
}
