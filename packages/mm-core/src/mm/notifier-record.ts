/**
 * Model-only: a recording mmu notifier for tests and the shell. It is a plain struct
 * mmu_notifier (hlist) subscription, so it sees what a secondary MMU sees: every
 * invalidate_range_start()/end() pair of the mms it is registered on, with event, range and
 * owner, and ->release() at exit.
 */
import { MMU_NOTIFY_EVENT_NAMES, mmuNotifierRegister, mmuNotifierUnregister, ULONG_MAX } from './notifier.js';
import { type MmStruct, MmuNotifier, type MmuNotifierRange } from './types.js';

/** Model-only: one invalidation a {@link NotifierRecorder} saw. */
export interface RecordedInvalidation {
  /** Id of the mm (mm_struct) invalidated. */
  readonly mm: number;
  /** enum mmu_notifier_event value; -1 for a ->release() (mmu_notifier_release()). */
  readonly event: number;
  /** The event's kernel name, e.g. "MMU_NOTIFY_CLEAR", or "release". */
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
  private readonly subs = new Map<MmStruct, MmuNotifier>();
  private readonly openPerMm = new Map<MmStruct, number>();

  /** Registers the recorder on `mm` (mmu_notifier_register()); attaching twice is a no-op. */
  attach(mm: MmStruct): void {
    if (this.subs.has(mm) && mm.notifierList.has(this.subs.get(mm)!)) return;
    const sub = new MmuNotifier({
      invalidateRangeStart: (_s, range) => {
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
      invalidateRangeEnd: (_s, range) => {
        const rec = this.open.get(range);
        if (!rec) return;
        rec.ended = true;
        this.open.delete(range);
        this.openPerMm.set(mm, (this.openPerMm.get(mm) ?? 1) - 1);
      },
      release: () => {
        this.events.push({
          mm: mm.id,
          event: -1,
          name: 'release',
          start: 0,
          end: ULONG_MAX,
          owner: null,
          depth: this.openPerMm.get(mm) ?? 0,
          ended: true,
        });
      },
    });
    if (mmuNotifierRegister(sub, mm) === 0) this.subs.set(mm, sub);
  }

  /** Unregisters the recorder from `mm` (mmu_notifier_unregister(), without its ->release record). */
  detach(mm: MmStruct): void {
    const sub = this.subs.get(mm);
    if (!sub) return;
    mm.notifierList.delete(sub);
    mmuNotifierUnregister(sub, mm);
    this.subs.delete(mm);
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
