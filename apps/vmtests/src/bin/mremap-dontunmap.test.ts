import { describe, expect, it } from 'vitest';
import { runBinary } from '../testing/run.js';

describe('mremap_dontunmap (tools/testing/selftests/mm/mremap_dontunmap.c)', () => {
  it('passes all 5 cases: the pages move, private anonymous sources stay mapped and empty, shmem sources keep the data', () => {
    const r = runBinary('mremap_dontunmap');
    expect(r.stderr).toBe('');
    expect(r.ktap.bailOut).toBeNull();
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(
      [
        'TAP version 13',
        '1..5',
        'ok 1 mremap_dontunmap_simple',
        'ok 2 mremap_dontunmap_simple_shmem',
        'ok 3 mremap_dontunmap_simple_fixed',
        'ok 4 mremap_dontunmap_partial_mapping',
        'ok 5 mremap_dontunmap_partial_mapping_overwrite',
        '# Totals: pass:5 fail:0 xfail:0 xpass:0 skip:0 error:0',
        '',
      ].join('\n'),
    );
  });
});
