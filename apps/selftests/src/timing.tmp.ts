import { runHmmTests } from './hmm-tests.js';
let last = performance.now();
const t0 = last;
const code = await runHmmTests(['./hmm-tests', ...process.argv.slice(2)], {
  stdout: (l) => {
    const now = performance.now();
    if (l.startsWith('ok') || l.startsWith('not ok')) { console.log(`${(now - last).toFixed(0).padStart(7)}ms ${l}`); last = now; }
    else if (!l.startsWith('#  RUN') && !l.startsWith('#            OK')) console.log(l);
    if (l.startsWith('#  RUN')) last = now;
  },
  stderr: (l) => console.log(`ERR ${l}`),
});
console.log('exit', code, 'total', ((performance.now() - t0) / 1000).toFixed(1), 's', 'rss', (process.memoryUsage().rss / 2 ** 20).toFixed(0), 'MiB');
