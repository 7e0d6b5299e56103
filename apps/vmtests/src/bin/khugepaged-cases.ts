/**
 * The test cases of khugepaged.c (v6.19), each run as `t(c, ops)` for a collapse context and a
 * memory type: alloc_at_fault() and the collapse_* / madvise_* cases with every original
 * assertion and output line.
 */

import {
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MADV_NOHUGEPAGE,
  MADV_PAGEOUT,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
} from '@hmm-model/mm-core';
import { MAP_FAILED } from '@hmm-model/selftests';
import { readWholeFile } from '../program.js';
import {
  THP_ALWAYS,
  thp_current_settings,
  thp_pop_settings,
  thp_push_settings,
  thp_read_num,
  thp_write_num,
  thpSettingsCopy,
} from '../thp-settings.js';
import { check_for_pattern, check_huge_anon, LineReader, MAX_LINE_LENGTH } from '../vmutil.js';
import {
  __madvise_collapse,
  alloc_hpage,
  alloc_mapping,
  BASE_ADDR,
  type CollapseContext,
  currentMaxPtesShared,
  EXIT_FAILURE,
  exit,
  fail,
  forkChild,
  is_anon,
  is_tmpfs,
  type Khug,
  type MemOps,
  skip,
  success,
  validate_memory,
  wait_for_scan,
  waitExitStatus,
} from './khugepaged-common.js';

/** Models PID_SMAPS. */
const PID_SMAPS = '/proc/self/smaps';

/** A test case: `t(c, ops)`. */
export type TestFn = (g: Khug, c: CollapseContext, ops: MemOps) => void;

/**
 * Models check_swap(addr, size): in the smaps block of the VMA at addr, the first `Swap:` line
 * starts with `Swap:%19ld kB` of size in kB.
 */
function check_swap(g: Khug, addr: number, size: number): boolean {
  const text = readWholeFile(g.env.libc, PID_SMAPS);
  if (text === null) {
    g.printf(`check_swap: Failed to open file ${PID_SMAPS}\n`);
    exit(EXIT_FAILURE);
  }
  const fp = new LineReader(text);
  if (check_for_pattern(fp, `${addr.toString(16).padStart(8, '0')}-`, MAX_LINE_LENGTH) === null) return false;
  const pattern = `Swap:${String(Math.floor(size / 1024)).padStart(19)} kB`;
  const buffer = check_for_pattern(fp, 'Swap:', MAX_LINE_LENGTH);
  if (buffer === null) return false;
  return buffer.startsWith(pattern);
}

/** Models alloc_at_fault(): THP "always", one write faults a THP; MADV_DONTNEED of a page splits the PMD. */
export function alloc_at_fault(g: Khug): void {
  const settings = thpSettingsCopy(thp_current_settings(g));
  settings.thp_enabled = THP_ALWAYS;
  thp_push_settings(g, settings);
  const p = alloc_mapping(g, 1);
  g.env.proc.writeU8(p, 1);
  g.printf('Allocate huge page on fault...');
  if (check_huge_anon(g.env, p, 1, g.hpage_pmd_size)) success(g, 'OK');
  else fail(g, 'Fail');
  thp_pop_settings(g);
  g.env.libc.madvise(p, g.page_size, MADV_DONTNEED);
  g.printf('Split huge PMD on MADV_DONTNEED...');
  if (check_huge_anon(g.env, p, 0, g.hpage_pmd_size)) success(g, 'OK');
  else fail(g, 'Fail');
  g.env.libc.munmap(p, g.hpage_pmd_size);
}

/** Models collapse_full(): four fully populated PTE tables collapse. */
export const collapse_full: TestFn = (g, c, ops) => {
  const nr = 4;
  const size = nr * g.hpage_pmd_size;
  const p = ops.setup_area(g, nr);
  ops.fault(g, p, 0, size);
  c.collapse(g, 'Collapse multiple fully populated PTE table', p, nr, ops, true);
  validate_memory(g, p, 0, size);
  ops.cleanup_area(g, p, size);
};

/** Models collapse_empty(): an empty range does not collapse. */
export const collapse_empty: TestFn = (g, c, ops) => {
  const p = ops.setup_area(g, 1);
  c.collapse(g, 'Do not collapse empty PTE table', p, 1, ops, false);
  ops.cleanup_area(g, p, g.hpage_pmd_size);
};

/** Models collapse_single_pte_entry(): one present PTE is enough (max_ptes_none 511). */
export const collapse_single_pte_entry: TestFn = (g, c, ops) => {
  const p = ops.setup_area(g, 1);
  ops.fault(g, p, 0, g.page_size);
  c.collapse(g, 'Collapse PTE table with single PTE entry present', p, 1, ops, true);
  ops.cleanup_area(g, p, g.hpage_pmd_size);
};

/** Models collapse_max_ptes_none(): max_ptes_none = 256; one none PTE too many, then exactly 256. */
export const collapse_max_ptes_none: TestFn = (g, c, ops) => {
  const maxPtesNone = g.hpage_pmd_nr / 2;
  const settings = thpSettingsCopy(thp_current_settings(g));
  const faultNrPages = is_anon(ops) ? 1 << g.anon_order : 1;
  settings.khugepaged.max_ptes_none = maxPtesNone;
  thp_push_settings(g, settings);
  const p = ops.setup_area(g, 1);
  if (is_tmpfs(g, ops)) {
    /* shmem pages always in the page cache */
    g.printf('tmpfs...');
    skip(g, 'Skip');
  } else {
    ops.fault(g, p, 0, (g.hpage_pmd_nr - maxPtesNone - faultNrPages) * g.page_size);
    c.collapse(g, 'Maybe collapse with max_ptes_none exceeded', p, 1, ops, !c.enforce_pte_scan_limits);
    validate_memory(g, p, 0, (g.hpage_pmd_nr - maxPtesNone - faultNrPages) * g.page_size);
    if (c.enforce_pte_scan_limits) {
      ops.fault(g, p, 0, (g.hpage_pmd_nr - maxPtesNone) * g.page_size);
      c.collapse(g, 'Collapse with max_ptes_none PTEs empty', p, 1, ops, true);
      validate_memory(g, p, 0, (g.hpage_pmd_nr - maxPtesNone) * g.page_size);
    }
  }
  ops.cleanup_area(g, p, g.hpage_pmd_size);
  thp_pop_settings(g);
};

/** Models `madvise(p, len, MADV_PAGEOUT)` with the C test's perror()/exit on failure. */
function pageout(g: Khug, p: number, len: number): void {
  if (g.env.libc.madvise(p, len, MADV_PAGEOUT)) {
    g.perror('madvise(MADV_PAGEOUT)');
    exit(EXIT_FAILURE);
  }
}

/** Models collapse_swapin_single_pte(): one page swapped out is swapped back in by the collapse. */
export const collapse_swapin_single_pte: TestFn = (g, c, ops) => {
  const p = ops.setup_area(g, 1);
  ops.fault(g, p, 0, g.hpage_pmd_size);
  g.printf('Swapout one page...');
  pageout(g, p, g.page_size);
  if (check_swap(g, p, g.page_size)) {
    success(g, 'OK');
    c.collapse(g, 'Collapse with swapping in single PTE entry', p, 1, ops, true);
    validate_memory(g, p, 0, g.hpage_pmd_size);
  } else fail(g, 'Fail');
  ops.cleanup_area(g, p, g.hpage_pmd_size);
};

/** Models collapse_max_ptes_swap(): max_ptes_swap + 1 swapped out, then exactly max_ptes_swap. */
export const collapse_max_ptes_swap: TestFn = (g, c, ops) => {
  const maxPtesSwap = thp_read_num(g, 'khugepaged/max_ptes_swap');
  const p = ops.setup_area(g, 1);
  ops.fault(g, p, 0, g.hpage_pmd_size);
  // The C code's `goto out` after a failed check_swap(): straight to the cleanup.
  ((): void => {
    g.printf(`Swapout ${maxPtesSwap + 1} of ${g.hpage_pmd_nr} pages...`);
    pageout(g, p, (maxPtesSwap + 1) * g.page_size);
    if (check_swap(g, p, (maxPtesSwap + 1) * g.page_size)) success(g, 'OK');
    else {
      fail(g, 'Fail');
      return;
    }
    c.collapse(g, 'Maybe collapse with max_ptes_swap exceeded', p, 1, ops, !c.enforce_pte_scan_limits);
    validate_memory(g, p, 0, g.hpage_pmd_size);
    if (c.enforce_pte_scan_limits) {
      ops.fault(g, p, 0, g.hpage_pmd_size);
      g.printf(`Swapout ${maxPtesSwap} of ${g.hpage_pmd_nr} pages...`);
      pageout(g, p, maxPtesSwap * g.page_size);
      if (check_swap(g, p, maxPtesSwap * g.page_size)) success(g, 'OK');
      else {
        fail(g, 'Fail');
        return;
      }
      c.collapse(g, 'Collapse with max_ptes_swap pages swapped out', p, 1, ops, true);
      validate_memory(g, p, 0, g.hpage_pmd_size);
    }
  })();
  ops.cleanup_area(g, p, g.hpage_pmd_size);
};

/** Models collapse_single_pte_entry_compound(): a THP zapped down to one PTE collapses again. */
export const collapse_single_pte_entry_compound: TestFn = (g, c, ops) => {
  const { libc } = g.env;
  const p = alloc_hpage(g, ops);
  if (is_tmpfs(g, ops)) {
    /* MADV_DONTNEED won't evict tmpfs pages */
    g.printf('tmpfs...');
    skip(g, 'Skip');
  } else {
    libc.madvise(p, g.hpage_pmd_size, MADV_NOHUGEPAGE);
    g.printf('Split huge page leaving single PTE mapping compound page...');
    libc.madvise(p + g.page_size, g.hpage_pmd_size - g.page_size, MADV_DONTNEED);
    if (ops.check_huge(g, p, 0)) success(g, 'OK');
    else fail(g, 'Fail');
    c.collapse(g, 'Collapse PTE table with single PTE mapping compound page', p, 1, ops, true);
    validate_memory(g, p, 0, g.page_size);
  }
  ops.cleanup_area(g, p, g.hpage_pmd_size);
};

/** Models collapse_full_of_compound(): a THP split by a VMA split (MADV_NOHUGEPAGE of one page) collapses again. */
export const collapse_full_of_compound: TestFn = (g, c, ops) => {
  const { libc } = g.env;
  const p = alloc_hpage(g, ops);
  g.printf('Split huge page leaving single PTE page table full of compound pages...');
  libc.madvise(p, g.page_size, MADV_NOHUGEPAGE);
  libc.madvise(p, g.hpage_pmd_size, MADV_NOHUGEPAGE);
  if (ops.check_huge(g, p, 0)) success(g, 'OK');
  else fail(g, 'Fail');
  c.collapse(g, 'Collapse PTE table full of compound pages', p, 1, ops, true);
  validate_memory(g, p, 0, g.hpage_pmd_size);
  ops.cleanup_area(g, p, g.hpage_pmd_size);
};

/**
 * Models collapse_compound_extreme(): a PTE table whose 512 PTEs map pages of 512 different
 * THPs (one page of each, moved into place with mremap()), then collapsed.
 */
export const collapse_compound_extreme: TestFn = (g, c, ops) => {
  const { libc } = g.env;
  const ps = g.page_size;
  const hs = g.hpage_pmd_size;
  let p = ops.setup_area(g, 1);
  for (let i = 0; i < g.hpage_pmd_nr; i++) {
    g.printf(
      `\rConstruct PTE page table full of different PTE-mapped compound pages ${String(i + 1).padStart(3)}/${g.hpage_pmd_nr}...`,
    );
    libc.madvise(BASE_ADDR, hs, MADV_HUGEPAGE);
    ops.fault(g, BASE_ADDR, 0, hs);
    if (!ops.check_huge(g, BASE_ADDR, 1)) {
      g.printf('Failed to allocate huge page\n');
      exit(EXIT_FAILURE);
    }
    libc.madvise(BASE_ADDR, hs, MADV_NOHUGEPAGE);
    p = libc.mremap(
      BASE_ADDR - i * ps,
      i * ps + hs,
      (i + 1) * ps,
      MREMAP_MAYMOVE | MREMAP_FIXED,
      BASE_ADDR + 2 * hs,
    );
    if (p === MAP_FAILED) {
      g.perror('mremap+unmap');
      exit(EXIT_FAILURE);
    }
    p = libc.mremap(
      BASE_ADDR + 2 * hs,
      (i + 1) * ps,
      (i + 1) * ps + hs,
      MREMAP_MAYMOVE | MREMAP_FIXED,
      BASE_ADDR - (i + 1) * ps,
    );
    if (p === MAP_FAILED) {
      g.perror('mremap+alloc');
      exit(EXIT_FAILURE);
    }
  }
  ops.cleanup_area(g, BASE_ADDR, hs);
  ops.fault(g, p, 0, hs);
  if (!ops.check_huge(g, p, 1)) success(g, 'OK');
  else fail(g, 'Fail');
  c.collapse(g, 'Collapse PTE table full of different compound pages', p, 1, ops, true);
  validate_memory(g, p, 0, hs);
  ops.cleanup_area(g, p, hs);
};

/** Models collapse_fork(): the child collapses a table whose first page it shares with the parent. */
export const collapse_fork: TestFn = (g, c, ops) => {
  const p = ops.setup_area(g, 1);
  g.printf('Allocate small page...');
  ops.fault(g, p, 0, g.page_size);
  if (ops.check_huge(g, p, 0)) success(g, 'OK');
  else fail(g, 'Fail');
  g.printf('Share small page over fork()...');
  forkChild(g, (cg) => {
    /* Do not touch settings on child exit */
    cg.skip_settings_restore = true;
    cg.exit_status = 0;
    if (ops.check_huge(cg, p, 0)) success(cg, 'OK');
    else fail(cg, 'Fail');
    ops.fault(cg, p, cg.page_size, 2 * cg.page_size);
    c.collapse(cg, 'Collapse PTE table with single page shared with parent process', p, 1, ops, true);
    validate_memory(cg, p, 0, cg.page_size);
    ops.cleanup_area(cg, p, cg.hpage_pmd_size);
    exit(cg.exit_status);
  });
  g.exit_status += waitExitStatus(g);
  g.printf('Check if parent still has small page...');
  if (ops.check_huge(g, p, 0)) success(g, 'OK');
  else fail(g, 'Fail');
  validate_memory(g, p, 0, g.page_size);
  ops.cleanup_area(g, p, g.hpage_pmd_size);
};

/** Models collapse_fork_compound(): the child splits a shared THP and collapses it again. */
export const collapse_fork_compound: TestFn = (g, c, ops) => {
  const p = alloc_hpage(g, ops);
  g.printf('Share huge page over fork()...');
  forkChild(g, (cg) => {
    const { libc } = cg.env;
    /* Do not touch settings on child exit */
    cg.skip_settings_restore = true;
    cg.exit_status = 0;
    if (ops.check_huge(cg, p, 1)) success(cg, 'OK');
    else fail(cg, 'Fail');
    cg.printf('Split huge page PMD in child process...');
    libc.madvise(p, cg.page_size, MADV_NOHUGEPAGE);
    libc.madvise(p, cg.hpage_pmd_size, MADV_NOHUGEPAGE);
    if (ops.check_huge(cg, p, 0)) success(cg, 'OK');
    else fail(cg, 'Fail');
    ops.fault(cg, p, 0, cg.page_size);
    thp_write_num(cg, 'khugepaged/max_ptes_shared', cg.hpage_pmd_nr - 1);
    c.collapse(cg, 'Collapse PTE table full of compound pages in child', p, 1, ops, true);
    thp_write_num(cg, 'khugepaged/max_ptes_shared', currentMaxPtesShared(cg));
    validate_memory(cg, p, 0, cg.hpage_pmd_size);
    ops.cleanup_area(cg, p, cg.hpage_pmd_size);
    exit(cg.exit_status);
  });
  g.exit_status += waitExitStatus(g);
  g.printf('Check if parent still has huge page...');
  if (ops.check_huge(g, p, 1)) success(g, 'OK');
  else fail(g, 'Fail');
  validate_memory(g, p, 0, g.hpage_pmd_size);
  ops.cleanup_area(g, p, g.hpage_pmd_size);
};

/** Models collapse_max_ptes_shared(): CoW in the child until max_ptes_shared + 1, then max_ptes_shared, shared PTEs remain. */
export const collapse_max_ptes_shared: TestFn = (g, c, ops) => {
  const maxPtesShared = thp_read_num(g, 'khugepaged/max_ptes_shared');
  const p = alloc_hpage(g, ops);
  g.printf('Share huge page over fork()...');
  forkChild(g, (cg) => {
    /* Do not touch settings on child exit */
    cg.skip_settings_restore = true;
    cg.exit_status = 0;
    if (ops.check_huge(cg, p, 1)) success(cg, 'OK');
    else fail(cg, 'Fail');
    cg.printf(`Trigger CoW on page ${cg.hpage_pmd_nr - maxPtesShared - 1} of ${cg.hpage_pmd_nr}...`);
    ops.fault(cg, p, 0, (cg.hpage_pmd_nr - maxPtesShared - 1) * cg.page_size);
    if (ops.check_huge(cg, p, 0)) success(cg, 'OK');
    else fail(cg, 'Fail');
    c.collapse(cg, 'Maybe collapse with max_ptes_shared exceeded', p, 1, ops, !c.enforce_pte_scan_limits);
    if (c.enforce_pte_scan_limits) {
      cg.printf(`Trigger CoW on page ${cg.hpage_pmd_nr - maxPtesShared} of ${cg.hpage_pmd_nr}...`);
      ops.fault(cg, p, 0, (cg.hpage_pmd_nr - maxPtesShared) * cg.page_size);
      if (ops.check_huge(cg, p, 0)) success(cg, 'OK');
      else fail(cg, 'Fail');
      c.collapse(cg, 'Collapse with max_ptes_shared PTEs shared', p, 1, ops, true);
    }
    validate_memory(cg, p, 0, cg.hpage_pmd_size);
    ops.cleanup_area(cg, p, cg.hpage_pmd_size);
    exit(cg.exit_status);
  });
  g.exit_status += waitExitStatus(g);
  g.printf('Check if parent still has huge page...');
  if (ops.check_huge(g, p, 1)) success(g, 'OK');
  else fail(g, 'Fail');
  validate_memory(g, p, 0, g.hpage_pmd_size);
  ops.cleanup_area(g, p, g.hpage_pmd_size);
};

/** Models madvise_collapse_existing_thps(): MADV_COLLAPSE of an already PMD-mapped THP succeeds. */
export const madvise_collapse_existing_thps: TestFn = (g, c, ops) => {
  const p = ops.setup_area(g, 1);
  ops.fault(g, p, 0, g.hpage_pmd_size);
  c.collapse(g, 'Collapse fully populated PTE table...', p, 1, ops, true);
  validate_memory(g, p, 0, g.hpage_pmd_size);
  /* c->collapse() will find a hugepage and complain - call directly. */
  __madvise_collapse(g, 'Re-collapse PMD-mapped hugepage', p, 1, ops, true);
  validate_memory(g, p, 0, g.hpage_pmd_size);
  ops.cleanup_area(g, p, g.hpage_pmd_size);
};

/** Models madvise_retracted_page_tables(): khugepaged collapses and leaves the PMD cleared; MADV_COLLAPSE installs it. */
export const madvise_retracted_page_tables: TestFn = (g, c, ops) => {
  const nr = 1;
  const size = nr * g.hpage_pmd_size;
  const p = ops.setup_area(g, nr);
  ops.fault(g, p, 0, size);
  /* Let khugepaged collapse and leave pmd cleared */
  if (wait_for_scan(g, 'Collapse and leave PMD cleared', p, nr, ops)) {
    fail(g, 'Timeout');
    return;
  }
  success(g, 'OK');
  c.collapse(g, 'Install huge PMD from page cache', p, nr, ops, true);
  validate_memory(g, p, 0, size);
  ops.cleanup_area(g, p, size);
};
