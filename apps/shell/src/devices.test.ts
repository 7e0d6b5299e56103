/**
 * Device commands against a FAKE dmirror device (a test double from src/testing/fake-dmirror.ts,
 * not the driver): these tests check the shell's side of the user-space boundary — the struct
 * hmm_dmirror_cmd it builds, the ioctl numbers, and how it decodes cpages/faults/buffers/errno.
 * When @hmm-model/test-hmm's dmirror is installed by createMachine() the same commands reach
 * the real driver.
 */
import { describe, expect, it } from 'vitest';
import {
  dmirrorPath,
  HMM_DMIRROR_CHECK_EXCLUSIVE,
  HMM_DMIRROR_EXCLUSIVE,
  HMM_DMIRROR_FLAGS,
  HMM_DMIRROR_MIGRATE_TO_DEV,
  HMM_DMIRROR_MIGRATE_TO_SYS,
  HMM_DMIRROR_READ,
  HMM_DMIRROR_RELEASE,
  HMM_DMIRROR_SNAPSHOT,
  HMM_DMIRROR_WRITE,
} from './dmirror-uapi.js';
import { installFakeDmirror } from './testing/fake-dmirror.js';
import { newSession, run, script, text } from './testing/harness.js';

/** A session with no dmirror device files at all (whatever createMachine installs). */
function bare() {
  const s = newSession();
  for (let n = 0; n < 4; n++) s.kernel.unregisterDevice(dmirrorPath(n));
  return s;
}

function withFake() {
  const s = bare();
  const fake = installFakeDmirror(s.kernel, 0);
  run(s, 'mmap 4M rw private anon hugepage');
  return { s, fake, base: s.vars.get('') ?? 0 };
}

describe('device commands without the driver', () => {
  it('report ENOENT naming the missing device file', async () => {
    const { out, code } = await script('mmap 2M\nmigrate $ 2M dev\nsnapshot $ 2M\ndread $ 4K', {
      session: bare(),
    });
    expect(code).toBe(0);
    expect(out).toContain(
      'migrate: ENOENT — /dev/hmm_dmirror0 does not exist: the test_hmm (dmirror) driver is not installed in this machine',
    );
    expect(out).toContain('snapshot: ENOENT');
    expect(out).toContain('dread: ENOENT');
  });
});

describe('device commands against a fake dmirror (test double)', () => {
  it('dread encodes the cmd struct and decodes cpages, faults and the data', () => {
    const { s, fake, base } = withFake();
    run(s, 'write $ 2M index');
    const e = run(s, 'dread $ 2M');
    expect(e.result.ok).toBe(true);
    expect(text(e)).toContain(
      `dread: device 0 read 512 page(s) at 0x${base.toString(16)}: cpages 512 faults 1`,
    );
    expect(text(e)).toContain('the whole range is index 0');
    expect(e.result.data?.cpages).toBe(512);
    const c = fake.calls[fake.calls.length - 1];
    expect(c.cmd).toBe(HMM_DMIRROR_READ);
    expect(c.addr).toBe(base);
    expect(c.npages).toBe(512);
    expect(c.ptr).toBeGreaterThan(0);
    expect(c.ptr).not.toBe(base);
  });

  it('the ioctl buffers are freed again (the address space is unchanged)', () => {
    const { s } = withFake();
    const before = s.proc?.mm.vmas.length;
    run(s, 'dread $ 2M', 'migrate $ 2M dev', 'snapshot $ 4M', 'release', 'fail-alloc');
    expect(s.proc?.mm.vmas.length).toBe(before);
  });

  it('dwrite sends the pattern; the CPU sees it', () => {
    const { s, fake } = withFake();
    const e = run(s, 'dwrite $ 1M fill 0x5a');
    expect(text(e)).toContain('wrote 256 page(s)');
    expect(fake.calls[0].cmd).toBe(HMM_DMIRROR_WRITE);
    expect(run(s, 'check $ 1M fill 0x5a').result.ok).toBe(true);
  });

  it('migrate to device and back, with the data the device saw', () => {
    const { s, fake } = withFake();
    run(s, 'write $ 2M index');
    const to = run(s, 'migrate $ 2M dev');
    expect(to.result.ok).toBe(true);
    expect(text(to)).toContain('to device 0: cpages 512 faults 0');
    expect(text(to)).toContain('the device sees index 0 (2 MiB)');
    expect(fake.calls[0].cmd).toBe(HMM_DMIRROR_MIGRATE_TO_DEV);
    const back = run(s, 'migrate $ 4M sys');
    expect(text(back)).toContain('to system memory (from device 0): cpages 512');
    expect(fake.calls[1].cmd).toBe(HMM_DMIRROR_MIGRATE_TO_SYS);
  });

  it('snapshot decodes bytes into words, run-length grouped', () => {
    const { s, fake, base } = withFake();
    run(s, 'migrate $ 2M dev');
    const e = run(s, 'snapshot $ 4M');
    expect(fake.calls[1].cmd).toBe(HMM_DMIRROR_SNAPSHOT);
    expect(fake.calls[1].npages).toBe(1024);
    const t = text(e);
    expect(t).toContain(
      `0x${base.toString(16)}-0x${(base + 0x200000).toString(16)}   512 page(s)  0x26 DEV_PRIVATE_LOCAL|WRITE|PMD`,
    );
    expect(t).toContain('512 page(s)  0x02 WRITE');
    expect(e.result.data?.runs).toHaveLength(2);
  });

  it('exclusive, then check-exclusive fails with EPERM and says why', () => {
    const { s, fake } = withFake();
    expect(run(s, 'exclusive $ 4K').result.ok).toBe(true);
    const e = run(s, 'check-exclusive $ 4K');
    expect(e.result.ok).toBe(false);
    expect(text(e)).toContain(
      'check-exclusive: EPERM — some page is still mapped exclusive (atomic) by the device',
    );
    expect(fake.calls.map((c) => c.cmd)).toEqual([HMM_DMIRROR_EXCLUSIVE, HMM_DMIRROR_CHECK_EXCLUSIVE]);
    expect(run(s, 'check-exclusive $+4K 4K').result.ok).toBe(true);
  });

  it('release and fail-alloc: FLAGS carries the word in npages; the one-shot failure is ENOMEM', () => {
    const { s, fake } = withFake();
    expect(text(run(s, 'release'))).toContain("device 0's memory chunks evicted and released");
    expect(fake.calls[0].cmd).toBe(HMM_DMIRROR_RELEASE);
    expect(text(run(s, 'fail-alloc'))).toContain('flags = 0x1 (FAIL_ALLOC');
    expect(fake.calls[1]).toMatchObject({ cmd: HMM_DMIRROR_FLAGS, npages: 1 });
    const m = run(s, 'migrate $ 2M dev');
    expect(text(m)).toContain('migrate: ENOMEM — device or system memory allocation failed');
    expect(run(s, 'migrate $ 2M dev').result.ok).toBe(true);
    const zero = run(s, 'fail-alloc 0');
    expect(text(zero)).toContain('fail-alloc: EINVAL — a flag word of 0 is npages 0');
  });

  it('migrate of an unmapped range: EINVAL — range not covered by a readable VMA', () => {
    const { s } = withFake();
    const e = run(s, 'migrate 0x10000000 2M dev');
    const why =
      'range not covered by a readable VMA: 0x10000000 is not mapped. dmirror_migrate_to_device() (lib/test_hmm.c) migrates the range VMA by VMA and returns -EINVAL at the first address vma_lookup() does not find or cannot read: nothing was migrated';
    expect(text(e)).toBe(`migrate: EINVAL — ${why}`);
    expect(e.result.error).toEqual({ errno: 22, name: 'EINVAL', why });
    run(s, 'mprotect $ 2M none');
    expect(text(run(s, 'migrate $ 2M sys'))).toMatch(
      /^migrate: EINVAL — range not covered by a readable VMA: 0x[0-9a-f]+ is in a VMA without read permission\. dmirror_migrate_to_system\(\) .* nothing was migrated$/,
    );
    expect(text(run(s, 'migrate $+1 4K dev'))).toContain('migrate: EINVAL — address 0x');
  });

  it('the dmirror alias, -d, dev selection and bad device numbers', () => {
    const { s, fake } = withFake();
    expect(run(s, 'dmirror snapshot $ 4K').result.ok).toBe(true);
    expect(run(s, 'dmirror migrate-to-dev $ 2M').result.ok).toBe(true);
    expect(fake.calls.map((c) => c.cmd)).toEqual([HMM_DMIRROR_SNAPSHOT, HMM_DMIRROR_MIGRATE_TO_DEV]);
    expect(text(run(s, 'dread $ 4K -d 1'))).toContain('/dev/hmm_dmirror1 does not exist');
    expect(text(run(s, 'dread $ 4K -d 7'))).toContain('usage — device 7 does not exist');
    expect(text(run(s, 'dev 1'))).toContain('/dev/hmm_dmirror1 (not present');
    expect(text(run(s, 'snapshot $ 4K'))).toContain('/dev/hmm_dmirror1 does not exist');
    expect(text(run(s, 'dev 0'))).toBe('dev: /dev/hmm_dmirror0');
    expect(text(run(s, 'dmirror frob'))).toContain('unknown dmirror op "frob"');
  });

  it('each process opens its own device file (its own mirror), as the selftests do', () => {
    const { s, fake } = withFake();
    run(s, 'dread $ 4K');
    const child = run(s, 'fork').result.value ?? 0;
    run(s, `switch ${child}`, 'dread $ 4K');
    expect(fake.calls.map((c) => c.pid)).toEqual([1, child]);
    expect(text(run(s, 'ps'))).toMatch(/dmirror0/);
  });

  it('json mode carries cpages and the snapshot bytes', async () => {
    const s = bare();
    installFakeDmirror(s.kernel, 0);
    const { out } = await script('mmap 2M\nsnapshot $ 8K', { json: true, session: s });
    const last = JSON.parse(out.trim().split('\n')[1]);
    expect(last.ok).toBe(true);
    expect(last.data.cpages).toBe(2);
    expect(last.data.bytes).toEqual([2, 2]);
  });
});
