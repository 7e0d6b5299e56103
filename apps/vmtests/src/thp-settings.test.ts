import { EINVAL, type FileOperations } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { detect_thp_sizes } from './bin/cow.js';
import type { CowGlobals } from './bin/cow-common.js';
import { bootVmtestsMachine } from './machine.js';
import { type ProgramEnv, runProgram } from './program.js';
import { capture } from './testing/run.js';
import {
  THP_ALWAYS,
  THP_INHERIT,
  THP_NEVER,
  thp_current_settings,
  thp_pop_settings,
  thp_push_settings,
  thp_read_settings,
  thp_restore_settings,
  thp_save_settings,
  thp_supported_orders,
} from './thp-settings.js';

const THP = '/sys/kernel/mm/transparent_hugepage/';

/** A per-size `enabled` file as thpsize_enabled_show()/_store() have it: always, inherit, madvise, never. */
function perSizeEnabled(state: { v: string }): FileOperations {
  const choices = ['always', 'inherit', 'madvise', 'never'];
  return {
    *pread(_f, buf, pos) {
      const t = new TextEncoder().encode(`${choices.map((c) => (c === state.v ? `[${c}]` : c)).join(' ')}\n`);
      if (pos >= t.length) return 0;
      const n = Math.min(buf.length, t.length - pos);
      buf.set(t.subarray(pos, pos + n));
      return n;
    },
    *pwrite(_f, buf) {
      const v = new TextDecoder().decode(buf).replace(/\n$/, '');
      if (!choices.includes(v)) return -EINVAL;
      state.v = v;
      return buf.length;
    },
  };
}

function run(main: (env: ProgramEnv) => number, setup?: (k: ReturnType<typeof bootVmtestsMachine>) => void) {
  const k = bootVmtestsMachine();
  setup?.(k);
  const { io, out } = capture();
  try {
    const r = runProgram(k, main, ['./t'], io);
    return { status: r.status, out, thpMode: k.core.thpMode };
  } finally {
    k.dispose();
  }
}

function globals(env: ProgramEnv): CowGlobals {
  return {
    env,
    pagesize: 4096,
    pagemap_fd: -1,
    pmdsize: 2 * 1024 * 1024,
    thpsizes: [],
    hugetlbsizes: [],
    gup_fd: -1,
    has_huge_zeropage: false,
    children: [],
  };
}

describe('thp_settings.c and detect_thp_sizes() of cow.c', () => {
  it('with PMD THP only (no hugepages-<size>kB files), the sizes are the PMD size; push/pop/restore write the global files', () => {
    const r = run((env) => {
      expect(thp_supported_orders(env)).toBe(0);
      const s = thp_read_settings(env);
      // The vmtests machine: THP in madvise mode, the v6.19 defaults for defrag and shmem_enabled.
      expect([s.thp_enabled, s.thp_defrag, s.shmem_enabled, s.use_zero_page]).toEqual([3, 3, 0, 1]);
      expect(s.khugepaged.max_ptes_none).toBe(511);
      thp_save_settings(env);
      thp_push_settings(env, { ...s, thp_enabled: THP_ALWAYS });
      expect(env.kernel.core.thpMode).toBe('always');
      thp_push_settings(env, { ...thp_current_settings(env), thp_enabled: THP_NEVER });
      expect(env.kernel.core.thpMode).toBe('never');
      thp_pop_settings(env);
      expect(env.kernel.core.thpMode).toBe('always');
      thp_restore_settings(env);
      expect(detect_thp_sizes(globals(env), 20)).toEqual([2 * 1024 * 1024]);
      return 0;
    });
    expect(r.status).toBe(0);
    expect(r.thpMode).toBe('madvise');
    expect(r.out.stdout).toBe('# [INFO] detected THP size: 2048 KiB\n');
  });

  it('every hugepages-<size>kB/enabled file adds its order: read, written back on push, and listed smallest first', () => {
    const k64 = { v: 'never' };
    const k2m = { v: 'inherit' };
    const r = run(
      (env) => {
        expect(thp_supported_orders(env)).toBe(2 ** 4 + 2 ** 9);
        const s = thp_read_settings(env);
        expect(s.hugepages[4].enabled).toBe(THP_NEVER);
        expect(s.hugepages[9].enabled).toBe(THP_INHERIT);
        thp_push_settings(env, s);
        // run_anon_test_case(): PMD order off, the tested order always.
        const t = thp_read_settings(env);
        t.hugepages[9].enabled = THP_NEVER;
        t.hugepages[4].enabled = THP_ALWAYS;
        thp_push_settings(env, t);
        expect([k64.v, k2m.v]).toEqual(['always', 'never']);
        thp_pop_settings(env);
        expect([k64.v, k2m.v]).toEqual(['never', 'inherit']);
        expect(detect_thp_sizes(globals(env), 20)).toEqual([64 * 1024, 2 * 1024 * 1024]);
        return 0;
      },
      (k) => {
        k.registerDevice(`${THP}hugepages-64kB/enabled`, perSizeEnabled(k64));
        k.registerDevice(`${THP}hugepages-2048kB/enabled`, perSizeEnabled(k2m));
      },
    );
    expect(r.status).toBe(0);
    expect(r.out.stdout).toBe('# [INFO] detected THP size: 64 KiB\n# [INFO] detected THP size: 2048 KiB\n');
  });
});
