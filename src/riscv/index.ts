/** RV64GC hart: public surface for the machine layer. */
export { Hart } from './hart.js';
export { HartState, IRQ_MEI, IRQ_MSI, IRQ_MTI, IRQ_SEI, IRQ_SSI, IRQ_STI, type HartOptions } from './state.js';
export { EMPTY_BUS, type Bus, type Ram } from './bus.js';
export { loadElf, ElfError, type LoadedElf } from './elf.js';
export { Htif, loadTestProgram, type HtifResult } from './htif.js';
