/**
 * The ported selftest binaries: name (as built in tools/testing/selftests/mm), the kernel source
 * file and version of the port, and the program.
 */

import { cow_main } from './bin/cow.js';
import { khugepaged_main } from './bin/khugepaged.js';
import { madv_populate_main } from './bin/madv-populate.js';
import { map_fixed_noreplace_main } from './bin/map-fixed-noreplace.js';
import { mremap_dontunmap_main } from './bin/mremap-dontunmap.js';
import { mremap_test_main } from './bin/mremap-test.js';
import { split_huge_page_test_main } from './bin/split-huge-page-test.js';
import type { ProgramMain } from './program.js';

/** One ported kselftest binary. */
export interface VmTestBinary {
  /** The binary's name in tools/testing/selftests/mm (`./<name>` in run_vmtests.sh). */
  readonly name: string;
  /** The C file it is built from. */
  readonly source: string;
  /** Which text of the C file the port follows. */
  readonly version: string;
  readonly main: ProgramMain;
}

const MM = 'tools/testing/selftests/mm';

/** The ported binaries by name. */
export const BINARIES: ReadonlyMap<string, VmTestBinary> = new Map(
  (
    [
      {
        name: 'map_fixed_noreplace',
        source: `${MM}/map_fixed_noreplace.c`,
        version: 'v6.19 (TAP form since v6.10; torvalds/linux 00c010e1)',
        main: map_fixed_noreplace_main,
      },
      {
        name: 'mremap_test',
        source: `${MM}/mremap_test.c`,
        version: 'v6.19 (multi-VMA cases of v6.17, rand_addr pattern, tmp_addr overflow check)',
        main: mremap_test_main,
      },
      {
        name: 'mremap_dontunmap',
        source: `${MM}/mremap_dontunmap.c`,
        version: 'v6.19 (torvalds/linux 1605ce99)',
        main: mremap_dontunmap_main,
      },
      {
        name: 'madv_populate',
        source: `${MM}/madv_populate.c`,
        version: 'v6.19 (softdirty_supported() of v6.18)',
        main: madv_populate_main,
      },
      {
        name: 'cow',
        source: `${MM}/cow.c`,
        version: 'v6.19 (unique test names, FORCE_READ() of v6.17; built without liburing)',
        main: cow_main,
      },
      {
        name: 'khugepaged',
        source: `${MM}/khugepaged.c`,
        version: 'v6.19 (-s <order> and shmem_hugepages[] of v6.12, thp_is_enabled() of v6.16)',
        main: khugepaged_main,
      },
      {
        name: 'split_huge_page_test',
        source: `${MM}/split_huge_page_test.c`,
        version: 'v6.19 (is_backed_by_folio(), after-split order checks, in-folio offsets)',
        main: split_huge_page_test_main,
      },
    ] satisfies VmTestBinary[]
  ).map((b) => [b.name, b]),
);
