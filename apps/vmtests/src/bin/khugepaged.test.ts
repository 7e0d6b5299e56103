import { describe, expect, it } from 'vitest';
import { BINARIES } from '../binaries.js';
import { runVmtests } from '../run-vmtests.js';
import { capture, runBinary } from '../testing/run.js';

/** Models success(msg) / fail(msg) / skip(msg) of khugepaged.c as they end a progress line. */
const OK = ' \x1b[32mOK\x1b[0m';
const FAIL = (msg: string) => ` \x1b[31m${msg}\x1b[0m`;

/** The 512 `\rConstruct ... NNN/512...` progress prints of collapse_compound_extreme(). */
const EXTREME = Array.from(
  { length: 512 },
  (_, i) =>
    `\rConstruct PTE page table full of different PTE-mapped compound pages ${String(i + 1).padStart(3)}/512...`,
).join('');

/**
 * The output of `./khugepaged` (anon memory, khugepaged and madvise contexts) when every check
 * passes, as khugepaged.c prints it. The khugepaged context prints one `.` per 500 ms wait: the
 * model's khugepaged runs its first pass as soon as the program sleeps, so each wait is one.
 */
function anonTranscript(): string {
  const k = (msg: string) => `${msg}....${OK}`; // wait_for_scan(): "%s...", one ".", success
  const m = (msg: string) => `${msg}...${OK}`; // __madvise_collapse(): "%s...", success
  const run = (t: string, c: string) => ['', `Run test: ${t} (${c}:anon)`];
  const hpage = `Allocate huge page...${OK}`;
  return `${[
    `Save THP and khugepaged settings...${OK}`,
    `Allocate huge page on fault...${OK}`,
    `Split huge PMD on MADV_DONTNEED...${OK}`,
    ...run('collapse_full', 'khugepaged'),
    k('Collapse multiple fully populated PTE table'),
    ...run('collapse_full', 'madvise'),
    m('Collapse multiple fully populated PTE table'),
    ...run('collapse_empty', 'khugepaged'),
    k('Do not collapse empty PTE table'),
    ...run('collapse_empty', 'madvise'),
    m('Do not collapse empty PTE table'),
    ...run('collapse_single_pte_entry', 'khugepaged'),
    k('Collapse PTE table with single PTE entry present'),
    ...run('collapse_single_pte_entry', 'madvise'),
    m('Collapse PTE table with single PTE entry present'),
    ...run('collapse_max_ptes_none', 'khugepaged'),
    k('Maybe collapse with max_ptes_none exceeded'),
    k('Collapse with max_ptes_none PTEs empty'),
    ...run('collapse_max_ptes_none', 'madvise'),
    m('Maybe collapse with max_ptes_none exceeded'),
    ...run('collapse_single_pte_entry_compound', 'khugepaged'),
    hpage,
    `Split huge page leaving single PTE mapping compound page...${OK}`,
    k('Collapse PTE table with single PTE mapping compound page'),
    ...run('collapse_single_pte_entry_compound', 'madvise'),
    hpage,
    `Split huge page leaving single PTE mapping compound page...${OK}`,
    m('Collapse PTE table with single PTE mapping compound page'),
    ...run('collapse_full_of_compound', 'khugepaged'),
    hpage,
    `Split huge page leaving single PTE page table full of compound pages...${OK}`,
    k('Collapse PTE table full of compound pages'),
    ...run('collapse_full_of_compound', 'madvise'),
    hpage,
    `Split huge page leaving single PTE page table full of compound pages...${OK}`,
    m('Collapse PTE table full of compound pages'),
    ...run('collapse_compound_extreme', 'khugepaged'),
    `${EXTREME}${OK}`,
    k('Collapse PTE table full of different compound pages'),
    ...run('collapse_compound_extreme', 'madvise'),
    `${EXTREME}${OK}`,
    m('Collapse PTE table full of different compound pages'),
    ...run('collapse_swapin_single_pte', 'khugepaged'),
    `Swapout one page...${OK}`,
    k('Collapse with swapping in single PTE entry'),
    ...run('collapse_swapin_single_pte', 'madvise'),
    `Swapout one page...${OK}`,
    m('Collapse with swapping in single PTE entry'),
    ...run('collapse_max_ptes_swap', 'khugepaged'),
    `Swapout 65 of 512 pages...${OK}`,
    k('Maybe collapse with max_ptes_swap exceeded'),
    `Swapout 64 of 512 pages...${OK}`,
    k('Collapse with max_ptes_swap pages swapped out'),
    ...run('collapse_max_ptes_swap', 'madvise'),
    `Swapout 65 of 512 pages...${OK}`,
    m('Maybe collapse with max_ptes_swap exceeded'),
    ...run('collapse_fork', 'khugepaged'),
    `Allocate small page...${OK}`,
    `Share small page over fork()...${OK}`,
    k('Collapse PTE table with single page shared with parent process'),
    `Check if parent still has small page...${OK}`,
    ...run('collapse_fork', 'madvise'),
    `Allocate small page...${OK}`,
    `Share small page over fork()...${OK}`,
    m('Collapse PTE table with single page shared with parent process'),
    `Check if parent still has small page...${OK}`,
    ...run('collapse_fork_compound', 'khugepaged'),
    hpage,
    `Share huge page over fork()...${OK}`,
    `Split huge page PMD in child process...${OK}`,
    k('Collapse PTE table full of compound pages in child'),
    `Check if parent still has huge page...${OK}`,
    ...run('collapse_fork_compound', 'madvise'),
    hpage,
    `Share huge page over fork()...${OK}`,
    `Split huge page PMD in child process...${OK}`,
    m('Collapse PTE table full of compound pages in child'),
    `Check if parent still has huge page...${OK}`,
    ...run('collapse_max_ptes_shared', 'khugepaged'),
    hpage,
    `Share huge page over fork()...${OK}`,
    `Trigger CoW on page 255 of 512...${OK}`,
    k('Maybe collapse with max_ptes_shared exceeded'),
    `Trigger CoW on page 256 of 512...${OK}`,
    k('Collapse with max_ptes_shared PTEs shared'),
    `Check if parent still has huge page...${OK}`,
    ...run('collapse_max_ptes_shared', 'madvise'),
    hpage,
    `Share huge page over fork()...${OK}`,
    `Trigger CoW on page 255 of 512...${OK}`,
    m('Maybe collapse with max_ptes_shared exceeded'),
    `Check if parent still has huge page...${OK}`,
    ...run('madvise_collapse_existing_thps', 'madvise'),
    m('Collapse fully populated PTE table...'),
    m('Re-collapse PMD-mapped hugepage'),
    `Restore THP and khugepaged settings...${OK}`,
  ].join('\n')}\n`;
}

/**
 * The output of `./khugepaged all:shmem` (and `-s 4 all:shmem`) on v6.19 and on the model: MADV_COLLAPSE
 * collapses the shmem page cache (collapse_file()) and installs the PMD
 * (collapse_pte_mapped_thp(install_pmd)); khugepaged collapses it and retracts the page tables,
 * and the refault in khugepaged_collapse() maps the THP by a PMD (do_set_pmd(); v6.17's
 * wait_for_scan() no longer ends with MADV_NOHUGEPAGE). Each wait prints one "." (the model's
 * khugepaged finishes two full scans during the first 500 ms sleep, as the kernel's with 10 ms sleeps).
 */
function shmemTranscript(): string {
  const k = (msg: string, ok: boolean) => `${msg}....${ok ? OK : FAIL('Fail')}`;
  const m = (msg: string) => `${msg}...${OK}`;
  const run = (t: string, c: string) => ['', `Run test: ${t} (${c}:shmem)`];
  const hpage = `Allocate huge page...${OK}`;
  const split = `Split huge page leaving single PTE page table full of compound pages...${OK}`;
  return `${[
    `Save THP and khugepaged settings...${OK}`,
    `Allocate huge page on fault...${OK}`,
    `Split huge PMD on MADV_DONTNEED...${OK}`,
    ...run('collapse_full', 'khugepaged'),
    k('Collapse multiple fully populated PTE table', true),
    ...run('collapse_full', 'madvise'),
    m('Collapse multiple fully populated PTE table'),
    ...run('collapse_single_pte_entry', 'khugepaged'),
    k('Collapse PTE table with single PTE entry present', true),
    ...run('collapse_single_pte_entry', 'madvise'),
    m('Collapse PTE table with single PTE entry present'),
    ...run('collapse_full_of_compound', 'khugepaged'),
    hpage,
    split,
    k('Collapse PTE table full of compound pages', true),
    ...run('collapse_full_of_compound', 'madvise'),
    hpage,
    split,
    m('Collapse PTE table full of compound pages'),
    ...run('madvise_collapse_existing_thps', 'madvise'),
    m('Collapse fully populated PTE table...'),
    m('Re-collapse PMD-mapped hugepage'),
    ...run('madvise_retracted_page_tables', 'madvise'),
    k('Collapse and leave PMD cleared', true),
    m('Install huge PMD from page cache'),
    `Restore THP and khugepaged settings...${OK}`,
  ].join('\n')}\n`;
}

describe('khugepaged (tools/testing/selftests/mm/khugepaged.c)', () => {
  it('./khugepaged: every anon case passes in both contexts (khugepaged, MADV_COLLAPSE); exit 0; restore_settings_atexit() runs', () => {
    // The checker runs once at the end: after every syscall it makes collapse_compound_extreme's
    // 512 THPs take minutes.
    const r = runBinary('khugepaged', [], { debugVm: false });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(anonTranscript());
    expect(r.status).toBe(0);
  }, 120_000);

  it('usage(): an unknown context or mem_type, a missing `:`, -h or a bad option print the usage on stderr and exit 1', () => {
    for (const args of [['bogus:anon'], ['all:bogus'], ['all'], ['-h'], ['-x']]) {
      const r = runBinary('khugepaged', args);
      expect(r.status).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toContain('\nUsage: ./khugepaged [OPTIONS] <test type> [dir]\n\n');
      expect(r.stderr).toMatch(/Defaults to 0\. Use this size for anon or shmem allocations\.\n$/);
    }
    expect(runBinary('khugepaged', ['-x']).stderr).toMatch(/^\.\/khugepaged: invalid option -- 'x'\n/);
    expect(runBinary('khugepaged', ['-s']).stderr).toMatch(
      /^\.\/khugepaged: option requires an argument -- 's'\n/,
    );
  });

  it('the file mem_type is not ported: a message on stderr, exit 1 (run_vmtests.sh never asks for it)', () => {
    const r = runBinary('khugepaged', ['madvise:file', '/tmp']);
    expect(r.status).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('the file mem_type is not ported');
    // "file" without a directory is a usage error, as in C.
    expect(runBinary('khugepaged', ['madvise:file']).stderr).toContain('Usage: ./khugepaged');
  });

  it('skips (KSFT_SKIP) when THP is "never": thp_is_enabled() is false', () => {
    const { io, out } = capture();
    // A machine whose THP mode is "never" from boot.
    const code = runVmtests(['./run_vmtests.sh', '-t', 'thp'], io, {
      machine: { kernel: { thp: 'never' } },
      entries: [{ category: 'thp', argv: ['./khugepaged'] }],
    });
    expect(out.stdout).toContain('# Transparent Hugepages not available\n# [SKIP]\nok 1 khugepaged # SKIP\n');
    expect(code).toBe(4);
  });

  it('./khugepaged all:shmem and -s 4 all:shmem: every khugepaged and madvise case passes (collapse_file(), do_set_pmd() on the refault); exit 0', () => {
    for (const args of [['all:shmem'], ['-s', '4', 'all:shmem']]) {
      const r = runBinary('khugepaged', args);
      expect(r.stderr).toBe('');
      expect(r.stdout).toBe(shmemTranscript());
      expect(r.status).toBe(0);
    }
  });
});

describe('khugepaged under run_vmtests.sh -t thp', () => {
  it('runs the four thp invocations, all pass', () => {
    const { io, out } = capture({ time: () => 1234, monotonicNs: () => 0 });
    // The thp category's other binary (split_huge_page_test) has its own test.
    const binaries = new Map([...BINARIES].filter(([n]) => n === 'khugepaged'));
    const code = runVmtests(['./run_vmtests.sh', '-t', 'thp'], io, { binaries });
    const tap = out.stdout.split('\n').filter((l) => /^(not )?ok \d+ /.test(l));
    expect(tap).toEqual([
      'ok 1 khugepaged',
      'ok 2 khugepaged -s 2',
      'ok 3 khugepaged all:shmem',
      'ok 4 khugepaged -s 4 all:shmem',
    ]);
    // Without per-size (mTHP) sysfs files, -s 2 only changes collapse_max_ptes_none's fault
    // size (fault_nr_pages 4): the output is that of ./khugepaged.
    const section = (title: string) => {
      const start = out.stdout.indexOf(`# running ${title}\n`);
      const body = out.stdout.slice(out.stdout.indexOf('\n', out.stdout.indexOf('\n', start) + 1) + 1);
      return body.slice(0, body.indexOf('# [')).replace(/^# /gm, '');
    };
    expect(section('./khugepaged')).toBe(anonTranscript());
    expect(section('./khugepaged -s 2')).toBe(anonTranscript());
    expect(section('./khugepaged all:shmem')).toBe(shmemTranscript());
    expect(out.stdout).toContain('# SUMMARY: PASS=4 SKIP=0 FAIL=0\n1..4\n');
    expect(code).toBe(0);
  }, 300_000);
});
