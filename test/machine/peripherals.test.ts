import { describe, expect, it } from 'vitest';
import { MmioBus } from '../../src/machine/bus.js';
import { Clint } from '../../src/machine/clint.js';
import { Plic } from '../../src/machine/plic.js';
import { Finisher, type FinisherEvent } from '../../src/machine/test-device.js';
import { Uart16550 } from '../../src/machine/uart.js';

describe('MmioBus', () => {
  it('routes accesses to the device window and splits 64-bit ones', () => {
    const log: Array<[number, number, number]> = [];
    const bus = new MmioBus();
    bus.map(0x1000, 0x100, { read: (o, s) => o + s, write: (o, s, v) => log.push([o, s, v]) }, 'a');
    const out = new Int32Array(2);
    expect(bus.read(0x1010, 4, out)).toBe(true);
    expect(out[0]).toBe(0x14);
    expect(bus.read(0x1010, 8, out)).toBe(true);
    expect([...out]).toEqual([0x14, 0x18]);
    expect(bus.write(0x1008, 8, -1, 2)).toBe(true);
    expect(bus.write(0x1001, 1, 0x1ff, 0)).toBe(true);
    expect(log).toEqual([[8, 4, 0xffff_ffff], [12, 4, 2], [1, 1, 0xff]]);
    expect(bus.read(0x10fe, 4, out)).toBe(false); // crosses the window end
    expect(bus.write(0x2000, 4, 0, 0)).toBe(false);
    expect(() => bus.map(0x10f0, 0x100, { read: () => 0, write: () => {} }, 'b')).toThrow(/overlaps a/);
  });
});

describe('CLINT', () => {
  it('raises MTIP once mtime reaches mtimecmp, and MSIP on msip writes', () => {
    let now = 100;
    const lines = { timer: false, sw: false };
    const c = new Clint(() => now, { timer: (l) => (lines.timer = l), software: (l) => (lines.sw = l) });
    c.update();
    expect(lines.timer).toBe(false);
    c.write(0x4004, 4, 0);
    c.write(0x4000, 4, 150);
    expect(c.read(0x4000, 4)).toBe(150);
    expect(lines.timer).toBe(false);
    now = 150;
    c.update();
    expect(lines.timer).toBe(true);
    expect(c.read(0xbff8, 4)).toBe(150);
    c.write(0x4000, 4, 1000);
    expect(lines.timer).toBe(false);
    c.write(0, 4, 1);
    expect(lines.sw).toBe(true);
    now = 2 ** 33 + 5;
    expect(c.read(0xbffc, 4)).toBe(2);
  });
});

describe('PLIC', () => {
  it('claims the highest-priority enabled source above the threshold and re-pends a level still high', () => {
    const out = [false, false];
    const p = new Plic((ctx, l) => (out[ctx] = l));
    p.write(4 * 1, 4, 1); // priority of source 1
    p.write(4 * 10, 4, 5);
    p.write(0x2080, 4, (1 << 1) | (1 << 10)); // enable for context 1 (S-mode)
    p.setLevel(1, true);
    p.setLevel(10, true);
    expect(out).toEqual([false, true]);
    expect(p.read(0x1000, 4)).toBe((1 << 1) | (1 << 10));
    expect(p.read(0x201004, 4)).toBe(10);
    expect(p.read(0x201004, 4)).toBe(1);
    expect(out[1]).toBe(false);
    p.setLevel(1, false);
    p.write(0x201004, 4, 1); // complete 1: line is low, not pending
    p.write(0x201004, 4, 10); // complete 10: line still high, pending again
    expect(out[1]).toBe(true);
    p.write(0x201000, 4, 5); // threshold 5 masks priority 5
    expect(out[1]).toBe(false);
    expect(p.read(0x201004, 4)).toBe(0);
  });
});

describe('UART 16550A', () => {
  it('transmits, receives through the FIFO and interrupts for data and an empty transmitter', () => {
    const sent: number[] = [];
    let irq = false;
    const u = new Uart16550((b) => sent.push(b), (l) => (irq = l));
    u.write(0, 1, 0x41);
    expect(sent).toEqual([0x41]);
    expect(u.read(5, 1) & 0x60).toBe(0x60);
    u.write(1, 1, 0x01); // IER: received data
    u.receive(new Uint8Array([1, 2]));
    expect(irq).toBe(true);
    expect(u.read(2, 1) & 0x0f).toBe(0x04);
    expect(u.read(5, 1) & 1).toBe(1);
    expect([u.read(0, 1), u.read(0, 1)]).toEqual([1, 2]);
    expect(irq).toBe(false);
    u.write(1, 1, 0x03); // enable THR-empty interrupt: fires at once
    expect(irq).toBe(true);
    expect(u.read(2, 1) & 0x0f).toBe(0x02);
    expect(irq).toBe(false); // reading IIR cleared it
    u.write(3, 1, 0x80); // DLAB
    u.write(0, 1, 3);
    expect(u.read(0, 1)).toBe(3);
    expect(sent).toEqual([0x41]);
  });
});

describe('UART input before the driver is ready', () => {
  it('holds host input until the receive interrupt is enabled, so start-up drains lose nothing', () => {
    let irq = false;
    const u = new Uart16550(() => {}, (l) => (irq = l));
    u.receive(new TextEncoder().encode('ls\n'));
    expect(u.read(5, 1) & 1).toBe(0); // LSR: no data yet
    expect(u.read(0, 1)).toBe(0); // the driver's drain read takes nothing
    u.write(2, 1, 0x07); // FIFO enable + reset RX/TX
    u.write(1, 1, 0x01);
    expect(irq).toBe(true);
    expect([u.read(0, 1), u.read(0, 1), u.read(0, 1)]).toEqual([0x6c, 0x73, 0x0a]);
  });
});

describe('Finisher', () => {
  it('reports poweroff with a code and reset', () => {
    const ev: FinisherEvent[] = [];
    const f = new Finisher((e) => ev.push(e));
    f.write(0, 4, 0x5555);
    f.write(0, 4, (3 << 16) | 0x3333);
    f.write(0, 4, 0x7777);
    f.write(0, 4, 0x1234);
    expect(ev).toEqual([{ kind: 'poweroff', code: 0 }, { kind: 'poweroff', code: 3 }, { kind: 'reset' }]);
  });
});
