/**
 * The shell's side of the model's mTHP device-migration extension (test-hmm mthp.ts, issue 9):
 * `--dmirror-mthp [DEV:]ORDERS` declares the folio orders a dmirror device allocates and migrates
 * whole (DmirrorOptions.mthpOrders), and the `thp <size>` sizes of anonymous mTHP
 * (/sys/kernel/mm/transparent_hugepage/hugepages-<size>kB/enabled).
 */
import { HPAGE_PMD_ORDER, PAGE_SIZE } from '@hmm-model/mm-core';
import { DMIRROR_NDEVICES } from '@hmm-model/test-hmm';

/** The lowest mTHP order (order 1 is never an anonymous THP; THP_ORDERS_ALL_ANON starts at 2). */
export const MTHP_MIN_ORDER = 2;
/** The highest mTHP order a dmirror device may declare: below the PMD order, which every device has. */
export const MTHP_MAX_DEV_ORDER = HPAGE_PMD_ORDER - 1;

/**
 * Parses an order list `2-8`, `4`, `2,4,6` or `3-5,8` into a mask (a bit per order), each order
 * within [min, max]. Throws an Error with a one-line message naming what is wrong.
 */
export function parseOrderList(what: string, text: string, min: number, max: number): number {
  if (text === '') throw new Error(`${what}: no orders (e.g. 2-8, or 4,9)`);
  let mask = 0;
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) throw new Error(`${what}: "${part}" is not an order or a range of orders (e.g. 2-8, or 4,6)`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi < lo) throw new Error(`${what}: range ${part} runs backwards`);
    if (lo < min || hi > max)
      throw new Error(`${what}: order ${lo < min ? lo : hi} is outside ${min}..${max}`);
    for (let o = lo; o <= hi; o++) mask |= 1 << o;
  }
  return mask;
}

/**
 * Parses one `--dmirror-mthp` value, `[DEV:]ORDERS` (no DEV: every device), into `into`
 * (device minor -> order mask; a later value for a device replaces an earlier one). Orders are
 * 2..8: the PMD order (9) is every device's own. Throws an Error with a one-line message.
 */
export function parseDmirrorMthp(text: string, into: Record<number, number>): void {
  const colon = text.indexOf(':');
  const devText = colon < 0 ? undefined : text.slice(0, colon);
  const mask = parseOrderList(
    `--dmirror-mthp ${text}`,
    colon < 0 ? text : text.slice(colon + 1),
    MTHP_MIN_ORDER,
    MTHP_MAX_DEV_ORDER,
  );
  if (devText === undefined) {
    for (let d = 0; d < DMIRROR_NDEVICES; d++) into[d] = mask;
    return;
  }
  if (!/^\d+$/.test(devText) || Number(devText) >= DMIRROR_NDEVICES)
    throw new Error(`--dmirror-mthp ${text}: device "${devText}" is not 0..${DMIRROR_NDEVICES - 1}`);
  into[Number(devText)] = mask;
}

/** The orders of a mask, ascending: 0b10100 -> [2, 4]. */
export function maskOrders(mask: number): number[] {
  const out: number[] = [];
  for (let o = 0; o < 31; o++) if (mask & (1 << o)) out.push(o);
  return out;
}

/** A folio order as the size the kernel names it: 4 -> "64K", 9 -> "2M". */
export function orderSize(order: number): string {
  const kb = (PAGE_SIZE * 2 ** order) / 1024;
  return kb >= 1024 ? `${kb / 1024}M` : `${kb}K`;
}

/**
 * An mTHP size the `thp` command accepts (`64K`, `64k`, `64kB`, `2M`, `2048kB`) as its order
 * 2..9, or undefined when it is not one (sizes of orders 0, 1 and above the PMD order have no
 * hugepages-<size>kB directory).
 */
export function sizeOrder(text: string): number | undefined {
  const m = /^(\d+)\s*([kKmM])[bB]?$/.exec(text);
  if (!m) return undefined;
  const kb = Number(m[1]) * (m[2].toLowerCase() === 'm' ? 1024 : 1);
  const pages = (kb * 1024) / PAGE_SIZE;
  if (!Number.isInteger(pages) || pages & (pages - 1)) return undefined;
  const order = 31 - Math.clz32(pages);
  return order >= MTHP_MIN_ORDER && order <= HPAGE_PMD_ORDER ? order : undefined;
}

/** The `--dmirror-mthp` value that declares `mask` for device `minor`: (0, 0b11100) -> "0:2-4". */
export function dmirrorMthpSpec(minor: number, mask: number): string {
  const parts: string[] = [];
  const orders = maskOrders(mask);
  for (let i = 0; i < orders.length; ) {
    let j = i;
    while (j + 1 < orders.length && orders[j + 1] === orders[j] + 1) j++;
    parts.push(j > i ? `${orders[i]}-${orders[j]}` : `${orders[i]}`);
    i = j + 1;
  }
  return `${minor}:${parts.join(',')}`;
}
