/**
 * The console handshake between the host and the guest's init with `storvm.ctl=console`, the
 * boot cache's protocol (docs/boot-cache.md), shared by the CLI and the browser.
 *
 * Init talks to the host with OSC sequences on the console, `ESC ] 5379 ; PAYLOAD BEL`, which
 * terminals ignore and the host takes out of the output:
 *   - `storvm-ready`: init waits for its console line; the host saves the boot-cache snapshot
 *     here, then types the line ({@link ctlLine});
 *   - `storvm-exit;N`: the command finished with status N (its disks written back); init waits,
 *     and the host ends the run as a poweroff with that status, so the guest does not have to
 *     start `devmem` and go through the kernel's poweroff path first.
 */

/** The OSC number init's markers use. */
const OSC_PREFIX = new TextEncoder().encode('\x1b]5379;');
const BEL = 0x07;
/** Longest payload taken as a marker; anything longer is passed through as output. */
const PAYLOAD_MAX = 32;

/** The marker init prints when it waits for the console line. */
export const READY_MARKER = new TextEncoder().encode('\x1b]5379;storvm-ready\x07');

/** What a marker said. */
export type HandshakeEvent = { kind: 'ready' } | { kind: 'exit'; status: number };

/** Parses a marker's payload; undefined for one that is not init's (then it stays in the output). */
export function parseMarker(payload: string): HandshakeEvent | undefined {
  if (payload === 'storvm-ready') return { kind: 'ready' };
  const m = /^storvm-exit;(\d{1,3})$/.exec(payload);
  if (m !== null && Number(m[1]) <= 255) return { kind: 'exit', status: Number(m[1]) };
  return undefined;
}

/**
 * Watches console output for init's markers: everything else passes to `out` in order, each
 * marker is taken out and given to `onEvent`, wherever the chunks split it. A sequence that
 * starts like a marker but is not one is given back as it was. Every chunk given to `out` is
 * its own copy or the input chunk whole, never a view into part of it, so `out` may keep it or
 * transfer its buffer (the browser worker posts it to the page) while the rest is still read.
 */
export class ConsoleMarkers {
  /** Bytes of a sequence that may still be a marker. */
  private held: number[] = [];

  constructor(
    private readonly out: (bytes: Uint8Array) => void,
    private readonly onEvent: (e: HandshakeEvent) => void,
  ) {}

  push(bytes: Uint8Array): void {
    // The usual case: no escape byte and nothing held, so the chunk passes as it is.
    if (this.held.length === 0 && bytes.indexOf(0x1b) < 0) return this.out(bytes);
    let from = 0; // start of the bytes not yet passed on
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes[i]!;
      if (this.held.length === 0) {
        if (b !== 0x1b) continue;
        if (i > from) this.out(bytes.slice(from, i));
        this.held.push(b);
        from = i + 1;
        continue;
      }
      from = i + 1;
      const n = this.held.length;
      if (n < OSC_PREFIX.length) {
        if (b === OSC_PREFIX[n]) this.held.push(b);
        else this.giveBack(b);
        continue;
      }
      if (b === BEL) {
        const payload = String.fromCharCode(...this.held.slice(OSC_PREFIX.length));
        const e = parseMarker(payload);
        if (e === undefined) {
          this.held.push(b);
          this.out(Uint8Array.from(this.held));
        } else {
          this.onEvent(e);
        }
        this.held = [];
      } else if (b >= 0x20 && b < 0x7f && n - OSC_PREFIX.length < PAYLOAD_MAX) {
        this.held.push(b);
      } else {
        this.giveBack(b);
      }
    }
    if (this.held.length === 0 && from < bytes.length) this.out(from === 0 ? bytes : bytes.slice(from));
  }

  /** The held bytes were not a marker: pass them on; `b` may start a new one. */
  private giveBack(b: number): void {
    this.out(Uint8Array.from(this.held));
    this.held = [];
    if (b === 0x1b) this.held.push(b);
    else this.out(Uint8Array.of(b));
  }
}

/**
 * The line init reads on the console with storvm.ctl=console: shell assignments it evals, in
 * printable ASCII only (every other byte, and ' and \, as $'\NNN'), so the tty's line editing
 * (^C, ^U, CR to NL…) never sees a control character.
 */
export function ctlLine(shares: string[], command: string): string {
  let q = "$'";
  for (const b of new TextEncoder().encode(command)) q += b >= 0x20 && b < 0x7f && b !== 0x27 && b !== 0x5c ? String.fromCharCode(b) : `\\${b.toString(8).padStart(3, '0')}`;
  return `shares='${shares.join(' ')}'; cmd=${q}'`;
}

/**
 * What the guest printed before the snapshot point, kept for the entry up to `max` bytes; past
 * that nothing more is kept (the host never holds more than `max`) and no entry is made.
 */
export class EarlyConsole {
  private chunks: Uint8Array[] = [];
  private total = 0;

  constructor(private readonly max: number) {}

  get overflowed(): boolean {
    return this.total > this.max;
  }

  push(b: Uint8Array): void {
    this.total += b.length;
    if (this.overflowed) this.chunks = [];
    else this.chunks.push(b.slice());
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.overflowed ? 0 : this.total);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/**
 * Longest console line init's `read` takes (the tty's canonical line is 4095 bytes): the most a
 * host types to init, and the most it takes back from a snapshot's META.
 */
export const CTL_LINE_MAX = 4000;

/** What a handshake needs of the machine. */
export interface HandshakeMachine {
  input(bytes: Uint8Array): void;
  powerOff(exitCode: number): void;
}

/** A handshake not finished when a snapshot was taken, kept in its META section. */
export interface PendingHandshake {
  /** The line init is to read. */
  line: string;
  /** Whether init had already printed its marker (it then waits for the line). */
  ready: boolean;
}

/**
 * One run's side of the handshake. Console output from the machine goes through {@link output};
 * the ready marker types the line (or first calls `onReady`, which then calls {@link deliver});
 * the exit marker powers the machine off. Input from the user is held until init has its line,
 * so it cannot be taken for the line.
 */
export class Handshake {
  private readonly markers: ConsoleMarkers;
  private machine: HandshakeMachine | undefined;
  private delivered: boolean;
  private ready: boolean;
  private readonly held: Uint8Array[] = [];

  /**
   * `line`: what to type, or undefined when nothing is (a restored machine whose init has its
   * line already: only its exit marker matters). `ready`: init's marker was seen already.
   * `onReady`: runs on the marker instead of typing at once.
   */
  constructor(
    private readonly line: string | undefined,
    out: (bytes: Uint8Array) => void,
    opts: { ready?: boolean; onReady?: () => void } = {},
  ) {
    this.delivered = line === undefined;
    this.ready = opts.ready ?? false;
    this.markers = new ConsoleMarkers(out, (e) => {
      if (e.kind === 'exit') return this.machine?.powerOff(e.status);
      if (this.ready) return;
      this.ready = true;
      if (opts.onReady) opts.onReady();
      else this.deliver();
    });
  }

  attach(machine: HandshakeMachine): void {
    this.machine = machine;
  }

  /** Console output from the machine. */
  readonly output = (bytes: Uint8Array): void => this.markers.push(bytes);

  /** Whether init has printed its marker. */
  get isReady(): boolean {
    return this.ready;
  }

  /** Input from the user: held until the line is typed. */
  input(bytes: Uint8Array): void {
    if (this.delivered) this.machine!.input(bytes);
    else this.held.push(bytes);
  }

  /** Types the line, then what the user typed meanwhile. */
  deliver(): void {
    if (this.delivered) return;
    this.delivered = true;
    this.machine!.input(new TextEncoder().encode(this.line + '\n'));
    for (const b of this.held.splice(0)) this.machine!.input(b);
  }

  /** What a restore of a snapshot taken now must still do (undefined: nothing). */
  pending(): PendingHandshake | undefined {
    return this.delivered ? undefined : { line: this.line!, ready: this.ready };
  }
}

/** Reads a pending handshake back from a snapshot's META value (undefined when there is none or it is malformed). */
export function pendingHandshake(v: unknown, maxLine: number): PendingHandshake | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const { line, ready } = v as Record<string, unknown>;
  if (typeof line !== 'string' || typeof ready !== 'boolean' || line.length > maxLine || !/^[\x20-\x7e]*$/.test(line)) return undefined;
  return { line, ready };
}

/**
 * The handshake of a machine restored from a snapshot, as the CLI's `boot --restore` and the
 * browser worker build it. A snapshot of a guest booted with the handshake (the boot cache's
 * init) keeps its open part in META: the line init had not read when it was saved is typed when
 * init asks for it, or, when `deliver` is true (init had asked already), by the caller calling
 * `handshake.deliver()` once the machine is attached. Without one only the exit marker matters.
 *
 * `meta` reads the snapshot's META section, called here (so a caller may load the reader only
 * now); when it throws or rejects there is no pending line: restore reports what is wrong with
 * the file.
 */
export async function restoredHandshake(
  meta: () => Record<string, unknown> | Promise<Record<string, unknown>>,
  out: (bytes: Uint8Array) => void,
): Promise<{ handshake: Handshake; deliver: boolean }> {
  let pending: PendingHandshake | undefined;
  try {
    pending = pendingHandshake((await meta()).handshake, CTL_LINE_MAX);
  } catch {
    pending = undefined; // restore reports what is wrong with the file
  }
  const ready = pending?.ready ?? false;
  return { handshake: new Handshake(pending?.line, out, { ready }), deliver: ready };
}
