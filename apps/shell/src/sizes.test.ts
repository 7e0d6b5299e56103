import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createMachine } from './machine.js';
import { checkMachineSizes, fmtBytes, maxRamBytes, parseMachineSize } from './sizes.js';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'cli.js');
const GiB = 2 ** 30;

function shell(args: string[], input = ''): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { input, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('machine sizes (--ram, --vram)', () => {
  it('parses sizes with suffixes in whole 128 MiB sections', () => {
    expect(parseMachineSize('--ram', '1T')).toBe(2 ** 40);
    expect(parseMachineSize('--ram', '384M')).toBe(384 * 2 ** 20);
    expect(parseMachineSize('--vram', '141G')).toBe(141 * GiB);
    expect(() => parseMachineSize('--ram', '0')).toThrow(/--ram 0: must be at least one 128 MiB/);
    expect(() => parseMachineSize('--ram', '100M')).toThrow(/not a multiple of the 128 MiB/);
    expect(() => parseMachineSize('--ram', 'lots')).toThrow(/--ram lots: not a size/);
    expect(() => parseMachineSize('--ram', '-1G')).toThrow(/not a size/);
  });

  it('refuses machines beyond the physical address space and names the limit', () => {
    expect(checkMachineSizes({ ramBytes: 2 ** 40, vramBytes: 141 * GiB })).toBeUndefined();
    const max = maxRamBytes({ vramBytes: 141 * GiB });
    expect(max % (128 * 2 ** 20)).toBe(0);
    expect(checkMachineSizes({ ramBytes: max, vramBytes: 141 * GiB })).toBeUndefined();
    expect(checkMachineSizes({ ramBytes: max + 128 * 2 ** 20, vramBytes: 141 * GiB })).toMatch(
      new RegExp(`at most ${fmtBytes(max)} \\(7\\.86 TiB\\) of RAM next to 141G of VRAM`),
    );
    expect(maxRamBytes({ vramBytes: 4000 * GiB })).toBeLessThan(max);
  });

  // Runs before any big machine exists in this process: a process holding tens of GiB of reserved
  // (uncommitted) memmap address space may be refused fork() under heuristic overcommit.
  it('hmm-shell --ram 1T boots; bad sizes are one line on stderr and exit status 2 before boot', () => {
    const ok = shell(['--ram', '1T', '--vram', '141G'], 'meminfo\n');
    expect(ok.stderr).toBe('');
    expect(ok.status).toBe(0);
    expect(ok.stdout).toMatch(/MemTotal:\s+1073741824 kB/);
    for (const [arg, msg] of [
      ['0', /--ram 0: must be at least one 128 MiB memory section/],
      ['100M', /--ram 100M: not a multiple of the 128 MiB memory section size/],
      ['two', /--ram two: not a size/],
      ['9T', /--ram 9T: beyond the model's physical address space/],
    ] as const) {
      const r = shell(['--ram', arg]);
      expect(r.status).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(msg);
    }
  });

  it('boots a 1 TiB machine with a 141 GiB GPU and the four dmirror devices', () => {
    const m = createMachine({ ramBytes: 2 ** 40, nouveauVramBytes: 141 * GiB });
    expect(m.kernel.core.ramPages * 4096).toBe(2 ** 40);
    expect(m.nouveau?.vram.size).toBe(141 * GiB);
    expect(m.dmirror.devices.length).toBe(4);
    // Only the touched sections have a memmap: the top of RAM and the dmirror chunks.
    expect(m.kernel.core.map.touchedSections).toBeLessThan(16);
  });
});
