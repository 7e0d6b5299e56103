/** Indices per node: one PTE table's worth, so a PMD-sized folio fills exactly one node. */
const NODE_SLOTS = 512;
/** An empty slot (stored values are pfn * 4 + tag, never negative). */
const EMPTY = -1;

/** One 512-slot node of the table (the values and how many are present). */
class Node {
  readonly vals = new Float64Array(NODE_SLOTS).fill(EMPTY);
  n = 0;
}

/**
 * Models the xarray `dmirror->pt` (xa_load/xa_store/xa_erase over virtual page numbers, values
 * xa_tag_pointer(page, tag) as pfn * 4 + tag) the way the kernel's radix tree is built: a node
 * per 64 (here 512) consecutive indices, so the work of storing or erasing a PMD-sized run is
 * one node rather than 512 hash-table entries. Map-like for the single-index operations.
 */
export class MirrorTable {
  private readonly nodes = new Map<number, Node>();
  /** Models the number of entries present. */
  size = 0;

  /** Models xa_load(): the value at vpn, or undefined. */
  get(vpn: number): number | undefined {
    const node = this.nodes.get(Math.floor(vpn / NODE_SLOTS));
    if (node === undefined) return undefined;
    const v = node.vals[vpn % NODE_SLOTS];
    return v === EMPTY ? undefined : v;
  }

  /** Models xa_store() of one value. */
  set(vpn: number, value: number): this {
    const key = Math.floor(vpn / NODE_SLOTS);
    let node = this.nodes.get(key);
    if (node === undefined) {
      node = new Node();
      this.nodes.set(key, node);
    }
    const i = vpn % NODE_SLOTS;
    if (node.vals[i] === EMPTY) {
      node.n++;
      this.size++;
    }
    node.vals[i] = value;
    return this;
  }

  /** Models xa_erase() of one index; true if something was there. */
  delete(vpn: number): boolean {
    const key = Math.floor(vpn / NODE_SLOTS);
    const node = this.nodes.get(key);
    if (node === undefined) return false;
    const i = vpn % NODE_SLOTS;
    if (node.vals[i] === EMPTY) return false;
    node.vals[i] = EMPTY;
    this.size--;
    if (--node.n === 0) this.nodes.delete(key);
    return true;
  }

  /** Models xa_destroy(): drop every entry. */
  clear(): void {
    this.nodes.clear();
    this.size = 0;
  }

  /**
   * Models xa_store() of `nr` consecutive indices from vpn with consecutive pages from pfn, all
   * with the same tag (the per-page loop of dmirror_migrate_finalize_and_map() for one folio).
   */
  storeRun(vpn: number, pfn: number, nr: number, tag: number): void {
    let v = vpn;
    let value = pfn * 4 + tag;
    let left = nr;
    while (left > 0) {
      const key = Math.floor(v / NODE_SLOTS);
      const i = v % NODE_SLOTS;
      const k = Math.min(left, NODE_SLOTS - i);
      let node = this.nodes.get(key);
      if (node === undefined) {
        node = new Node();
        this.nodes.set(key, node);
      }
      const vals = node.vals;
      let added = 0;
      for (let j = i; j < i + k; j++, value += 4) {
        if (vals[j] === EMPTY) added++;
        vals[j] = value;
      }
      node.n += added;
      this.size += added;
      v += k;
      left -= k;
    }
  }

  /**
   * Models xa_erase() of every index in [first, last] (inclusive, as xa_for_each_range()): whole
   * nodes are dropped at once; when the range is much larger than what is stored, only the
   * nodes present are visited.
   */
  eraseRange(first: number, last: number): void {
    if (last < first || this.size === 0) return;
    const k0 = Math.floor(first / NODE_SLOTS);
    const k1 = Math.floor(last / NODE_SLOTS);
    if (k1 - k0 + 1 > this.nodes.size) {
      for (const key of [...this.nodes.keys()])
        if (key >= k0 && key <= k1) this.eraseInNode(key, first, last);
      return;
    }
    for (let key = k0; key <= k1; key++) this.eraseInNode(key, first, last);
  }

  private eraseInNode(key: number, first: number, last: number): void {
    const node = this.nodes.get(key);
    if (node === undefined) return;
    const base = key * NODE_SLOTS;
    const from = Math.max(first, base) - base;
    const to = Math.min(last, base + NODE_SLOTS - 1) - base;
    if (from === 0 && to === NODE_SLOTS - 1) {
      this.size -= node.n;
      this.nodes.delete(key);
      return;
    }
    const vals = node.vals;
    let removed = 0;
    for (let j = from; j <= to; j++) {
      if (vals[j] === EMPTY) continue;
      vals[j] = EMPTY;
      removed++;
    }
    this.size -= removed;
    node.n -= removed;
    if (node.n === 0) this.nodes.delete(key);
  }

  /**
   * The values of the node holding vpn (EMPTY = -1 where nothing is stored) and vpn's slot in it,
   * or undefined when the node is empty: for loops that walk consecutive indices.
   */
  slots(vpn: number): Float64Array | undefined {
    return this.nodes.get(Math.floor(vpn / NODE_SLOTS))?.vals;
  }

  /** Every (vpn, value) pair, in index order (xa_for_each()). */
  *entries(): IterableIterator<[number, number]> {
    const keys = [...this.nodes.keys()].sort((a, b) => a - b);
    for (const key of keys) {
      const vals = this.nodes.get(key)!.vals;
      for (let j = 0; j < NODE_SLOTS; j++) if (vals[j] !== EMPTY) yield [key * NODE_SLOTS + j, vals[j]];
    }
  }

  /** Every index present, in order. */
  *keys(): IterableIterator<number> {
    for (const [k] of this.entries()) yield k;
  }

  [Symbol.iterator](): IterableIterator<[number, number]> {
    return this.entries();
  }
}

/** Model-only: slots per {@link MirrorTable} node (for loops using {@link MirrorTable.slots}). */
export const MIRROR_NODE_SLOTS = NODE_SLOTS;
