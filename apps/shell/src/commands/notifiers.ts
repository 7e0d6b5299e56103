import { MMU_NOTIFY_EVENT_NAMES, type RecordedInvalidation, ULONG_MAX } from '@hmm-model/mm-core';
import { fmtSize, hex, table } from '../format.js';
import { type Json, ok } from '../result.js';
import type { Session } from '../session.js';
import type { CommandSpec } from './types.js';

/** A readable name for range->owner: a device's path or name, or "-" for NULL. */
function ownerName(owner: unknown): string {
  if (owner === null || owner === undefined) return '-';
  if (typeof owner === 'object') {
    const o = owner as { path?: unknown; name?: unknown };
    if (typeof o.path === 'string') return o.path;
    if (typeof o.name === 'string') return o.name;
  }
  return 'an object';
}

function endText(e: RecordedInvalidation): string {
  return e.end === ULONG_MAX ? 'ULONG_MAX' : hex(e.end);
}

/** The pid whose mm has this id, if the process is still known. */
function pidOfMm(s: Session, mm: number): string {
  const p = s.processes().find((q) => q.mm.id === mm);
  return p ? String(p.pid) : `mm ${mm}`;
}

/**
 * Model-only: the shell's `notifiers` command, the mmu-notifier invalidations the last state-changing command sent (what a
 * device driver's mirror is told), in start order, nested ones indented.
 */
export const notifiers: CommandSpec = {
  name: 'notifiers',
  group: 'inspect',
  usage: 'notifiers',
  summary: 'mmu-notifier invalidations (event, range, owner) the last state-changing command sent',
  details: [
    'Every invalidate_range_start()/end() pair the core mm or a driver sent on any process, as a',
    'mirror (an interval notifier over the whole address space) would see it: MMU_NOTIFY_UNMAP,',
    'CLEAR, PROTECTION_VMA, PROTECTION_PAGE, RELEASE, MIGRATE, EXCLUSIVE; owner is range->owner',
    '(a device for its own MIGRATE and EXCLUSIVE events). Nested invalidations are indented.',
  ],
  examples: ['notifiers'],
  mutates: false,
  maxArgs: 0,
  run(s) {
    const evs = s.lastNotifiers;
    const by = s.lastNotifierLine ? `by \`${s.lastNotifierLine}\`` : 'since start';
    if (evs.length === 0) return ok([`notifiers: no invalidation sent ${by}`], { events: [], since: by });
    const rows = [['pid', 'event', 'start', 'end', 'size', 'owner']];
    const data: Json[] = [];
    for (const e of evs) {
      const name = `${'  '.repeat(e.depth)}${MMU_NOTIFY_EVENT_NAMES[e.event] ?? e.name}`;
      const size = e.end === ULONG_MAX ? 'all' : fmtSize(e.end - e.start);
      rows.push([pidOfMm(s, e.mm), name, hex(e.start), endText(e), size, ownerName(e.owner)]);
      data.push({
        mm: e.mm,
        event: e.name,
        start: e.start,
        end: e.end === ULONG_MAX ? 'ULONG_MAX' : e.end,
        owner: ownerName(e.owner),
        depth: e.depth,
        paired: e.ended,
      });
    }
    const unpaired = evs.filter((e) => !e.ended).length;
    return ok(
      [
        `notifiers: ${evs.length} invalidation(s) sent ${by}`,
        ...table(rows).map((l) => `  ${l}`),
        ...(unpaired ? [`  ${unpaired} invalidation(s) without invalidate_range_end()`] : []),
      ],
      { events: data, since: by },
    );
  },
};
