/**
 * A 16550A UART (register-compatible with the ns16550a QEMU's virt board has), enough for
 * Linux's 8250 driver: transmit is instant, receive has a FIFO fed by the host, interrupts for
 * received data and for an empty transmitter.
 */
import type { MmioDevice } from './bus.js';

export const UART_SIZE = 0x100;

const IER_RDI = 1; // received data available
const IER_THRI = 2; // transmitter holding register empty
const LSR_DR = 0x01;
const LSR_THRE = 0x20;
const LSR_TEMT = 0x40;
const IIR_NONE = 0x01;
const IIR_THRI = 0x02;
const IIR_RDI = 0x04;
const IIR_FIFO = 0xc0;
const LCR_DLAB = 0x80;
const RX_LIMIT = 1 << 16;

export interface UartSnapshot {
  ier: number; lcr: number; mcr: number; scr: number; fcr: number; dll: number; dlm: number;
  thriPending: boolean;
  /** Received bytes not yet read by the guest. */
  rx: number[];
}

export class Uart16550 implements MmioDevice {
  private ier = 0;
  private lcr = 0;
  private mcr = 0;
  private scr = 0;
  private fcr = 0;
  private dll = 1;
  private dlm = 0;
  /** THR-empty interrupt latched (cleared by reading IIR or writing THR). */
  private thriPending = false;
  private rx: number[] = [];
  private rxHead = 0;

  constructor(
    /** Receives each byte the guest transmits. */
    private readonly output: (byte: number) => void,
    private readonly irq: (level: boolean) => void,
  ) {}

  /** Snapshot state: the registers and the input the guest has not read yet. */
  saveState(): UartSnapshot {
    return {
      ier: this.ier, lcr: this.lcr, mcr: this.mcr, scr: this.scr, fcr: this.fcr, dll: this.dll, dlm: this.dlm,
      thriPending: this.thriPending, rx: this.rx.slice(this.rxHead),
    };
  }

  loadState(s: UartSnapshot): void {
    this.ier = s.ier & 0x0f; this.lcr = s.lcr & 0xff; this.mcr = s.mcr & 0x1f; this.scr = s.scr & 0xff;
    this.fcr = s.fcr & 0xff; this.dll = s.dll & 0xff; this.dlm = s.dlm & 0xff; this.thriPending = s.thriPending;
    this.rx = s.rx.slice(0, RX_LIMIT).map((b) => b & 0xff);
    this.rxHead = 0;
    this.update();
  }

  /** Bytes from the host to the guest. Input beyond a fixed cap is dropped, as a real FIFO would. */
  receive(bytes: Uint8Array): void {
    for (const b of bytes) if (this.rx.length - this.rxHead < RX_LIMIT) this.rx.push(b);
    this.update();
  }

  /**
   * Bytes the guest can read now. Input is held back until the driver enables the receive
   * interrupt: Linux's 8250 start-up reads RBR to drain the port, which would eat bytes that
   * a pipe delivered before the port was opened.
   */
  get rxPending(): number {
    return this.ier & IER_RDI ? this.rx.length - this.rxHead : 0;
  }

  private update(): void {
    this.irq(this.iir() !== IIR_NONE);
  }

  private iir(): number {
    if (this.ier & IER_RDI && this.rxPending > 0) return IIR_RDI;
    if (this.ier & IER_THRI && this.thriPending) return IIR_THRI;
    return IIR_NONE;
  }

  read(offset: number, size: number): number {
    if (size !== 1 && size !== 4) return 0;
    switch (offset) {
      case 0:
        if (this.lcr & LCR_DLAB) return this.dll;
        if (this.rxPending > 0) {
          const b = this.rx[this.rxHead++]!;
          if (this.rxHead > 4096 && this.rxHead * 2 > this.rx.length) {
            this.rx = this.rx.slice(this.rxHead);
            this.rxHead = 0;
          }
          this.update();
          return b;
        }
        return 0;
      case 1:
        return this.lcr & LCR_DLAB ? this.dlm : this.ier;
      case 2: {
        const id = this.iir();
        if (id === IIR_THRI) {
          this.thriPending = false;
          this.update();
        }
        return id | (this.fcr & 1 ? IIR_FIFO : 0);
      }
      case 3:
        return this.lcr;
      case 4:
        return this.mcr;
      case 5:
        return LSR_THRE | LSR_TEMT | (this.rxPending > 0 ? LSR_DR : 0);
      case 6:
        return 0xb0; // DCD, DSR, CTS: a modem that is always there
      case 7:
        return this.scr;
      default:
        return 0;
    }
  }

  write(offset: number, size: number, value: number): void {
    if (size !== 1 && size !== 4) return;
    value &= 0xff;
    switch (offset) {
      case 0:
        if (this.lcr & LCR_DLAB) {
          this.dll = value;
          return;
        }
        this.output(value);
        this.thriPending = true; // sent at once: the holding register is empty again
        break;
      case 1:
        if (this.lcr & LCR_DLAB) {
          this.dlm = value;
          return;
        }
        if (value & IER_THRI && !(this.ier & IER_THRI)) this.thriPending = true;
        this.ier = value & 0x0f;
        break;
      case 2:
        // The RX-reset bit is ignored: host input waits in our queue as if still on the line, so
        // input piped in before the driver initialised the port is not lost.
        this.fcr = value;
        break;
      case 3:
        this.lcr = value;
        return;
      case 4:
        this.mcr = value & 0x1f;
        return;
      case 7:
        this.scr = value;
        return;
      default:
        return;
    }
    this.update();
  }
}
