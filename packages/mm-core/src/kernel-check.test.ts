import { describe, expect, it } from 'vitest';
import { MAP_ANONYMOUS, MAP_PRIVATE, PAGE_SIZE, PROT_READ, PROT_WRITE } from './constants.js';
import { Kernel } from './kernel.js';

describe('Kernel.afterSyscall (the CONFIG_DEBUG_VM-style checker hook)', () => {
  it('runs the checkers after every syscall, or after every checkInterval-th one', () => {
    const k = new Kernel({ ramBytes: 64 << 20, checkInvariants: true });
    let runs = 0;
    k.checkers.push(() => {
      runs++;
      return [];
    });
    const p = k.spawn();
    const a = p.mmap(0, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
    p.munmap(a, PAGE_SIZE);
    expect(runs).toBe(2);
    k.checkInterval = 3;
    runs = 0;
    for (let i = 0; i < 7; i++) p.munmap(a, PAGE_SIZE);
    expect(runs).toBe(2);
  });
});
