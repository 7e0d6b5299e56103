/** Swap in the shell: --swap, madvise pageout/free and the other advice, smaps Swap/VmFlags, OOM vs reclaim. */
import { describe, expect, it } from 'vitest';
import { ADVICE } from './commands/memory.js';
import { parseSwapSize, swapText } from './sizes.js';
import { newSession, run, text } from './testing/harness.js';

describe('--swap SIZE', () => {
  it('parses a size as memparse() does; 0 is no swap; sizes sys_swapon() would refuse are one line', () => {
    expect(parseSwapSize('--swap', '1G')).toBe(2 ** 30);
    expect(parseSwapSize('--swap', '0')).toBe(0);
    expect(parseSwapSize('--swap', '512M')).toBe(512 * 2 ** 20);
    expect(() => parseSwapSize('--swap', 'lots')).toThrow(/--swap lots: not a size/);
    expect(() => parseSwapSize('--swap', '4K')).toThrow(/--swap 4K: .*no slot after the swap header/);
    expect(() => parseSwapSize('--swap', '6000')).toThrow(/not a multiple of the page size/);
    expect(() => parseSwapSize('--swap', '65G')).toThrow(/exceeds the model's limit/);
  });

  it('the banner names the swap area, or no swap (si_swapinfo())', () => {
    expect(swapText(newSession().kernel)).toBe('1G swap');
    expect(swapText(newSession({ swapBytes: 256 * 2 ** 20 }).kernel)).toBe('256M swap');
    expect(swapText(newSession({ swapBytes: 0 }).kernel)).toBe('no swap');
  });

  it('meminfo shows SwapTotal / SwapFree of the area (the header page is not a slot)', () => {
    const s = newSession({ swapBytes: 64 * 2 ** 20 });
    const t = text(run(s, 'meminfo'));
    expect(t).toMatch(/SwapTotal:\s+65532 kB/);
    expect(t).toMatch(/SwapFree:\s+65532 kB/);
    expect(text(run(newSession({ swapBytes: 0 }), 'meminfo'))).toMatch(/SwapTotal:\s+0 kB/);
  });

  it('record notes a non-default swap size in its header', () => {
    for (const [bytes, line] of [
      [0, '# recorded on a machine with --swap 0'],
      [64 * 2 ** 20, '# recorded on a machine with --swap 64M'],
    ] as const) {
      const s = newSession({ swapBytes: bytes });
      const files = new Map<string, string>();
      s.files = {
        write: (p, t) => void files.set(p, t),
        append: (p, t) => void files.set(p, (files.get(p) ?? '') + t),
      };
      run(s, 'mmap 4K', 'record x.hmm');
      expect(files.get('x.hmm')?.split('\n')).toContain(line);
    }
    const d = newSession();
    const files = new Map<string, string>();
    d.files = { write: (p, t) => void files.set(p, t), append: () => {} };
    run(d, 'record y.hmm');
    expect(files.get('y.hmm')).not.toContain('--swap');
  });
});

describe('madvise advice names', () => {
  it('knows every advice mm-core implements, by its MADV_ name or lower case', () => {
    for (const name of [
      'normal',
      'random',
      'sequential',
      'willneed',
      'dontneed',
      'free',
      'remove',
      'dontfork',
      'dofork',
      'hugepage',
      'nohugepage',
      'dontdump',
      'dodump',
      'wipeonfork',
      'keeponfork',
      'cold',
      'pageout',
      'populate_read',
      'populate_write',
      'dontneed_locked',
      'collapse',
    ])
      expect(ADVICE[name]).toBeTypeOf('number');
    const s = newSession();
    run(s, 'mmap 16K');
    expect(text(run(s, 'madvise $ 16K MADV_POPULATE_WRITE'))).toContain('MADV_POPULATE_WRITE');
    expect(text(run(s, 'madvise $ 16K populate-read'))).toContain('MADV_POPULATE_READ');
  });

  it('pageout writes anonymous pages to swap: smaps shows Swap and SwapPss, meminfo SwapFree drops, vmstat pswpout; a read swaps in', () => {
    const s = newSession();
    run(s, 'mmap 16K', 'write $ 16K fill 0x5a');
    expect(text(run(s, 'madvise $ 16K pageout'))).toMatch(/^madvise: 0x[0-9a-f]+-0x[0-9a-f]+ MADV_PAGEOUT$/);
    const sm = text(run(s, 'smaps $'));
    expect(sm).toContain('Swap:      16 kB  SwapPss:      16 kB');
    expect(sm).toContain('Rss:       0 kB');
    expect(text(run(s, 'meminfo'))).toMatch(/SwapFree:\s+1048556 kB/);
    expect(text(run(s, 'vmstat'))).toMatch(/pswpout\s+4/);
    // fork shares the swap entries: each process has half of each page in SwapPss.
    run(s, 'fork');
    expect(text(run(s, 'smaps $'))).toContain('Swap:      16 kB  SwapPss:       8 kB');
    expect(text(run(s, 'check $ 16K fill 0x5a'))).toMatch(/^check: /);
    expect(text(run(s, 'vmstat'))).toMatch(/pswpin\s+4/);
  });

  it('free on swapped-out pages frees the slots (madvise_free_pte_range()): the pages read zero', () => {
    const s = newSession();
    run(s, 'mmap 8K', 'write $ 8K fill 0x11', 'madvise $ 8K pageout');
    expect(text(run(s, 'smaps $'))).toContain('Swap:       8 kB');
    run(s, 'madvise $ 8K free');
    expect(text(run(s, 'smaps $'))).toContain('Swap:       0 kB');
    expect(text(run(s, 'meminfo'))).toMatch(/SwapFree:\s+1048572 kB/);
    expect(text(run(s, 'check $ 8K zero'))).toMatch(/^check: /);
  });

  it('VmFlags shows the letters the kernel prints for the flags advice sets: dc (DONTFORK), wf (WIPEONFORK), dd (DONTDUMP), rr / sr', () => {
    const s = newSession();
    run(s, 'mmap 16K');
    run(
      s,
      'madvise $ 4K dontfork',
      'madvise $+4K 4K wipeonfork',
      'madvise $+8K 4K dontdump',
      'madvise $+12K 4K random',
    );
    const t = text(run(s, 'smaps'));
    expect(t).toContain('VmFlags: rd wr mr mw me dc ac');
    expect(t).toContain('VmFlags: rd wr mr mw me ac wf');
    expect(t).toContain('VmFlags: rd wr mr mw me ac dd');
    expect(t).toContain('VmFlags: rd wr mr mw me rr ac');
    run(s, 'madvise $+12K 4K sequential');
    expect(text(run(s, 'smaps $+12K'))).toContain('VmFlags: rd wr mr mw me sr ac');
  });
});

describe('out of memory with and without swap', () => {
  it('with swap, a process writing more than RAM is not killed: direct reclaim (try_to_free_pages()) swaps pages out', () => {
    const s = newSession();
    run(s, 'spawn', 'mmap 300M noreserve');
    const e = run(s, 'write $ 300M fill 1');
    expect(e.result.ok).toBe(true);
    expect(text(run(s, 'vmstat'))).toMatch(/allocstall_normal\s+[1-9]/);
    expect(text(run(s, 'vmstat'))).not.toMatch(/oom_kill\s+[1-9]/);
    expect(text(run(s, 'check $ 300M fill 1'))).toMatch(/^check: /);
  });
});

describe('swapoff / swapon', () => {
  it('swapoff brings the swapped-out pages back (try_to_unuse()) and swap is gone; swapon turns it on again', () => {
    const s = newSession();
    run(s, 'mmap 16K', 'write $ 16K fill 0x33', 'madvise $ 16K pageout');
    expect(text(run(s, 'smaps $'))).toContain('Swap:      16 kB');
    expect(text(run(s, 'swapoff'))).toBe('swapoff: /dev/vda2 off (no swap)');
    expect(text(run(s, 'smaps $'))).toContain('Swap:       0 kB');
    expect(text(run(s, 'smaps $'))).toContain('Rss:      16 kB');
    expect(text(run(s, 'meminfo'))).toMatch(/SwapTotal:\s+0 kB/);
    expect(text(run(s, 'swapoff'))).toBe('swapoff: EINVAL — /dev/vda2 is not an active swap area');
    expect(text(run(s, 'swapon /dev/sdz'))).toMatch(/^swapon: ENOENT — \/dev\/sdz: no such swap device/);
    expect(text(run(s, 'swapon'))).toBe('swapon: /dev/vda2 on (1G swap)');
    expect(text(run(s, 'swapon'))).toBe('swapon: EBUSY — /dev/vda2 is already an active swap area');
    expect(text(run(s, 'check $ 16K fill 0x33'))).toMatch(/^check: /);
  });
});
