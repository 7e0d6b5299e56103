import { khugepagedSettings, thpSysfsState } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { khugepaged_main } from './bin/khugepaged.js';
import { bootVmtestsMachine } from './machine.js';
import { type ProgramEnv, runProgram } from './program.js';
import { capture } from './testing/run.js';
import {
  NR_ORDERS,
  SHMEM_NEVER,
  THP_ALWAYS,
  THP_INHERIT,
  THP_MADVISE,
  THP_NEVER,
  ThpSettingsState,
  thp_current_settings,
  thp_is_enabled,
  thp_pop_settings,
  thp_push_settings,
  thp_read_settings,
  thp_restore_settings,
  thp_save_settings,
  thp_supported_orders,
  thpSettingsCopy,
} from './thp-settings.js';

/** Runs `body` as a program on a fresh machine; returns what it returned and printed. */
function inProgram<T>(body: (env: ProgramEnv) => T): { value: T | undefined; out: string; status: number } {
  const { io, out } = capture();
  const kernel = bootVmtestsMachine({ debugVm: true });
  let value: T | undefined;
  try {
    const r = runProgram(
      kernel,
      (env) => {
        value = body(env);
        return 0;
      },
      ['./t'],
      io,
    );
    return { value, out: out.merged, status: r.status };
  } finally {
    kernel.dispose();
  }
}

describe('thp_settings.c over the model sysfs', () => {
  it('thp_read_settings() reads the kernel defaults: hugepages-16kB .. 2048kB exist, 2048kB inherits, the rest are never', () => {
    const r = inProgram((env) => {
      const t = { env, thp: new ThpSettingsState() };
      return { s: thp_read_settings(t), orders: thp_supported_orders(t), enabled: thp_is_enabled(t) };
    });
    expect(r.status).toBe(0);
    const { s, orders, enabled } = r.value!;
    expect(enabled).toBe(true);
    // thp_supported_orders(): a bit for every readable hugepages-<size>kB/enabled (orders 2..9).
    expect(orders).toBe(0b1111111100);
    expect(s.thp_enabled).toBe(THP_MADVISE);
    expect(s.shmem_enabled).toBe(SHMEM_NEVER);
    expect(s.use_zero_page).toBe(1);
    expect(s.khugepaged).toEqual({
      defrag: 1,
      alloc_sleep_millisecs: 60000,
      scan_sleep_millisecs: 10000,
      max_ptes_none: 511,
      max_ptes_swap: 64,
      max_ptes_shared: 256,
      pages_to_scan: 4096,
    });
    // v6.19's defaults: the PMD size "inherit", every other size "never".
    expect(s.hugepages).toEqual(
      Array.from({ length: NR_ORDERS }, (_, o) => (o === 9 ? THP_INHERIT : THP_NEVER)),
    );
  });

  it('thp_push_settings() writes every file (the kernel takes them), thp_pop_settings() writes the previous ones back', () => {
    const r = inProgram((env) => {
      const t = { env, thp: new ThpSettingsState() };
      thp_save_settings(t);
      const s = thpSettingsCopy(t.thp.saved);
      s.thp_enabled = THP_ALWAYS;
      s.khugepaged.scan_sleep_millisecs = 10;
      s.khugepaged.max_ptes_none = 100;
      thp_push_settings(t, s);
      const pushed = { mode: env.kernel.core.thpMode, k: { ...khugepagedSettings(env.kernel.core) } };
      const s2 = thpSettingsCopy(thp_current_settings(t));
      s2.thp_enabled = THP_NEVER;
      thp_push_settings(t, s2);
      const never = env.kernel.core.thpMode;
      thp_pop_settings(t);
      const popped = env.kernel.core.thpMode;
      thp_restore_settings(t);
      return {
        pushed,
        never,
        popped,
        restored: { ...khugepagedSettings(env.kernel.core) },
        defrag: thpSysfsState(env.kernel.core).defrag,
      };
    });
    expect(r.status).toBe(0);
    const v = r.value!;
    expect(v.pushed.mode).toBe('always');
    expect(v.pushed.k.scanSleepMillisecs).toBe(10);
    expect(v.pushed.k.maxPtesNone).toBe(100);
    expect(v.never).toBe('never');
    expect(v.popped).toBe('always');
    expect(v.restored.scanSleepMillisecs).toBe(10000);
    expect(v.restored.maxPtesNone).toBe(511);
    expect(v.defrag).toBe('madvise');
  });

  it('thp_current_settings() with nothing pushed prints "Fail: No settings set" and exits 1', () => {
    const r = inProgram((env) => thp_current_settings({ env, thp: new ThpSettingsState() }));
    expect(r.out).toBe('Fail: No settings set');
    expect(r.status).toBe(1);
  });

  it('khugepaged restores the settings it found at exit (restore_settings_atexit())', () => {
    const { io } = capture();
    const kernel = bootVmtestsMachine();
    try {
      const before = { ...khugepagedSettings(kernel.core) };
      const r = runProgram(kernel, khugepaged_main, ['./khugepaged', 'madvise:anon'], io);
      expect(r.status).toBe(0);
      expect(khugepagedSettings(kernel.core)).toMatchObject({
        scanSleepMillisecs: before.scanSleepMillisecs,
        allocSleepMillisecs: before.allocSleepMillisecs,
        maxPtesNone: before.maxPtesNone,
        maxPtesSwap: before.maxPtesSwap,
        maxPtesShared: before.maxPtesShared,
        pagesToScan: before.pagesToScan,
      });
      expect(kernel.core.thpMode).toBe('madvise');
      expect(kernel.core.thpUseZeroPage).toBe(true);
    } finally {
      kernel.dispose();
    }
  }, 60_000);
});
