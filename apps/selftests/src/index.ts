/**
 * @hmm-model/selftests: the port of tools/testing/selftests/mm/hmm-tests.c with a
 * kselftest-compatible runner (see ./harness).
 */
export * from './harness/index.js';
export {
  HmmTests,
  type HmmTestsOptions,
  type ProgramArgs,
  parseProgramArgs,
  runHmmTests,
} from './hmm-tests.js';
export { forEachPageChunk, Libc, MAP_FAILED, SIZEOF_INT, strerror } from './libc.js';
export { createMachine, type Machine, type MachineOptions } from './machine.js';
export {
  KSFT_SKIP_SH,
  type LoadedModule,
  loadDriver,
  parseModuleUlong,
  runTestHmmSh,
  wrapperUsage,
} from './test-hmm-sh.js';
export { PAGEMAP_PRESENT, PM_PRESENT, PM_SWAP, read_pmd_pagesize } from './vmutil.js';
