/**
 * khugepaged (mm/khugepaged.c): the kernel thread that walks the registered mms and collapses
 * PTE-mapped anonymous memory into PMD-mapped THPs with the scan and collapse of mm/collapse.ts
 * (shmem page cache into PMD-sized folios with mm/collapse-file.ts),
 * obeying its sysfs limits (max_ptes_none, max_ptes_shared, max_ptes_swap, pages_to_scan).
 *
 * The model has no clock, so khugepaged never runs by itself: {@link khugepagedDoScan} is one
 * khugepaged_do_scan() pass (run it synchronously with {@link khugepagedScanOnce} / the Kernel's
 * `khugepagedScan()`, or spawn {@link khugepagedThread} as a kthread next to other tasks so the
 * scheduler interleaves it with faults, munmap, migrations...). khugepaged_wait_work()'s sleep
 * between passes is a preemption point.
 */
import { EACCES, EINVAL, HPAGE_PMD_NR, O_ACCMODE, O_RDONLY, PMD_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import type { FileOperations } from '../fs.js';
import type { KGen } from '../sched/task.js';
import { RESCHED } from '../sched/task.js';
import { linearPageIndex } from './anon.js';
import { type CollapseControl, collapseTestExit, hpageCollapseScanPmd, type ScanResult } from './collapse.js';
import { collapsePteMappedThp, hpageCollapseScanFile } from './collapse-file.js';
import {
  COLLAPSE_MAX_PTES_LIMIT,
  hugepagePmdEnabled,
  type KhugepagedSettings,
  khugepagedClock,
  khugepagedScanState,
  khugepagedSettings,
  khugepagedWake,
  thpVmaAllowableOrder,
} from './khugepaged-state.js';
import { mmapReadLock, mmapReadUnlock } from './locking.js';
import type { MmStruct, Vma } from './types.js';

/** What one khugepaged_do_scan() pass did (model-only summary). */
export interface KhugepagedPass {
  /** The pass's progress in khugepaged's units (pages for scanned PMDs, 1 per mm and skipped VMA). */
  readonly progress: number;
  /** PMDs collapsed (khugepaged_pages_collapsed moved by this much). */
  readonly collapsed: number;
  /** Full passes over the mm list completed (khugepaged_full_scans moved by this much). */
  readonly fullScans: number;
  /** The result of the last PMD scanned (SCAN_SUCCEED when none was). */
  readonly lastResult: ScanResult;
  /** khugepaged_alloc_sleep() calls: each sleeps alloc_sleep_millisecs inside the pass. */
  readonly allocSleeps: number;
}

/** Models khugepaged_collapse_control: a collapse initiated by khugepaged. */
const KHUGEPAGED_CC: CollapseControl = { isKhugepaged: true };

/** Models collect_mm_slot(): drop the slot of an mm that is exiting. */
function collectMmSlot(core: Core, mm: MmStruct): void {
  const s = khugepagedScanState(core);
  if (!collapseTestExit(mm)) return;
  const i = s.slots.indexOf(mm);
  if (i >= 0) s.slots.splice(i, 1);
}

/**
 * Models khugepaged_scan_mm_slot() (mm/khugepaged.c): scan the current mm (or the first of the
 * list) from khugepaged_scan.address for at most `pages` units of progress. mmap_read_trylock()
 * (on contention: move on to the next mm), then every VMA khugepaged may collapse in
 * (thp_vma_allowable_order(TVA_KHUGEPAGED)), aligned PMD by aligned PMD, with
 * hpage_collapse_scan_pmd(). A collapse drops the mmap_lock and ends the call (the cursor is
 * kept); reaching the end of the VMAs moves the cursor to the next mm (or ends a full scan), and
 * an exiting mm's slot is collected.
 */
function* khugepagedScanMmSlot(core: Core, pages: number, res: { result: ScanResult }): KGen<number> {
  const s = khugepagedScanState(core);
  const settings = khugepagedSettings(core);
  res.result = 'SCAN_FAIL';
  if (!s.mmSlot) {
    s.mmSlot = s.slots[0];
    s.address = 0;
  }
  const mm = s.mmSlot;
  const walk = { progress: 0, locked: false };
  // "Don't wait for semaphore (to avoid long wait times). Just move to the next mm."
  const stoppedInside = mm.mmapLock.tryDownRead(core.sched, 'khugepaged_scan_mm_slot')
    ? yield* khugepagedScanVmas(core, mm, pages, res, walk)
    : false;
  if (walk.locked) mmapReadUnlock(core, mm, 'khugepaged_scan_mm_slot');
  // Release the current mm_slot if this mm is about to die, or if we scanned all vmas of it.
  if (collapseTestExit(mm) || !stoppedInside) {
    const i = s.slots.indexOf(mm);
    if (i >= 0 && i < s.slots.length - 1) {
      s.mmSlot = s.slots[i + 1];
      s.address = 0;
    } else {
      s.mmSlot = null;
      settings.fullScans++;
    }
    collectMmSlot(core, mm);
  }
  return walk.progress;
}

/**
 * The VMA walk of khugepaged_scan_mm_slot() with the mmap_lock held for read (`walk.locked`
 * is cleared when a collapse released it). True when it stopped inside the mm (a collapse, the
 * progress budget, or the mm exiting), false when it went past the last VMA.
 */
function* khugepagedScanVmas(
  core: Core,
  mm: MmStruct,
  pages: number,
  res: { result: ScanResult },
  walk: { progress: number; locked: boolean },
): KGen<boolean> {
  const s = khugepagedScanState(core);
  const settings = khugepagedSettings(core);
  walk.locked = true;
  walk.progress++;
  if (collapseTestExit(mm)) return false;
  let i = 0;
  while (i < mm.vmas.length && mm.vmas[i].end <= s.address) i++;
  for (; i < mm.vmas.length; i++) {
    const vma: Vma = mm.vmas[i];
    if (core.sched.preempt('khugepaged_scan_mm_slot: cond_resched')) yield RESCHED;
    if (collapseTestExit(mm)) {
      walk.progress++;
      return true;
    }
    if (!thpVmaAllowableOrder(core, vma, vma.flags, 'khugepaged')) {
      walk.progress++;
      continue;
    }
    const hstart = Math.ceil(vma.start / PMD_SIZE) * PMD_SIZE;
    const hend = Math.floor(vma.end / PMD_SIZE) * PMD_SIZE;
    if (s.address > hend) {
      walk.progress++;
      continue;
    }
    if (s.address < hstart) s.address = hstart;
    while (s.address < hend) {
      if (core.sched.preempt('khugepaged_scan_mm_slot: cond_resched')) yield RESCHED;
      if (collapseTestExit(mm)) return true;
      let r: { result: ScanResult; mmapLocked: boolean };
      if (vma.file && !vma.vmOps) {
        // A shmem VMA: scan the page cache with the mmap_lock dropped; a range already holding
        // its PMD-sized folio gets collapse_pte_mapped_thp() (no PMD installed: the next fault
        // maps it).
        const inode = vma.file;
        const pgoff = linearPageIndex(vma, s.address);
        mmapReadUnlock(core, mm, 'khugepaged_scan_mm_slot');
        r = {
          result: yield* hpageCollapseScanFile(core, mm, s.address, inode, pgoff, KHUGEPAGED_CC),
          mmapLocked: false,
        };
        if (r.result === 'SCAN_PTE_MAPPED_HUGEPAGE') {
          yield* mmapReadLock(core, mm, 'khugepaged_scan_mm_slot');
          if (collapseTestExit(mm)) {
            mmapReadUnlock(core, mm, 'khugepaged_scan_mm_slot');
            walk.locked = false;
            return true;
          }
          r.result = yield* collapsePteMappedThp(core, mm, s.address, false);
          if (r.result === 'SCAN_PMD_MAPPED') r.result = 'SCAN_SUCCEED';
          mmapReadUnlock(core, mm, 'khugepaged_scan_mm_slot');
        }
      } else r = yield* hpageCollapseScanPmd(core, mm, s.address, KHUGEPAGED_CC);
      res.result = r.result;
      if (r.result === 'SCAN_SUCCEED') settings.pagesCollapsed++;
      s.address += PMD_SIZE;
      walk.progress += HPAGE_PMD_NR;
      // collapse_huge_page() released the mmap_lock: stop here.
      if (!r.mmapLocked) {
        walk.locked = false;
        return true;
      }
      if (walk.progress >= pages) return true;
    }
  }
  return false;
}

/** Models khugepaged_has_work(): some mm is registered and THP is enabled. */
function khugepagedHasWork(core: Core): boolean {
  return khugepagedScanState(core).slots.length > 0 && hugepagePmdEnabled(core);
}

/**
 * Models khugepaged_do_scan() (mm/khugepaged.c): one pass of khugepaged, scanning mm slots until
 * pages_to_scan units of progress are done or the list has been passed through twice; a huge
 * folio allocation failure sleeps once (khugepaged_alloc_sleep()) and ends the pass the second
 * time. A kernel path: run it as a task (it may block on locks and has preemption points).
 */
export function* khugepagedDoScan(core: Core): KGen<KhugepagedPass> {
  const settings = khugepagedSettings(core);
  const s = khugepagedScanState(core);
  const pages = settings.pagesToScan;
  const collapsed0 = settings.pagesCollapsed;
  const full0 = settings.fullScans;
  let progress = 0;
  let passThroughHead = 0;
  let wait = true;
  const res: { result: ScanResult } = { result: 'SCAN_SUCCEED' };
  let last: ScanResult = 'SCAN_SUCCEED';
  let allocSleeps = 0;
  for (;;) {
    if (core.sched.preempt('khugepaged_do_scan: cond_resched')) yield RESCHED;
    if (!s.mmSlot) passThroughHead++;
    if (khugepagedHasWork(core) && passThroughHead < 2) {
      progress += yield* khugepagedScanMmSlot(core, pages - progress, res);
      last = res.result;
    } else progress = pages;
    if (progress >= pages) break;
    if (res.result === 'SCAN_ALLOC_HUGE_PAGE_FAIL') {
      // "If fail to allocate the first time, try to sleep for a while. When hit again, cancel."
      if (!wait) break;
      wait = false;
      allocSleeps++;
      if (core.sched.preempt('khugepaged_alloc_sleep: alloc_sleep_millisecs')) yield RESCHED;
    }
  }
  return {
    progress,
    collapsed: settings.pagesCollapsed - collapsed0,
    fullScans: settings.fullScans - full0,
    lastResult: last,
    allocSleeps,
  };
}

/**
 * Models the khugepaged kthread (khugepaged()): `passes` iterations of khugepaged_do_scan()
 * followed by khugepaged_wait_work() (a preemption point here: the model has no clock). Spawn it
 * with `core.sched.spawn('khugepaged', khugepagedThread(core, n), { kind: 'kthread' })`.
 */
export function* khugepagedThread(core: Core, passes = 1): KGen<KhugepagedPass[]> {
  const out: KhugepagedPass[] = [];
  for (let i = 0; i < passes; i++) {
    out.push(yield* khugepagedDoScan(core));
    if (core.sched.preempt('khugepaged_wait_work: scan_sleep_millisecs')) yield RESCHED;
  }
  return out;
}

/**
 * Model-only: run one khugepaged pass to completion for a synchronous caller (a test, the
 * shell): the pass runs as a task, other tasks run at its preemption points.
 */
export function khugepagedScanOnce(core: Core): KhugepagedPass {
  return core.sched.runSync(khugepagedDoScan(core), 'khugepaged');
}

/** Nanoseconds per millisecond. */
const NS_PER_MS = 1_000_000;

/**
 * Models the khugepaged kthread (khugepaged(): khugepaged_do_scan(), then khugepaged_wait_work())
 * over `ns` nanoseconds of simulated time, for a task that sleeps that long (Kernel.nanosleep()).
 * The thread runs while hugepage_pmd_enabled() (start_stop_khugepaged()); with work
 * (khugepaged_has_work()) it sleeps scan_sleep_millisecs after each pass, without it waits for an
 * mm to register (khugepaged_wait_event()), and a wake-up makes the next pass due at once. A pass
 * takes no simulated time except its khugepaged_alloc_sleep() (alloc_sleep_millisecs after a huge
 * folio allocation failed); scan_sleep_millisecs 0 (no sleep in the kernel) counts as 1 ms so that
 * a sleep runs finitely many passes. Deterministic: passes happen only here, at the simulated
 * times they are due. Returns the passes run.
 */
export function khugepagedRunFor(core: Core, ns: number): KhugepagedPass[] {
  const clock = khugepagedClock(core);
  const settings = khugepagedSettings(core);
  const target = clock.nowNs + Math.max(0, ns);
  const out: KhugepagedPass[] = [];
  for (;;) {
    if (!khugepagedHasWork(core)) {
      // Idle (or stopped): the next pass is due when work arrives (khugepagedWake()).
      clock.nextPassNs = target;
      break;
    }
    const start = Math.max(clock.nextPassNs, clock.nowNs);
    if (start > target) break;
    clock.nowNs = start;
    const pass = khugepagedScanOnce(core);
    out.push(pass);
    const passEnd = start + pass.allocSleeps * settings.allocSleepMillisecs * NS_PER_MS;
    clock.nextPassNs = passEnd + Math.max(1, settings.scanSleepMillisecs) * NS_PER_MS;
  }
  clock.nowNs = target;
  return out;
}

/**
 * Models _kstrtoull(buf, 10) as the sysfs stores use it: an optional '+', decimal digits, an
 * optional trailing newline; the value or undefined (-EINVAL / -ERANGE) beyond `max`.
 */
function kstrtoul(text: string, max: number): number | undefined {
  const m = /^\+?(\d+)\n?$/.exec(text);
  if (!m) return undefined;
  const v = Number(m[1]);
  return Number.isSafeInteger(v) && v <= max ? v : undefined;
}

/** The writable khugepaged sysfs knobs and their store() rules. */
type Knob = keyof Pick<
  KhugepagedSettings,
  | 'maxPtesNone'
  | 'maxPtesSwap'
  | 'maxPtesShared'
  | 'pagesToScan'
  | 'scanSleepMillisecs'
  | 'allocSleepMillisecs'
  | 'defrag'
  | 'pagesCollapsed'
  | 'fullScans'
>;

const KNOBS: readonly [string, Knob, ((text: string) => number | undefined) | null][] = [
  // max_ptes_*_store(): kstrtoul(), at most COLLAPSE_MAX_PTES_LIMIT.
  ['max_ptes_none', 'maxPtesNone', (t) => kstrtoul(t, COLLAPSE_MAX_PTES_LIMIT)],
  ['max_ptes_swap', 'maxPtesSwap', (t) => kstrtoul(t, COLLAPSE_MAX_PTES_LIMIT)],
  ['max_ptes_shared', 'maxPtesShared', (t) => kstrtoul(t, COLLAPSE_MAX_PTES_LIMIT)],
  // pages_to_scan_store(): kstrtouint(), not 0.
  [
    'pages_to_scan',
    'pagesToScan',
    (t) => {
      const v = kstrtoul(t, 2 ** 32 - 1);
      return v ? v : undefined;
    },
  ],
  ['scan_sleep_millisecs', 'scanSleepMillisecs', (t) => kstrtoul(t, 2 ** 32 - 1)],
  ['alloc_sleep_millisecs', 'allocSleepMillisecs', (t) => kstrtoul(t, 2 ** 32 - 1)],
  // single_hugepage_flag_store(): kstrtoul(), then at most 1.
  ['defrag', 'defrag', (t) => kstrtoul(t, 1)],
  ['pages_collapsed', 'pagesCollapsed', null],
  ['full_scans', 'fullScans', null],
];

/** What registering the sysfs files needs: the machine and its device table. */
export interface KhugepagedHost {
  readonly core: Core;
  readonly devices: Map<string, FileOperations>;
}

/**
 * Models khugepaged_attr_group (mm/khugepaged.c): /sys/kernel/mm/transparent_hugepage/khugepaged/
 * max_ptes_none, max_ptes_swap, max_ptes_shared, pages_to_scan, scan_sleep_millisecs,
 * alloc_sleep_millisecs and defrag (read "%u\n", write one value: -EINVAL when it does not parse
 * or is out of range), pages_collapsed and full_scans (read-only: opening them for writing is
 * -EACCES, as kernfs_fop_open() refuses a write open of an attribute without store()).
 */
export function registerKhugepagedSysfs(host: KhugepagedHost): void {
  const core = host.core;
  for (const [name, key, parse] of KNOBS) {
    const fops: FileOperations = {
      *pread(_file, buf, pos) {
        const bytes = new TextEncoder().encode(`${khugepagedSettings(core)[key]}\n`);
        if (pos >= bytes.length) return 0;
        const n = Math.min(buf.length, bytes.length - pos);
        buf.set(bytes.subarray(pos, pos + n));
        return n;
      },
    };
    // kernfs_fop_open(): a read-only attribute (no store()) cannot be opened for writing.
    if (!parse) fops.open = (file) => ((file.flags & O_ACCMODE) === O_RDONLY ? 0 : -EACCES);
    if (parse)
      fops.pwrite = function* (_file, buf) {
        const v = parse(new TextDecoder().decode(buf));
        if (v === undefined) return -EINVAL;
        khugepagedSettings(core)[key] = v;
        // scan_sleep_millisecs_store(), alloc_sleep_millisecs_store(): khugepaged_sleep_expire = 0
        // and wake_up_interruptible(&khugepaged_wait).
        if (key === 'scanSleepMillisecs' || key === 'allocSleepMillisecs') khugepagedWake(core);
        return buf.length;
      };
    host.devices.set(`/sys/kernel/mm/transparent_hugepage/khugepaged/${name}`, fops);
  }
}
