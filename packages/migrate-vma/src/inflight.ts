import type { Core } from '@hmm-model/mm-core';
import type { MigrateVma } from './types.js';

/**
 * Model-only (no kernel symbol): where a migration is between its start and its finalize:
 * 'collecting' while migrate_vma_collect()/unmap run (slots appear one by one, references are
 * still moving), 'collected' once setup returned, 'pages' after migrate_vma_pages().
 */
export type InflightPhase = 'collecting' | 'collected' | 'pages';

/**
 * Model-only (no kernel symbol; the kernel keeps this state in the caller's struct
 * migrate_vma): one migration between the start of its setup
 * (migrate_vma_setup() or migrate_device_range()/_pfns()) and its finalize: the window in
 * which the kernel holds locked source folios behind migration entries. Nothing in the kernel
 * corresponds (the state lives in the caller's src/dst arrays); the invariant checker reads it
 * and Core.migrationsInFlight follows it.
 */
export interface InflightMigration {
  /** The struct migrate_vma of a VMA-based migration, or null for the pfn-based API. */
  readonly mig: MigrateVma | null;
  /** src[] (migrate->src, or the src_pfns argument). */
  readonly src: Float64Array;
  /** dst[] (migrate->dst; for the pfn-based API known only from migrate_device_pages()). */
  readonly dst: Float64Array;
  /** Slots in use (migrate->npages, growing during collection, or the npages argument). */
  readonly npages: number;
  /** migrate->fault_page, or -1. */
  readonly faultPage: number;
  readonly phase: InflightPhase;
}

class Inflight implements InflightMigration {
  phase: InflightPhase = 'collecting';
  constructor(
    readonly mig: MigrateVma | null,
    private pfnSrc: Float64Array,
    private pfnDst: Float64Array,
    private pfnNpages: number,
  ) {}
  get src(): Float64Array {
    return this.mig ? this.mig.src : this.pfnSrc;
  }
  get dst(): Float64Array {
    return this.mig ? this.mig.dst : this.pfnDst;
  }
  set dst(d: Float64Array) {
    this.pfnDst = d;
  }
  get npages(): number {
    return this.mig ? this.mig.npages : this.pfnNpages;
  }
  get faultPage(): number {
    return this.mig ? this.mig.faultPage : -1;
  }
}

const registry = new WeakMap<Core, Map<object, Inflight>>();

function mapOf(core: Core): Map<object, Inflight> {
  let m = registry.get(core);
  if (!m) {
    m = new Map();
    registry.set(core, m);
  }
  return m;
}

/**
 * Model-only (no kernel symbol): records the start of a VMA-based migration, before
 * migrate_vma_collect() takes its first folio lock.
 */
export function migrationBeginVma(core: Core, mig: MigrateVma): void {
  const m = mapOf(core);
  if (m.has(mig)) return;
  m.set(mig, new Inflight(mig, mig.src, mig.dst, 0));
  core.migrationsInFlight++;
}

/**
 * Model-only (no kernel symbol): records the start of a pfn-based migration
 * (migrate_device_range()/_pfns()), keyed by its src array.
 */
export function migrationBeginPfns(core: Core, src: Float64Array, npages: number): void {
  const m = mapOf(core);
  if (m.has(src)) return;
  m.set(src, new Inflight(null, src, new Float64Array(0), npages));
  core.migrationsInFlight++;
}

/** Model-only (no kernel symbol): the end of collection and unmap, setup has returned. */
export function migrationCollected(core: Core, key: object): void {
  const rec = registry.get(core)?.get(key);
  if (rec) rec.phase = 'collected';
}

/**
 * Model-only (no kernel symbol): migrate_vma_pages()/migrate_device_pages() ran for the
 * migration keyed by `key` (the pfn-based API learns its dst array only here).
 */
export function migrationPagesDone(core: Core, key: object, dst?: Float64Array): void {
  const rec = registry.get(core)?.get(key);
  if (!rec) return;
  rec.phase = 'pages';
  if (dst && !rec.mig) rec.dst = dst;
}

/** Model-only (no kernel symbol): forgets `key`'s migration (finalize ran, or nothing was collected). */
export function migrationEnd(core: Core, key: object): void {
  const m = registry.get(core);
  if (m?.delete(key)) core.migrationsInFlight--;
}

/** Model-only (no kernel symbol): the migrations of `core` between setup and finalize. */
export function inflightMigrations(core: Core): readonly InflightMigration[] {
  const m = registry.get(core);
  return m ? [...m.values()] : [];
}
