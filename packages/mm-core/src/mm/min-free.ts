/**
 * vm.min_free_kbytes (mm/page_alloc.c): the free memory the allocator keeps back, read and
 * written through /proc/sys/vm/min_free_kbytes.
 */
import { EINVAL } from '../constants.js';
import type { Core } from '../core.js';
import { parseSysctlInt } from './overcommit.js';

/** Models reading /proc/sys/vm/min_free_kbytes (proc_dointvec_minmax()): the value and a newline. */
export function minFreeKbytesRead(core: Core): string {
  return `${core.minFreeKbytes}\n`;
}

/**
 * Models min_free_kbytes_sysctl_handler() on a write: proc_dointvec_minmax() with extra1 =
 * SYSCTL_ZERO takes one int from 0 to INT_MAX (else -EINVAL, and nothing changes), then
 * user_min_free_kbytes = min_free_kbytes and setup_per_zone_wmarks(): the new min watermark
 * applies to the next allocation. Returns 0 or -EINVAL.
 */
export function minFreeKbytesWrite(core: Core, text: string): number {
  const v = parseSysctlInt(text);
  if (v === undefined || v < 0 || v >= 2 ** 31) return -EINVAL;
  core.minFreeKbytes = v;
  core.zone.setupWmarks(v);
  return 0;
}
