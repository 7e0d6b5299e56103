/**
 * Model-only event accounting: how much kernel work an operation did, counted where the model
 * does it. Nothing in the kernel keeps these counts (vmstat has some of them, per CPU and for
 * other purposes); they exist to answer "where does THP migration's speedup come from" by
 * comparing a 2 MiB THP migration with 512 base-page migrations side by side.
 */
import { EntryStats } from './entry-stats.js';

/** Model-only: the counters of {@link KernelEvents}, as plain data. */
export interface EventCounts {
  /** Page-table entries written (set_pte()/set_pmd()/pte_clear(): leaf, table and clear writes). */
  readonly ptesWritten: number;
  /** TLB flushes (flush_tlb_range()/flush_tlb_mm() calls, each one shootdown). */
  readonly tlbFlushes: number;
  /** mmu-notifier invalidations (mmu_notifier_invalidate_range_start() calls). */
  readonly mmuInvalidations: number;
  /** Folio locks taken (folio_trylock() successes and folio_lock()). */
  readonly folioLocks: number;
  /** rmap walks (rmap_walk(): try_to_migrate(), remove_migration_ptes() and other walks). */
  readonly rmapWalks: number;
  /** Driver copy commands: a copy engine command (nouveau) or a copy_highpage()/clear (dmirror). */
  readonly copyCommands: number;
  /** Bytes those commands copied or cleared. */
  readonly copyBytes: number;
}

/** Model-only: the event names in display order. */
export const EVENT_NAMES: readonly (keyof EventCounts)[] = [
  'ptesWritten',
  'tlbFlushes',
  'mmuInvalidations',
  'folioLocks',
  'rmapWalks',
  'copyCommands',
  'copyBytes',
];

/**
 * Model-only (no kernel counterpart): running totals of kernel events on one machine
 * (`core.events`). Take a {@link KernelEvents.snapshot} before an operation and
 * {@link eventsSince} after it for the operation's counts.
 */
export class KernelEvents implements EventCounts {
  /** Model-only: leaf entries written by level and kind (the explorer's "entry kinds reached"). */
  readonly entries = new EntryStats();
  ptesWritten = 0;
  tlbFlushes = 0;
  mmuInvalidations = 0;
  folioLocks = 0;
  rmapWalks = 0;
  copyCommands = 0;
  copyBytes = 0;

  /** Model-only: records `commands` driver copy commands moving `bytes` bytes in all. */
  copy(commands: number, bytes: number): void {
    this.copyCommands += commands;
    this.copyBytes += bytes;
  }

  /** Model-only: the current totals as plain data. */
  snapshot(): EventCounts {
    return {
      ptesWritten: this.ptesWritten,
      tlbFlushes: this.tlbFlushes,
      mmuInvalidations: this.mmuInvalidations,
      folioLocks: this.folioLocks,
      rmapWalks: this.rmapWalks,
      copyCommands: this.copyCommands,
      copyBytes: this.copyBytes,
    };
  }
}

/** Model-only: the events counted since `before` (a {@link KernelEvents.snapshot}). */
export function eventsSince(events: EventCounts, before: EventCounts): EventCounts {
  return {
    ptesWritten: events.ptesWritten - before.ptesWritten,
    tlbFlushes: events.tlbFlushes - before.tlbFlushes,
    mmuInvalidations: events.mmuInvalidations - before.mmuInvalidations,
    folioLocks: events.folioLocks - before.folioLocks,
    rmapWalks: events.rmapWalks - before.rmapWalks,
    copyCommands: events.copyCommands - before.copyCommands,
    copyBytes: events.copyBytes - before.copyBytes,
  };
}

/** Model-only: one line such as "ptes 514, tlb 3, mmu 2, locks 1, rmap 1, copies 512 (2 MiB)". */
export function formatEvents(e: EventCounts): string {
  const b = e.copyBytes;
  const size =
    b >= 2 ** 30 && b % 2 ** 30 === 0
      ? `${b / 2 ** 30} GiB`
      : b >= 2 ** 20 && b % 2 ** 20 === 0
        ? `${b / 2 ** 20} MiB`
        : b >= 1024 && b % 1024 === 0
          ? `${b / 1024} KiB`
          : `${b} B`;
  return (
    `PTEs written ${e.ptesWritten}, TLB flushes ${e.tlbFlushes}, mmu invalidations ${e.mmuInvalidations}, ` +
    `folio locks ${e.folioLocks}, rmap walks ${e.rmapWalks}, copy commands ${e.copyCommands} (${size})`
  );
}
