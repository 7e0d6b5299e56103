import { describe, expect, it } from 'vitest';
import {
  EINVAL,
  ENOMEM,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_NORESERVE,
  MAP_PRIVATE,
  MAP_SHARED,
  MREMAP_MAYMOVE,
  PROT_READ,
  PROT_WRITE,
} from '../constants.js';
import type { Kernel } from '../kernel.js';
import type { Process } from '../process.js';
import { machine, readProcFile, writeProcFile } from '../testing/helpers.js';
import {
  accountableMapping,
  OVERCOMMIT_ALWAYS,
  OVERCOMMIT_NEVER,
  overcommitSysctls,
  vmCommitLimit,
  vmMemoryCommitted,
} from './overcommit.js';
import { VM_ACCOUNT, VM_HUGETLB, VM_NORESERVE, VM_READ, VM_SHARED, VM_WRITE } from './types.js';

const MiB = 1 << 20;
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

const readFile = readProcFile;

/** Writes a sysctl through /proc/sys/vm as `echo value > file` does; returns pwrite's result. */
function sysctl(p: Process, name: string, value: string): number {
  return writeProcFile(p, `/proc/sys/vm/${name}`, value);
}

function meminfoKb(p: Process, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(readFile(p, '/proc/meminfo'));
  if (!m) throw new Error(`no ${field} in /proc/meminfo`);
  return Number(m[1]);
}

/** A 256 MiB machine without swap unless `swapBytes` is given. */
function setup(swapBytes = 0): { k: Kernel; p: Process } {
  const k = machine('madvise', { swapBytes });
  return { k, p: k.spawn() };
}

describe('overcommit: OVERCOMMIT_GUESS (the default)', () => {
  it('refuses a single private writable mapping larger than RAM + swap, as __vm_enough_memory does', () => {
    const { k, p } = setup();
    expect(readFile(p, '/proc/sys/vm/overcommit_memory')).toBe('0\n');
    expect(k.core.ramPages).toBe(65536);
    expect(p.mmap(0, 256 * MiB + 4096, RW, ANON)).toBe(-ENOMEM);
    expect(p.mmap(0, 256 * MiB, RW, ANON)).toBeGreaterThan(0);
    // Not accountable: read-only, MAP_NORESERVE; the heuristic never looks at them.
    expect(p.mmap(0, 4096 * MiB, PROT_READ, ANON)).toBeGreaterThan(0);
    expect(p.mmap(0, 4096 * MiB, RW, ANON | MAP_NORESERVE)).toBeGreaterThan(0);
    // Shared anonymous memory is charged through its shmem inode (shmem_acct_size()).
    expect(p.mmap(0, 512 * MiB, RW, MAP_SHARED | MAP_ANONYMOUS)).toBe(-ENOMEM);
    expect(p.mmap(0, 512 * MiB, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE)).toBeGreaterThan(0);
    // The heuristic looks at one request only: many mappings may add up past RAM.
    expect(p.mmap(0, 200 * MiB, RW, ANON)).toBeGreaterThan(0);
    expect(meminfoKb(p, 'Committed_AS')).toBe((256 + 200) * 1024);
    expect(k.check()).toEqual([]);
  });

  it('refuses growing a mapping past RAM with mremap, and sets VM_ACCOUNT / VM_NORESERVE on the VMAs', () => {
    const { p } = setup();
    const a = p.mmap(0, 16 * MiB, RW, ANON);
    expect(p.mm.vmaLookup(a)?.flags ?? 0).toSatisfy((f: number) => (f & VM_ACCOUNT) !== 0);
    expect(p.mremap(a, 16 * MiB, 300 * MiB, MREMAP_MAYMOVE)).toBe(-ENOMEM);
    const b = p.mremap(a, 16 * MiB, 32 * MiB, MREMAP_MAYMOVE);
    expect(b).toBeGreaterThan(0);
    expect(meminfoKb(p, 'Committed_AS')).toBe(32 * 1024);
    const n = p.mmap(0, 8 * MiB, RW, ANON | MAP_NORESERVE);
    const f = p.mm.vmaLookup(n)?.flags ?? 0;
    expect([f & VM_NORESERVE, f & VM_ACCOUNT]).toEqual([VM_NORESERVE, 0]);
  });
});

describe('Committed_AS follows every mapping, unmapping, fork and exit', () => {
  it('counts VM_ACCOUNT pages of every live mm and drops them on munmap and exit', () => {
    const { k, p } = setup();
    const base = meminfoKb(p, 'Committed_AS');
    expect(base).toBe(0);
    const a = p.mmap(0, 16 * MiB, RW, ANON);
    expect(meminfoKb(p, 'Committed_AS')).toBe(16 * 1024);
    expect(p.munmap(a + 4 * MiB, 8 * MiB)).toBe(0);
    expect(meminfoKb(p, 'Committed_AS')).toBe(8 * 1024);
    const pid = p.fork();
    expect(pid).toBeGreaterThan(0);
    expect(meminfoKb(p, 'Committed_AS')).toBe(16 * 1024);
    k.task(pid)?.exit(0);
    expect(meminfoKb(p, 'Committed_AS')).toBe(8 * 1024);
    // MAP_FIXED over an accounted range replaces its charge instead of adding to it.
    expect(p.mmap(a, 4 * MiB, RW, ANON | MAP_FIXED)).toBe(a);
    expect(meminfoKb(p, 'Committed_AS')).toBe(8 * 1024);
    p.exit(0);
    expect(vmMemoryCommitted(k.core)).toBe(0);
  });
});

describe('overcommit: swap (total_swap_pages)', () => {
  it('adds the swap area to the OVERCOMMIT_GUESS limit and to CommitLimit, as __vm_enough_memory and vm_commit_limit do', () => {
    // 64 MiB of swap: 16384 pages less the header slot (si->pages).
    const { k, p } = setup(64 * MiB);
    expect(meminfoKb(p, 'SwapTotal')).toBe(16383 * 4);
    expect(p.mmap(0, 320 * MiB, RW, ANON)).toBe(-ENOMEM);
    expect(p.mmap(0, 320 * MiB - 4096, RW, ANON)).toBeGreaterThan(0);
    expect(vmCommitLimit(k.core)).toBe(31744 + 16383);
    expect(meminfoKb(p, 'CommitLimit')).toBe((31744 + 16383) * 4);
  });
});

describe('overcommit: OVERCOMMIT_NEVER', () => {
  it('keeps Committed_AS under CommitLimit = (RAM - hugetlb) * ratio + swap', () => {
    const { k, p } = setup();
    expect(sysctl(p, 'overcommit_memory', '2\n')).toBe(2);
    expect(readFile(p, '/proc/sys/vm/overcommit_memory')).toBe('2\n');
    // 256 MiB of RAM, a 4 x 2 MiB hugetlb pool, ratio 50: (65536 - 2048) / 2 pages.
    expect(vmCommitLimit(k.core)).toBe(31744);
    expect(meminfoKb(p, 'CommitLimit')).toBe(31744 * 4);
    expect(p.mmap(0, 100 * MiB, RW, ANON)).toBeGreaterThan(0);
    // 25600 + 7168 pages would reach the limit (less the user reserve, total_vm / 32 = 800).
    expect(p.mmap(0, 28 * MiB, RW, ANON)).toBe(-ENOMEM);
    expect(p.mmap(0, 20 * MiB, RW, ANON)).toBeGreaterThan(0);
    // MAP_NORESERVE is ignored under OVERCOMMIT_NEVER.
    expect(p.mmap(0, 8 * MiB, RW, ANON | MAP_NORESERVE)).toBe(-ENOMEM);
    // Read-only mappings are not charged.
    expect(p.mmap(0, 1024 * MiB, PROT_READ, ANON)).toBeGreaterThan(0);
    // fork charges the child's copy of every accounted VMA: 2 x 120 MiB does not fit.
    expect(p.fork()).toBe(-ENOMEM);
    expect(meminfoKb(p, 'Committed_AS')).toBe(120 * 1024);
    // A larger ratio raises the limit (and clears overcommit_kbytes).
    expect(sysctl(p, 'overcommit_ratio', '100')).toBe(3);
    expect(meminfoKb(p, 'CommitLimit')).toBe(63488 * 4);
    expect(p.mmap(0, 20 * MiB, RW, ANON)).toBeGreaterThan(0);
    // overcommit_kbytes replaces the ratio (which reads back as 0).
    expect(sysctl(p, 'overcommit_kbytes', '65536')).toBe(5);
    expect(readFile(p, '/proc/sys/vm/overcommit_ratio')).toBe('0\n');
    expect(meminfoKb(p, 'CommitLimit')).toBe(65536);
    expect(p.mmap(0, 4096, RW, ANON)).toBe(-ENOMEM);
    expect(k.check()).toEqual([]);
  });

  it('subtracts the user reserve: min(total_vm / 32, user_reserve_kbytes)', () => {
    const { k, p } = setup();
    overcommitSysctls(k.core).overcommit_memory = OVERCOMMIT_NEVER;
    // 3 GiB of read-only address space makes total_vm / 32 = 96 MiB, above the reserve.
    expect(p.mmap(0, 3072 * MiB, PROT_READ, ANON)).toBeGreaterThan(0);
    const reserveKb = overcommitSysctls(k.core).user_reserve_kbytes;
    expect(reserveKb).toBe(Math.min(Math.floor((k.core.zone.nrFree * 4) / 32), 128 * 1024));
    const roomKb = 31744 * 4 - reserveKb;
    expect(p.mmap(0, roomKb * 1024, RW, ANON)).toBe(-ENOMEM);
    expect(p.mmap(0, (roomKb - 4) * 1024, RW, ANON)).toBeGreaterThan(0);
  });

  it('rejects a bad policy, and anything that is not an integer', () => {
    const { p } = setup();
    expect(sysctl(p, 'overcommit_memory', '3')).toBe(-EINVAL);
    expect(sysctl(p, 'overcommit_memory', 'two')).toBe(-EINVAL);
    expect(sysctl(p, 'overcommit_kbytes', '-1')).toBe(-EINVAL);
    expect(readFile(p, '/proc/sys/vm/overcommit_memory')).toBe('0\n');
  });
});

describe('overcommit: OVERCOMMIT_ALWAYS', () => {
  it('grants anything and still counts it in Committed_AS', () => {
    const { k, p } = setup();
    overcommitSysctls(k.core).overcommit_memory = OVERCOMMIT_ALWAYS;
    expect(p.mmap(0, 100 * 1024 * MiB, RW, ANON)).toBeGreaterThan(0);
    expect(meminfoKb(p, 'Committed_AS')).toBe(100 * 1024 * 1024);
  });
});

describe('accountable_mapping()', () => {
  it('charges private writable mappings only', () => {
    expect(accountableMapping(VM_READ | VM_WRITE)).toBe(true);
    expect(accountableMapping(VM_READ)).toBe(false);
    expect(accountableMapping(VM_READ | VM_WRITE | VM_SHARED)).toBe(false);
    expect(accountableMapping(VM_READ | VM_WRITE | VM_NORESERVE)).toBe(false);
    expect(accountableMapping(VM_READ | VM_WRITE | VM_HUGETLB)).toBe(false);
  });
});
