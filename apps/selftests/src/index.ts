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
export { createMachine, type Machine, type MachineOptions } from './machine.js';
