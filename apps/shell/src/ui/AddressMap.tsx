import { PAGE_SIZE, PMD_SIZE } from '@hmm-model/mm-core';
import { Box, Text } from 'ink';
import type { ReactElement } from 'react';
import { hex } from '../format.js';
import { type MapLine, type AddressMap as MapModel, mapLineText } from '../inspect/addrmap.js';
import { CELL_KINDS, type CellKind, cellSymbol } from '../inspect/classify.js';
import { CELL_COLORS } from './theme.js';

/** Props of {@link AddressMapView}. */
export interface AddressMapProps {
  readonly map: MapModel | null;
  readonly pid: number | null;
  readonly zoom: number | null;
  readonly color: boolean;
}

function Cells({ cells, color }: { cells: readonly CellKind[]; color: boolean }): ReactElement {
  if (!color) return <Text>{cells.map(cellSymbol).join('')}</Text>;
  // Group runs of one kind into one Text each (fewer nodes, same output).
  const runs: { kind: CellKind; n: number; at: number }[] = [];
  for (const [at, c] of cells.entries()) {
    const last = runs[runs.length - 1];
    if (last && last.kind === c) last.n++;
    else runs.push({ kind: c, n: 1, at });
  }
  return (
    <Text>
      {runs.map((r) => (
        <Text
          key={r.at}
          color={CELL_COLORS[r.kind]}
          bold={r.kind === 'thp' || r.kind === 'devthp' || r.kind === 'vramthp'}
        >
          {cellSymbol(r.kind).repeat(r.n)}
        </Text>
      ))}
    </Text>
  );
}

function Line({ line, color }: { line: MapLine; color: boolean }): ReactElement {
  if (line.type !== 'row' || !color)
    return <Text dimColor={color && line.type !== 'row'}>{mapLineText(line)}</Text>;
  return (
    <Text>
      <Text dimColor>{hex(line.addr).padStart(16)} |</Text>
      <Cells cells={line.cells} color={color} />
      <Text dimColor>|</Text>
    </Text>
  );
}

/** Stable keys for map lines: a row's address, or the row before a gap / summary line. */
function keyed(lines: readonly MapLine[]): { key: string; line: MapLine }[] {
  let prev = 'top';
  return lines.map((line) => {
    const key = line.type === 'row' ? `row-${line.addr}` : `${line.type}-after-${prev}`;
    if (line.type === 'row') prev = String(line.addr);
    return { key, line };
  });
}

/** The legend of the map: each kind's symbol (in its colour) and name. */
export function Legend({ color }: { color: boolean }): ReactElement {
  const kinds = CELL_KINDS.filter((c) => c.kind !== 'unmapped');
  return (
    <Text wrap="wrap">
      {kinds.map((c) => (
        <Text key={c.kind}>
          {color ? <Text color={CELL_COLORS[c.kind]}>{c.symbol}</Text> : c.symbol}
          {` ${c.short}  `}
        </Text>
      ))}
    </Text>
  );
}

/**
 * The live address-space view of the current process: one cell per 2 MiB region (or per page
 * when zoomed), coloured by what backs it, with a legend; plain letters when colour is off.
 */
export function AddressMapView({ map, pid, zoom, color }: AddressMapProps): ReactElement {
  if (!map || pid === null)
    return (
      <Box flexDirection="column">
        <Text dimColor={color}>(no current process: `spawn` starts one)</Text>
      </Box>
    );
  const title =
    map.granule === PAGE_SIZE
      ? `pid ${pid} · 2 MiB at ${hex(Math.floor((zoom ?? 0) / PMD_SIZE) * PMD_SIZE)} · 1 cell = 4 KiB page (zoom off: \`zoom off\`)`
      : `pid ${pid} · ${map.vmas} VMA${map.vmas === 1 ? '' : 's'} · 1 cell = 2 MiB`;
  return (
    <Box flexDirection="column">
      <Text bold={color}>{`address space: ${title}`}</Text>
      {map.lines.length === 0 ? (
        <Text dimColor={color}>{'(no mappings yet: try `mmap 4M rw private anon hugepage`)'}</Text>
      ) : null}
      {keyed(map.lines).map(({ key, line }) => (
        <Line key={key} line={line} color={color} />
      ))}
      <Legend color={color} />
    </Box>
  );
}
