/**
 * Text formatting shared by the command layer: addresses, sizes, hexdumps and pattern names.
 * Models nothing in the kernel; it is how the shell prints what the model reports.
 */

/** Formats an address or pfn as 0x-prefixed lowercase hex. */
export function hex(n: number | bigint, width = 0): string {
  const s = n.toString(16);
  return `0x${width ? s.padStart(width, '0') : s}`;
}

/** Formats a byte count with a binary unit: 4096 -> "4 KiB", 3 MiB + 4 KiB -> "3076 KiB", else one decimal. */
export function fmtSize(bytes: number): string {
  const units: [number, string][] = [
    [2 ** 40, 'TiB'],
    [2 ** 30, 'GiB'],
    [2 ** 20, 'MiB'],
    [2 ** 10, 'KiB'],
  ];
  for (const [u, name] of units)
    if (bytes >= u && bytes % u === 0 && bytes / u < 10000) return `${bytes / u} ${name}`;
  for (const [u, name] of units) if (bytes >= u) return `${(bytes / u).toFixed(1)} ${name}`;
  return `${bytes} B`;
}

/** Formats a kB figure as /proc does: right-aligned with " kB". */
export function fmtKb(bytes: number): string {
  return `${String(Math.round(bytes / 1024)).padStart(8)} kB`;
}

/** Formats bytes as classic hexdump -C lines, with the virtual address of each 16-byte line. */
export function hexdump(addr: number, bytes: Uint8Array): string[] {
  const out: string[] = [];
  for (let off = 0; off < bytes.length; off += 16) {
    const row = bytes.subarray(off, Math.min(off + 16, bytes.length));
    const hexes: string[] = [];
    for (let i = 0; i < 16; i++) {
      hexes.push(i < row.length ? row[i].toString(16).padStart(2, '0') : '  ');
      if (i === 7) hexes.push('');
    }
    let ascii = '';
    for (const b of row) ascii += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.';
    out.push(`${hex(addr + off)}  ${hexes.join(' ')}  |${ascii}|`);
  }
  return out;
}

/** Pads a cell to a width (left-aligned). */
export function pad(s: string | number, w: number): string {
  return String(s).padEnd(w);
}

/** Pads a cell to a width (right-aligned). */
export function rpad(s: string | number, w: number): string {
  return String(s).padStart(w);
}

/** Lays out rows of cells as an aligned text table (first row is the header). */
export function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const r of rows) for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i])))
      .join('  ')
      .trimEnd(),
  );
}
