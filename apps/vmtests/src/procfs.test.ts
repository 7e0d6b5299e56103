import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '@hmm-model/mm-core';
import { Libc } from '@hmm-model/selftests';
import { describe, expect, it } from 'vitest';
import { GlibcRandom } from './glibc-rand.js';
import { parseKtap } from './ktap.js';
import { bootVmtestsMachine } from './machine.js';
import { readWholeFile } from './program.js';

function machine() {
  const kernel = bootVmtestsMachine({ debugVm: true, kernel: { ramBytes: 256 << 20 } });
  const proc = kernel.spawn();
  return { kernel, proc, libc: new Libc(proc, kernel) };
}

describe('procfs views of the machine (procfs.ts)', () => {
  it('/proc/self/maps prints show_map_vma() lines: anonymous ones end in a space, named ones pad to column 73', () => {
    const { libc } = machine();
    const priv = libc.mmap(0, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const shared = libc.mmap(0, 4096, PROT_READ, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    const lines = (readWholeFile(libc, '/proc/self/maps') ?? '').split('\n');
    const hex = (a: number) => a.toString(16).padStart(8, '0');
    expect(lines).toContain(`${hex(priv)}-${hex(priv + 8192)} rw-p 00000000 00:00 0 `);
    const sh = lines.find((l) => l.startsWith(`${hex(shared)}-`));
    expect(sh).toMatch(/^[0-9a-f]+-[0-9a-f]+ r--s 00000000 00:01 \d+ +\/dev\/zero \(deleted\)$/);
    expect(sh?.indexOf('/dev/zero')).toBe(73);
  });

  it('/proc/self/smaps ends each block with VmFlags mnemonics and has no `sd`: no CONFIG_MEM_SOFT_DIRTY', () => {
    const { libc } = machine();
    const p = libc.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    libc.memset(p, 1, 4096);
    const text = readWholeFile(libc, '/proc/self/smaps') ?? '';
    const block = text.slice(text.indexOf(`${p.toString(16)}-`));
    const lines = block.split('\n');
    expect(lines[1]).toBe('Size:                  4 kB');
    expect(lines).toContain('Rss:                   4 kB');
    expect(lines).toContain('Anonymous:             4 kB');
    const flags = lines.find((l) => l.startsWith('VmFlags: '));
    expect(flags).toBe('VmFlags: rd wr mr mw me ac ');
  });

  it('/proc/sys/vm/mmap_min_addr is the model do_mmap() floor, 65536', () => {
    const { libc } = machine();
    expect(readWholeFile(libc, '/proc/sys/vm/mmap_min_addr')).toBe('65536\n');
  });
});

describe("glibc's rand() (GlibcRandom)", () => {
  it('gives the TYPE_3 sequence glibc gives after srand(1), and srand(0) acts as srand(1)', () => {
    const r = new GlibcRandom(1);
    expect([r.rand(), r.rand(), r.rand(), r.rand(), r.rand()]).toEqual([
      1804289383, 846930886, 1681692777, 1714636915, 1957747793,
    ]);
    const z = new GlibcRandom(0);
    expect(z.rand()).toBe(1804289383);
  });

  it('srand() restarts the sequence', () => {
    const r = new GlibcRandom(7);
    const a = [r.rand(), r.rand()];
    r.srand(7);
    expect([r.rand(), r.rand()]).toEqual(a);
  });
});

describe('parseKtap()', () => {
  it('reads results, directives, continuation lines, a bail out and Totals', () => {
    const k = parseKtap(
      [
        '# Test configs:',
        '1..3',
        'ok 1 # XFAIL a',
        '\tExpected mremap failure',
        'ok 2 b',
        '\tmremap time:          10ns',
        'not ok 3 c',
        'Bail out! gone',
        '# Totals: pass:1 fail:1 xfail:1 xpass:0 skip:0 error:0',
      ].join('\n'),
    );
    expect(k.plan).toBe(3);
    expect(k.results.map((r) => [r.ok, r.number, r.directive, r.description])).toEqual([
      [true, 1, 'XFAIL', 'a'],
      [true, 2, null, 'b'],
      [false, 3, null, 'c'],
    ]);
    expect(k.results[1].continuation).toEqual(['\tmremap time:          10ns']);
    expect(k.bailOut).toBe('gone');
    expect(k.totals).toEqual({ pass: 1, fail: 1, xfail: 1, xpass: 0, skip: 0, error: 0 });
  });
});
