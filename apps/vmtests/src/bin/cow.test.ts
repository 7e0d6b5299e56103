import { describe, expect, it } from 'vitest';
import { runBinary } from '../testing/run.js';

describe('cow (tools/testing/selftests/mm/cow.c)', () => {
  it('runs', () => {
    const r = runBinary('cow');
    console.log(r.merged);
    expect(r.status).toBe(0);
  });
});
