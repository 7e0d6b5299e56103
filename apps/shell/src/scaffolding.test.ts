/**
 * The shell's ioctl scaffolding (the struct hmm_dmirror_cmd and the ptr buffer it allocates in
 * the process) never exhausts the simulated machine: the ioctl sees what lib/test_hmm.c sees, the
 * buffer costs only what the ioctl copies, and when the shell cannot get memory for itself it
 * says ENOMEM and nothing dies.
 */
import {
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  O_RDWR,
  PAGE_SIZE,
  PROT_READ,
  PROT_WRITE,
} from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import type { Executed } from './commands/index.js';
import { CMD_ADDR, CMD_NPAGES, CMD_PTR, HMM_DMIRROR_MIGRATE_TO_DEV } from './dmirror-uapi.js';
import { fmtSize } from './format.js';
import type { Session } from './session.js';
import { newSession, run, script, text } from './testing/harness.js';

const MiB = 2 ** 20;

/** Stores into a fresh mapping until about `usable` pages above the min watermark are free (the OOM killer is never reached). */
function leaveFree(s: Session, usable: number): void {
  const zone = s.kernel.core.zone;
  // Pages below the min watermark (vm.min_free_kbytes) are the reserves: a user fault never takes them.
  const pages = zone.minFree + usable;
  run(s, `mmap ${zone.nrFree * PAGE_SIZE} noreserve nohugepage`);
  const base = s.vars.get('') ?? 0;
  let off = 0;
  // Whole 2 MiB stores while far from the target (page tables take a page per 2 MiB), then page by page.
  while (zone.nrFree > pages + 1024) {
    const n = Math.min(16 * MiB, Math.floor((zone.nrFree - pages - 1024) / 520) * 2 * MiB) || 2 * MiB;
    run(s, `write ${base + off} ${n} fill 0x11`);
    off += n;
  }
  while (zone.nrFree > pages) {
    // Leave room for the page table a run of faults may need.
    const n = Math.max(1, zone.nrFree - pages - 2);
    run(s, `fault ${base + off} ${n * PAGE_SIZE} write`);
    off += n * PAGE_SIZE;
  }
}

/** The vmstat change a command reported as its own. */
function delta(e: Executed): Map<string, number> {
  return new Map(e.vmstatDelta);
}

/** Nothing died: every process the test started still runs and the kernel is untainted and consistent. */
function nothingDied(s: Session): void {
  expect(s.taint).toBeNull();
  expect(s.proc?.pid).toBe(1);
  expect(s.kernel.check()).toEqual([]);
}

describe('the shell never loses the session to its own ioctl buffers', () => {
  it('migrate over a hole: what is mapped moves, -EINVAL at the hole, as through the package API; the buffer costs nothing', () => {
    // dmirror_migrate_to_device() (lib/test_hmm.c) walks the range with vma_lookup(), migrating
    // VMA by VMA, and returns -EINVAL at the first address no VMA covers (before any copy-out).
    const s = newSession();
    run(s, 'mmap 4M', 'write $ 4M index');
    const base = s.vars.get('') ?? 0;
    const e = run(s, 'migrate $ 4G dev');
    expect(text(e)).toBe(
      `migrate: EINVAL — range not covered by a readable VMA: 0x${(base + 4 * MiB).toString(16)} is not mapped. dmirror_migrate_to_device() (lib/test_hmm.c) migrates the range VMA by VMA and returns -EINVAL at the first address vma_lookup() does not find or cannot read: the 1024 page(s) before it were migrated (\`snapshot\` shows them)`,
    );
    // The shell touched only the page of its struct: the 64 MiB buffer the ioctl never copied into cost nothing.
    expect(s.overhead.get('pgfault')).toBe(1);
    const shellSnap = text(run(s, 'snapshot $ 4M'));
    expect(shellSnap).toContain('1024 page(s)  0x22 DEV_PRIVATE_LOCAL|WRITE');

    // The same ioctl through the package API (hmm-tests' hmm_dmirror_cmd(), a malloc()ed mirror).
    const t = newSession();
    run(t, 'mmap 4M', 'write $ 4M index');
    const p = t.proc!;
    const fd = p.open('/dev/hmm_dmirror0', O_RDWR);
    const npages = (4 * 2 ** 30) / PAGE_SIZE;
    const mirror = p.mmap(
      0,
      npages * PAGE_SIZE,
      PROT_READ | PROT_WRITE,
      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
    );
    expect(mirror).toBeGreaterThan(0);
    const cmd = p.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    p.writeU64(cmd + CMD_ADDR, t.vars.get('') ?? 0);
    p.writeU64(cmd + CMD_PTR, mirror);
    p.writeU64(cmd + CMD_NPAGES, npages);
    expect(p.ioctl(fd, HMM_DMIRROR_MIGRATE_TO_DEV, cmd)).toBe(-22);
    expect(text(run(t, 'snapshot $ 4M'))).toBe(shellSnap);
    nothingDied(s);
  });

  it('script mode on the default 2 GiB machine: `migrate $ 4G dev` on a 4 MiB mapping migrates the 4 MiB, says EINVAL, and pid 1 lives on', async () => {
    const session = newSession({ ramBytes: 2 * 2 ** 30 });
    const free = session.kernel.core.zone.nrFree;
    const { out, code } = await script(
      ['mmap 4M', 'write $ 4M index', 'migrate $ 4G dev', 'snapshot $ 4M', 'ps', 'echo after'].join('\n'),
      { session, strict: false },
    );
    expect(code).toBe(0);
    expect(out).toContain(
      'hmm:1> migrate $ 4G dev\nmigrate: EINVAL — range not covered by a readable VMA: 0x7f0000000000 is not mapped.',
    );
    expect(out).toContain('1024 page(s)  0x22 DEV_PRIVATE_LOCAL|WRITE');
    expect(out).toMatch(/\*\s+1\s+-\s+running/);
    expect(out).toContain('hmm:1> echo after\nafter');
    expect(session.kernel.core.vmstat.oom_kill).toBe(0);
    // The scratch space is gone again: no 4 GiB buffer stayed mapped or faulted in.
    expect(free - session.kernel.core.zone.nrFree).toBeLessThan((16 * MiB) / PAGE_SIZE);
    nothingDied(session);
  });

  it('on a machine the data nearly fills, the read-back buffer is left to the ioctl: its copy fails, the migration stands, nothing dies', () => {
    // 96 MiB of data on a 128 MiB machine: the shell does not prepare a 64 MiB buffer that the
    // kernel's own allocations (test_hmm backs device pages with system RAM) would need. The
    // ioctl migrates, then its copy_to_user() cannot fault the buffer in: -EFAULT, as in
    // dmirror_migrate_to_device().
    const s = newSession({ ramBytes: 128 * MiB });
    run(s, 'mmap 96M', 'write $ 96M index');
    const free = s.kernel.core.zone.nrFree;
    const to = run(s, 'migrate $ 96M dev');
    expect(to.result.error?.name).toBe('EFAULT');
    expect(text(to)).toBe(
      `migrate: EFAULT — the ioctl's copy_to_user() into the shell's 64 MiB read-back buffer could not get memory (${fmtSize(free * PAGE_SIZE)} was free before the ioctl, too little for the shell to prepare the buffer); the ioctl's work before the copy was done (the pages were migrated: \`snapshot\` shows them)`,
    );
    expect(text(run(s, 'snapshot $ 96M'))).toContain('16384 page(s)  0x22 DEV_PRIVATE_LOCAL|WRITE');
    // The lazily faulted buffer was freed: the memory is back.
    expect(s.kernel.core.zone.nrFree).toBeGreaterThan((16 * MiB) / PAGE_SIZE);
    expect(run(s, 'migrate $ 96M sys').result.ok).toBe(true);
    expect(text(run(s, 'check $ 96M index'))).toContain('check: ok');
    nothingDied(s);
  });

  it('a buffer the shell cannot map is ENOMEM from the shell: no ioctl, nothing dies', () => {
    // EXCLUSIVE copies the range out: a 4 GiB buffer, which heuristic overcommit refuses on a
    // 256 MiB machine (__vm_enough_memory()).
    const s = newSession();
    run(s, 'mmap 4M', 'write $ 4M index');
    const e = run(s, 'exclusive $ 4G');
    expect(e.result.error?.name).toBe('ENOMEM');
    expect(text(e)).toMatch(
      /^exclusive: ENOMEM — the shell could not allocate its HMM_DMIRROR_EXCLUSIVE buffers \([0-9.]+ GiB; [0-9.]+ MiB of memory was free\): the ioctl was not issued \(mmap: ENOMEM; see `meminfo`, `sysctl vm.overcommit_memory`\)$/,
    );
    // Nothing was made exclusive (the ioctl never ran).
    expect(run(s, 'check-exclusive $ 4M').result.ok).toBe(true);
    nothingDied(s);
  });

  it('with memory exhausted the shell says ENOMEM for its own pages; the OOM killer never runs', () => {
    const s = newSession();
    run(s, 'mmap 2M', 'write $ 2M index');
    const buf = s.vars.get('') ?? 0;
    leaveFree(s, 2);
    // The struct's page needs page tables too: 2 free pages are not enough.
    const r = run(s, `dread ${buf} 4K`);
    expect(text(r)).toMatch(
      /^dread: ENOMEM — the shell could not allocate the page for struct hmm_dmirror_cmd \(4 KiB; [0-9.]+ KiB of memory was free\): the ioctl was not issued$/,
    );
    const w = run(s, `dwrite ${buf} 2M fill 1`);
    expect(w.result.error?.name).toBe('ENOMEM');
    expect(text(w)).toContain('the shell could not allocate');
    expect(text(run(s, `check ${buf} 2M index`))).toContain('check: ok');
    expect(s.kernel.core.vmstat.oom_kill).toBe(0);
    nothingDied(s);
  });

  it("memory short but enough for the ioctl: the buffer is left to the ioctl's copy, and the command says so", () => {
    const s = newSession();
    run(s, 'mmap 2M', 'write $ 2M index');
    const buf = s.vars.get('') ?? 0;
    // Enough for the device's 512 backing pages and, once the sources are freed, the 512 the
    // copy_to_user() faults in; not enough for the shell to prepare its buffer first.
    leaveFree(s, 1100);
    const e = run(s, `migrate ${buf} 2M dev`);
    expect(e.result.ok).toBe(true);
    expect(text(e)).toContain('the device sees index 0 (2 MiB)');
    expect(text(e)).toContain(
      "(memory was short, so the shell did not prepare its read-back buffer: the ioctl's copy_to_user() faulted it in, and those page faults are counted above)",
    );
    // The copy's fault (one THP: the shell's buffers of 2 MiB and more are MADV_HUGEPAGE) is
    // the command's own work, and so is freeing the buffer again.
    expect(delta(e).get('pgfault')).toBe(1);
    expect(delta(e).get('thp_fault_alloc')).toBe(1);
    expect(delta(e).get('nr_anon_pages') ?? 0).toBe(0);
    nothingDied(s);
  });

  it("with memory to spare the shell prepares the buffer, so a THP migration's kernel events are the ioctl's own", () => {
    const s = newSession();
    run(s, 'mmap 2M hugepage', 'write $ 2M index');
    const e = run(s, 'migrate $ 2M dev');
    expect(text(e)).toContain(
      'kernel events: PTEs written 2, TLB flushes 3, mmu invalidations 1, folio locks 2, rmap walks 1, copy commands 1024 (4 MiB)',
    );
    expect(text(e)).not.toContain('memory was short');
    // One THP for the 2 MiB buffer the ioctl copies into, and the struct's page after it.
    expect(s.overhead.get('pgfault')).toBe(2);
    expect(s.overhead.get('thp_fault_alloc')).toBe(1);
    expect(delta(e).get('pgfault') ?? 0).toBe(0);
  });
});
