import {
  entryPfn,
  isDevicePrivateType,
  isSoftleaf,
  mkHi,
  mkSwpLo,
  SWP_DEVICE_READ,
  SWP_DEVICE_WRITE,
  swpType,
} from '@hmm-model/mm-core';

/** Models a pte_t / softleaf_t value as mm-core stores it: two 32-bit words. */
export interface EntryWords {
  readonly lo: number;
  readonly hi: number;
}

/** Models make_readable_device_private_entry() (include/linux/leafops.h): SWP_DEVICE_READ for pfn. */
export function makeReadableDevicePrivateEntry(pfn: number): EntryWords {
  return { lo: mkSwpLo(SWP_DEVICE_READ, pfn), hi: mkHi(pfn) };
}

/** Models make_writable_device_private_entry(): SWP_DEVICE_WRITE for pfn. */
export function makeWritableDevicePrivateEntry(pfn: number): EntryWords {
  return { lo: mkSwpLo(SWP_DEVICE_WRITE, pfn), hi: mkHi(pfn) };
}

/** Models softleaf_is_device_private(): a non-present entry of type SWP_DEVICE_READ/WRITE. */
export function softleafIsDevicePrivate(lo: number, hi: number): boolean {
  return isSoftleaf(lo, hi) && isDevicePrivateType(swpType(lo));
}

/** Models softleaf_is_device_private_write(). */
export function softleafIsDevicePrivateWrite(lo: number, hi: number): boolean {
  return isSoftleaf(lo, hi) && swpType(lo) === SWP_DEVICE_WRITE;
}

/** Models softleaf_to_pfn() (the offset field of a software entry). */
export function softleafToPfn(lo: number, hi: number): number {
  return entryPfn(lo, hi);
}
