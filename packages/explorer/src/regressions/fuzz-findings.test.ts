/**
 * Regressions from `pnpm fuzz --seed 20261204 --ops 20000 --workers 2` and from `pnpm run bugs`'
 * baselines on the fixed model: each
 * minimal reproducer is a shell script beside this file (`pnpm shell --script <file>` replays it).
 * The kernel findings reproduce with their fix switch off and are clean with every fix on; the
 * model bugs are clean under their trace and other schedules.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { scheduleFor } from '../explore.js';
import { generateScenario } from '../generate.js';
import { parseReproducer } from '../reproducer.js';
import { runScenario, type Scenario } from '../run.js';
import { ALL_FIXES } from '../world.js';

/** The scenario, schedule and fix switches of a reproducer beside this file. */
function load(name: string): { sc: Scenario; schedule: string; fixes: readonly string[] } {
  const rep = parseReproducer(readFileSync(new URL(name, import.meta.url), 'utf8'));
  return { sc: rep.scenario, schedule: rep.schedule, fixes: rep.fixes };
}

const OTHER = ['coop', 'random:seed=1,p=0.5', 'pct:seed=2,d=2,k=400'];

/** A model-bug reproducer beside this file runs clean under its own schedule and {@link OTHER}. */
function expectClean(name: string): void {
  const { sc, schedule } = load(name);
  for (const s of [schedule, ...OTHER])
    expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
}

describe('fuzz findings on the fixed model, kept as regressions', () => {
  it('K2: with the fix off the device reads a stale mirror entry; with every fix on the run is clean', () => {
    const { sc, schedule, fixes } = load('./k2-stale-mirror.hmm');
    expect(fixes).not.toContain('K2');
    const r = runScenario(sc, { schedule, fixes });
    expect(r.finding?.message).toMatch(
      /^dmirror READ of p0 at 0x[0-9a-f]+: read 0x[0-9a-f]+, the oracle says 0x0$/,
    );
    for (const s of [schedule, ...OTHER])
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
  });

  it('K20: with the fix off a GPU fault of the OOM victim waits for ever in mmu_interval_read_begin(); with every fix on the run is clean', () => {
    const { sc, schedule, fixes } = load('./k20-reaper-seq-leak.hmm');
    expect(fixes).not.toContain('K20');
    const r = runScenario(sc, { schedule, fixes });
    expect(r.finding?.message).toMatch(
      /^deadlock: 1 task\(s\) wait for something no task can release\n {2}task \d+ p1\.t1 waits for mmu_interval_read_begin: invalidation of mm \d+ in progress/,
    );
    for (const s of [schedule, ...OTHER])
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
  });

  it('K22: with the fix off a GPU job that outlives its process writes a page exit_mmap() freed; with every fix on the run is clean', () => {
    const { sc, schedule, fixes } = load('./k22-gpu-job-after-exit.hmm');
    expect(fixes).not.toContain('K22');
    const r = runScenario(sc, { schedule, fixes });
    expect(r.finding?.message).toMatch(
      /^kernel BUG \(modelled\): use-after-free \(GPU DMA\) in nouveau_svmm_invalidate_range_start .*a free page: .*the svmm's mm has exited: nouveau_mn_ops has no ->release/,
    );
    for (const s of [schedule, ...OTHER])
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
  });

  it('K4: with the fix off the GPU reads freed VRAM; with every fix on the run is clean', () => {
    const { sc, schedule, fixes } = load('./k4-stale-gpu-map.hmm');
    expect(fixes).not.toContain('K4');
    const r = runScenario(sc, { schedule, fixes });
    expect(r.finding?.message).toMatch(
      /^GPU read of p0 at 0x[0-9a-f]+: read 0x0, the oracle says 0x[0-9a-f]+$/,
    );
    for (const s of [schedule, ...OTHER])
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
  });

  it('K5: with the fix off a device page outlives its mirror (use-after-free); with every fix on the run is clean', () => {
    const { sc, schedule, fixes } = load('./k5-release-uaf.hmm');
    expect(fixes).not.toContain('K5');
    const r = runScenario(sc, { schedule, fixes });
    expect(r.finding?.message).toMatch(
      /^kernel VM_BUG_ON \(modelled\): use-after-free: .* in dmirror_devmem_fault/,
    );
    for (const s of [schedule, ...OTHER])
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
  });

  it('K5, a referenced folio: release waits for a racing reference instead of giving up, so no device page outlives its mirror', () => {
    // Found at 158,494 operations of --seed 20261208 with every fix on: a collection had taken
    // its folio_get() on a PTE-mapped device THP (and not yet its trylock) when release evicted,
    // so migrate_device_pages() refused the folio; the first K5 fix only retried locked folios.
    const { sc, schedule, fixes } = load('./k5-extra-ref-uaf.hmm');
    expect(fixes).toContain('K5');
    const off = runScenario(sc, { schedule, fixes: fixes.filter((f) => f !== 'K5') });
    expect(off.finding?.message).toMatch(
      /^kernel VM_BUG_ON \(modelled\): use-after-free: .* in dmirror_devmem_fault/,
    );
    for (const s of [schedule, ...OTHER])
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
  });

  it('K15: with the fix off the fault page’s folio, freed by the split, is folio_get()-ed (VM_BUG_ON); with every fix on the run is clean', () => {
    const { sc, schedule, fixes } = load('./k15-split-frees-fault-folio.hmm');
    expect(fixes).not.toContain('K15');
    const r = runScenario(sc, { schedule, fixes });
    expect(r.finding?.message).toMatch(
      /^kernel VM_BUG_ON \(modelled\): VM_BUG_ON_FOLIO\(folio_ref_zero_or_close_to_overflow\(folio\)\) in folio_get\(\) in migrate_vma_split_folio/,
    );
    for (const s of [schedule, ...OTHER])
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
  });

  it('fork() gives the child’s copy of a pinned page the VMA’s protection (a PROT_NONE VMA stays inaccessible; clean under its trace and others)', () => {
    expectClean('./pinned-fork-protnone.hmm');
  });

  it('an unshare of the huge zero page maps the new THP read-only in a read-only VMA, so mremap() moves no writable PTE into it', () => {
    expectClean('./huge-zero-unshare-ro.hmm');
  });

  it('swapoff takes a reference on a swap-cache folio before freeing its swap (clean under its trace and others)', () => {
    expectClean('./swapoff-cache-ref.hmm');
  });

  it('an OOM kill whose victim exits inline while a GPU fault holds its mm queues the OOM reaper (before session 25: none, and an eviction in the exit spun in __GFP_NOFAIL, a false livelock)', () => {
    expectClean('./oom-inline-exit-reaper.hmm');
  });

  it('make_device_exclusive() moves the PTE dirty bit to the folio, so reclaim keeps a written lazy-free page (clean under its trace and others)', () => {
    expectClean('./exclusive-dirty-lazyfree.hmm');
  });

  it('a fault spinning on a device folio lock waits for the lock holder, not any task: no false livelock under PCT (clean under its trace and others)', () => {
    expectClean('./pct-spin-starvation.hmm');
  });

  it('swapoff retrying against an exiting mm no longer starves the zap it waits for under PCT (a false livelock)', () => {
    // Not shrunk: every candidate that still fails spins for 500,000 steps, and the shrinker's
    // budget left 800 of the 1,000 operations. The scenario is run 118 of worker 0 of `pnpm fuzz
    // --strategy pct --depth 3 --seed 20261502`, made again by the generator.
    const seed = 20261502;
    const opts = { ops: 1000, procs: 3, threads: 2 };
    const sc = { ...generateScenario((seed + 118 * 7919) >>> 0, opts), checkEvery: 1000 };
    // What the finding needed: swapoff, a process that exits, and 1,000 operations over 6 threads.
    expect(sc.ops.some((op) => op.k === 'swap' && op.b === 0)).toBe(true);
    expect(sc.ops.some((op) => op.k === 'exit' || op.k === 'kill')).toBe(true);
    const r = runScenario(sc, { schedule: scheduleFor('pct', seed, 118, 3) });
    expect(r.finding?.message ?? null).toBeNull();
    expect(r.opsDone).toBeGreaterThan(500);
  });

  it('the fixed dmirror chunk removal waits out a passing reference on a device page instead of leaving memunmap_pages() waiting forever (clean under its trace and others)', () => {
    expectClean('./release-busy-page.hmm');
  });

  it('oracle: a CPU read concurrent with MADV_FREE of a swapped-out page reads zeros (clean under its trace and others)', () => {
    const { sc, schedule } = load('./madv-free-swap-read.hmm');
    // Under its trace the advice frees the swap entries before the read faults the pages in, so the
    // pages are zero at the end (had the read swapped them in first, they would keep their data).
    let reads = 0;
    runScenario(sc, {
      schedule,
      afterOp: (_w, op) => {
        if (op.k === 'read') reads++;
      },
      inspect: (w) => {
        const buf = new Uint8Array(4 * 4096);
        const slot = w.live(0);
        if (slot) w.kernel.sched.runSync(slot.proc.sys.access(0x7e0000000000, buf, 'read'), 'inspect');
        expect(buf.every((b) => b === 0)).toBe(true);
      },
    });
    expect(reads).toBe(1);
    for (const s of [schedule, ...OTHER])
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
  });

  it('oracle: a GPU read in flight across a lazy-free discard may return the old contents (clean under its trace and others)', () => {
    expectClean('./lazy-discard-gpu-read.hmm');
  });

  it('K6: with the fix off a split coherent THP has no pgmap (NULL dereference); with every fix on the run is clean', () => {
    const { sc, schedule, fixes } = load('./k6-coherent-split.hmm');
    expect(fixes).not.toContain('K6');
    const r = runScenario(sc, { schedule, fixes });
    // The lost pgmap is dereferenced by the next collection, or by free_zone_device_folio() when
    // the split (remap_page() with RMP_USE_SHARED_ZEROPAGE) freed an all-zero piece first.
    expect(r.finding?.message).toMatch(
      /NULL pointer dereference: (is_device_coherent_page\(\)|folio->pgmap)/,
    );
    for (const s of [schedule, ...OTHER])
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
  });

  it('K7: with the fix off a THP split mid-migration after a racing MADV_DONTNEED keeps an extra reference; with every fix on it is freed', () => {
    const { sc, schedule, fixes } = load('./k7-split-leak.hmm');
    expect(fixes).not.toContain('K7');
    const r = runScenario(sc, { schedule, fixes });
    expect(r.finding?.message.split('\n')[0]).toBe('invariants violated at the end');
    expect(r.finding?.details[0]).toMatch(/^folio 0x[0-9a-f]+: refcount 505 but 504 references/);
    // Under other schedules the zap comes before or after the migration: no leak either way.
    expect(runScenario(sc, { schedule: 'coop', fixes }).finding).toBeNull();
    for (const s of [schedule, ...OTHER])
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
  });

  it('K8: with the fix off the small-page fallback dereferences a failed allocation; with every fix on the run is clean', () => {
    const { sc, schedule, fixes } = load('./k8-fallback-null.hmm');
    expect(fixes).not.toContain('K8');
    const r = runScenario(sc, { schedule, fixes });
    expect(r.finding?.message).toMatch(/NULL pointer dereference in dmirror_migrate_alloc_and_copy/);
    for (const s of [schedule, ...OTHER])
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
  });

  it('K9: with the fix off the GPU keeps reading the VRAM of a page zapped during its migration; with every fix on the run is clean', () => {
    const { sc, schedule, fixes } = load('./k9-stale-vram.hmm');
    expect(fixes).not.toContain('K9');
    const r = runScenario(sc, { schedule, fixes });
    expect(r.finding?.message).toMatch(
      /^GPU read of p0 at 0x[0-9a-f]+: read 0x[0-9a-f]+, the oracle says 0x0$/,
    );
    for (const s of [schedule, ...OTHER])
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
  });

  it('a GPU bind is a syscall of its thread: the process no longer exits under it (page tables leaked at check_mm)', () => {
    expectClean('./gpu-bind-exit-pgtables.hmm');
  });

  it('a thread whose process exited runs no more user accesses (page tables leaked at check_mm)', () => {
    expectClean('./dead-thread-access.hmm');
  });

  it('oracle bug: a multi-VMA mremap(DONTUNMAP) over a source hole keeps the destination page facing the hole (remap_move())', () => {
    expectClean('./multi-vma-mremap-gap.hmm');
  });

  it("K10: with the fix off a GPU write racing nouveau's own migration to VRAM is lost; with every fix on the run is clean", () => {
    const { sc, schedule, fixes } = load('./k10-gpu-write-lost.hmm');
    expect(fixes).not.toContain('K10');
    const r = runScenario(sc, { schedule, fixes });
    expect(r.finding?.message).toMatch(
      /^verification read of p0 at 0x[0-9a-f]+: read 0x[0-9a-f]+, the oracle says 0x[0-9a-f]+$/,
    );
    for (const s of [schedule, ...OTHER])
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
  });

  it('K11: with the fix off a dmirror WRITE into a clean swap-cache page is lost at the next pageout; with every fix on the run is clean', () => {
    // A read fault of an exclusive swap entry maps the page writable but clean and leaves it in
    // the swap cache; dmirror_do_write()'s memcpy_to_page() never dirties it, so MADV_PAGEOUT drops
    // the folio without writeback and the next swap-in reads what was written before the device wrote.
    for (const name of ['./k11-swapcache-dm-write.hmm', './k11-concurrent-dm-write.hmm']) {
      const { sc, schedule, fixes } = load(name);
      expect(fixes).not.toContain('K11');
      expect(runScenario(sc, { schedule, fixes }).finding?.message).toMatch(
        /^CPU read of p0 at 0x[0-9a-f]+: read 0x[0-9a-f]+, the oracle says 0x[0-9a-f]+$/,
      );
      for (const s of [schedule, ...OTHER])
        expect(runScenario(sc, { schedule: s }).finding?.message ?? null, `${name} ${s}`).toBeNull();
    }
  });

  it('K12: with the fix off a GPU write into a clean swap-cache page is lost at the next pageout; with every fix on the run is clean', () => {
    const { sc, schedule, fixes } = load('./k12-swapcache-gpu-write.hmm');
    expect(fixes).not.toContain('K12');
    expect(runScenario(sc, { schedule, fixes }).finding?.message).toMatch(
      /^CPU read of p0 at 0x7e0000000000: read 0x6bccaac7, the oracle says 0x82934590$/,
    );
    // With only K12 off and K11 on, the dmirror variant is clean: each switch fixes its own driver.
    expect(runScenario(load('./k11-swapcache-dm-write.hmm').sc, { schedule, fixes }).finding).toBeNull();
    for (const s of [schedule, ...OTHER])
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
  });

  it('model bug (mTHP extension): a CPU fault on a device mTHP mremap() broke migrates only the fault page', () => {
    // dmirror_devmem_fault() took a whole device mTHP whenever its 16 pages were mapped, but one
    // of them was mapped elsewhere: the walk split the folio under the fault and (K13 off, as in
    // v6.19) took the first piece for the fault folio. It now asks for the whole range only when
    // the range maps the folio page by page (mthpMappedAsUnit()); clean with K13 on or off.
    const { sc, schedule } = load('./mthp-broken-unit-fault.hmm');
    const noK13 = ALL_FIXES.filter((f) => f !== 'K13');
    for (const s of [schedule, ...OTHER]) {
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
      expect(runScenario(sc, { schedule: s, fixes: noK13 }).finding?.message ?? null).toBeNull();
    }
  });

  it('model bug: direct reclaim no longer splits (and frees again) a deferred-split folio freed while it slept', () => {
    // try_to_free_pages() saw a partially mapped THP, slept in shrink_folio_list() for the batch
    // before it, and then locked, referenced and put the pfn as if it were still that folio: a
    // page freed meanwhile was freed twice and later handed out twice (a PTE mapping a freed page;
    // VM_BUG_ON in folio_remove_rmap_ptes at exit). deferred_split_scan() takes the folio with
    // folio_try_get() under the queue lock, so a freed folio is skipped.
    expectClean('./deferred-split-freed-folio.hmm');
  }, 60_000);

  it('model bug: munmap(2) keeps a PTE table a VMA beside the gap still covers (free_pgtables() floor and ceiling)', () => {
    // pnpm fuzz --seed 777: with the mmap_lock downgraded, munmap freed the empty PTE table of
    // the PMD while a dmirror migration in the VMA beside the gap had looked it up and was about
    // to insert a device-private entry into it: the entry went into a freed table, rss counted a
    // page no page table mapped ("Bad rss-counter state ... anon=1" at exit).
    expectClean('./munmap-shared-pte-table.hmm');
  });

  it('model bug (mTHP extension): a device mTHP split under a CPU fault hands the fault reference to the faulting page', () => {
    // The fault-back of a whole 64 KiB device folio whose system allocation fails (a pending
    // FAIL_ALLOC) splits it to base pages in migrate_vma_pages(); the fault's reference stayed on
    // the first piece, so the fault handler's final folio_put() underflowed another piece.
    const { sc, schedule } = load('./mthp-split-fault-ref.hmm');
    expect(sc.mthp).toBe(true);
    for (const s of [schedule, ...OTHER])
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
  });

  it('K9 fixed maps nothing but unmaps the range: no stale GPU entry of the migrated pages survives (v6.19 is clean here too)', () => {
    const { sc, schedule } = load('./k9-fix-unmaps.hmm');
    const v619 = ALL_FIXES.filter((f) => f !== 'K9');
    for (const s of [schedule, ...OTHER]) {
      expect(runScenario(sc, { schedule: s }).finding?.message ?? null).toBeNull();
      expect(runScenario(sc, { schedule: s, fixes: v619 }).finding?.message ?? null).toBeNull();
    }
  });

  it('fork restores a device-exclusive entry with the VMA protection (PROT_NONE stays inaccessible)', () => {
    expectClean('./exclusive-fork-protnone.hmm');
  });

  it('a write fault racing MADV_COLLAPSE no longer leaks an rss count into a deposited table', () => {
    expectClean('./collapse-fault-rss.hmm');
  });
});
