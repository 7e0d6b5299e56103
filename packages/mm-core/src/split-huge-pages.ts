/**
 * The debugfs file /sys/kernel/debug/split_huge_pages (mm/huge_memory.c, CONFIG_DEBUG_FS):
 * split_huge_pages_write() parses "<pid>,0x<vaddr_start>,0x<vaddr_end>[,<new_order>
 * [,<in_folio_offset>]]" and split_huge_pages_pid() splits every THP mapped in that range of the
 * task's address space to new_order (split_folio_to_order(), or with an in-folio offset the
 * non-uniform folio_split() around that page); "<path>,0x<off_start>,0x<off_end>[,...]" splits
 * the large folios of a file's page cache (split_huge_pages_in_file()), "1" every THP of the
 * machine. The selftests split_huge_page_test and cow use it.
 */
import { EINVAL, ESRCH, HPAGE_PMD_ORDER, O_RDONLY, PAGE_SIZE } from './constants.js';
import { type Core, RAM_START_PFN } from './core.js';
import {
  folioGet,
  folioMapcount,
  folioPut,
  folioTestLarge,
  folioTryGet,
  folioTrylock,
  folioUnlock,
} from './folio.js';
import type { FileOperations } from './fs.js';
import type { PathTarget, TaskLike } from './host.js';
import { folioLockWait, mmapReadLock, mmapReadUnlock } from './mm/locking.js';
import { pmdIndex, pmdTableOf, pteIndex, ptHi, ptLo } from './mm/pgtable.js';
import { folioSplitAt, splitFolioMapped } from './mm/split.js';
import { type MmStruct, VM_HUGETLB, VM_IO, VM_MIXEDMAP, VM_PFNMAP, type Vma } from './mm/types.js';
import {
  _PAGE_PRESENT,
  _PAGE_PROTNONE,
  _PAGE_SPECIAL,
  entryHuge,
  entryNone,
  entryPfn,
} from './pgtable/entry.js';
import {
  PAGES_PER_SECTION,
  PG_anon,
  PG_head,
  PG_hugetlb,
  PG_large_rmappable,
  PG_lru,
  PG_present_section,
  PG_swapcache,
  PG_tail,
} from './phys/memmap.js';
import type { KGen } from './sched/task.js';
import { RESCHED } from './sched/task.js';

/** Models MAX_INPUT_BUF_SZ: the longest input split_huge_pages_write() reads. */
export const SPLIT_HUGE_PAGES_MAX_INPUT = 255;

/**
 * The fields of a "pid,0xstart,0xend[,new_order[,in_folio_offset]]" line; `count` as sscanf()
 * would return it. in_folio_offset is -1 unless given (split_huge_pages_write()'s default).
 */
export interface SplitHugePagesArgs {
  count: number;
  pid: number;
  start: number;
  end: number;
  newOrder: number;
  inFolioOffset: number;
}

/**
 * Models sscanf(input_buf, "%d,0x%lx,0x%lx,%d,%ld", ...) (lib/vsprintf.c vsscanf()): how many
 * conversions matched, in order; a conversion skips leading white space, %lx also accepts a
 * second "0x" (simple_strtoull()'s radix fixup). Numbers are read as the kernel's types would
 * hold them only as far as the model needs (addresses as exact integers up to 2^53).
 */
export function parseSplitHugePages(input: string): SplitHugePagesArgs {
  const out: SplitHugePagesArgs = { count: 0, pid: 0, start: 0, end: 0, newOrder: 0, inFolioOffset: -1 };
  let i = 0;
  const skipSpace = () => {
    while (i < input.length && /\s/.test(input[i])) i++;
  };
  const dec = (long = false): number | undefined => {
    skipSpace();
    let sign = 1;
    if (input[i] === '-') {
      sign = -1;
      i++;
    }
    const m = /^[0-9]+/.exec(input.slice(i));
    if (!m) return undefined;
    i += m[0].length;
    // %d: the value is truncated to int; %ld is kept as the model's exact integer.
    return long ? sign * Number(m[0]) : (sign * Number(m[0])) | 0;
  };
  const hex = (): number | undefined => {
    skipSpace();
    if (!/^[0-9a-fA-F]/.test(input.slice(i))) return undefined;
    if (/^0[xX][0-9a-fA-F]/.test(input.slice(i))) i += 2;
    const m = /^[0-9a-fA-F]+/.exec(input.slice(i));
    if (!m) return undefined;
    i += m[0].length;
    return Number.parseInt(m[0], 16);
  };
  const lit = (s: string): boolean => {
    if (input.startsWith(s, i)) {
      i += s.length;
      return true;
    }
    return false;
  };
  const pid = dec();
  if (pid === undefined) return out;
  out.pid = pid;
  out.count = 1;
  if (!lit(',0x')) return out;
  const start = hex();
  if (start === undefined) return out;
  out.start = start;
  out.count = 2;
  if (!lit(',0x')) return out;
  const end = hex();
  if (end === undefined) return out;
  out.end = end;
  out.count = 3;
  if (!lit(',')) return out;
  const order = dec();
  if (order === undefined) return out;
  out.newOrder = order;
  out.count = 4;
  if (!lit(',')) return out;
  const offset = dec(true);
  if (offset === undefined) return out;
  out.inFolioOffset = offset;
  out.count = 5;
  return out;
}

/** Models vma_not_suitable_for_thp_split(): special (PFN/mixed map), VM_IO and hugetlb VMAs. */
function vmaNotSuitableForThpSplit(vma: Vma): boolean {
  return (vma.flags & (VM_PFNMAP | VM_MIXEDMAP | VM_IO | VM_HUGETLB)) !== 0;
}

/**
 * Models folio_walk_start(vma, addr, 0): the folio mapped at addr by a present PMD or PTE that
 * maps a normal page (not the zero page or the huge zero page), or -1.
 */
function folioWalkStart(core: Core, vma: Vma, addr: number): number {
  const pmdT = pmdTableOf(core, vma.mm, addr, false);
  if (pmdT < 0) return -1;
  const mi = pmdIndex(addr);
  const lo = ptLo(core, pmdT, mi);
  const hi = ptHi(core, pmdT, mi);
  if (entryNone(lo, hi) || !(lo & (_PAGE_PRESENT | _PAGE_PROTNONE))) return -1;
  if (entryHuge(lo)) {
    const pfn = entryPfn(lo, hi);
    return pfn === core.hugeZeroPfn ? -1 : core.map.head[pfn];
  }
  const t = entryPfn(lo, hi);
  const plo = ptLo(core, t, pteIndex(addr));
  if (!(plo & (_PAGE_PRESENT | _PAGE_PROTNONE)) || plo & _PAGE_SPECIAL) return -1;
  return core.map.head[entryPfn(plo, ptHi(core, t, pteIndex(addr)))];
}

/** Models is_transparent_hugepage(): a large, rmappable folio (or the huge zero folio). */
function isTransparentHugepage(core: Core, head: number): boolean {
  const f = core.map.flags[head];
  return (f & PG_head) !== 0 && ((f & PG_large_rmappable) !== 0 || head === core.hugeZeroPfn);
}

/**
 * Models folio_expected_ref_count(folio) (include/linux/mm.h): one reference per mapping, one
 * per page from the swap cache, and for a page-cache folio one per page from the page cache
 * (the model has no PG_private).
 */
export function folioExpectedRefCount(core: Core, head: number): number {
  const m = core.map;
  const nr = m.folioNrPages(head);
  let refs = m.flags[head] & PG_swapcache ? nr : 0;
  if (!(m.flags[head] & PG_anon) && m.mapping[head]) refs += nr;
  return refs + folioMapcount(core, head);
}

/** Result of {@link splitHugePagesPid}: the kernel's pr_debug() counts. */
export interface SplitHugePagesResult {
  ret: number;
  total: number;
  split: number;
}

/**
 * Models split_huge_pages_pid() (mm/huge_memory.c, v6.19): under the task's mmap_lock (read),
 * page by page over [vaddr_start, vaddr_end) (both rounded down to pages), stop at an address
 * without a VMA, skip special and hugetlb VMAs whole; a THP (anonymous or page cache) of an
 * order above new_order mapped there, holding no reference beyond the expected ones
 * (folio_expected_ref_count()) and that can be locked, is split to new_order: uniformly
 * (split_folio_to_order()), or with an in-folio offset inside it non-uniformly around that page
 * (folio_split()), after which the walk skips the folio's size. A page-cache folio that left its
 * file meanwhile is not split. -ESRCH for no such task, -EINVAL for a task without an mm;
 * otherwise 0 whatever was split.
 */
export function* splitHugePagesPid(
  core: Core,
  task: (TaskLike & { readonly mm: MmStruct }) | undefined,
  vaddrStart: number,
  vaddrEnd: number,
  newOrder: number,
  inFolioOffset = -1,
): KGen<SplitHugePagesResult> {
  const res = { ret: 0, total: 0, split: 0 };
  if (!task) return { ...res, ret: -ESRCH };
  if (task.state !== 'running') return { ...res, ret: -EINVAL };
  const mm = task.mm;
  const m = core.map;
  const start = Math.floor(vaddrStart / PAGE_SIZE) * PAGE_SIZE;
  const end = Math.floor(vaddrEnd / PAGE_SIZE) * PAGE_SIZE;
  yield* mmapReadLock(core, mm, 'split_huge_pages_pid');
  try {
    for (let addr = start; addr < end; addr += PAGE_SIZE) {
      const vma = mm.vmaLookup(addr);
      if (!vma) break;
      if (vmaNotSuitableForThpSplit(vma)) {
        // addr = vma->vm_end; then the loop's addr += PAGE_SIZE.
        addr = vma.end;
        continue;
      }
      const head = folioWalkStart(core, vma, addr);
      if (head < 0) continue;
      if (!isTransparentHugepage(core, head)) continue;
      const nrPages = m.folioNrPages(head);
      const anon = (m.flags[head] & PG_anon) !== 0;
      // target_order = max(new_order, mapping_min_folio_order(mapping)): 0 for shmem.
      const mapping = anon ? 0 : m.mapping[head];
      if (newOrder >= m.folioOrder(head)) continue;
      res.total++;
      if (folioExpectedRefCount(core, head) !== m.refcount[head]) continue;
      if (!folioTrylock(core, head)) continue;
      folioGet(core, head);
      if (anon || m.mapping[head] === mapping) {
        if (inFolioOffset < 0 || inFolioOffset >= nrPages) {
          if ((yield* splitFolioMapped(core, head, head, newOrder)) === 0) res.split++;
        } else if ((yield* folioSplitAt(core, head, newOrder, head + inFolioOffset)) === 0) {
          res.split++;
          addr += PAGE_SIZE * nrPages;
        }
      }
      folioUnlock(core, head);
      folioPut(core, head);
      if (core.sched.preempt('split_huge_pages_pid: cond_resched')) yield RESCHED;
    }
  } finally {
    mmapReadUnlock(core, mm, 'split_huge_pages_pid');
  }
  return res;
}

/**
 * Models split_huge_pages_all() (the input "1"): every pfn of the zone's RAM, a large folio on
 * the LRU (not hugetlb) that folio_try_get() can pin is locked (folio_lock(), which may sleep)
 * and split to order 0 (split_folio()); the walk then skips the folio's pages. Struct pages whose
 * initialisation the model still defers are free RAM and are skipped by section.
 */
export function* splitHugePagesAll(core: Core): KGen<Omit<SplitHugePagesResult, 'ret'>> {
  const m = core.map;
  const res = { total: 0, split: 0 };
  const end = RAM_START_PFN + core.ramPages;
  for (let pfn = RAM_START_PFN; pfn < end; pfn++) {
    if (m.deferred(pfn)) {
      pfn = (Math.floor(pfn / PAGES_PER_SECTION) + 1) * PAGES_PER_SECTION - 1;
      continue;
    }
    const f = m.flags[pfn];
    if (!(f & PG_present_section) || f & PG_tail) continue;
    if (!folioTryGet(core, pfn)) continue;
    const head = pfn;
    if (!(f & PG_head) || f & PG_hugetlb || !(f & PG_lru)) {
      folioPut(core, head);
      continue;
    }
    res.total++;
    yield* folioLockWait(core, head, 'split_huge_pages_all');
    const nr = m.folioNrPages(head);
    if ((yield* splitFolioMapped(core, head, head, 0)) === 0) res.split++;
    pfn += nr - 1;
    folioUnlock(core, head);
    folioPut(core, head);
    if (core.sched.preempt('split_huge_pages_all: cond_resched')) yield RESCHED;
  }
  return res;
}

/** The task table and path lookup as split_huge_pages_write() needs them. */
export interface SplitHugePagesHost {
  readonly core: Core;
  task(pid: number): (TaskLike & { readonly mm: MmStruct }) | undefined;
  /** Models file_open_name(): the file at path, or -errno. */
  lookupPath(path: string, flags: number): PathTarget | number;
}

/**
 * Models split_huge_pages_in_file() (mm/huge_memory.c, v6.19): open the file (file_open_name(),
 * else -EINVAL), then walk its page cache over the indices [offStart, offEnd): a large folio
 * found at an index (filemap_get_folio() with a reference) is counted, and when its order is
 * above new_order, folio_trylock() succeeds and it is still in the file, split to new_order
 * (split_folio_to_order(), or folio_split() around the page at in_folio_offset when that lies
 * inside it); the walk then moves on by the folio's size as it was (a small folio or a hole: by
 * one page). Returns 0 whatever was split, with the pr_debug() counts. The model walks only the
 * indices present in the page cache (an absent one does nothing), so a huge off_end costs
 * nothing. Files that are not tmpfs files have nothing to split here (hugetlbfs folios are not
 * THPs and the model does not walk them).
 */
export function* splitHugePagesInFile(
  host: SplitHugePagesHost,
  path: string,
  offStart: number,
  offEnd: number,
  newOrder = 0,
  inFolioOffset = -1,
): KGen<SplitHugePagesResult> {
  const res = { ret: 0, total: 0, split: 0 };
  const t = host.lookupPath(path, O_RDONLY);
  if (typeof t === 'number') return { ...res, ret: -EINVAL };
  if (!('inode' in t) || t.inode.hugetlbfs) return res;
  const core = host.core;
  const m = core.map;
  const inode = t.inode;
  const mapping = inode.id;
  const present = [...inode.pages.keys()].filter((i) => i >= offStart && i < offEnd).sort((a, b) => a - b);
  let next = 0;
  for (let index = offStart; index < offEnd; ) {
    while (next < present.length && present[next] < index) next++;
    if (next === present.length) break;
    // Indices without a folio: filemap_get_folio() fails, nr_pages stays 1.
    index = present[next];
    const pfn = inode.pages.get(index);
    let nrPages = 1;
    if (pfn !== undefined && folioTryGet(core, m.head[pfn])) {
      const head = m.head[pfn];
      if (folioTestLarge(core, head)) {
        res.total++;
        nrPages = m.folioNrPages(head);
        if (newOrder < m.folioOrder(head) && folioTrylock(core, head)) {
          if (m.mapping[head] === mapping) {
            const ret =
              inFolioOffset < 0 || inFolioOffset >= nrPages
                ? yield* splitFolioMapped(core, head, head, newOrder)
                : yield* folioSplitAt(core, head, newOrder, head + inFolioOffset);
            if (ret === 0) res.split++;
          }
          folioUnlock(core, head);
        }
      }
      folioPut(core, head);
      if (core.sched.preempt('split_huge_pages_in_file: cond_resched')) yield RESCHED;
    }
    index += nrPages;
  }
  return res;
}

/**
 * Models split_huge_pages_write()'s path form: "<path>,0x<off_start>,0x<off_end>[,<new_order>
 * [,<in_folio_offset>]]" (strsep() at the first comma, then sscanf("0x%lx,0x%lx,%d,%ld") with
 * 2 to 4 conversions); the input's strlen() or -EINVAL.
 */
function* splitHugePagesPathForm(host: SplitHugePagesHost, input: string): KGen<number> {
  const comma = input.indexOf(',');
  if (comma < 0) return -EINVAL;
  const m = /^0x([0-9a-fA-F]+),0x([0-9a-fA-F]+)(?:,\s*(-?\d+)(?:,\s*(-?\d+))?)?/.exec(input.slice(comma + 1));
  if (!m) return -EINVAL;
  const r = yield* splitHugePagesInFile(
    host,
    input.slice(0, comma),
    Number.parseInt(m[1], 16),
    Number.parseInt(m[2], 16),
    m[3] === undefined ? 0 : unsignedOrder(Number(m[3]) | 0),
    m[4] === undefined ? -1 : Number(m[4]),
  );
  return r.ret ? r.ret : input.length;
}

/**
 * new_order is an unsigned int: a negative one is huge and splits nothing. The model caps it
 * just above the largest THP order (the comparisons come out the same).
 */
function unsignedOrder(order: number): number {
  return Math.min(order < 0 ? 2 ** 32 + order : order, HPAGE_PMD_ORDER + 1);
}

/**
 * Models split_huge_pages_fops (write only, mode 0200): split_huge_pages_write() reads at most
 * MAX_INPUT_BUF_SZ - 1 bytes as a string; "<pid>,0x<start>,0x<end>[,<new_order>
 * [,<in_folio_offset>]]" splits in a task's range and "1" splits every THP of the machine
 * (split_huge_pages_all()), each returning the input's strlen();
 * "/path,0x<off_start>,0x<off_end>[,<new_order>[,<in_folio_offset>]]" splits a file's page cache
 * (split_huge_pages_in_file()); anything else is -EINVAL.
 */
export function splitHugePagesFops(host: SplitHugePagesHost): FileOperations {
  return {
    *pread() {
      return -EINVAL;
    },
    *pwrite(_file, buf) {
      const bytes = buf.subarray(0, Math.min(buf.length, SPLIT_HUGE_PAGES_MAX_INPUT - 1));
      const nul = bytes.indexOf(0);
      const input = new TextDecoder().decode(nul >= 0 ? bytes.subarray(0, nul) : bytes);
      if (input.startsWith('/')) return yield* splitHugePagesPathForm(host, input);
      const a = parseSplitHugePages(input);
      const len = nul >= 0 ? nul : bytes.length;
      if (a.count === 1 && a.pid === 1) {
        yield* splitHugePagesAll(host.core);
        return len;
      }
      if (a.count !== 3 && a.count !== 4 && a.count !== 5) return -EINVAL;
      const r = yield* splitHugePagesPid(
        host.core,
        host.task(a.pid),
        a.start,
        a.end,
        unsignedOrder(a.newOrder),
        a.inFolioOffset,
      );
      // strlen(input_buf): bytes up to the first NUL.
      return r.ret < 0 ? r.ret : len;
    },
  };
}
