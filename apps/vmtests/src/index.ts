/**
 * @hmm-model/vmtests: ports of kernel mm selftests (tools/testing/selftests/mm) as kselftest
 * binaries on the simulated machine, and a model of run_vmtests.sh that runs them.
 */
export { BINARIES, type VmTestBinary } from './binaries.js';
export { GlibcRandom } from './glibc-rand.js';
export { Ksft } from './ksft.js';
export { bootVmtestsMachine, VMTESTS_RAM_BYTES, type VmtestsMachineOptions } from './machine.js';
export { installProcfs, MMAP_MIN_ADDR, smapsText, vmFlagsLine } from './procfs.js';
export {
  dump_maps,
  memfd_create,
  type ProgramEnv,
  type ProgramMain,
  type ProgramResult,
  readWholeFile,
  runProgram,
} from './program.js';
export {
  KSFT_SKIP_SH,
  MODEL_NPROC,
  type RunVmtestsIO,
  type RunVmtestsOptions,
  runVmtests,
} from './run-vmtests.js';
export { entryBinary, RUN_VMTESTS_ENTRIES, type ScriptEntry } from './script.js';
export { type BufferMode, PIPE_BUF_SIZE, type ProgramIO, Stdio } from './stdio.js';
