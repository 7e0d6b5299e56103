/**
 * The kernel paths that perform the explorer's operations (op.ts: the operations as data) inside
 * the thread's task: syscalls, CPU accesses, dmirror ioctls, GPU accesses.
 */
import {
  EINVAL,
  type KGen,
  khugepagedDoScan,
  MADV_DONTNEED,
  MADV_HUGEPAGE,
  MAP_ANONYMOUS,
  MAP_FIXED,
  MAP_PRIVATE,
  MREMAP_DONTUNMAP,
  MREMAP_FIXED,
  MREMAP_MAYMOVE,
  markOomVictim,
  mmgetNotZero,
  mmput,
  O_WRONLY,
  PAGE_SIZE,
  PIN_LONGTERM_TEST_FLAG_USE_WRITE,
  PIN_LONGTERM_TEST_START,
  PIN_LONGTERM_TEST_STOP,
  PIN_LONGTERM_TEST_STRUCT_SIZE,
  PROT_NONE,
  PROT_READ,
  PROT_WRITE,
  queueOomReaper,
  SIGBUS,
  SIGKILL,
  SIGSEGV,
  SWAP_DEVICE_PATH,
  spinRetry,
  thpSizeDir,
  waitEvent,
  XLATE_BUS,
  XLATE_OOM,
  XLATE_SEGV,
} from '@hmm-model/mm-core';
import { gpuAccessWordsGen, gpuJobWordsGen, svmmMigrateToVramGen } from '@hmm-model/nouveau-dmem';
import {
  decodeCmd,
  encodeCmd,
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_CMD_SIZE,
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_FLAG_FAIL_ALLOC,
  HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_RELEASE,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_SNAPSHOT_ORDER,
  HMM_DMIRROR_WRITE,
  hmmDmirrorFlagFailAllocOrder,
} from '@hmm-model/test-hmm';
import { DM_CMDS, GPU_CMDS, MTHP_MODES, type Op, type OpOutcome, patternWords } from './op.js';
import { type ProcSlot, regionAddr, SCRATCH_PER_THREAD, type World } from './world.js';

/** Where the machine has mm/gup_test.c's debugfs file. */
const GUP_TEST_PATH = '/sys/kernel/debug/gup_test';

/** Encodes the text the sysfs and debugfs ops write. */
const TEXT = new TextEncoder();

/** The debugfs file of 'split' ops (mm/huge_memory.c split_huge_pages_fops). */
const SPLIT_HUGE_PAGES_PATH = '/sys/kernel/debug/split_huge_pages';

function* dmIoctl(
  w: World,
  slot: ProcSlot,
  t: number,
  fd: number,
  cmd: number,
  addr: number,
  npages: number,
): KGen<{ ret: number; cpages: number; faults: number }> {
  const sys = slot.proc.sys;
  const cmdAddr = w.scratch(t) + SCRATCH_PER_THREAD - PAGE_SIZE;
  const ptr = w.scratch(t);
  const raw = encodeCmd({
    addr: BigInt(addr),
    ptr: BigInt(ptr),
    npages: BigInt(npages),
    cpages: 0n,
    faults: 0n,
  });
  const wr = yield* sys.access(cmdAddr, raw, 'write');
  if (wr < 0) return { ret: -EINVAL, cpages: 0, faults: 0 };
  const ret = yield* sys.ioctl(fd, cmd, cmdAddr);
  const back = new Uint8Array(HMM_DMIRROR_CMD_SIZE);
  yield* sys.access(cmdAddr, back, 'read');
  const c = decodeCmd(back);
  return { ret, cpages: Number(c.cpages), faults: Number(c.faults) };
}

/** The slot's /sys/kernel/debug/gup_test fd (opened on first use). */
function* gupFd(slot: ProcSlot): KGen<number> {
  const have = slot.gupFd;
  if (have !== undefined && slot.proc.fds.has(have)) return have;
  const fd = yield* slot.proc.sys.open(GUP_TEST_PATH, 2);
  if (fd >= 0) slot.gupFd = fd;
  return fd;
}

function* dmFd(slot: ProcSlot, d: number): KGen<number> {
  const have = slot.dmFds[d];
  if (have !== undefined && slot.proc.fds.has(have)) return have;
  const fd = yield* slot.proc.sys.open(`/dev/hmm_dmirror${d}`, 2);
  if (fd >= 0) slot.dmFds[d] = fd;
  return fd;
}

/**
 * Models the signal of a user access that faulted (accessBytes() returned an XLATE_* code):
 * force_sig_fault(SIGSEGV) for a bad address, SIGBUS, or the OOM killer's SIGKILL. The explorer's
 * programs catch SIGSEGV (a handler that siglongjmp()s past the access, as the mm selftests do for
 * faults they expect), so the thread goes on: an access racing another thread's munmap(),
 * mprotect() or mremap() no longer ends the process and every operation after it. SIGBUS and
 * SIGKILL kill the process (do_exit() with the signal), as does any signal once it is exiting.
 *
 * XLATE_OOM is the fault's allocation out of memory, the allocator's OOM kill left to the caller
 * (mm-core cpu.ts): out_of_memory() (Process.oomKill(), which follows vm.oom_kill_allocating_task)
 * kills this process, or another one or none, and then the allocation, and so the access, is
 * retried: true. An access of a process another task's allocation OOM-killed meanwhile ends in
 * that SIGKILL.
 */
function* accessFault(slot: ProcSlot, ret: number, out: OpOutcome): KGen<boolean> {
  const proc = slot.proc;
  if (proc.oomVictim && proc.fatalSignal !== 0) {
    // Another task's allocation OOM-killed this process while the access was in the kernel (its
    // fault may then have seen the reaped mm: VM_FAULT_SIGBUS). Whatever the fault returned, the
    // thread dies of the pending SIGKILL on its way back to user space.
    out.signal = SIGKILL;
    out.oom = true;
    yield* proc.exitGen(0, SIGKILL);
    return false;
  }
  if (
    ret === XLATE_OOM &&
    proc.alive &&
    (yield* proc.oomKill(0, 'user fault', false)) &&
    proc.fatalSignal === 0
  ) {
    // __alloc_pages_slowpath(): "retry" after the kill (the victim frees its memory meanwhile).
    yield* spinRetry(proc.host.sched, 'user fault: out_of_memory() killed another process, retry');
    return true;
  }
  out.signal = ret === XLATE_BUS ? SIGBUS : ret === XLATE_OOM ? SIGKILL : SIGSEGV;
  out.oom = ret === XLATE_OOM;
  if (ret === XLATE_SEGV) {
    out.handled = true;
    return false;
  }
  yield* proc.exitGen(0, out.signal);
  return false;
}

/**
 * Runs `op` as the thread it names (the task running this generator belongs to that thread).
 * An access's SIGSEGV is caught by the program; SIGBUS and SIGKILL kill the process (accessFault()).
 */
export function* execOp(w: World, op: Op, out: OpOutcome): KGen {
  const slot = w.live(op.p);
  if (!slot) {
    out.skipped = true;
    return;
  }
  const sys = slot.proc.sys;
  const r = op.r ?? 0;
  const addr = regionAddr(r, op.off ?? 0);
  const len = (op.n ?? 0) * PAGE_SIZE;
  switch (op.k) {
    case 'mmap': {
      const a = regionAddr(r, 0);
      out.ret = yield* sys.mmap(
        a,
        len,
        op.a ?? PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
      );
      if (out.ret === a && op.b) yield* sys.madvise(a, len, MADV_HUGEPAGE);
      return;
    }
    case 'munmap':
      out.ret = yield* sys.munmap(addr, len);
      return;
    case 'mprotect':
      out.ret = yield* sys.mprotect(addr, len, op.a ?? PROT_NONE);
      return;
    case 'madvise':
      out.ret = yield* sys.madvise(addr, len, op.a ?? MADV_DONTNEED);
      return;
    case 'mremap': {
      const to = regionAddr(op.r2 ?? 0, op.off2 ?? 0);
      const flags = MREMAP_MAYMOVE | MREMAP_FIXED | (op.b ? MREMAP_DONTUNMAP : 0);
      out.ret = yield* sys.mremap(addr, len, len, flags, to);
      return;
    }
    case 'write': {
      // The program stores its word over every word of each page: no bytes move in the model.
      const words = patternWords(op.a ?? 0, addr, op.n ?? 0, w.words(op.p, op.t, op.n ?? 0));
      let ret: number;
      do ret = yield* sys.accessWords(addr, words, 'write');
      while (ret < 0 && (yield* accessFault(slot, ret, out)));
      if (ret < 0) return;
      out.writeAddr = addr;
      out.writeWords = words;
      return;
    }
    case 'read': {
      const words = w.words(op.p, op.t, op.n ?? 0);
      let ret: number;
      do ret = yield* sys.accessWords(addr, words, 'read');
      while (ret < 0 && (yield* accessFault(slot, ret, out)));
      if (ret < 0) return;
      out.readAddr = addr;
      out.readWords = words;
      return;
    }
    case 'mthp': {
      // Models `echo MODE > /sys/kernel/mm/transparent_hugepage/hugepages-<size>kB/enabled`.
      const fd = yield* sys.open(`${thpSizeDir(op.a ?? 0)}/enabled`, O_WRONLY);
      if (fd < 0) {
        out.ret = fd;
        return;
      }
      const bytes = TEXT.encode(`${MTHP_MODES[op.b ?? 0]}\n`);
      out.ret = yield* sys.pwrite(fd, bytes, bytes.length, 0);
      yield* sys.close(fd);
      return;
    }
    case 'khugepaged':
      // One khugepaged_do_scan() pass, run by this thread's task as khugepaged would run it.
      out.ret = (yield* khugepagedDoScan(w.kernel.core)).collapsed;
      return;
    case 'split': {
      // Models `echo PID,0xSTART,0xEND,ORDER[,OFFSET] > /sys/kernel/debug/split_huge_pages`:
      // split_huge_pages_pid() splits the THPs mapped in the range to the order (non-uniformly
      // around the in-folio page with an offset).
      const fd = yield* sys.open(SPLIT_HUGE_PAGES_PATH, O_WRONLY);
      if (fd < 0) {
        out.ret = fd;
        return;
      }
      const at = op.off2 !== undefined ? `,${op.off2}` : '';
      const line = `${slot.proc.pid},0x${addr.toString(16)},0x${(addr + len).toString(16)},${op.a ?? 0}${at}`;
      const bytes = TEXT.encode(line);
      out.ret = yield* sys.write(fd, bytes, bytes.length);
      yield* sys.close(fd);
      return;
    }
    case 'swap':
      // swapoff(2) brings every swapped-out page of every address space back (try_to_unuse());
      // swapon(2) enables the partition again (-EBUSY while it is on, -EINVAL for a swapoff
      // while it is off).
      out.ret = op.b === 1 ? yield* sys.swapon(SWAP_DEVICE_PATH, 0) : yield* sys.swapoff(SWAP_DEVICE_PATH);
      return;
    case 'fork': {
      const s = w.freeSlot();
      if (s < 0) {
        out.skipped = true;
        return;
      }
      const pid = yield* sys.fork();
      out.ret = pid;
      const child = pid > 0 ? w.kernel.task(pid) : undefined;
      if (child) {
        w.adopt(s, child, slot);
        out.child = s;
      }
      return;
    }
    case 'exit':
      yield* slot.proc.exitGen(0);
      return;
    case 'kill':
    case 'oom': {
      const target = w.live(op.a ?? 0);
      if (!target || target === slot) {
        out.skipped = true;
        return;
      }
      // __oom_kill_process(): SIGKILL, mark_oom_victim(), then queue_oom_reaper(): the reaper
      // works on the victim's mm (MMF_UNSTABLE, then its private memory) while the victim exits.
      if (op.k === 'oom') {
        markOomVictim(target.proc);
        queueOomReaper(w.kernel.core, target.proc.mm);
      }
      out.ret = yield* slot.proc.killGen(target.proc.pid, SIGKILL);
      return;
    }
    case 'dm': {
      const d = op.a ?? 0;
      const fd = yield* dmFd(slot, d);
      if (fd < 0) {
        out.ret = fd;
        return;
      }
      const cmdName = DM_CMDS[op.b ?? 0];
      if (cmdName === 'fail-alloc' || cmdName === 'fail-order') {
        const flags =
          cmdName === 'fail-alloc' ? HMM_DMIRROR_FLAG_FAIL_ALLOC : hmmDmirrorFlagFailAllocOrder(op.off2 ?? 0);
        yield* dmIoctl(w, slot, op.t, fd, HMM_DMIRROR_FLAGS, 0, flags);
        out.ret = (yield* dmIoctl(w, slot, op.t, fd, HMM_DMIRROR_MIGRATE_TO_DEV, addr, op.n ?? 0)).ret;
        return;
      }
      const cmd = {
        'to-dev': HMM_DMIRROR_MIGRATE_TO_DEV,
        'to-sys': HMM_DMIRROR_MIGRATE_TO_SYS,
        read: HMM_DMIRROR_READ,
        write: HMM_DMIRROR_WRITE,
        snapshot: HMM_DMIRROR_SNAPSHOT,
        'snapshot-order': HMM_DMIRROR_SNAPSHOT_ORDER,
        exclusive: HMM_DMIRROR_EXCLUSIVE,
        'check-exclusive': HMM_DMIRROR_CHECK_EXCLUSIVE,
        release: HMM_DMIRROR_RELEASE,
      }[cmdName];
      let words: Float64Array | null = null;
      if (cmdName === 'write') {
        words = patternWords(op.a ?? 0, addr, op.n ?? 0, w.words(op.p, op.t, op.n ?? 0));
        if ((yield* sys.accessWords(w.scratch(op.t), words, 'write')) < 0) return;
      }
      const res = yield* dmIoctl(w, slot, op.t, fd, cmd, addr, op.n ?? 0);
      out.ret = res.ret;
      if (res.ret === 0 && cmdName === 'read') {
        const got = w.words(op.p, op.t, op.n ?? 0);
        if ((yield* sys.accessWords(w.scratch(op.t), got, 'read')) === 0) {
          out.readAddr = addr;
          out.readWords = got;
        }
      }
      if (cmdName === 'write' && words) {
        // A WRITE stores page by page until it fails: what reached memory is uncertain on error.
        out.writeAddr = addr;
        out.writeWords = res.ret === 0 ? words : words.subarray(0, 0);
        if (res.ret !== 0) out.ret = res.ret;
      }
      return;
    }
    case 'dmclose': {
      const d = op.a ?? 0;
      const fd = slot.dmFds[d];
      if (fd === undefined || !slot.proc.fds.has(fd)) {
        out.skipped = true;
        return;
      }
      slot.dmFds[d] = undefined;
      out.ret = yield* sys.close(fd);
      return;
    }
    case 'gpu': {
      // A job waits for its fence in user space: no reference on the mm (see gpuJob()).
      const cmd = GPU_CMDS[op.b ?? 0];
      if (cmd === 'job-write' || cmd === 'job-read') {
        yield* gpuJob(w, slot, op, addr, out);
        return;
      }
      // The GPU's fault worker and the SVM bind ioctl work on the process's mm with a user
      // reference (nouveau_svm_fault(): mmget_not_zero()): an exit meanwhile leaves the teardown
      // to the last mmput().
      const mm = slot.proc.mm;
      if (!mmgetNotZero(mm)) {
        out.skipped = true;
        return;
      }
      try {
        yield* gpuOp(w, slot, op, addr, len, out);
      } finally {
        yield* mmput(w.kernel.core, mm);
      }
      return;
    }
    case 'pin': {
      const unpin = op.b === 2;
      if (unpin && (slot.gupFd === undefined || !slot.proc.fds.has(slot.gupFd))) {
        out.skipped = true;
        return;
      }
      const fd = yield* gupFd(slot);
      if (fd < 0) {
        out.ret = fd;
        return;
      }
      if (unpin) {
        out.ret = yield* sys.ioctl(fd, PIN_LONGTERM_TEST_STOP, 0);
        return;
      }
      // struct pin_longterm_test { u64 addr; u64 size; u32 flags; } in the thread's scratch.
      const arg = w.scratch(op.t) + SCRATCH_PER_THREAD - PAGE_SIZE;
      const raw = new Uint8Array(PIN_LONGTERM_TEST_STRUCT_SIZE);
      const dv = new DataView(raw.buffer);
      dv.setBigUint64(0, BigInt(addr), true);
      dv.setBigUint64(8, BigInt(len), true);
      dv.setUint32(16, op.b === 1 ? PIN_LONGTERM_TEST_FLAG_USE_WRITE : 0, true);
      if ((yield* sys.access(arg, raw, 'write')) < 0) {
        out.ret = -EINVAL;
        return;
      }
      out.ret = yield* sys.ioctl(fd, PIN_LONGTERM_TEST_START, arg);
      return;
    }
    case 'pagemap': {
      const fd = yield* sys.open('/proc/self/pagemap', 0);
      if (fd < 0) {
        out.ret = fd;
        return;
      }
      const buf = new Uint8Array((op.n ?? 0) * 8);
      out.ret = yield* sys.pread(fd, buf, buf.length, (addr / PAGE_SIZE) * 8);
      yield* sys.close(fd);
      return;
    }
  }
}

/**
 * A GPU job of slot's process: the process submits a store or a load to its svmm's range
 * (DRM_NOUVEAU_SVM_INIT on first use, then work on its channel) and waits for the job's fence in
 * user space, so it can exit or be killed while the engine runs (gpuJobWordsGen()). With fix K22
 * the svmm's ->release clears the GPU page tables when the exit tears the mm down, and the rest
 * of the job faults and fails; in v6.19 (nouveau finding 14) it goes on through entries that name
 * pages exit_mmap() freed (nouveau reports the access as a use-after-free; a store lands in
 * whatever process uses the page by then).
 */
function* gpuJob(w: World, slot: ProcSlot, op: Op, addr: number, out: OpOutcome): KGen {
  const svmm = yield* slot.proc.sys.driverIoctl('DRM_NOUVEAU_SVM_INIT', w.svmm(slot));
  const write = GPU_CMDS[op.b ?? 0] === 'job-write';
  const words = write
    ? patternWords(op.a ?? 0, addr, op.n ?? 0, w.words(op.p, op.t, op.n ?? 0))
    : w.words(op.p, op.t, op.n ?? 0);
  const job = w.kernel.core.sched.spawn(
    `gpu job (p${op.p}.t${op.t})`,
    gpuJobWordsGen(svmm, addr, words, write ? 'write' : 'read'),
    { kind: 'kthread' },
  );
  yield* waitEvent('dma_fence_wait (gpu job)', () => job.done);
  if (job.error !== undefined) throw job.error;
  out.ret = job.result as number;
  if (write) {
    out.writeAddr = addr;
    out.writeWords = out.ret === 0 ? words : words.subarray(0, 0);
  } else if (out.ret === 0) {
    out.readAddr = addr;
    out.readWords = words;
  }
}

/** A GPU operation of slot's process: SVM migration to VRAM, or a GPU read or write (device faults). */
function* gpuOp(w: World, slot: ProcSlot, op: Op, addr: number, len: number, out: OpOutcome): KGen {
  // DRM_NOUVEAU_SVM_INIT and DRM_NOUVEAU_SVM_BIND are ioctls of the calling thread: it is in the
  // kernel meanwhile (its process cannot exit and tear the mm down under the migration).
  const sys = slot.proc.sys;
  const svmm = yield* sys.driverIoctl('DRM_NOUVEAU_SVM_INIT', w.svmm(slot));
  const cmd = GPU_CMDS[op.b ?? 0];
  if (cmd === 'migrate') {
    out.ret = (yield* sys.driverIoctl(
      'DRM_NOUVEAU_SVM_BIND',
      svmmMigrateToVramGen(svmm, addr, addr + len),
    )).ret;
    return;
  }
  if (cmd === 'write') {
    const words = patternWords(op.a ?? 0, addr, op.n ?? 0, w.words(op.p, op.t, op.n ?? 0));
    out.ret = yield* gpuAccessWordsGen(svmm, addr, words, 'write');
    out.writeAddr = addr;
    out.writeWords = out.ret === 0 ? words : words.subarray(0, 0);
    return;
  }
  const words = w.words(op.p, op.t, op.n ?? 0);
  out.ret = yield* gpuAccessWordsGen(svmm, addr, words, 'read');
  if (out.ret === 0) {
    out.readAddr = addr;
    out.readWords = words;
  }
}
