import { it } from 'vitest';
import { PMD_SIZE } from '@hmm-model/mm-core';
import { machine, thpWindow, fillPattern, vmaAt } from './testing/harness.js';
import { checkMmCore } from '@hmm-model/mm-core';
import { checkMigrate } from './checker.js';
it('timing', () => {
  let t = performance.now();
  const mc = machine();
  console.log('machine', performance.now() - t);
  t = performance.now();
  const w = thpWindow(mc.p);
  console.log('window', performance.now() - t);
  t = performance.now();
  fillPattern(mc.p, w, PMD_SIZE);
  console.log('fill', performance.now() - t);
  t = performance.now();
  for (let i = 0; i < 10; i++) checkMmCore(mc.k);
  console.log('mmcore check x10', performance.now() - t);
  t = performance.now();
  for (let i = 0; i < 100; i++) checkMigrate(mc.k, { freeLists: () => [mc.dev.freeLists(), mc.dev2.freeLists()] });
  console.log('migrate check x100', performance.now() - t);
  t = performance.now();
  mc.dev.toDevice(vmaAt(mc.p, w), w, w + PMD_SIZE);
  console.log('toDevice', performance.now() - t);
});
it('timing2', () => {
  const mc = machine();
  let t = performance.now();
  for (let i = 0; i < 100; i++) checkMigrate(mc.k);
  console.log('migrate check nolists x100', performance.now() - t);
  const a = new Uint32Array(8192*2);
  t = performance.now();
  let s = 0;
  for (let i = 0; i < 100; i++) { for (let p = 0; p < a.length; p++) { if (a[p] & 5) s++; } }
  console.log('loop', performance.now() - t, s);
});
