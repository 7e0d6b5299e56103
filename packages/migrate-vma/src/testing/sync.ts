/**
 * Test-only synchronous forms of the migrate_vma_* and migrate_device_* kernel paths: each runs
 * the generator to completion on the machine's scheduler (as a driver's ioctl would, in a task).
 * Unit tests call these; drivers and tasks `yield*` the generators themselves.
 */
import type { Core } from '@hmm-model/mm-core';
import * as dev from '../device.js';
import * as setup from '../setup.js';
import type { MigrateVma } from '../types.js';

/** Sync form of migrate_vma_setup(). */
export function migrateVmaSetup(core: Core, args: MigrateVma): number {
  return core.sched.runSync(setup.migrateVmaSetup(core, args), 'migrate_vma_setup');
}
/** Sync form of migrate_vma_pages(). */
export function migrateVmaPages(core: Core, args: MigrateVma): void {
  core.sched.runSync(setup.migrateVmaPages(core, args), 'migrate_vma_pages');
}
/** Sync form of migrate_vma_finalize(). */
export function migrateVmaFinalize(core: Core, args: MigrateVma): void {
  core.sched.runSync(setup.migrateVmaFinalize(core, args), 'migrate_vma_finalize');
}
/** Sync form of migrate_device_range(). */
export function migrateDeviceRange(core: Core, src: Float64Array, start: number, npages: number): number {
  return core.sched.runSync(dev.migrateDeviceRange(core, src, start, npages), 'migrate_device_range');
}
/** Sync form of migrate_device_pfns(). */
export function migrateDevicePfns(core: Core, src: Float64Array, npages: number): number {
  return core.sched.runSync(dev.migrateDevicePfns(core, src, npages), 'migrate_device_pfns');
}
/** Sync form of migrate_device_pages(). */
export function migrateDevicePages(core: Core, src: Float64Array, dst: Float64Array, npages: number): void {
  core.sched.runSync(dev.migrateDevicePages(core, src, dst, npages), 'migrate_device_pages');
}
/** Sync form of migrate_device_finalize(). */
export function migrateDeviceFinalize(
  core: Core,
  src: Float64Array,
  dst: Float64Array,
  npages: number,
): void {
  core.sched.runSync(dev.migrateDeviceFinalize(core, src, dst, npages), 'migrate_device_finalize');
}
/** Sync form of migrate_device_coherent_folio(). */
export function migrateDeviceCoherentFolio(core: Core, folio: number): number {
  return core.sched.runSync(dev.migrateDeviceCoherentFolio(core, folio), 'migrate_device_coherent_folio');
}
