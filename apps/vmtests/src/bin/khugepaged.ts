/**
 * Port of tools/testing/selftests/mm/khugepaged.c (v6.19: `-s <order>` for the anon/shmem mTHP
 * size, shmem_hugepages[] defaults, the thp_is_enabled() check of v6.16): the anon, shmem and
 * file memory types collapsed by khugepaged (waiting on khugepaged/full_scans while the model's
 * khugepaged runs during usleep()) and by MADV_COLLAPSE, with the C program's progress lines
 * (` \e[32mOK\e[0m`, ` \e[31mFail\e[0m`, ...) byte for byte and its exit code (the number of
 * failures). The `file` memory type needs a directory on a file system with block devices or
 * tmpfs and unlink(2)/stat(2)/statfs(2), which the model does not have: asking for it ends the
 * program with a message on stderr and status 1 (run_vmtests.sh never asks for it).
 */

import { KSFT_SKIP } from '@hmm-model/selftests';
import type { ProgramEnv } from '../program.js';
import {
  SHMEM_ADVISE,
  SHMEM_ALWAYS,
  SHMEM_INHERIT,
  THP_ALWAYS,
  THP_DEFRAG_ALWAYS,
  THP_INHERIT,
  THP_MADVISE,
  thp_is_enabled,
  thp_push_settings,
  thp_save_settings,
  thp_set_read_ahead_path,
  thpSettingsZero,
} from '../thp-settings.js';
import { read_pmd_pagesize } from '../vmutil.js';
import {
  alloc_at_fault,
  collapse_compound_extreme,
  collapse_empty,
  collapse_fork,
  collapse_fork_compound,
  collapse_full,
  collapse_full_of_compound,
  collapse_max_ptes_none,
  collapse_max_ptes_shared,
  collapse_max_ptes_swap,
  collapse_single_pte_entry,
  collapse_single_pte_entry_compound,
  collapse_swapin_single_pte,
  madvise_collapse_existing_thps,
  madvise_retracted_page_tables,
  type TestFn,
} from './khugepaged-cases.js';
import {
  ANON_OPS,
  type CollapseContext,
  EXIT_FAILURE,
  exit,
  KHUGEPAGED_CONTEXT,
  Khug,
  MADVISE_CONTEXT,
  type MemOps,
  SHMEM_OPS,
  success,
  withAtexit,
} from './khugepaged-common.js';

/** Models usage(): the text on stderr, then exit(1). */
function usage(g: Khug): never {
  const e = (s: string) => g.env.stdio.eprintf(s);
  e('\nUsage: ./khugepaged [OPTIONS] <test type> [dir]\n\n');
  e('\t<test type>\t: <context>:<mem_type>\n');
  e('\t<context>\t: [all|khugepaged|madvise]\n');
  e('\t<mem_type>\t: [all|anon|file|shmem]\n');
  e('\n\t"file,all" mem_type requires [dir] argument\n');
  e('\n\t"file,all" mem_type requires kernel built with\n');
  e('\tCONFIG_READ_ONLY_THP_FOR_FS=y\n');
  e('\n\tif [dir] is a (sub)directory of a tmpfs mount, tmpfs must be\n');
  e('\tmounted with huge=madvise option for khugepaged tests to work\n');
  e('\n\tSupported Options:\n');
  e('\t\t-h: This help message.\n');
  e('\t\t-s: mTHP size, expressed as page order.\n');
  e('\t\t    Defaults to 0. Use this size for anon or shmem allocations.\n');
  exit(1);
}

/** Models atoi(3): leading blanks, a sign, digits; 0 when none. */
function atoi(s: string): number {
  const m = /^\s*([+-]?\d+)/.exec(s);
  return m ? Number.parseInt(m[1], 10) | 0 : 0;
}

/**
 * Models glibc getopt(argc, argv, "s:h") with argument permutation: the options found (`-s` with
 * its argument attached or next, `-h`; an unknown option or a missing argument reports on stderr
 * as glibc does and yields '?'), then the non-option arguments in order. `--` ends the options.
 */
function getopt(g: Khug, argv: readonly string[]): { opts: [string, string][]; rest: string[] } {
  const opts: [string, string][] = [];
  const rest: string[] = [];
  const prog = argv[0];
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      rest.push(...argv.slice(i + 1));
      break;
    }
    if (a.length < 2 || a[0] !== '-') {
      rest.push(a);
      continue;
    }
    for (let j = 1; j < a.length; j++) {
      const ch = a[j];
      if (ch === 'h') opts.push(['h', '']);
      else if (ch === 's') {
        if (j + 1 < a.length) opts.push(['s', a.slice(j + 1)]);
        else if (i + 1 < argv.length) opts.push(['s', argv[++i]]);
        else {
          g.env.stdio.eprintf(`${prog}: option requires an argument -- 's'\n`);
          opts.push(['?', '']);
        }
        break;
      } else {
        g.env.stdio.eprintf(`${prog}: invalid option -- '${ch}'\n`);
        opts.push(['?', '']);
      }
    }
  }
  return { opts, rest };
}

/**
 * Models get_finfo(dir) for the file memory type: not ported (see the file comment). The model
 * has no stat(2)/statfs(2) to tell tmpfs from a block-device file system and no unlink(2) for
 * file_setup_area().
 */
function get_finfo(g: Khug, dir: string): never {
  g.finfo.dir = dir;
  g.env.stdio.eprintf(
    `${g.env.argv[0]}: the file mem_type is not ported to the model (no stat(2), statfs(2), unlink(2) or file THP)\n`,
  );
  exit(EXIT_FAILURE);
}

/** Models parse_test_type(argc, argv). */
function parse_test_type(g: Khug, argv: readonly string[]): void {
  const { opts, rest } = getopt(g, argv);
  for (const [opt, arg] of opts) {
    if (opt === 's') g.anon_order = atoi(arg);
    else usage(g);
  }
  if (rest.length === 0) {
    /* Backwards compatibility */
    g.khugepaged_context = KHUGEPAGED_CONTEXT;
    g.madvise_context = MADVISE_CONTEXT;
    g.anon_ops = ANON_OPS;
    return;
  }
  const colon = rest[0].indexOf(':');
  const token = colon < 0 ? rest[0] : rest[0].slice(0, colon);
  const buf = colon < 0 ? null : rest[0].slice(colon + 1);
  if (token === 'all') {
    g.khugepaged_context = KHUGEPAGED_CONTEXT;
    g.madvise_context = MADVISE_CONTEXT;
  } else if (token === 'khugepaged') g.khugepaged_context = KHUGEPAGED_CONTEXT;
  else if (token === 'madvise') g.madvise_context = MADVISE_CONTEXT;
  else usage(g);
  if (buf === null) usage(g);
  if (buf === 'all') {
    g.file_ops = FILE_OPS;
    g.anon_ops = ANON_OPS;
    g.shmem_ops = SHMEM_OPS;
  } else if (buf === 'anon') g.anon_ops = ANON_OPS;
  else if (buf === 'file') g.file_ops = FILE_OPS;
  else if (buf === 'shmem') g.shmem_ops = SHMEM_OPS;
  else usage(g);
  if (!g.file_ops) return;
  if (rest.length !== 2) usage(g);
  get_finfo(g, rest[1]);
}

/** Models __file_ops: never reached in the model (get_finfo() ends the program first). */
const FILE_OPS: MemOps = {
  name: 'file',
  setup_area: () => exit(EXIT_FAILURE),
  cleanup_area: () => exit(EXIT_FAILURE),
  fault: () => exit(EXIT_FAILURE),
  check_huge: () => exit(EXIT_FAILURE),
};

/** Models save_settings(): save the THP settings and register the atexit/signal handlers. */
function save_settings(g: Khug): void {
  g.printf('Save THP and khugepaged settings...');
  if (g.file_ops && g.finfo.type === 'VMA_FILE')
    thp_set_read_ahead_path(g, g.finfo.dev_queue_read_ahead_path);
  thp_save_settings(g);
  success(g, 'OK');
  // atexit(restore_settings_atexit); the signal handlers cannot fire in the model (no signals
  // are sent to the program).
  g.atexitRegistered = true;
}

/** Models the TEST(t, c, o) macro: run when both the context and the memory type were chosen. */
function TEST(g: Khug, name: string, t: TestFn, c: CollapseContext | null, o: MemOps | null): void {
  if (c && o) {
    g.printf(`\nRun test: ${name} (${c.name}:${o.name})\n`);
    t(g, c, o);
  }
}

/** Models main() of khugepaged.c (v6.19). */
export function khugepaged_main(env: ProgramEnv): number {
  const g = new Khug(env);
  return withAtexit(g, () => main(g));
}

function main(g: Khug): number {
  const { env } = g;
  const defaults = thpSettingsZero();
  defaults.thp_enabled = THP_MADVISE;
  defaults.thp_defrag = THP_DEFRAG_ALWAYS;
  defaults.shmem_enabled = SHMEM_ADVISE;
  defaults.use_zero_page = 0;
  defaults.khugepaged.defrag = 1;
  defaults.khugepaged.alloc_sleep_millisecs = 10;
  defaults.khugepaged.scan_sleep_millisecs = 10;
  defaults.read_ahead_kb = 0;

  if (!thp_is_enabled(g)) {
    g.printf('Transparent Hugepages not available\n');
    return KSFT_SKIP;
  }

  parse_test_type(g, env.argv);

  env.stdio.setvbuf('none');

  g.page_size = env.libc.sysconfPageSize();
  g.hpage_pmd_size = read_pmd_pagesize(env);
  if (!g.hpage_pmd_size) {
    g.printf('Reading PMD pagesize failed');
    exit(EXIT_FAILURE);
  }
  g.hpage_pmd_nr = g.hpage_pmd_size / g.page_size;
  const hpagePmdOrder = Math.log2(g.hpage_pmd_nr);

  defaults.khugepaged.max_ptes_none = g.hpage_pmd_nr - 1;
  defaults.khugepaged.max_ptes_swap = g.hpage_pmd_nr / 8;
  defaults.khugepaged.max_ptes_shared = g.hpage_pmd_nr / 2;
  defaults.khugepaged.pages_to_scan = g.hpage_pmd_nr * 8;
  defaults.hugepages[hpagePmdOrder] = THP_INHERIT;
  defaults.hugepages[g.anon_order] = THP_ALWAYS;
  defaults.shmem_hugepages[hpagePmdOrder] = SHMEM_INHERIT;
  defaults.shmem_hugepages[g.anon_order] = SHMEM_ALWAYS;

  save_settings(g);
  thp_push_settings(g, defaults);

  alloc_at_fault(g);

  const kc = g.khugepaged_context;
  const mc = g.madvise_context;
  const { anon_ops: anon, file_ops: file, shmem_ops: shmem } = g;
  const T = (name: string, t: TestFn, c: CollapseContext | null, o: MemOps | null) => TEST(g, name, t, c, o);

  T('collapse_full', collapse_full, kc, anon);
  T('collapse_full', collapse_full, kc, file);
  T('collapse_full', collapse_full, kc, shmem);
  T('collapse_full', collapse_full, mc, anon);
  T('collapse_full', collapse_full, mc, file);
  T('collapse_full', collapse_full, mc, shmem);

  T('collapse_empty', collapse_empty, kc, anon);
  T('collapse_empty', collapse_empty, mc, anon);

  T('collapse_single_pte_entry', collapse_single_pte_entry, kc, anon);
  T('collapse_single_pte_entry', collapse_single_pte_entry, kc, file);
  T('collapse_single_pte_entry', collapse_single_pte_entry, kc, shmem);
  T('collapse_single_pte_entry', collapse_single_pte_entry, mc, anon);
  T('collapse_single_pte_entry', collapse_single_pte_entry, mc, file);
  T('collapse_single_pte_entry', collapse_single_pte_entry, mc, shmem);

  T('collapse_max_ptes_none', collapse_max_ptes_none, kc, anon);
  T('collapse_max_ptes_none', collapse_max_ptes_none, kc, file);
  T('collapse_max_ptes_none', collapse_max_ptes_none, mc, anon);
  T('collapse_max_ptes_none', collapse_max_ptes_none, mc, file);

  T('collapse_single_pte_entry_compound', collapse_single_pte_entry_compound, kc, anon);
  T('collapse_single_pte_entry_compound', collapse_single_pte_entry_compound, kc, file);
  T('collapse_single_pte_entry_compound', collapse_single_pte_entry_compound, mc, anon);
  T('collapse_single_pte_entry_compound', collapse_single_pte_entry_compound, mc, file);

  T('collapse_full_of_compound', collapse_full_of_compound, kc, anon);
  T('collapse_full_of_compound', collapse_full_of_compound, kc, file);
  T('collapse_full_of_compound', collapse_full_of_compound, kc, shmem);
  T('collapse_full_of_compound', collapse_full_of_compound, mc, anon);
  T('collapse_full_of_compound', collapse_full_of_compound, mc, file);
  T('collapse_full_of_compound', collapse_full_of_compound, mc, shmem);

  T('collapse_compound_extreme', collapse_compound_extreme, kc, anon);
  T('collapse_compound_extreme', collapse_compound_extreme, mc, anon);

  T('collapse_swapin_single_pte', collapse_swapin_single_pte, kc, anon);
  T('collapse_swapin_single_pte', collapse_swapin_single_pte, mc, anon);

  T('collapse_max_ptes_swap', collapse_max_ptes_swap, kc, anon);
  T('collapse_max_ptes_swap', collapse_max_ptes_swap, mc, anon);

  T('collapse_fork', collapse_fork, kc, anon);
  T('collapse_fork', collapse_fork, mc, anon);

  T('collapse_fork_compound', collapse_fork_compound, kc, anon);
  T('collapse_fork_compound', collapse_fork_compound, mc, anon);

  T('collapse_max_ptes_shared', collapse_max_ptes_shared, kc, anon);
  T('collapse_max_ptes_shared', collapse_max_ptes_shared, mc, anon);

  T('madvise_collapse_existing_thps', madvise_collapse_existing_thps, mc, anon);
  T('madvise_collapse_existing_thps', madvise_collapse_existing_thps, mc, file);
  T('madvise_collapse_existing_thps', madvise_collapse_existing_thps, mc, shmem);

  T('madvise_retracted_page_tables', madvise_retracted_page_tables, mc, file);
  T('madvise_retracted_page_tables', madvise_retracted_page_tables, mc, shmem);

  /* restore_settings(0): exit() runs restore_settings_atexit() */
  exit(g.exit_status);
}
