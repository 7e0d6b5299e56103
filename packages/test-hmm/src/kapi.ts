/**
 * The mm/migrate_device.c API this driver programs against (include/linux/migrate.h), from
 * @hmm-model/migrate-vma, gathered in one place.
 */
export {
  MIGRATE_PFN_COMPOUND,
  MIGRATE_PFN_MIGRATE,
  MIGRATE_PFN_VALID,
  MIGRATE_PFN_WRITE,
  MIGRATE_VMA_SELECT_COMPOUND,
  MIGRATE_VMA_SELECT_DEVICE_COHERENT,
  MIGRATE_VMA_SELECT_DEVICE_PRIVATE,
  MIGRATE_VMA_SELECT_SYSTEM,
  type MigrateVma,
  MTHP_ORDERS_VALID,
  migrateDeviceFinalize,
  migrateDeviceInit,
  migrateDevicePages,
  migrateDeviceRange,
  migratePfn,
  migratePfnToPage,
  migrateVmaFinalize,
  migrateVmaPages,
  migrateVmaSetup,
  mpfnFlags,
  mthpMappedAsUnit,
  newMigrateVma,
} from '@hmm-model/migrate-vma';
