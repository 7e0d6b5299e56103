import { machine } from './testing/harness.js';
import { checkMigrate } from './checker.js';
const mc = machine();
let t = performance.now();
for (let i = 0; i < 100; i++) checkMigrate(mc.k);
console.log('migrate check nolists x100', performance.now() - t);
t = performance.now();
for (let i = 0; i < 100; i++) checkMigrate(mc.k, { freeLists: () => [mc.dev.freeLists(), mc.dev2.freeLists()] });
console.log('migrate check lists x100', performance.now() - t);
