import { eventsSince, MADV_NOHUGEPAGE, PAGE_SIZE, PMD_SIZE } from '@hmm-model/mm-core';
import { describe, expect, it } from 'vitest';
import { gpuRead } from './fault.js';
import { svmmMigrateToVram } from './migrate.js';
import { pattern, rig, thpWindow } from './testing.js';
import { DEFAULT_COPY_TIMING } from './vram.js';

describe('copy engine: commands, events and modelled device time', () => {
  for (const huge of [true, false]) {
    it(`a 2 MiB migration to VRAM with ${huge ? 'a THP is one 512-line launch' : 'base pages is 512 launches'}`, () => {
      const { k, drm, p, svmm } = rig();
      const w = thpWindow(p, false);
      if (!huge) expect(p.madvise(w, PMD_SIZE, MADV_NOHUGEPAGE)).toBe(0);
      p.writeInts(w, pattern(0, PMD_SIZE / 4));
      const engine = drm.dmem!.migrate.engine;
      const before = k.core.events.snapshot();
      const ns = engine.deviceNs;
      expect(svmmMigrateToVram(svmm, w, w + PMD_SIZE).ret).toBe(0);
      const d = eventsSince(k.core.events, before);
      const launches = huge ? 1 : 512;
      expect(d.copyCommands).toBe(launches);
      expect(d.copyBytes).toBe(PMD_SIZE);
      const T = DEFAULT_COPY_TIMING;
      expect(engine.deviceNs - ns).toBeCloseTo(launches * T.launchNs + PMD_SIZE / T.hostBytesPerNs, 6);
      const seen = gpuRead(svmm, w + 5 * PAGE_SIZE, 8);
      expect(
        seen instanceof Uint8Array && Array.from(new Int32Array(seen.buffer, seen.byteOffset, 2)),
      ).toEqual([5 * 1024, 5 * 1024 + 1]);
      // The CPU faults the data back (one launch for the THP, one per page otherwise).
      expect(p.readInts(w, 4)).toEqual(pattern(0, 4));
      expect(k.check()).toEqual([]);
    });
  }
});
