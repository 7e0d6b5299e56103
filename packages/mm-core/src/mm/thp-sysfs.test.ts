/**
 * /sys/kernel/mm/transparent_hugepage/{enabled,defrag,use_zero_page,shmem_enabled}
 * (enabled_store(), defrag_store(), single_hugepage_flag_store() in mm/huge_memory.c,
 * shmem_enabled_store() in mm/shmem.c) and khugepaged's kthread over simulated time
 * (khugepaged() / khugepaged_wait_work(), Kernel.nanosleep()).
 */
import { describe, expect, it } from 'vitest';
import {
  EINVAL,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_PRIVATE,
  O_RDONLY,
  O_RDWR,
  PAGE_SIZE,
  PMD_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import type { Process } from '../process.js';
import { machine, pmdKind } from '../testing/helpers.js';
import { khugepagedSettings } from './khugepaged-state.js';
import { thpSysfsState } from './thp-sysfs.js';

const DIR = '/sys/kernel/mm/transparent_hugepage';

function read(p: Process, name: string): string {
  const fd = p.open(`${DIR}/${name}`, O_RDONLY);
  const buf = new Uint8Array(128);
  const n = p.pread(fd, buf, buf.length, 0);
  p.close(fd);
  return new TextDecoder().decode(buf.subarray(0, n));
}

function write(p: Process, name: string, text: string): number {
  const fd = p.open(`${DIR}/${name}`, O_RDWR);
  const bytes = new TextEncoder().encode(text);
  const r = p.pwrite(fd, bytes, bytes.length, 0);
  p.close(fd);
  return r;
}

describe('THP sysfs controls', () => {
  it('enabled: enabled_show() brackets the mode; enabled_store() takes always/madvise/never (sysfs_streq), else -EINVAL', () => {
    const k = machine();
    const p = k.spawn();
    expect(read(p, 'enabled')).toBe('always [madvise] never\n');
    expect(write(p, 'enabled', 'always\n')).toBe(7);
    expect(k.core.thpMode).toBe('always');
    expect(read(p, 'enabled')).toBe('[always] madvise never\n');
    expect(write(p, 'enabled', 'never')).toBe(5);
    expect(k.core.thpMode).toBe('never');
    expect(write(p, 'enabled', 'inherit')).toBe(-EINVAL);
    expect(write(p, 'enabled', 'always\n\n')).toBe(-EINVAL);
    expect(k.core.thpMode).toBe('never');
  });

  it('enabled "always" makes the next fault in an unadvised VMA a THP (transparent_hugepage_flags)', () => {
    const k = machine();
    const p = k.spawn();
    expect(write(p, 'enabled', 'always')).toBe(6);
    const raw = p.mmap(0, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    p.writeI32(a, 1);
    expect(pmdKind(k, p, a)).toBe('huge');
  });

  it('defrag, shmem_enabled: the kernel lists, a valid word is kept, anything else -EINVAL', () => {
    const k = machine();
    const p = k.spawn();
    expect(read(p, 'defrag')).toBe('always defer defer+madvise [madvise] never\n');
    expect(write(p, 'defrag', 'defer+madvise\n')).toBe(14);
    expect(read(p, 'defrag')).toBe('always defer [defer+madvise] madvise never\n');
    expect(write(p, 'defrag', 'sometimes')).toBe(-EINVAL);
    expect(thpSysfsState(k.core).defrag).toBe('defer+madvise');
    expect(read(p, 'shmem_enabled')).toBe('always within_size advise [never] deny force\n');
    expect(write(p, 'shmem_enabled', 'advise')).toBe(6);
    expect(read(p, 'shmem_enabled')).toBe('always within_size [advise] never deny force\n');
    expect(write(p, 'shmem_enabled', 'inherit')).toBe(-EINVAL);
  });

  it('use_zero_page: "%d\\n"; kstrtoul() then at most 1, else -EINVAL', () => {
    const k = machine();
    const p = k.spawn();
    expect(read(p, 'use_zero_page')).toBe('1\n');
    expect(write(p, 'use_zero_page', '0\n')).toBe(2);
    expect(k.core.thpUseZeroPage).toBe(false);
    expect(read(p, 'use_zero_page')).toBe('0\n');
    expect(write(p, 'use_zero_page', '2')).toBe(-EINVAL);
    expect(write(p, 'use_zero_page', 'x')).toBe(-EINVAL);
    expect(k.core.thpUseZeroPage).toBe(false);
  });
});

describe('khugepaged over simulated time (Kernel.nanosleep(), khugepaged_wait_work())', () => {
  it('idle without a registered mm: a sleep runs no pass and full_scans stays', () => {
    const k = machine();
    expect(k.nanosleep(500_000_000)).toEqual([]);
    expect(khugepagedSettings(k.core).fullScans).toBe(0);
  });

  it('with work, one pass per scan_sleep_millisecs: 500 ms at 10 ms is 50 passes, the first at once', () => {
    const k = machine();
    const p = k.spawn();
    const raw = p.mmap(0, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    for (let i = 0; i < 8; i++) p.writeI32(a + i * PAGE_SIZE, i + 1);
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    khugepagedSettings(k.core).scanSleepMillisecs = 10;
    const passes = k.nanosleep(500_000_000);
    // Due at 0, 10, ..., 490 ms, and at 500 ms, the end of the sleep.
    expect(passes.length).toBe(51);
    expect(passes[0].collapsed).toBe(1);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(khugepagedSettings(k.core).fullScans).toBe(51);
    // The next pass is due 10 ms after the last one: a 5 ms sleep runs none, the next 5 ms one.
    expect(k.nanosleep(5_000_000).length).toBe(0);
    expect(k.nanosleep(5_000_000).length).toBe(1);
    for (let i = 0; i < 8; i++) expect(p.readI32(a + i * PAGE_SIZE)).toBe(i + 1);
    expect(k.check()).toEqual([]);
  });

  it('a failed huge folio allocation makes the pass sleep alloc_sleep_millisecs (khugepaged_alloc_sleep()) before the next', () => {
    const k = machine();
    const p = k.spawn();
    const raw = p.mmap(0, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    p.writeI32(a, 1);
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    const s = khugepagedSettings(k.core);
    s.scanSleepMillisecs = 10;
    s.allocSleepMillisecs = 100;
    k.core.zone.failHook = (o) => o === 9;
    // Pass at 0 ms: the allocation fails, one alloc sleep (100 ms); the next pass is due at 110 ms.
    const first = k.nanosleep(50_000_000);
    expect(first.length).toBe(1);
    expect(first[0].allocSleeps).toBe(1);
    expect(k.core.vmstat.thp_collapse_alloc_failed).toBeGreaterThanOrEqual(1);
    expect(k.nanosleep(59_000_000).length).toBe(0);
    k.core.zone.failHook = undefined;
    expect(k.nanosleep(1_000_000).length).toBe(1);
    expect(pmdKind(k, p, a)).toBe('huge');
  });

  it('THP "never" stops the thread (start_stop_khugepaged()); writing scan_sleep_millisecs wakes it at once', () => {
    const k = machine();
    const p = k.spawn();
    const raw = p.mmap(0, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    p.writeI32(a, 1);
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    expect(write(p, 'enabled', 'never')).toBe(5);
    expect(k.nanosleep(1_000_000_000)).toEqual([]);
    expect(pmdKind(k, p, a)).toBe('table');
    expect(write(p, 'enabled', 'madvise')).toBe(7);
    // Default scan_sleep_millisecs is 10000: the first pass is due at once, the next in 10 s.
    expect(k.nanosleep(1_000_000_000).length).toBe(1);
    expect(pmdKind(k, p, a)).toBe('huge');
    expect(k.nanosleep(1_000_000_000).length).toBe(0);
    expect(write(p, 'khugepaged/scan_sleep_millisecs', '100')).toBe(3);
    expect(k.nanosleep(1).length).toBe(1);
  });

  it('shmem_enabled other than never/deny keeps khugepaged running with anonymous THP "never" (hugepage_pmd_enabled())', () => {
    const k = machine();
    const p = k.spawn();
    const raw = p.mmap(0, 2 * PMD_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    const a = Math.ceil(raw / PMD_SIZE) * PMD_SIZE;
    p.writeI32(a, 1);
    expect(p.madvise(a, PMD_SIZE, MADV_HUGEPAGE)).toBe(0);
    expect(write(p, 'shmem_enabled', 'advise')).toBe(6);
    expect(write(p, 'enabled', 'never')).toBe(5);
    const full = khugepagedSettings(k.core).fullScans;
    // The thread scans, but thp_vma_allowable_order() refuses the anonymous VMA under "never".
    expect(k.nanosleep(1_000_000).length).toBe(1);
    expect(khugepagedSettings(k.core).fullScans).toBe(full + 1);
    expect(pmdKind(k, p, a)).toBe('table');
    expect(write(p, 'shmem_enabled', 'deny')).toBe(4);
    expect(k.nanosleep(100_000_000_000)).toEqual([]);
  });
});
