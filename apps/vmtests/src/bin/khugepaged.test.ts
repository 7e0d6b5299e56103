import { describe, expect, it } from 'vitest';
import { BINARIES } from '../binaries.js';
import { runVmtests } from '../run-vmtests.js';
import { capture, MODEL_GAPS, runBinary } from '../testing/run.js';

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

/** The output of `./khugepaged all:shmem` on the model (MODEL_GAPS: no huge tmpfs, no collapse_file()). */
function shmemTranscript(): string {
  return `${[
    `Save THP and khugepaged settings...${OK}`,
    `Allocate huge page on fault...${OK}`,
    `Split huge PMD on MADV_DONTNEED...${OK}`,
    '',
    'Run test: collapse_full (khugepaged:shmem)',
    `Collapse multiple fully populated PTE table....${FAIL('Fail')}`,
    '',
    'Run test: collapse_full (madvise:shmem)',
    `Collapse multiple fully populated PTE table...${FAIL('Fail: Bad return value')}`,
    '',
    'Run test: collapse_single_pte_entry (khugepaged:shmem)',
    `Collapse PTE table with single PTE entry present....${FAIL('Fail')}`,
    '',
    'Run test: collapse_single_pte_entry (madvise:shmem)',
    `Collapse PTE table with single PTE entry present...${FAIL('Fail: Bad return value')}`,
    '',
    'Run test: collapse_full_of_compound (khugepaged:shmem)',
    // alloc_hpage(): MADV_COLLAPSE fails, perror() and exit(EXIT_FAILURE); atexit restores.
    'Allocate huge page...madvise(MADV_COLLAPSE): Invalid argument',
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

  it(`./khugepaged all:shmem fails where MODEL_GAPS says (${Object.keys(MODEL_GAPS.khugepaged).join(', ')})`, () => {
    expect(Object.keys(MODEL_GAPS.khugepaged)).toEqual(['all:shmem', '-s 4 all:shmem']);
    for (const args of [['all:shmem'], ['-s', '4', 'all:shmem']]) {
      const r = runBinary('khugepaged', args);
      expect(r.stdout).toBe(shmemTranscript().replace('madvise(MADV_COLLAPSE): Invalid argument\n', ''));
      expect(r.stderr).toBe('madvise(MADV_COLLAPSE): Invalid argument\n');
      expect(r.merged).toBe(shmemTranscript());
      expect(r.status).toBe(1);
    }
  });
});

describe('khugepaged under run_vmtests.sh -t thp', () => {
  it('runs the four thp invocations: ./khugepaged and -s 2 pass, the two shmem runs fail (MODEL_GAPS)', () => {
    const { io, out } = capture({ time: () => 1234, monotonicNs: () => 0 });
    // The thp category's other binary (split_huge_page_test) has its own test.
    const binaries = new Map([...BINARIES].filter(([n]) => n === 'khugepaged'));
    const code = runVmtests(['./run_vmtests.sh', '-t', 'thp'], io, { binaries });
    const tap = out.stdout.split('\n').filter((l) => /^(not )?ok \d+ /.test(l));
    expect(tap).toEqual([
      'ok 1 khugepaged',
      'ok 2 khugepaged -s 2',
      'not ok 3 khugepaged all:shmem # exit=1',
      'not ok 4 khugepaged -s 4 all:shmem # exit=1',
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
    expect(out.stdout).toContain('# SUMMARY: PASS=2 SKIP=0 FAIL=2\n1..4\n');
    expect(code).toBe(1);
  }, 300_000);
});
