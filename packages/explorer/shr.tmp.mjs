import { campaign } from '/work/main/packages/explorer/dist/explore.js';
import { shrink } from '/work/main/packages/explorer/dist/shrink.js';
import { shellScript } from '/work/main/packages/explorer/dist/emit.js';
const [seed, strategy, ops, maxRuns, bugs] = [Number(process.argv[2]), process.argv[3], Number(process.argv[4]), Number(process.argv[5]), process.argv[6] ? process.argv[6].split(',') : []];
const r = campaign({ seed, totalOps: 1e12, maxRuns, strategy, ops, bugs, checkEvery: 32, depth: 2 });
if (!r.failure) { console.log('clean'); process.exit(0); }
console.log(r.failure.finding.message.split('\n')[0]);
const rep = shrink(r.failure.scenario, r.failure.schedule, r.failure.result, { bugs, budget: 400 });
console.log(shellScript(rep, 'x'));
console.log(rep.finding.message, rep.finding.details?.join('\n'));
