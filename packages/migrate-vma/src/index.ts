/**
 * @hmm-model/migrate-vma: the model of mm/migrate_device.c and include/linux/migrate.h (device
 * memory migration with THP support, Linux v6.19). See the README for the kernel-symbol table.
 */
export {
  checkMigrate,
  type DeviceFreeLists,
  installMigrateChecker,
  type MigrateCheckerOptions,
} from './checker.js';
export { migrateVmaCollect, THP_MIGRATION_SUPPORTED } from './collect.js';
export {
  migrateDeviceCoherentFolio,
  migrateDeviceFinalize,
  migrateDeviceInit,
  migrateDevicePages,
  migrateDevicePfns,
  migrateDeviceRange,
} from './device.js';
export { migrateDeviceFinalizeCore } from './finalize.js';
export { type InflightMigration, type InflightPhase, inflightMigrations } from './inflight.js';
export { migrateVmaInsertPage } from './insert.js';
export {
  collectMthpUnit,
  MTHP_ORDERS_VALID,
  mthpMappedAsUnit,
  mthpOrdersCheck,
  splitMthpForMigrate,
} from './mthp.js';
export { folioMigrateFlags, folioMigrateMapping, migrateDevicePagesCore } from './pages.js';
export { migrateVmaFinalize, migrateVmaPages, migrateVmaSetup } from './setup.js';
export * from './types.js';
export { migrateDeviceUnmap, migrateVmaCheckPage } from './unmap.js';
