import { meminfoText, PG_zone_device, VMSTAT_ITEMS } from '@hmm-model/mm-core';
import { DMIRROR_NDEVICES, dmirrorPath } from '../dmirror-uapi.js';
import { fmtSize, hex, table } from '../format.js';
import { memoryTypeName } from '../inspect/folio.js';
import { machineOf } from '../machine.js';
import { fail, type Json, ok, UsageError } from '../result.js';
import { snapshotEntries, snapshotVmstat } from '../session.js';
import type { CommandSpec } from './types.js';

const vmstat: CommandSpec = {
  name: 'vmstat',
  group: 'inspect',
  usage: 'vmstat [all]',
  summary: 'vmstat counters with the change made by the last state-changing command',
  details: ['Without `all`, only counters that are non-zero or changed are listed.'],
  examples: ['vmstat', 'vmstat all'],
  mutates: false,
  maxArgs: 1,
  words: (i) => (i === 0 ? ['all'] : []),
  run(s, args) {
    if (args[0] !== undefined && args[0] !== 'all') throw new UsageError(`unknown vmstat word "${args[0]}"`);
    const now = snapshotVmstat(s.kernel);
    const rows = [
      ['counter', 'value', `change (${s.lastMutation ? `by \`${s.lastMutation}\`` : 'since start'})`],
    ];
    const data: { [k: string]: Json } = {};
    for (const k of VMSTAT_ITEMS) {
      const d = s.lastDelta.get(k) ?? 0;
      data[k] = { value: now[k], delta: d };
      if (args[0] !== 'all' && now[k] === 0 && d === 0) continue;
      rows.push([k, String(now[k]), d ? (d > 0 ? `+${d}` : String(d)) : '']);
    }
    return ok(table(rows), { counters: data, since: s.lastMutation });
  },
};

const meminfo: CommandSpec = {
  name: 'meminfo',
  group: 'inspect',
  usage: 'meminfo',
  summary: 'memory totals (models /proc/meminfo)',
  examples: ['meminfo'],
  mutates: false,
  maxArgs: 0,
  run(s) {
    const text = meminfoText(s.kernel.core).trimEnd().split('\n');
    const data: { [k: string]: Json } = {};
    for (const l of text) {
      const m = /^(\w+):\s+(\d+)/.exec(l);
      if (m) data[m[1]] = Number(m[2]);
    }
    return ok(text, data);
  },
};

const buddyinfo: CommandSpec = {
  name: 'buddyinfo',
  group: 'inspect',
  usage: 'buddyinfo',
  summary: 'free blocks per order of system RAM (models /proc/buddyinfo)',
  examples: ['buddyinfo'],
  mutates: false,
  maxArgs: 0,
  run(s) {
    const b = s.kernel.core.zone.buddyinfo();
    return ok(
      [
        `Node 0, zone Normal ${b.map((n) => String(n).padStart(6)).join(' ')}`,
        `  (orders 0..${b.length - 1}; order 9 = 2 MiB)`,
      ],
      {
        free: b,
      },
    );
  },
};

const devices: CommandSpec = {
  name: 'devices',
  group: 'inspect',
  usage: 'devices',
  summary: 'device files, device memory (dev_pagemaps) with used/free pages, system RAM free lists',
  examples: ['devices'],
  mutates: false,
  maxArgs: 0,
  run(s) {
    const core = s.kernel.core;
    const lines: string[] = ['device files:'];
    const files: Json[] = [];
    for (let n = 0; n < DMIRROR_NDEVICES; n++) {
      const path = dmirrorPath(n);
      const present = s.kernel.devices.has(path);
      const users = s.processes().filter((p) => s.openDevices(p.pid).some(([d]) => d === n));
      lines.push(
        `  ${path}  ${present ? `present${users.length ? `, open in pid ${users.map((p) => p.pid).join(',')}` : ''}` : 'absent'}${n === s.device ? '  (selected)' : ''}`,
      );
      files.push({ path, present });
    }
    const others = [...s.kernel.devices.keys()].filter(
      (p) => p.startsWith('/dev/') && !/hmm_dmirror\d$/.test(p),
    );
    for (const p of others) lines.push(`  ${p}  present`);
    if (!s.kernel.devices.has(dmirrorPath(0)))
      lines.push('  (the test_hmm dmirror driver is not installed in this machine)');
    const pgmaps: Json[] = [];
    const live = core.pgmaps.filter((p) => p !== undefined);
    lines.push(live.length ? 'device memory (dev_pagemap):' : 'device memory: none registered');
    const rows = [['  #', 'name', 'type', 'pfns', 'pages', 'in use', 'free', 'refs']];
    for (const p of live) {
      let used = 0;
      for (let pfn = p.startPfn; pfn < p.endPfn; pfn++) {
        const h = core.map.head[pfn];
        if (core.map.flags[pfn] & PG_zone_device && core.map.refcount[h] > 0) used++;
      }
      const total = p.endPfn - p.startPfn;
      rows.push([
        `  ${p.id}`,
        p.name,
        memoryTypeName(p.type).replace('MEMORY_DEVICE_', '').toLowerCase(),
        `${hex(p.startPfn)}-${hex(p.endPfn)}`,
        String(total),
        String(used),
        String(total - used),
        `${p.refs}${p.dying ? ' dying' : ''}`,
      ]);
      pgmaps.push({ id: p.id, name: p.name, type: memoryTypeName(p.type), pages: total, used, refs: p.refs });
    }
    if (live.length) lines.push(...table(rows));
    const drivers: Json[] = [];
    const dm = machineOf(s.kernel)?.dmirror;
    if (dm) {
      lines.push('dmirror device memory (lib/test_hmm.c):');
      const drows = [['  dev', 'type', 'chunks', 'free small', 'free THP', 'calloc', 'cfree']];
      for (const d of dm.devices) {
        drows.push([
          `  ${d.minor}`,
          d.isPrivate ? 'private' : 'coherent',
          String(d.chunks.length),
          String(d.nrFreePages),
          String(d.nrFreeFolios),
          String(d.calloc),
          String(d.cfree),
        ]);
        drivers.push({
          dev: d.minor,
          private: d.isPrivate,
          chunks: d.chunks.length,
          freePages: d.nrFreePages,
          freeFolios: d.nrFreeFolios,
          calloc: d.calloc,
          cfree: d.cfree,
        });
      }
      lines.push(...table(drows));
    }
    const b = core.zone.buddyinfo();
    lines.push(
      `system RAM: ${fmtSize(core.ramPages * 4096)}, free ${fmtSize(core.zone.nrFree * 4096)}; free blocks by order: ${b.map((n, o) => `${o}:${n}`).join(' ')}`,
    );
    return ok(lines, {
      files,
      pgmaps,
      dmirror: drivers,
      ramPages: core.ramPages,
      freePages: core.zone.nrFree,
      buddyinfo: b,
    });
  },
};

const check: CommandSpec = {
  name: 'invariants',
  aliases: ['fsck'],
  group: 'inspect',
  usage: 'invariants',
  summary: "run the model's invariant checker now, and list WARN_ON records",
  examples: ['invariants', 'fsck'],
  mutates: false,
  maxArgs: 0,
  run(s) {
    const k = s.kernel;
    const v = k.check();
    const warns = k.core.warnings.map((w) => w.message);
    const lines = [
      k.checkers.length
        ? `invariants: ${k.checkers.length} checker(s) run: ${v.length ? `${v.length} violation(s)` : 'no violations'}`
        : 'invariants: no checker is registered in this kernel yet (mm-core provides the hook); nothing was checked',
      ...v.map((x) => `  violation: ${x}`),
      `warnings (WARN_ON_ONCE records): ${warns.length || 'none'}`,
      ...warns.map((w) => `  ${w}`),
      `after every syscall: ${k.checkInvariants ? 'on' : 'off (start with --check-invariants)'}`,
      ...(s.taint
        ? [
            `kernel tainted: ${s.taint.flags} (modelled kernel failures; migration entries and locks they left behind are expected)`,
            ...s.taint.events.map((e) => `  ${e}`),
          ]
        : []),
    ];
    if (v.length)
      return {
        ...fail('invariants', 'violated', `${v.length} invariant violation(s)`, undefined, lines),
        data: { violations: v, warnings: warns },
      };
    return ok(lines, { checkers: k.checkers.length, violations: v, warnings: warns });
  },
};

const entries: CommandSpec = {
  name: 'entries',
  group: 'inspect',
  usage: 'entries',
  summary:
    "page-table entries written since boot by level and kind, with the last command's change (model-only)",
  details: [
    'Counts every leaf entry the kernel wrote with set_pte()/set_pmd(): present, zero page, PROT_NONE,',
    'migration, device-private, device-exclusive and swap entries, at PTE and at PMD level. Transient',
    'entries count too: a migration PMD exists only while a migration runs. The change column is the',
    "last state-changing command's own writes (the shell's scaffolding is not counted).",
  ],
  examples: ['entries'],
  mutates: false,
  maxArgs: 0,
  run(s) {
    const now = snapshotEntries(s.kernel);
    // Counts only grow: every kind the last command wrote is in `now`.
    const kinds = Object.keys(now);
    const rows = [
      ['entry', 'written', `change (${s.lastMutation ? `by \`${s.lastMutation}\`` : 'since start'})`],
    ];
    const data: { [k: string]: Json } = {};
    for (const k of kinds) {
      const d = s.lastDelta.get(k) ?? 0;
      data[k] = { value: now[k] ?? 0, delta: d };
      rows.push([k, String(now[k] ?? 0), d ? (d > 0 ? `+${d}` : String(d)) : '']);
    }
    if (rows.length === 1) return ok(['entries: no page-table entry written yet'], { entries: data });
    return ok(table(rows), { entries: data, since: s.lastMutation });
  },
};

/** The statistics commands: vmstat, entries, meminfo, buddyinfo, devices, invariants. */
export const STATS_COMMANDS: readonly CommandSpec[] = [vmstat, entries, meminfo, buddyinfo, devices, check];
