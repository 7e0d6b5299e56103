/**
 * The shell against the real dmirror driver (@hmm-model/test-hmm's installDmirror, on a kernel
 * this test builds itself): every device example runs with --strict semantics, and the facts
 * each scenario is about show up in the output. This is the integration check of the shell's
 * user-space side with the driver; src/devices.test.ts covers the encoding with a test double.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kernel } from '@hmm-model/mm-core';
import { installDmirror } from '@hmm-model/test-hmm';
import { describe, expect, it } from 'vitest';
import { execute } from './commands/index.js';
import { runScript } from './script.js';
import { Session } from './session.js';

const examples = join(dirname(fileURLToPath(import.meta.url)), '..', 'examples');

function machine(): Session {
  const kernel = new Kernel({ ramBytes: 512 * 2 ** 20, checkInvariants: true });
  installDmirror(kernel);
  return new Session(kernel, kernel.spawn());
}

async function example(name: string): Promise<string> {
  let out = '';
  const code = await runScript(
    machine(),
    readFileSync(join(examples, `${name}.hmm`), 'utf8').split('\n'),
    (t) => (out += t),
    { strict: true },
  );
  if (code !== 0) throw new Error(`${name} failed:\n${out}`);
  return out;
}

describe('device examples on the dmirror driver', () => {
  it('thp-migrate-fault-back: a device-private PMD, then a system THP again', async () => {
    const out = await example('thp-migrate-fault-back');
    expect(out).toContain('to device 0: cpages 512 faults 0');
    expect(out).toContain('512 page(s)  0x26 DEV_PRIVATE_LOCAL|WRITE|PMD');
    expect(out).toMatch(/PMD\[510\].*device-private-write pfn 0x[0-9a-f]+ {2}SWP_DEVICE_WRITE/);
    expect(out).toContain('=> a device-private THP');
    expect(out).toContain('order 9 (512 pages)  zone ZONE_DEVICE');
    expect(out).toMatch(/pgmap #\d+ "hmm_dmirror0" MEMORY_DEVICE_PRIVATE/);
    expect(out).toContain('|D.|');
    expect(out).toContain('check: ok — 2 MiB at 0x7effffc00000 match int index');
    expect(out).toContain('512 page(s)  0x06 WRITE|PMD');
  });

  it('split-on-failed-alloc: 512 small device pages, and a split on the way back', async () => {
    const out = await example('split-on-failed-alloc');
    expect(out).toContain('512 page(s)  0x22 DEV_PRIVATE_LOCAL|WRITE');
    expect(out).toContain(`|${'d'.repeat(64)}|`);
    expect(out).toContain('check: ok — 2 MiB at 0x7effff800000 match int index');
  });

  it('partial-munmap-device-thp: device-private PTEs, a partially mapped order-9 device folio', async () => {
    const out = await example('partial-munmap-device-thp');
    expect(out).toMatch(/PTE\[ {2}0\].*device-private-write/);
    expect(out).toContain('refcount 256');
    expect(out).toContain('256 page(s)  0xff ERROR');
    expect(out).toContain('check: ok — 512 KiB at 0x7effffd80000 match int index from 393216');
  });

  it('fork-device-thp: read-only device PMD shared by two processes, then COW', async () => {
    const out = await example('fork-device-thp');
    expect(out).toContain('device-private-read');
    expect(out).toContain('refcount 2  mapcount(page) 0  entire_mapcount 2');
    expect(out).toMatch(/cow_faults +\d+ +\+1/);
    expect(out).toContain('512 page(s)  0x05 READ|PMD');
  });

  it('devices lists the four device files and their device memory, in use and free', () => {
    const s = machine();
    for (const l of ['mmap 4M hugepage', 'write $ 2M index', 'migrate $ 2M dev'])
      expect(execute(s, l).result.ok).toBe(true);
    const t = execute(s, 'devices').result.lines.join('\n');
    expect(t).toContain('/dev/hmm_dmirror0  present, open in pid 1  (selected)');
    expect(t).toContain('/dev/hmm_dmirror3  present');
    expect(t).toMatch(/hmm_dmirror\d +private/);
    expect(t).toMatch(/ 512 +\d+ +\d+$/m);
  });

  it("a command's vmstat change leaves out the shell's own ioctl buffers", () => {
    const s = machine();
    for (const l of ['mmap 4M hugepage', 'write $ 2M index', 'migrate $ 2M dev'])
      expect(execute(s, l).result.ok).toBe(true);
    expect(s.lastMutation).toBe('migrate $ 2M dev');
    expect(s.lastDelta.has('pgfault')).toBe(false);
    expect(s.proc?.mm.vmas).toHaveLength(1);
    expect(execute(s, 'snapshot $ 2M').vmstatDelta).toEqual([]);
    expect(s.lastMutation).toBe('migrate $ 2M dev');
  });
});
