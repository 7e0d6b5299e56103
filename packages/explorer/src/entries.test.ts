import { describe, expect, it } from 'vitest';
import { campaign, formatEntryKinds } from './explore.js';
import { parseOp } from './op.js';
import { runScenario, type Scenario } from './run.js';

function scenario(prelude: string[], ops: string[]): Scenario {
  return { procs: 1, threads: 1, prelude: prelude.map(parseOp), ops: ops.map(parseOp) };
}

describe('entry kinds reached (page-table entries written, by level and kind)', () => {
  it('a THP migrated to a device and faulted back installs migration and device-private PMDs', () => {
    const sc = scenario(
      ['p0.t0 mmap r0 512 thp prot 3', 'p0.t0 write r0 0+512 seed 1'],
      ['p0.t0 dm0 to-dev r0 0+512', 'p0.t0 read r0 0+512'],
    );
    const r = runScenario(sc, { schedule: 'coop' });
    expect(r.finding).toBeNull();
    // migrate_vma_collect_huge_pmd() freezes the PMD, migrate_vma_finalize() installs the
    // device-private PMD, and the CPU fault's migration back freezes it again.
    expect(r.entries['pmd migration-write']).toBe(2);
    expect(r.entries['pmd device-private-write']).toBe(1);
    expect(r.entries['pmd present']).toBeGreaterThanOrEqual(2);
    expect(r.entries['pte device-private-write']).toBeUndefined();
  });

  it('the same range without THP installs the PTE-level kinds instead', () => {
    const sc = scenario(
      ['p0.t0 mmap r0 512 prot 3', 'p0.t0 madvise r0 0+512 nohugepage', 'p0.t0 write r0 0+16 seed 1'],
      ['p0.t0 dm0 to-dev r0 0+16'],
    );
    const r = runScenario(sc, { schedule: 'coop' });
    expect(r.finding).toBeNull();
    expect(r.entries['pte device-private-write']).toBe(16);
    expect(r.entries['pte migration-write']).toBeGreaterThanOrEqual(16);
    expect(r.entries['pmd device-private-write']).toBeUndefined();
  });

  it("the CI seed's first 2,400 operations reach the series' PMD kinds and every PTE kind the mix makes", () => {
    // A coverage guard: a change to the mix or the generator that stops reaching device-private
    // or migration PMDs fails here, not silently in a campaign that still counts its operations.
    // (1,200 operations were enough until the threads of an OOM-killed process stopped starting
    // operations: the first swap PTE now comes after 1,600.)
    const res = campaign({ seed: 20261204, totalOps: 2400, ops: 400, strategy: 'random' });
    expect(res.failure).toBeNull();
    const e = res.stats.entries;
    for (const kind of [
      'present',
      'huge-zero',
      'migration-write',
      'migration-read',
      'device-private-write',
      'device-private-read',
    ])
      expect(e[`pmd ${kind}`], `pmd ${kind}`).toBeGreaterThan(0);
    for (const kind of [
      'present',
      'zero',
      'protnone',
      'migration-write',
      'migration-read',
      'migration-read-exclusive',
      'device-private-write',
      'device-private-read',
      'device-exclusive',
      'swap',
    ])
      expect(e[`pte ${kind}`], `pte ${kind}`).toBeGreaterThan(0);
  });

  it('formats the kinds PTE level first, in mm-core ENTRY_KINDS order', () => {
    expect(
      formatEntryKinds({ 'pmd migration-write': 3, 'pte zero': 2, 'pte present': 5, 'pmd huge-zero': 1 }),
    ).toBe('pte present 5, zero 2; pmd migration-write 3, huge-zero 1');
    expect(formatEntryKinds({})).toBe('none');
  });
});
