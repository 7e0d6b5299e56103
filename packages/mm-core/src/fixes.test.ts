import { describe, expect, it } from 'vitest';
import { Core } from './core.js';
import { checkFixIds, MODEL_FIXES, UnknownFixError } from './fixes.js';
import { Kernel } from './kernel.js';

describe("fix switches of the model's kernel findings", () => {
  it('every switch names its kernel function and package, ids are unique', () => {
    const ids = MODEL_FIXES.map((f) => f.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const f of MODEL_FIXES) {
      expect(f.id).toMatch(/^K\d+$/);
      expect(f.fn).toMatch(/^[a-z_0-9]+$/);
      expect(f.title.length).toBeGreaterThan(20);
    }
  });

  it('an unknown id is a one-line error; known ids switch fixes on; the default is v6.19', () => {
    expect(() => checkFixIds(['K99'])).toThrow(UnknownFixError);
    expect(() => new Kernel({ fixes: ['K99'], ramBytes: 64 << 20 })).toThrow(
      `unknown fix id 'K99' (known: ${MODEL_FIXES.map((f) => f.id).join(', ')})`,
    );
    const k = new Kernel({ fixes: ['K1'], ramBytes: 64 << 20 });
    expect(k.core.fixed('K1')).toBe(true);
    const plain = new Core({ ramBytes: 64 << 20 });
    expect(MODEL_FIXES.some((f) => plain.fixed(f.id))).toBe(false);
  });
});
