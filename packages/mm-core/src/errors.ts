/**
 * Models VM_BUG_ON()/VM_WARN_ON() (include/linux/mmdebug.h): a broken kernel invariant.
 * Thrown by the model when its own state is inconsistent; a test seeing it has found a model bug.
 */
export class ModelBug extends Error {
  /** A dump of the folio / entry involved, for the report. */
  readonly dump: string;
  constructor(message: string, dump = '') {
    super(dump ? `${message}\n${dump}` : message);
    this.name = 'ModelBug';
    this.dump = dump;
  }
}

/** Models BUG_ON()/VM_BUG_ON(): throw a {@link ModelBug} when `cond` holds. */
export function bugOn(cond: boolean, message: string, dump?: () => string): void {
  if (cond) throw new ModelBug(message, dump ? dump() : '');
}

/** Models a fatal signal delivered to a simulated task (force_sig_fault()). */
export class SignalDelivered extends Error {
  readonly signo: number;
  readonly addr: number;
  readonly pid: number;
  constructor(signo: number, pid: number, addr: number, why: string) {
    // A JavaScript caller may pass anything as the address: describe what it was.
    const at = typeof addr === 'number' ? `0x${addr.toString(16)}` : String(addr);
    super(`signal ${signo} delivered to pid ${pid} at ${at}: ${why}`);
    this.name = 'SignalDelivered';
    this.signo = signo;
    this.addr = addr;
    this.pid = pid;
  }
}

/** Models WARN_ON_ONCE(): a record kept by the machine instead of a console splat. */
export interface Warning {
  readonly message: string;
}
