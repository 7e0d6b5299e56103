/**
 * Test registration: the port of FIXTURE(), FIXTURE_VARIANT_ADD(), FIXTURE_SETUP(),
 * FIXTURE_TEARDOWN(), TEST(), TEST_F() and friends. Registration order is run order.
 */

import { TEST_TIMEOUT_DEFAULT } from './constants.js';
import type { TestContext } from './context.js';
import { runMain } from './main.js';
import type { HarnessIO } from './output.js';

/** Models the return type of a test, setup or teardown function: void, or a Promise to await. */
export type MaybePromise = void | Promise<void>;

/** Models FIXTURE_SETUP(fixture) (kselftest_harness.h): `(_metadata, self, variant)`. */
export type SetupFn<Self, V> = (ctx: TestContext, self: Self, variant: V) => MaybePromise;
/** Models FIXTURE_TEARDOWN(fixture) (kselftest_harness.h): `(_metadata, self, variant)`. */
export type TeardownFn<Self, V> = (ctx: TestContext, self: Self, variant: V) => MaybePromise;
/** Models a TEST_F(fixture, name) body (kselftest_harness.h): `(_metadata, self, variant)`. */
export type TestFn<Self, V> = (ctx: TestContext, self: Self, variant: V) => MaybePromise;
/** Models a TEST(name) body (kselftest_harness.h): `(_metadata)`. */
export type GlobalTestFn = (ctx: TestContext) => MaybePromise;

/** Models the type-erased form of the functions above, as stored in the registry. */
export type ErasedFn = (ctx: TestContext, self: object, variant: unknown) => MaybePromise;

/** Models struct __test_metadata's static part (kselftest_harness.h): one registered test. */
export interface TestRecord {
  readonly name: string;
  readonly body: ErasedFn;
  /** Models _metadata->timeout (seconds). */
  readonly timeout: number;
  /** Models _metadata->termsig (-1: the test must not die by a signal). */
  readonly termsig: number;
}

/** Models struct __fixture_variant_metadata (kselftest_harness.h). */
export interface VariantRecord {
  readonly name: string;
  readonly data: unknown;
}

/** Models struct __fixture_metadata plus its setup/teardown (kselftest_harness.h). */
export interface FixtureRecord {
  readonly name: string;
  /** `global` holds TEST()s, which run without setup/teardown or fixture data. */
  readonly isGlobal: boolean;
  readonly variants: VariantRecord[];
  readonly tests: TestRecord[];
  readonly create: () => object;
  setup: ErasedFn | undefined;
  teardown: ErasedFn | undefined;
  /** Models FIXTURE_TEARDOWN_PARENT(): teardown also runs after the test process died. */
  teardownParent: boolean;
  /** Models __test_xfail entries: `variant\0test` keys. */
  readonly xfails: Set<string>;
}

/** Models the per-test arguments of __TEST_IMPL / __TEST_F_IMPL (kselftest_harness.h): timeout, termsig. */
export interface TestOptions {
  /** Models TEST_F_TIMEOUT()'s timeout in seconds (default TEST_TIMEOUT_DEFAULT = 30). */
  readonly timeout?: number;
  /** Models TEST_SIGNAL()/TEST_F_SIGNAL(): the signal the test is expected to die by. */
  readonly signal?: number;
}

function makeTest(name: string, body: ErasedFn, opts: TestOptions = {}): TestRecord {
  const timeout = opts.timeout ?? TEST_TIMEOUT_DEFAULT;
  if (!(timeout > 0)) throw new RangeError(`test ${name}: timeout must be positive, got ${timeout}`);
  return { name, body, timeout, termsig: opts.signal ?? -1 };
}

/**
 * Models FIXTURE(name) and the macros that take a fixture name (kselftest_harness.h). Obtained
 * from {@link Harness.FIXTURE}; `Self` is FIXTURE_DATA(name), `V` is FIXTURE_VARIANT(name).
 */
export class Fixture<Self extends object, V> {
  readonly #rec: FixtureRecord;

  constructor(rec: FixtureRecord) {
    this.#rec = rec;
  }

  /** Models the fixture name given to FIXTURE() (kselftest_harness.h). */
  get name(): string {
    return this.#rec.name;
  }

  /** Models FIXTURE_SETUP(fixture) (kselftest_harness.h). */
  FIXTURE_SETUP(fn: SetupFn<Self, V>): this {
    this.#rec.setup = (ctx, self, variant) => fn(ctx, self as Self, variant as V);
    return this;
  }

  /** Models FIXTURE_TEARDOWN(fixture) (kselftest_harness.h): runs once, only if setup completed. */
  FIXTURE_TEARDOWN(fn: TeardownFn<Self, V>): this {
    this.#rec.teardown = (ctx, self, variant) => fn(ctx, self as Self, variant as V);
    this.#rec.teardownParent = false;
    return this;
  }

  /**
   * Models FIXTURE_TEARDOWN_PARENT(fixture) (kselftest_harness.h): like FIXTURE_TEARDOWN but, as
   * it runs in the parent, it also runs when the test died (exception, signal, exit), though not
   * on timeout.
   */
  FIXTURE_TEARDOWN_PARENT(fn: TeardownFn<Self, V>): this {
    this.FIXTURE_TEARDOWN(fn);
    this.#rec.teardownParent = true;
    return this;
  }

  /** Models FIXTURE_VARIANT_ADD(fixture, name) (kselftest_harness.h): variants run in this order. */
  FIXTURE_VARIANT_ADD(name: string, data: V): this {
    this.#rec.variants.push({ name, data });
    return this;
  }

  /** Models TEST_F(fixture, name) (kselftest_harness.h). */
  TEST_F(name: string, body: TestFn<Self, V>): this {
    return this.#add(name, body, {});
  }

  /** Models TEST_F_TIMEOUT(fixture, name, timeout) (kselftest_harness.h): timeout in seconds. */
  TEST_F_TIMEOUT(name: string, timeout: number, body: TestFn<Self, V>): this {
    return this.#add(name, body, { timeout });
  }

  /** Models TEST_F_SIGNAL(fixture, name, signal) (kselftest_harness.h). */
  TEST_F_SIGNAL(name: string, signal: number, body: TestFn<Self, V>): this {
    return this.#add(name, body, { signal });
  }

  #add(name: string, body: TestFn<Self, V>, opts: TestOptions): this {
    const erased: ErasedFn = (ctx, self, variant) => body(ctx, self as Self, variant as V);
    this.#rec.tests.push(makeTest(name, erased, opts));
    return this;
  }
}

/** Models the build-time variants of kselftest_harness.h / kselftest.h a {@link Harness} reproduces. */
export interface HarnessConfig {
  /** Models `__FILE__` of the test source, printed in TH_LOG / Expected lines (default `hmm-tests.c`). */
  readonly file?: string;
  /** Print the `# N skipped test(s) detected...` line (kselftest.h 2025+; default true). */
  readonly skipHint?: boolean;
  /** Accept `-d` and print the newest usage text (v6.19+ harness; default true). */
  readonly debugOption?: boolean;
}

/**
 * Models the registry of one kselftest_harness.h binary (`__fixture_list`, built by the
 * constructors of FIXTURE()/TEST()/TEST_F()) and its TEST_HARNESS_MAIN entry point
 * (see {@link runMain} in main.ts, also available as `harness.runMain()`).
 */
export class Harness {
  /** Models `__FILE__` used in messages. */
  readonly file: string;
  /** Models the skip-hint switch of ksft_print_cnts() (kselftest.h). */
  readonly skipHint: boolean;
  /** Models the presence of `-d` in the harness optstring (kselftest_harness.h). */
  readonly debugOption: boolean;
  /** Models __fixture_list (kselftest_harness.h); `global` is always first. */
  readonly fixtures: readonly FixtureRecord[];
  readonly #fixtures: FixtureRecord[] = [];
  readonly #global: FixtureRecord;

  constructor(config: HarnessConfig = {}) {
    this.file = config.file ?? 'hmm-tests.c';
    this.skipHint = config.skipHint ?? true;
    this.debugOption = config.debugOption ?? true;
    this.fixtures = this.#fixtures;
    this.#global = this.#newFixture('global', true, () => ({}));
  }

  #newFixture(name: string, isGlobal: boolean, create: () => object): FixtureRecord {
    const rec: FixtureRecord = {
      name,
      isGlobal,
      variants: [],
      tests: [],
      create,
      setup: undefined,
      teardown: undefined,
      teardownParent: false,
      xfails: new Set(),
    };
    this.#fixtures.push(rec);
    return rec;
  }

  /**
   * Models FIXTURE(name) (kselftest_harness.h). `create` builds the zero-initialised
   * FIXTURE_DATA(name) for each test (default: an empty object).
   */
  FIXTURE<Self extends object = Record<string, unknown>, V = undefined>(
    name: string,
    create?: () => Self,
  ): Fixture<Self, V> {
    if (this.#fixtures.some((f) => f.name === name)) throw new Error(`FIXTURE(${name}) registered twice`);
    return new Fixture<Self, V>(this.#newFixture(name, false, create ?? (() => ({}))));
  }

  /** Models TEST(name) (kselftest_harness.h): a test of the `global` fixture. */
  TEST(name: string, body: GlobalTestFn): this {
    this.#global.tests.push(makeTest(name, (ctx) => body(ctx)));
    return this;
  }

  /** Models TEST_SIGNAL(name, signal) (kselftest_harness.h). */
  TEST_SIGNAL(name: string, signal: number, body: GlobalTestFn): this {
    this.#global.tests.push(makeTest(name, (ctx) => body(ctx), { signal }));
    return this;
  }

  /**
   * Models TEST_HARNESS_MAIN (kselftest_harness.h): same as `runMain(this, argv, io)`. argv[0] is
   * the program name; resolves to the exit code (0, 1 or 4) and never calls process.exit().
   */
  runMain(argv: readonly string[], io: HarnessIO = {}): Promise<number> {
    return runMain(this, argv, io);
  }

  /**
   * Models XFAIL_ADD(fixture, variant, test) (kselftest_harness.h): the combination's PASS becomes
   * XPASS and FAIL becomes XFAIL. Use variant "" for a fixture without variants.
   */
  XFAIL_ADD(fixture: string, variant: string, test: string): this {
    const rec = this.#fixtures.find((f) => f.name === fixture);
    if (!rec) throw new Error(`XFAIL_ADD: unknown fixture ${fixture}`);
    rec.xfails.add(`${variant}\0${test}`);
    return this;
  }
}
