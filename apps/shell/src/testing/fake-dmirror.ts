/**
 * TEST DOUBLE — NOT THE DMIRROR DRIVER. A tiny fake of /dev/hmm_dmirror<n> used only by the
 * shell's tests to exercise how the shell encodes struct hmm_dmirror_cmd and decodes what comes
 * back (cpages, faults, the buffer, errno). It moves no pages and touches no page tables: it
 * copies data with ordinary user accesses and keeps a set of "on device" pages for SNAPSHOT.
 * The real driver is lib/test_hmm.c's model in @hmm-model/test-hmm.
 */
import {
  EINVAL,
  ENOMEM,
  EPERM,
  type FileOperations,
  type Kernel,
  PAGE_SIZE,
  PMD_SIZE,
  type Process,
  VM_READ,
  VM_WRITE,
} from '@hmm-model/mm-core';
import {
  CMD_ADDR,
  CMD_CPAGES,
  CMD_FAULTS,
  CMD_NPAGES,
  CMD_PTR,
  dmirrorPath,
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_FLAG_FAIL_ALLOC,
  HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL,
  HMM_DMIRROR_PROT_NONE,
  HMM_DMIRROR_PROT_PMD,
  HMM_DMIRROR_PROT_READ,
  HMM_DMIRROR_PROT_WRITE,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_RELEASE,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_WRITE,
} from '../dmirror-uapi.js';

/** One ioctl the fake received, decoded from the caller's struct hmm_dmirror_cmd. */
export interface FakeCall {
  readonly cmd: number;
  readonly addr: number;
  readonly ptr: number;
  readonly npages: number;
  readonly pid: number;
}

/** The fake device's observable state (for assertions). */
export interface FakeDmirror {
  readonly fops: FileOperations;
  readonly calls: FakeCall[];
  /** Pages (virtual page numbers) the fake pretends are in device memory, and whether in a 2 MiB unit. */
  readonly onDevice: Map<number, boolean>;
  readonly exclusive: Set<number>;
  flags: number;
}

function covered(p: Process, addr: number, len: number, need: number): boolean {
  for (let a = addr; a < addr + len; a += PAGE_SIZE) {
    const v = p.mm.vmaLookup(a);
    if (!v || !(v.flags & need)) return false;
  }
  return true;
}

/** Builds the TEST DOUBLE device (see the file comment); register it with {@link installFakeDmirror}. */
export function fakeDmirror(): FakeDmirror {
  const state: FakeDmirror = {
    calls: [],
    onDevice: new Map(),
    exclusive: new Set(),
    flags: 0,
    fops: {
      *ioctl(file, cmd, arg) {
        const p = file.opener as Process;
        const addr = Number(p.readU64(arg + CMD_ADDR));
        const ptr = Number(p.readU64(arg + CMD_PTR));
        const npages = Number(p.readU64(arg + CMD_NPAGES));
        state.calls.push({ cmd, addr, ptr, npages, pid: p.pid });
        if (addr % PAGE_SIZE || npages === 0) return -EINVAL;
        const len = npages * PAGE_SIZE;
        const first = addr / PAGE_SIZE;
        let cpages = npages;
        let faults = 0;
        switch (cmd) {
          case HMM_DMIRROR_READ:
            if (!covered(p, addr, len, VM_READ)) return -EINVAL;
            p.writeBytes(ptr, p.readBytes(addr, len));
            faults = 1;
            break;
          case HMM_DMIRROR_WRITE:
            if (!covered(p, addr, len, VM_WRITE)) return -EPERM;
            p.writeBytes(addr, p.readBytes(ptr, len));
            faults = 1;
            break;
          case HMM_DMIRROR_MIGRATE_TO_DEV: {
            if (!covered(p, addr, len, VM_READ)) return -EINVAL;
            if (state.flags & HMM_DMIRROR_FLAG_FAIL_ALLOC) {
              state.flags &= ~HMM_DMIRROR_FLAG_FAIL_ALLOC;
              return -ENOMEM;
            }
            p.writeBytes(ptr, p.readBytes(addr, len));
            const huge = addr % PMD_SIZE === 0 && len % PMD_SIZE === 0;
            for (let i = 0; i < npages; i++) state.onDevice.set(first + i, huge);
            break;
          }
          case HMM_DMIRROR_MIGRATE_TO_SYS:
            if (!covered(p, addr, len, VM_READ)) return -EINVAL;
            cpages = 0;
            for (let i = 0; i < npages; i++) if (state.onDevice.delete(first + i)) cpages++;
            break;
          case HMM_DMIRROR_SNAPSHOT: {
            const bytes = new Uint8Array(npages);
            for (let i = 0; i < npages; i++) {
              const huge = state.onDevice.get(first + i);
              const v = p.mm.vmaLookup(addr + i * PAGE_SIZE);
              if (huge !== undefined)
                bytes[i] =
                  HMM_DMIRROR_PROT_DEV_PRIVATE_LOCAL |
                  HMM_DMIRROR_PROT_WRITE |
                  (huge ? HMM_DMIRROR_PROT_PMD : 0);
              else if (!v) bytes[i] = HMM_DMIRROR_PROT_NONE;
              else bytes[i] = v.flags & VM_WRITE ? HMM_DMIRROR_PROT_WRITE : HMM_DMIRROR_PROT_READ;
            }
            p.writeBytes(ptr, bytes);
            break;
          }
          case HMM_DMIRROR_EXCLUSIVE:
            if (!covered(p, addr, len, VM_READ)) return -EINVAL;
            for (let i = 0; i < npages; i++) state.exclusive.add(first + i);
            p.writeBytes(ptr, p.readBytes(addr, len));
            break;
          case HMM_DMIRROR_CHECK_EXCLUSIVE:
            for (let i = 0; i < npages; i++) if (state.exclusive.has(first + i)) return -EPERM;
            break;
          case HMM_DMIRROR_RELEASE:
            state.onDevice.clear();
            state.exclusive.clear();
            break;
          case HMM_DMIRROR_FLAGS:
            state.flags = npages;
            break;
          default:
            return -EINVAL;
        }
        p.writeU64(arg + CMD_CPAGES, cpages);
        p.writeU64(arg + CMD_FAULTS, faults);
        return 0;
      },
    },
  };
  return state;
}

/** Registers the TEST DOUBLE at /dev/hmm_dmirror<n> of a kernel and returns it. */
export function installFakeDmirror(kernel: Kernel, n = 0): FakeDmirror {
  const f = fakeDmirror();
  kernel.registerDevice(dmirrorPath(n), f.fops);
  return f;
}
