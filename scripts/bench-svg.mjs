// Tiny SVG line charts for `pnpm bench` (no plotting library): log or linear axes, one polyline
// and markers per series, a legend, tick labels. Pure functions returning SVG text.

const W = 780;
const H = 420;
const M = { left: 78, right: 230, top: 44, bottom: 58 };
const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#17becf'];

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** "1.5", "20", "3e-4": short tick labels. */
function num(v) {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(0).replace('e+', 'e');
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1).replace(/\.0$/, '');
  return v.toPrecision(2).replace(/\.?0+$/, '');
}

function niceTicks(lo, hi, log) {
  if (log) {
    const out = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
      const v = 10 ** e;
      if (v >= lo * 0.999 && v <= hi * 1.001) out.push(v);
    }
    if (out.length < 2) return [lo, hi];
    return out;
  }
  const span = hi - lo || 1;
  const step = 10 ** Math.floor(Math.log10(span / 5));
  const mult = [1, 2, 5, 10].find((m) => span / (step * m) <= 6) ?? 10;
  const s = step * mult;
  const out = [];
  for (let v = Math.ceil(lo / s) * s; v <= hi + s * 1e-9; v += s) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * A line chart. opts: { title, xLabel, yLabel, xLog, yLog, xTicks?: [{v, label}], yMin?, note?,
 * series: [{ name, points: [[x, y]], dash? }] }. Returns the SVG document as a string.
 */
export function lineChart(opts) {
  const pts = opts.series
    .flatMap((s) => s.points)
    .filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  let x0 = Math.min(...xs);
  let x1 = Math.max(...xs);
  let y0 = opts.yMin ?? (opts.yLog ? Math.min(...ys) : Math.min(0, ...ys));
  let y1 = Math.max(...ys);
  if (opts.yLog) {
    y0 = 10 ** Math.floor(Math.log10(y0));
    y1 = 10 ** Math.ceil(Math.log10(y1));
  } else y1 = y1 * 1.08 || 1;
  if (x0 === x1) {
    x0 /= 2;
    x1 *= 2;
  }
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const tx = (x) =>
    M.left + (opts.xLog ? Math.log(x / x0) / Math.log(x1 / x0) : (x - x0) / (x1 - x0 || 1)) * pw;
  const ty = (y) =>
    M.top + ph - (opts.yLog ? Math.log(y / y0) / Math.log(y1 / y0) : (y - y0) / (y1 - y0 || 1)) * ph;
  const out = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  );
  out.push(`<title>${esc(opts.title)}</title>`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(
    `<text x="${W / 2 - M.right / 2 + M.left / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${esc(opts.title)}</text>`,
  );
  // Grid and ticks.
  const yt = niceTicks(y0, y1, opts.yLog);
  for (const v of yt) {
    const y = ty(v);
    out.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${M.left - 6}" y="${y + 4}" text-anchor="end">${esc(num(v))}</text>`);
  }
  const xt = opts.xTicks ?? niceTicks(x0, x1, opts.xLog).map((v) => ({ v, label: num(v) }));
  for (const { v, label } of xt) {
    const x = tx(v);
    out.push(`<line x1="${x}" x2="${x}" y1="${M.top}" y2="${M.top + ph}" stroke="#f0f0f0"/>`);
    out.push(`<text x="${x}" y="${M.top + ph + 16}" text-anchor="middle">${esc(label)}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${M.left + pw / 2}" y="${H - 16}" text-anchor="middle">${esc(opts.xLabel)}</text>`);
  out.push(
    `<text transform="translate(18 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${esc(opts.yLabel)}</text>`,
  );
  // Series.
  opts.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const p = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (p.length) {
      const d = p.map(([x, y], k) => `${k ? 'L' : 'M'}${tx(x).toFixed(1)} ${ty(y).toFixed(1)}`).join(' ');
      out.push(
        `<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${s.dash ? ' stroke-dasharray="6 4"' : ''}/>`,
      );
      for (const [x, y] of p)
        out.push(`<circle cx="${tx(x).toFixed(1)}" cy="${ty(y).toFixed(1)}" r="3.5" fill="${color}"/>`);
    }
    const ly = M.top + 14 + i * 20;
    out.push(
      `<line x1="${M.left + pw + 14}" x2="${M.left + pw + 38}" y1="${ly}" y2="${ly}" stroke="${color}" stroke-width="2"${s.dash ? ' stroke-dasharray="6 4"' : ''}/>`,
    );
    out.push(`<text x="${M.left + pw + 44}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  if (opts.note) {
    opts.note.split('\n').forEach((line, k) => {
      out.push(
        `<text x="${M.left + pw + 14}" y="${M.top + 14 + opts.series.length * 20 + 14 + k * 15}" font-size="10" fill="#555">${esc(line)}</text>`,
      );
    });
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}
