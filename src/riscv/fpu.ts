/** F/D extensions: placeholder until the FPU lands (every FP instruction is illegal for now). */
import type { HartState } from './state.js';
export function fpLoad(h: HartState, _rd: number, _rs1: number, _imm: number, _size: number): void { h.raiseIllegal(); }
export function fpStore(h: HartState, _rs1: number, _rs2: number, _imm: number, _size: number): void { h.raiseIllegal(); }
export function execFp(h: HartState, _ins: number): void { h.raiseIllegal(); }
