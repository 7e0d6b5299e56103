/**
 * Result codes, signal numbers and limits shared by the harness port.
 *
 * Values follow tools/testing/selftests/kselftest.h and kselftest_harness.h.
 */

/** Models KSFT_PASS (tools/testing/selftests/kselftest.h). */
export const KSFT_PASS = 0;
/** Models KSFT_FAIL (tools/testing/selftests/kselftest.h). */
export const KSFT_FAIL = 1;
/** Models KSFT_XFAIL (tools/testing/selftests/kselftest.h). */
export const KSFT_XFAIL = 2;
/** Models KSFT_XPASS (tools/testing/selftests/kselftest.h). */
export const KSFT_XPASS = 3;
/** Models KSFT_SKIP (tools/testing/selftests/kselftest.h). */
export const KSFT_SKIP = 4;

/** Models TEST_TIMEOUT_DEFAULT (tools/testing/selftests/kselftest_harness.h): seconds per test. */
export const TEST_TIMEOUT_DEFAULT = 30;

/** Models SIGABRT as seen by __wait_for_test() (kselftest_harness.h): the ASSERT_* death. */
export const SIGABRT = 6;
/** Models SIGKILL as sent by __wait_for_test() on timeout (kselftest_harness.h). */
export const SIGKILL = 9;

/**
 * Models the size of struct __test_results.reason (kselftest_harness.h): SKIP() reasons keep
 * at most REASON_MAX - 1 characters.
 */
export const REASON_MAX = 1024;

/** Models the test_name[1024] buffer of __run_test() (kselftest_harness.h). */
export const TEST_NAME_MAX = 1024;
