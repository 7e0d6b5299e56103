import { Box, Static, Text, useApp, useInput, useStdout } from 'ink';
import { type ReactElement, useEffect, useMemo, useRef, useState } from 'react';
import { type Executed, executeSteps } from '../commands/index.js';
import { progressText } from '../commands/steps.js';
import { complete } from '../complete.js';
import { dmirrorPath } from '../dmirror-uapi.js';
import type { History } from '../history.js';
import { buildAddressMap } from '../inspect/addrmap.js';
import { promptText } from '../script.js';
import type { Session } from '../session.js';
import { AddressMapView } from './AddressMap.js';
import { decodeInk, type KeyEvent, LineEditor } from './editor.js';

/** How long a command runs between two returns to the event loop (keys, rendering). */
const SLICE_MS = 50;

/**
 * Where the current command stands: none (`idle`: keys edit the prompt), running in steps
 * (`running`: Ctrl-C interrupts it), or finished while keys typed during its last step may still
 * be unread (`draining`). Keys that arrive unless idle are dropped, not replayed afterwards.
 */
type Phase = 'idle' | 'running' | 'draining';
/** A running command shows its progress once it has taken this long. */
const PROGRESS_AFTER_MS = 200;

/** One transcript entry: a command with its output, or a banner. */
interface LogItem {
  readonly id: number;
  readonly prompt: string;
  readonly line: string;
  readonly lines: readonly string[];
  readonly ok: boolean;
}

/** Output lines with stable keys (their line number within the entry). */
function numbered(lines: readonly string[]): { n: number; text: string }[] {
  return lines.map((text, n) => ({ n, text }));
}

/** What booting the machine gives the UI: the session and the welcome lines. */
export interface Booted {
  readonly session: Session;
  readonly banner: readonly string[];
}

/** Props of {@link App}: a ready session, or a boot function run right after the first frame. */
export interface AppProps {
  readonly session?: Session;
  /** Builds the machine after the first frame is shown (so the prompt appears sooner). */
  readonly boot?: () => Booted;
  readonly history: History;
  readonly color: boolean;
  /** Lines printed once at the top (welcome text). */
  readonly banner?: readonly string[];
  /** Most rows of cells the live map shows (default 10). */
  readonly mapRows?: number;
}

function deltaText(e: Executed | null): string {
  if (!e) return '';
  const d = e.vmstatDelta.filter(([k]) => k !== 'nr_free_pages' && k !== 'tlb_flushes');
  if (!d.length) return `last: ${e.command ?? ''} (${e.ms.toFixed(1)} ms), no counter changed`;
  const shown = d.slice(0, 6).map(([k, v]) => `${k} ${v > 0 ? '+' : ''}${v}`);
  return `last: ${e.command ?? ''} (${e.ms.toFixed(1)} ms) Δ ${shown.join(', ')}${d.length > 6 ? ', ...' : ''}`;
}

function Entry({ item, color }: { item: LogItem; color: boolean }): ReactElement {
  return (
    <Box flexDirection="column">
      {item.line !== '' || item.prompt !== '' ? (
        <Text>
          <Text color={color ? 'cyan' : undefined}>{item.prompt}</Text>
          <Text bold={color}>{item.line}</Text>
        </Text>
      ) : null}
      {numbered(item.lines).map(({ n, text }) => (
        <Text key={n} color={color && !item.ok && n === item.lines.length - 1 ? 'red' : undefined}>
          {text === '' ? ' ' : text}
        </Text>
      ))}
    </Box>
  );
}

function Prompt({
  prompt,
  line,
  cursor,
  color,
}: {
  prompt: string;
  line: string;
  cursor: number;
  color: boolean;
}): ReactElement {
  const at = line[cursor] ?? ' ';
  return (
    <Text>
      <Text color={color ? 'cyan' : undefined} bold={color}>
        {prompt}
      </Text>
      {line.slice(0, cursor)}
      <Text inverse>{at}</Text>
      {line.slice(cursor + 1)}
    </Text>
  );
}

/**
 * The interactive shell: the transcript (printed once, scrolling above), the live address-space
 * map of the current process, a status line with the last command's vmstat change, and the
 * prompt with history, completion and two-step Ctrl-C.
 */
export function App({
  session: given,
  boot,
  history,
  color,
  banner = [],
  mapRows = 10,
}: AppProps): ReactElement {
  const { exit } = useApp();
  const { stdout, write } = useStdout();
  const editor = useRef(new LineEditor(() => history.entries)).current;
  const [session, setSession] = useState<Session | null>(given ?? null);
  const [log, setLog] = useState<LogItem[]>(() =>
    banner.length ? [{ id: 0, prompt: '', line: '', lines: banner, ok: true }] : [],
  );
  /** Lines entered before the machine finished booting. */
  const pending = useRef<string[]>([]);
  const [hint, setHint] = useState('');
  const [last, setLast] = useState<Executed | null>(null);
  const [version, setVersion] = useState(0);
  const [, setTick] = useState(0);
  /** A command running in steps: its line and, after PROGRESS_AFTER_MS, its progress. */
  const [busy, setBusy] = useState<{ line: string; text: string | null } | null>(null);
  /** Where the command stands (see {@link Phase}); keys are dropped unless idle. */
  const phase = useRef<Phase>('idle');
  const nextId = useRef(1);
  const columns = stdout?.columns ?? 100;
  const cellsPerRow = Math.max(16, Math.min(64, Math.floor((columns - 22) / 16) * 16));

  const proc = session?.proc;
  // biome-ignore lint/correctness/useExhaustiveDependencies: version marks machine changes
  const map = useMemo(
    () =>
      session && proc
        ? buildAddressMap(session.kernel.core, proc.mm, {
            cellsPerRow,
            maxRows: mapRows,
            zoom: session.zoom,
            focus: session.focus,
          })
        : null,
    [session, proc, version, cellsPerRow, mapRows, session?.zoom, session?.focus],
  );

  /**
   * Runs a command line in steps: bounded steps run for up to SLICE_MS at a time, then the event
   * loop gets the terminal back (keys, Ctrl-C, rendering); progress shows after PROGRESS_AFTER_MS.
   * Lines entered meanwhile run afterwards, in order.
   */
  const run = (session: Session, line: string): void => {
    const prompt = promptText(session);
    history.add(line);
    const steps = executeSteps(session, line);
    const t0 = performance.now();
    phase.current = 'running';
    const finish = (e: Executed) => {
      phase.current = 'draining';
      // The prompt takes keys again before the output is shown: a key typed after the result is
      // on the screen is never one of the dropped ones.
      const show = () => {
        phase.current = 'idle';
        setBusy(null);
        if (e.result.clear) write('\x1b[2J\x1b[3J\x1b[H');
        else
          setLog((l) => [
            ...l,
            { id: nextId.current++, prompt, line, lines: e.result.lines, ok: e.result.ok },
          ]);
        if (e.command !== null) setLast(e);
        setVersion((v) => v + 1);
        if (e.result.quit === true) {
          exit();
          return;
        }
        const next = pending.current.shift();
        if (next !== undefined) run(session, next);
      };
      // Keys typed during a long command's last step are read only now, after it: two turns of
      // the event loop (each reads the terminal) drop them before the prompt takes keys again.
      // A command shorter than a slice left no time to type into it.
      if (performance.now() - t0 < SLICE_MS) show();
      else setImmediate(() => setImmediate(show));
    };
    const pump = () => {
      const sliceEnd = performance.now() + SLICE_MS;
      for (;;) {
        const r = steps.next();
        if (r.done) {
          finish(r.value);
          return;
        }
        if (performance.now() - t0 >= PROGRESS_AFTER_MS) setBusy({ line, text: progressText(r.value) });
        if (performance.now() >= sliceEnd) break;
      }
      setImmediate(pump);
    };
    setBusy({ line, text: null });
    pump();
  };

  const handle = (ev: KeyEvent): boolean => {
    if (ev.type !== 'ctrl-c') editor.armedQuit = false;
    if (ev.type !== 'ctrl-c' && ev.type !== 'tab') setHint('');
    switch (ev.type) {
      case 'text':
        editor.insert(ev.text);
        return false;
      case 'enter': {
        const line = editor.take();
        // Lines typed before the machine booted, or after a command's line in the same paste.
        if (!session || phase.current !== 'idle') {
          if (line.trim() !== '') pending.current.push(line);
          return false;
        }
        if (line.trim() === '') {
          setLog((l) => [
            ...l,
            { id: nextId.current++, prompt: promptText(session), line: '', lines: [], ok: true },
          ]);
          return false;
        }
        run(session, line);
        return false;
      }
      case 'backspace':
        editor.backspace();
        return false;
      case 'delete':
        editor.set(editor.line.slice(0, editor.cursor) + editor.line.slice(editor.cursor + 1), editor.cursor);
        return false;
      case 'left':
        editor.move(-1);
        return false;
      case 'right':
        editor.move(1);
        return false;
      case 'home':
        editor.move(-editor.line.length);
        return false;
      case 'end':
        editor.move(editor.line.length);
        return false;
      case 'up':
        editor.browse(-1);
        return false;
      case 'down':
        editor.browse(1);
        return false;
      case 'kill-line':
        editor.set('');
        return false;
      case 'kill-word':
        editor.killWord();
        return false;
      case 'clear-screen':
        write('\x1b[2J\x1b[3J\x1b[H');
        return false;
      case 'tab': {
        if (!session) return false;
        const c = complete(session, editor.line, editor.cursor);
        editor.set(c.line, c.cursor);
        setHint(c.candidates.length ? c.candidates.join('  ') : '');
        return false;
      }
      case 'ctrl-c': {
        if (phase.current !== 'idle') {
          // A Ctrl-C in the same paste as a command's line: it interrupts that command.
          whileBusy(ev);
          return false;
        }
        const quit = editor.ctrlC();
        setHint(quit ? '' : '^C  (press Ctrl-C again on an empty line, or Ctrl-D, to quit)');
        return quit;
      }
      case 'ctrl-d':
        return true;
    }
  };

  useEffect(() => {
    if (session || !boot) return;
    // Boot on the next tick: the first frame (and prompt) is already on the terminal.
    const t = setTimeout(() => {
      const b = boot();
      setLog((l) => [...l, { id: nextId.current++, prompt: '', line: '', lines: b.banner, ok: true }]);
      setSession(b.session);
      const first = pending.current.shift();
      if (first !== undefined) run(b.session, first);
    }, 0);
    return () => clearTimeout(t);
  });

  /**
   * A key that arrived while a command ran (or during its last step): dropped, never replayed
   * at the prompt afterwards. Ctrl-C interrupts the running command (SIGINT to the current
   * process, see Session.interrupt) and never counts toward the double Ctrl-C that quits.
   */
  const whileBusy = (ev: KeyEvent): void => {
    if (ev.type !== 'ctrl-c') {
      dropped.current++;
      setHint(`(${dropped.current} key(s) typed while the command ran were dropped)`);
      return;
    }
    editor.armedQuit = false;
    if (phase.current === 'running' && session) {
      const pid = session.currentPid;
      session.interrupt();
      setHint(`^C  SIGINT sent to process ${pid}`);
    } else setHint('^C  the command had already finished: nothing was interrupted');
  };
  /** Keys dropped during the current command (for the hint). */
  const dropped = useRef(0);

  useInput((input, key) => {
    if (phase.current !== 'idle') {
      for (const ev of decodeInk(input, key)) whileBusy(ev);
      setTick((t) => t + 1);
      return;
    }
    dropped.current = 0;
    for (const ev of decodeInk(input, key)) {
      if (handle(ev)) {
        exit();
        return;
      }
    }
    setTick((t) => t + 1);
  });

  const status = session
    ? [
        `dev ${session.device}${session.kernel.devices.has(dmirrorPath(session.device)) ? '' : ' (no driver)'}`,
        `thp ${session.kernel.core.thpMode}`,
        session.taint ? `TAINTED ${session.taint.flags}` : '',
        session.recording ? `recording ${session.recording.path}` : '',
        deltaText(last),
      ]
        .filter(Boolean)
        .join(' · ')
    : 'booting the simulated machine...';
  return (
    <Box flexDirection="column">
      <Static items={log}>{(item) => <Entry key={item.id} item={item} color={color} />}</Static>
      <Box flexDirection="column" marginTop={1}>
        {session ? (
          <AddressMapView map={map} pid={proc ? proc.pid : null} zoom={session.zoom} color={color} />
        ) : null}
        <Text dimColor={color} wrap="truncate-end">
          {status}
        </Text>
        {busy?.text ? (
          <Text color={color ? 'yellow' : undefined} wrap="truncate-end">
            {`… ${busy.line.trim()}: ${busy.text} — Ctrl-C interrupts (SIGINT)`}
          </Text>
        ) : null}
        {phase.current === 'idle' ? (
          // The prompt shows only when it takes keys (not while a command runs).
          <Prompt
            prompt={session ? promptText(session) : 'hmm:1> '}
            line={editor.line}
            cursor={editor.cursor}
            color={color}
          />
        ) : null}
        {hint ? <Text dimColor={color}>{hint}</Text> : null}
      </Box>
    </Box>
  );
}
