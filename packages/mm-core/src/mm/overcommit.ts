/**
 * Overcommit accounting: the vm.overcommit_* sysctls, __vm_enough_memory() and the VM_ACCOUNT
 * charges of mmap(2), mremap(2) and fork(2) (mm/util.c, mm/vma.c, mm/mremap.c, mm/mmap.c).
 *
 * vm_committed_as is not kept as a running counter here: it is, by the kernel's own invariant,
 * the number of pages of every VM_ACCOUNT VMA of every live mm (the only charges this model
 * has), so {@link vmMemoryCommitted} sums exactly that. Unmapping, shrinking, exit and VMA
 * splits therefore need no uncharge hook and cannot drift. A shared anonymous mapping is charged
 * its size once, through its shmem inode (shmem_acct_size()), until the inode goes away. What is
 * simplified: every process is root (cap_sys_admin, so admin_reserve_kbytes is not subtracted),
 * tmpfs files' per-block charges are not modelled, and mprotect() does not charge a private
 * mapping it makes writable. Swap is total_swap_pages of the machine's swap areas.
 */

import { EINVAL, ENOMEM, MAP_ANONYMOUS, MAP_FIXED, MAP_NORESERVE, PAGE_SIZE } from '../constants.js';
import type { Core } from '../core.js';
import type { FileOperations } from '../fs.js';
import { totalSwapPages } from './swapfile.js';
import {
  type Inode,
  type MmStruct,
  VM_ACCOUNT,
  VM_DONTCOPY,
  VM_HUGETLB,
  VM_NORESERVE,
  VM_SHARED,
  VM_WRITE,
  type Vma,
} from './types.js';

/** Models OVERCOMMIT_GUESS (include/uapi/linux/mman.h): heuristic overcommit, the default. */
export const OVERCOMMIT_GUESS = 0;
/** Models OVERCOMMIT_ALWAYS: never refuse. */
export const OVERCOMMIT_ALWAYS = 1;
/** Models OVERCOMMIT_NEVER: strict accounting against vm_commit_limit(). */
export const OVERCOMMIT_NEVER = 2;

/**
 * Models the overcommit sysctls of util_sysctl_table (mm/util.c), /proc/sys/vm/<name>: the
 * policy, the ratio and kbytes that size CommitLimit, and the root / user reserves.
 */
export interface OvercommitSysctls {
  /** Models sysctl_overcommit_memory (0 GUESS, 1 ALWAYS, 2 NEVER). */
  overcommit_memory: number;
  /** Models sysctl_overcommit_ratio (percent of RAM in CommitLimit; default 50). */
  overcommit_ratio: number;
  /** Models sysctl_overcommit_kbytes (when non-zero it replaces the ratio; default 0). */
  overcommit_kbytes: number;
  /** Models sysctl_admin_reserve_kbytes (init_admin_reserve(): min(free / 32, 8 MiB)). */
  admin_reserve_kbytes: number;
  /** Models sysctl_user_reserve_kbytes (init_user_reserve(): min(free / 32, 128 MiB)). */
  user_reserve_kbytes: number;
}

/** Models the names of the vm.* overcommit sysctls, in util_sysctl_table order. */
export const OVERCOMMIT_SYSCTLS = [
  'overcommit_memory',
  'overcommit_ratio',
  'overcommit_kbytes',
  'user_reserve_kbytes',
  'admin_reserve_kbytes',
] as const;

/** Models the name of one vm.* overcommit sysctl. */
export type OvercommitSysctl = (typeof OVERCOMMIT_SYSCTLS)[number];

/** Models the task table as the accounting needs it: something that may own an mm. */
interface TaskWithMm {
  readonly mm?: unknown;
}

/** Models the machine parts the sysctl files and vm_committed_as need (implemented by Kernel). */
export interface OvercommitHost {
  readonly core: Core;
  readonly tasks: ReadonlyMap<number, object>;
  readonly devices: Map<string, FileOperations>;
}

interface State {
  readonly sysctl: OvercommitSysctls;
  host: OvercommitHost | undefined;
}

const states = new WeakMap<Core, State>();

function state(core: Core): State {
  let s = states.get(core);
  if (!s) {
    // Models init_admin_reserve() / init_user_reserve(): 1/32 of free memory, capped.
    const freeKb = core.zone.nrFree * (PAGE_SIZE / 1024);
    s = {
      sysctl: {
        overcommit_memory: OVERCOMMIT_GUESS,
        overcommit_ratio: 50,
        overcommit_kbytes: 0,
        admin_reserve_kbytes: Math.min(Math.floor(freeKb / 32), 8 * 1024),
        user_reserve_kbytes: Math.min(Math.floor(freeKb / 32), 128 * 1024),
      },
      host: undefined,
    };
    states.set(core, s);
  }
  return s;
}

/** Models the vm.* overcommit sysctl variables of a machine (mm/util.c); mutable, as the kernel's are. */
export function overcommitSysctls(core: Core): OvercommitSysctls {
  return state(core).sysctl;
}

const pagesOf = (v: Vma): number => (v.end - v.start) / PAGE_SIZE;
const kbToPages = (kb: number): number => Math.floor(kb / (PAGE_SIZE / 1024));

/** Models totalram_pages() (the RAM the buddy allocator manages). */
export function totalramPages(core: Core): number {
  return core.ramPages;
}

/** Models hugetlb_total_pages(): the pages of the default hstate's pool. */
export function hugetlbTotalPages(core: Core): number {
  return core.hugetlb.total * 512;
}

/**
 * Models vm_commit_limit() (mm/util.c): overcommit_kbytes if set, else (RAM - hugetlb pool) *
 * overcommit_ratio / 100, plus swap. In pages; /proc/meminfo shows it as CommitLimit.
 */
export function vmCommitLimit(core: Core): number {
  const s = state(core).sysctl;
  const allowed = s.overcommit_kbytes
    ? kbToPages(s.overcommit_kbytes)
    : Math.floor(((totalramPages(core) - hugetlbTotalPages(core)) * s.overcommit_ratio) / 100);
  return allowed + totalSwapPages(core);
}

/** Models the VM_ACCOUNT pages of one mm (what dup_mmap() charges and exit_mmap() uncharges). */
export function mmAccountedPages(mm: MmStruct): number {
  let n = 0;
  for (const v of mm.vmas) if (v.flags & VM_ACCOUNT) n += pagesOf(v);
  return n;
}

/** Models mm->total_vm: every mapped page of the mm. */
export function mmTotalVm(mm: MmStruct): number {
  let n = 0;
  for (const v of mm.vmas) n += pagesOf(v);
  return n;
}

/** Models shmem_zero_setup()'s inode of a shared anonymous mapping that shmem_acct_size() charged. */
function chargedShmemInode(v: Vma): Inode | null {
  if (!(v.flags & VM_SHARED) || v.flags & (VM_NORESERVE | VM_HUGETLB)) return null;
  return v.file?.name === 'dev/zero' ? v.file : null;
}

/**
 * Models vm_memory_committed() / vm_committed_as (mm/util.c), Committed_AS in /proc/meminfo: the
 * pages of every VM_ACCOUNT VMA of every live mm of the machine, plus the size of every charged
 * shared anonymous (shmem) inode still mapped. 0 before the machine registered its task table
 * with {@link registerOvercommitSysctls}.
 */
export function vmMemoryCommitted(core: Core): number {
  const host = state(core).host;
  if (!host) return 0;
  const seen = new Set<MmStruct>();
  const inodes = new Set<Inode>();
  let n = 0;
  for (const t of host.tasks.values()) {
    const mm = (t as TaskWithMm).mm as MmStruct | undefined;
    if (!mm || seen.has(mm) || !Array.isArray(mm.vmas)) continue;
    seen.add(mm);
    n += mmAccountedPages(mm);
    for (const v of mm.vmas) {
      const inode = chargedShmemInode(v);
      if (inode && !inodes.has(inode)) {
        inodes.add(inode);
        n += Math.ceil(inode.size / PAGE_SIZE);
      }
    }
  }
  return n;
}

/**
 * Models __vm_enough_memory(mm, pages, cap_sys_admin = 1) (mm/util.c), reached through
 * security_vm_enough_memory_mm(): may `pages` more pages be committed? ALWAYS: yes. GUESS: no only
 * when the single request exceeds RAM + swap. NEVER: yes while Committed_AS (with the request)
 * stays below CommitLimit minus min(total_vm / 32, user_reserve) of the mm. Every model process is
 * root, so admin_reserve_kbytes is not subtracted. `committed` is Committed_AS before the request
 * (defaults to {@link vmMemoryCommitted}). 0 or -ENOMEM; nothing is charged here (see file doc).
 */
export function vmEnoughMemory(
  core: Core,
  mm: MmStruct | null,
  pages: number,
  committed = vmMemoryCommitted(core),
): number {
  const s = state(core).sysctl;
  if (s.overcommit_memory === OVERCOMMIT_ALWAYS) return 0;
  if (s.overcommit_memory === OVERCOMMIT_GUESS)
    return pages > totalramPages(core) + totalSwapPages(core) ? -ENOMEM : 0;
  let allowed = vmCommitLimit(core);
  if (mm) allowed -= Math.min(Math.floor(mmTotalVm(mm) / 32), kbToPages(s.user_reserve_kbytes));
  return committed + pages < allowed ? 0 : -ENOMEM;
}

/**
 * Models accountable_mapping() (mm/vma.h): a private writable mapping without VM_NORESERVE is
 * charged; shared, read-only, MAP_NORESERVE and hugetlb mappings are not.
 */
export function accountableMapping(vmFlags: number): boolean {
  if (vmFlags & VM_HUGETLB) return false;
  return (vmFlags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) === VM_WRITE;
}

/**
 * Models the accounting steps of do_mmap() and __mmap_region() (mm/mmap.c, mm/vma.c):
 * MAP_NORESERVE sets VM_NORESERVE unless the policy is OVERCOMMIT_NEVER (always for hugetlb);
 * then an accountable mapping is charged its length minus the VM_ACCOUNT pages of the mappings
 * a MAP_FIXED one replaces, and gets VM_ACCOUNT. A shared anonymous mapping without
 * VM_NORESERVE is charged its length by shmem_acct_size() (from shmem_zero_setup()). Returns the
 * VMA flags to use, or -ENOMEM.
 */
export function mmapAccount(
  core: Core,
  mm: MmStruct,
  mapFlags: number,
  vmFlags: number,
  addr: number,
  len: number,
): number {
  let flags = vmFlags;
  if (mapFlags & MAP_NORESERVE) {
    if (state(core).sysctl.overcommit_memory !== OVERCOMMIT_NEVER || flags & VM_HUGETLB)
      flags |= VM_NORESERVE;
  }
  if (mapFlags & MAP_ANONYMOUS && flags & VM_SHARED && !(flags & (VM_NORESERVE | VM_HUGETLB)))
    return vmEnoughMemory(core, mm, len / PAGE_SIZE) < 0 ? -ENOMEM : flags;
  if (!accountableMapping(flags)) return flags;
  let charged = len / PAGE_SIZE;
  if (mapFlags & MAP_FIXED) {
    for (const v of mm.vmas) {
      if (!(v.flags & VM_ACCOUNT) || v.end <= addr || v.start >= addr + len) continue;
      charged -= (Math.min(v.end, addr + len) - Math.max(v.start, addr)) / PAGE_SIZE;
    }
  }
  if (charged && vmEnoughMemory(core, mm, charged) < 0) return -ENOMEM;
  return flags | VM_ACCOUNT;
}

/**
 * Models the VM_ACCOUNT loop of dup_mmap() (mm/mmap.c): the child's copy of every accounted VMA
 * (VM_DONTCOPY ones are not copied) is charged, one VMA at a time, against the parent's mm.
 * 0, or -ENOMEM when a charge is refused (fork fails).
 */
export function forkAccount(core: Core, oldmm: MmStruct): number {
  let committed = vmMemoryCommitted(core);
  for (const v of oldmm.vmas) {
    if (!(v.flags & VM_ACCOUNT) || v.flags & VM_DONTCOPY) continue;
    if (vmEnoughMemory(core, oldmm, pagesOf(v), committed) < 0) return -ENOMEM;
    committed += pagesOf(v);
  }
  return 0;
}

/** Models proc_dointvec_minmax()/proc_doulongvec_minmax() parsing one written value. */
export function parseSysctlInt(text: string): number | undefined {
  const t = text.replace(/^[\s]+/, '').replace(/[\s\0]+$/, '');
  if (!/^[-+]?\d+$/.test(t)) return undefined;
  const v = Number(t);
  return Number.isSafeInteger(v) ? v : undefined;
}

/**
 * Models the write side of the util_sysctl_table handlers (mm/util.c): overcommit_policy_handler
 * (0..2, else -EINVAL), overcommit_ratio_handler (clears overcommit_kbytes),
 * overcommit_kbytes_handler (clears overcommit_ratio), and plain unsigned values for the reserves.
 * Returns 0 or -EINVAL.
 */
export function overcommitSysctlWrite(core: Core, name: OvercommitSysctl, text: string): number {
  const s = state(core).sysctl;
  const v = parseSysctlInt(text);
  if (v === undefined) return -EINVAL;
  switch (name) {
    case 'overcommit_memory':
      if (v < OVERCOMMIT_GUESS || v > OVERCOMMIT_NEVER) return -EINVAL;
      s.overcommit_memory = v;
      return 0;
    case 'overcommit_ratio':
      if (v < -(2 ** 31) || v >= 2 ** 31) return -EINVAL;
      s.overcommit_ratio = v;
      s.overcommit_kbytes = 0;
      return 0;
    case 'overcommit_kbytes':
      if (v < 0) return -EINVAL;
      s.overcommit_kbytes = v;
      s.overcommit_ratio = 0;
      return 0;
    default:
      if (v < 0) return -EINVAL;
      s[name] = v;
      return 0;
  }
}

/** Models reading /proc/sys/vm/<name>: the value and a newline. */
export function overcommitSysctlRead(core: Core, name: OvercommitSysctl): string {
  return `${state(core).sysctl[name]}\n`;
}

/**
 * Models register_sysctl_init("vm", util_sysctl_table) (mm/util.c): /proc/sys/vm/overcommit_memory,
 * overcommit_ratio, overcommit_kbytes, user_reserve_kbytes and admin_reserve_kbytes, readable and
 * writable (a write at offset 0 parses one integer; a write at a later offset is ignored, as with
 * sysctl_writes_strict). Also hands the machine's task table to {@link vmMemoryCommitted}.
 */
export function registerOvercommitSysctls(host: OvercommitHost): void {
  state(host.core).host = host;
  for (const name of OVERCOMMIT_SYSCTLS) {
    host.devices.set(`/proc/sys/vm/${name}`, {
      *pread(_file, buf, pos) {
        const bytes = new TextEncoder().encode(overcommitSysctlRead(host.core, name));
        if (pos >= bytes.length) return 0;
        const n = Math.min(buf.length, bytes.length - pos);
        buf.set(bytes.subarray(pos, pos + n));
        return n;
      },
      *pwrite(_file, buf, pos) {
        if (pos > 0) return buf.length;
        const r = overcommitSysctlWrite(host.core, name, new TextDecoder().decode(buf));
        return r < 0 ? r : buf.length;
      },
    });
  }
}
