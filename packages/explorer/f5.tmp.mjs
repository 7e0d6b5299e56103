import { parseOp } from './dist/ops.js';
import { runScenario } from './dist/run.js';
const adv = process.argv[2] ?? 'free'; const bug = process.argv[3] ?? 'F5';
const sc = { procs: 1, threads: 2, prelude: ['p0.t0 mmap r0 512 thp prot 3', 'p0.t0 write r0 0+512 seed 1'].map(parseOp), ops: [`p0.t0 madvise r0 0+512 ${adv}`, 'p0.t1 dm0 to-dev r0 0+512'].map(parseOp) };
const found = {};
for (let s = 1; s <= 60; s++) {
  for (const sch of [`random:seed=${s},p=0.5`, `pct:seed=${s},d=2,k=200`]) {
    const r = runScenario(sc, { schedule: sch, bugs: [bug], countSites: true });
    const k = r.finding ? r.finding.message.split('\n')[0].slice(0, 90) : 'clean';
    found[k] = (found[k] ?? 0) + 1;
    if (s === 1 && sch.startsWith('pct')) console.log('steps', r.steps, [...r.sites.keys()].filter(x=>/madvise/.test(x)));
  }
}
console.log(found);
