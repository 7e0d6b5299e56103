/**
 * Model-only: a recording mmu notifier for tests and the shell. It observes every invalidation
 * the core mm sends on the mms it is attached to (each invalidate_range_start()/end() pair, with
 * event, range, owner and nesting, and exit_mmap()'s mmu_notifier_release() as an
 * MMU_NOTIFY_RELEASE range over [0, ULONG_MAX)): what an interval notifier over the whole
 * address space would be told, plus the ends.
 */
import { MMU_NOTIFY_EVENT_NAMES, ULONG_MAX } from './notifier.js';
import type { MmStruct, MmuNotifierObserver, MmuNotifierRange } from './types.js';

/** Model-only: one invalidation a {@link NotifierRecorder} saw. */
export interface RecordedInvalidation {
  /** Id of the mm (mm_struct) invalidated. */
  readonly mm: number;
  /** enum mmu_notifier_event value. */
  readonly event: number;
  /** The event's kernel name, e.g. "MMU_NOTIFY_CLEAR". */
  readonly name: string;
  readonly start: number;
  /** Exclusive end; {@link ULONG_MAX} for the whole address space. */
  readonly end: number;
  /** range->owner (MIGRATE and EXCLUSIVE events carry the driver's pgmap owner). */
  readonly owner: unknown;
  /** Invalidations of the same mm still open when this one started (0 = not nested). */
  readonly depth: number;
  /** True once the matching invalidate_range_end() was seen. */
  ended: boolean;
}

/** Model-only: records the invalidations of the mms it is attached to, in start order. */
export class NotifierRecorder {
  readonly events: RecordedInvalidation[] = [];
  private readonly open = new Map<MmuNotifierRange, RecordedInvalidation>();
  private readonly observers = new Map<MmStruct, MmuNotifierObserver>();
  private readonly openPerMm = new Map<MmStruct, number>();

  /** Starts observing `mm`; attaching twice is a no-op. */
  attach(mm: MmStruct): void {
    if (this.observers.has(mm)) return;
    const o: MmuNotifierObserver = {
      start: (range) => {
        const depth = this.openPerMm.get(mm) ?? 0;
        this.openPerMm.set(mm, depth + 1);
        const rec: RecordedInvalidation = {
          mm: mm.id,
          event: range.event,
          name: MMU_NOTIFY_EVENT_NAMES[range.event] ?? `event ${range.event}`,
          start: range.start,
          end: range.end,
          owner: range.owner,
          depth,
          ended: false,
        };
        this.events.push(rec);
        this.open.set(range, rec);
      },
      end: (range) => {
        this.openPerMm.set(mm, (this.openPerMm.get(mm) ?? 1) - 1);
        const rec = this.open.get(range);
        if (!rec) return;
        rec.ended = true;
        this.open.delete(range);
      },
    };
    mm.notifierObservers.add(o);
    this.observers.set(mm, o);
  }

  /** Stops observing `mm`. */
  detach(mm: MmStruct): void {
    const o = this.observers.get(mm);
    if (!o) return;
    mm.notifierObservers.delete(o);
    this.observers.delete(mm);
  }

  /** Stops observing every mm. */
  detachAll(): void {
    for (const mm of [...this.observers.keys()]) this.detach(mm);
  }

  /** True when the recorder observes `mm`. */
  attached(mm: MmStruct): boolean {
    return this.observers.has(mm);
  }

  /** Forgets what was recorded (open invalidations stay tracked so their ends still pair). */
  clear(): void {
    this.events.length = 0;
  }

  /** The recorded invalidations as compact tuples [name, start, end] (for assertions). */
  ranges(mm?: MmStruct): [string, number, number][] {
    return this.events.filter((e) => mm === undefined || e.mm === mm.id).map((e) => [e.name, e.start, e.end]);
  }

  /** Invalidations whose end has not been seen (a start without its end is a pairing bug). */
  unpaired(): RecordedInvalidation[] {
    return this.events.filter((e) => !e.ended);
  }
}
