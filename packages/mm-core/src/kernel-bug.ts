/**
 * Failures of the *modelled kernel*: an oops, BUG()/VM_BUG_ON() or a WARN that the real kernel
 * code would hit on the same input, reproduced faithfully by the model. They are findings about
 * the kernel (or a driver), not about the model, and are kept apart from ModelBug, which means
 * the model's own state is inconsistent.
 */
import { Finding } from './sched/findings.js';

/**
 * Models the kinds of kernel failure reports: an oops (bad access), BUG()/VM_BUG_ON(), WARN(),
 * and panic() (the machine stops, e.g. out_of_memory() with no killable process).
 */
export type KernelBugKind = 'oops' | 'BUG' | 'VM_BUG_ON' | 'WARN' | 'panic';

/** Models what the kernel's report names: the failing function, its source file and the cause. */
export interface KernelBugReport {
  readonly kind: KernelBugKind;
  /** What went wrong, as the kernel's headline says it, e.g. "NULL pointer dereference". */
  readonly what: string;
  /** The function the report blames (the RIP symbol), e.g. "dmirror_migrate_alloc_and_copy". */
  readonly fn: string;
  /** The source file of that function, e.g. "lib/test_hmm.c". */
  readonly file: string;
  /** Why the code gets there, in words, e.g. "the small-page fallback does not check the allocation". */
  readonly why: string;
  /** The module the function lives in, for the RIP line ("test_hmm"); omitted for built-in code. */
  readonly module?: string;
  /** The faulting address of an oops (0 for a NULL page dereference). */
  readonly address?: number;
  /** A dump of the folio / entry / state involved (lines). */
  readonly dump?: string;
}

/** The source files of the kernel functions whose assertions the model reproduces. */
const FILES: Record<string, string> = {
  madvise_free_huge_pmd: 'mm/huge_memory.c',
  madvise_cold_or_pageout_pte_range: 'mm/madvise.c',
  migrate_vma_split_folio: 'mm/migrate_device.c',
  migrate_vma_collect_huge_pmd: 'mm/migrate_device.c',
  migrate_vma_insert_huge_pmd_page: 'mm/migrate_device.c',
  remove_migration_pmd: 'mm/huge_memory.c',
  set_pmd_migration_entry: 'mm/huge_memory.c',
  zap_huge_pmd: 'mm/huge_memory.c',
  page_vma_mapped_walk: 'mm/page_vma_mapped.c',
  check_mm: 'kernel/fork.c',
  folio_lock: 'mm/filemap.c',
  folio_unlock: 'mm/filemap.c',
  folio_put: 'include/linux/mm.h',
  out_of_memory: 'mm/oom_kill.c',
  pagetable_dtor: 'include/linux/mm.h',
  dmirror_devmem_fault: 'lib/test_hmm.c',
  dmirror_device_evict_chunk: 'lib/test_hmm.c',
  free_zone_device_folio: 'mm/memremap.c',
};

function reportOf(
  fn: string,
  check: string,
  details: readonly string[],
  kind: KernelBugKind,
): KernelBugReport {
  const file =
    FILES[fn] ??
    (fn.startsWith('dmirror')
      ? 'lib/test_hmm.c'
      : fn.startsWith('nouveau')
        ? 'drivers/gpu/drm/nouveau/nouveau_dmem.c'
        : 'mm/');
  return { kind, what: check, fn, file, why: '', dump: details.join('\n') };
}

/**
 * Models a kernel failure report (the oops / "kernel BUG at" / "WARNING:" console output of
 * die(), BUG() and __warn()) as an exception, and a finding for the explorer. Thrown where the
 * modelled kernel code itself would oops or BUG; the machine is left exactly as the failing code
 * left it, for inspection. Its message is the one-line summary, e.g. `kernel oops (modelled): NULL
 * pointer dereference in dmirror_migrate_alloc_and_copy (lib/test_hmm.c: the small-page fallback
 * does not check the allocation)`. The short form `new KernelBug(fn, check, details?)` is a
 * VM_BUG_ON at `fn` whose failed condition is `check`.
 */
export class KernelBug extends Finding {
  readonly kind: KernelBugKind;
  readonly what: string;
  readonly fn: string;
  readonly file: string;
  readonly why: string;
  readonly module: string | undefined;
  readonly address: number | undefined;
  readonly dump: string;

  constructor(report: KernelBugReport);
  constructor(fn: string, check: string, details?: readonly string[], kind?: KernelBugKind);
  constructor(
    a: KernelBugReport | string,
    check = '',
    details: readonly string[] = [],
    kind: KernelBugKind = 'VM_BUG_ON',
  ) {
    const report = typeof a === 'string' ? reportOf(a, check, details, kind) : a;
    super('kernel-bug', kernelBugSummary(report), report.dump ? report.dump.split('\n') : []);
    this.name = 'KernelBug';
    this.kind = report.kind;
    this.what = report.what;
    this.fn = report.fn;
    this.file = report.file;
    this.why = report.why;
    this.module = report.module;
    this.address = report.address;
    this.dump = report.dump ?? '';
  }

  /**
   * Models the first lines the kernel prints for this failure: `BUG: kernel NULL pointer
   * dereference, address: 0000000000000000` + `Oops: 0000 [#1] SMP` + `RIP: <fn> [<module>]` for
   * an oops, `kernel BUG at <file>!` for BUG/VM_BUG_ON, `WARNING: at <file> <fn>` for WARN,
   * followed by the dump lines; for a panic the dump lines come first, then `Kernel panic - not
   * syncing: <what>` and its `---[ end Kernel panic ... ]---` line.
   */
  consoleLines(): string[] {
    const rip = `RIP: 0010:${this.fn}${this.module ? ` [${this.module}]` : ''}`;
    const lines: string[] = [];
    switch (this.kind) {
      case 'oops': {
        const addr = (this.address ?? 0).toString(16).padStart(16, '0');
        lines.push(
          /NULL pointer/.test(this.what)
            ? `BUG: kernel NULL pointer dereference, address: ${addr}`
            : `BUG: unable to handle page fault for address: ${addr}`,
          'Oops: 0000 [#1] SMP',
          rip,
        );
        break;
      }
      case 'BUG':
      case 'VM_BUG_ON':
        lines.push(`kernel BUG at ${this.file}!`, 'Oops: invalid opcode: 0000 [#1] SMP', rip);
        break;
      case 'WARN':
        lines.push(`WARNING: at ${this.file} ${this.fn}`, rip);
        break;
      case 'panic':
        // panic() prints what led to it first (the dump), then its own two lines.
        if (this.dump) lines.push(...this.dump.split('\n'));
        lines.push(
          `Kernel panic - not syncing: ${this.what}`,
          `---[ end Kernel panic - not syncing: ${this.what} ]---`,
        );
        return lines;
    }
    if (this.dump) lines.push(...this.dump.split('\n'));
    return lines;
  }
}

/**
 * Models the taint flag the failure sets (add_taint()): D (TAINT_DIE) for an oops or BUG, W for a
 * WARN. panic() sets no taint (the machine stops); the model reports D for it too, as the kernel
 * is dead from then on.
 */
export function kernelBugTaint(kind: KernelBugKind): 'D' | 'W' {
  return kind === 'WARN' ? 'W' : 'D';
}

/** Models the one-line summary of a kernel failure report (see {@link KernelBug}). */
export function kernelBugSummary(r: KernelBugReport): string {
  const label = r.kind === 'oops' ? 'kernel oops' : r.kind === 'WARN' ? 'kernel WARN' : `kernel ${r.kind}`;
  const where = r.why ? `${r.file}: ${r.why}` : r.file;
  return `${label} (modelled): ${r.what} in ${r.fn} (${where})`;
}

/** Throws a {@link KernelBug} for `fn` when `cond` holds (models BUG_ON/VM_BUG_ON at that site). */
export function kernelBugOn(cond: boolean, fn: string, check: string, dump?: () => string): void {
  if (cond) throw new KernelBug(fn, check, dump ? [dump()] : []);
}
