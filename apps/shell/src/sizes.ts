/**
 * Machine-size options of hmm-shell (--ram, --vram): parsed and checked before boot, so a bad
 * size is one clear line instead of a failed or host-exhausting boot.
 */
import {
  checkSwapBytes,
  type Kernel,
  MAX_PHYS_PFN,
  MAX_PHYSMEM_BITS,
  PAGE_SIZE,
  PAGES_PER_SECTION,
  RAM_START_PFN,
  totalSwapPages,
} from '@hmm-model/mm-core';
import { DMEM_PAGEMAP_NPAGES } from '@hmm-model/nouveau-dmem';
import { DEVMEM_CHUNK_SIZE } from '@hmm-model/test-hmm';
import { parseNumber } from './parse.js';

/** Models the memory section size (PAGES_PER_SECTION pages = 128 MiB): RAM and VRAM come in whole sections. */
export const SECTION_BYTES = PAGES_PER_SECTION * PAGE_SIZE;

/** The inverse of memparse(): a size with the largest exact suffix (1T, 141G, 384M, 4096). */
export function fmtBytes(n: number): string {
  for (const [s, b] of [
    ['T', 2 ** 40],
    ['G', 2 ** 30],
    ['M', 2 ** 20],
    ['K', 2 ** 10],
  ] as const)
    if (n >= b && n % b === 0) return `${n / b}${s}`;
  return String(n);
}

/**
 * Models memparse() (lib/cmdline.c) as mem= uses it, for `--ram 1T` / `--vram 141G`: a positive
 * whole number of 128 MiB sections. Throws an Error with a one-line message otherwise.
 */
export function parseMachineSize(flag: string, text: string): number {
  const n = parseNumber(text);
  if (n === undefined) throw new Error(`${flag} ${text}: not a size (use e.g. 2G, 512M, 1T)`);
  if (n <= 0) throw new Error(`${flag} ${text}: must be at least one 128 MiB memory section`);
  if (n % SECTION_BYTES !== 0)
    throw new Error(`${flag} ${text}: not a multiple of the 128 MiB memory section size`);
  return n;
}

/** The sizes that decide whether a machine fits the model's physical address space. */
export interface MachineSizes {
  /** System RAM in bytes (default 2 GiB). */
  ramBytes?: number;
  /** The nouveau GPU's VRAM in bytes, or 0 without nouveau (default 1 GiB). */
  vramBytes?: number;
  /** Whether the two device-coherent dmirror devices exist (default true). */
  coherent?: boolean;
}

/**
 * Physical address space the drivers of the default machine claim above RAM: the section gap
 * after RAM, each dmirror device's 256 MiB chunk (request_free_mem_region() / the coherent
 * special-purpose ranges) and nouveau's VRAM in 256 MiB pagemaps.
 */
export function deviceAddressBytes(s: MachineSizes): number {
  const dmirrors = s.coherent === false ? 2 : 4;
  const pagemap = DMEM_PAGEMAP_NPAGES * PAGE_SIZE;
  const vram = Math.ceil((s.vramBytes ?? 2 ** 30) / pagemap) * pagemap;
  return SECTION_BYTES + dmirrors * DEVMEM_CHUNK_SIZE + vram;
}

/** Largest RAM the model can address next to the given devices (RAM starts at 1 GiB). */
export function maxRamBytes(s: MachineSizes): number {
  const space = (MAX_PHYS_PFN - RAM_START_PFN) * PAGE_SIZE - deviceAddressBytes(s);
  return Math.max(0, Math.floor(space / SECTION_BYTES) * SECTION_BYTES);
}

/**
 * Checks that RAM plus device memory fit the model's physical address space
 * (MAX_PHYSMEM_BITS); returns a one-line message when they do not.
 */
export function checkMachineSizes(s: MachineSizes): string | undefined {
  const ram = s.ramBytes ?? 2 ** 31;
  const max = maxRamBytes(s);
  if (ram <= max) return undefined;
  const vram = s.vramBytes ?? 2 ** 30;
  return (
    `--ram ${fmtBytes(ram)}: beyond the model's physical address space ` +
    `(${MAX_PHYSMEM_BITS} bits = ${fmtBytes(MAX_PHYS_PFN * PAGE_SIZE)}): at most ${fmtBytes(max)} ` +
    `(${(max / 2 ** 40).toFixed(2)} TiB) of RAM ` +
    `next to ${fmtBytes(vram)} of VRAM and the dmirror devices`
  );
}

/**
 * Parses `--swap SIZE` as memparse() reads a size: 0 boots without swap (no `swapon`); anything
 * else is the size of the machine's swap area (sys_swapon()'s checks: whole pages, room for the
 * header page and a slot, at most the model's 64 GiB). Throws an Error with a one-line message.
 */
export function parseSwapSize(flag: string, text: string): number {
  const n = parseNumber(text);
  if (n === undefined) throw new Error(`${flag} ${text}: not a size (use e.g. 1G, 512M, 0 for none)`);
  const bad = checkSwapBytes(n);
  if (bad !== undefined) throw new Error(`${flag} ${text}: ${bad}`);
  return n;
}

/** The banner's swap words: `1G swap`, or `no swap` (si_swapinfo(): total_swap_pages plus each header page). */
export function swapText(kernel: Kernel): string {
  const pages = totalSwapPages(kernel.core);
  return pages === 0 ? 'no swap' : `${fmtBytes((pages + kernel.core.swapInfo.length) * 4096)} swap`;
}
