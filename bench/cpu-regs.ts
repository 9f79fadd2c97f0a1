/**
 * Micro-benchmark behind the register representation in src/riscv (see alu.ts): a mix of 64-bit
 * add, variable shift, signed compare and address arithmetic, with registers as
 * BigInt64Array + bigint ops versus split lo/hi Int32Arrays. Run: npx tsx bench/cpu-regs.ts
 */
const N = 10_000_000;
const mem = new Int32Array(1024);

function bigintRegs(): number {
  const r = new BigInt64Array(32);
  r[1] = 12345n; r[2] = 0x123456789n; r[3] = 5n;
  const t = performance.now();
  for (let i = 0; i < N; i++) {
    const a = (i & 7) + 1, b = ((i >> 3) & 7) + 1, d = ((i >> 6) & 7) + 9;
    switch (i & 3) {
      case 0: r[d] = BigInt.asIntN(64, r[a]! + r[b]!); break;
      case 1: r[d] = BigInt.asIntN(64, r[a]! << (r[b]! & 63n)); break;
      case 2: r[d] = r[a]! < r[b]! ? 1n : 0n; break;
      default: r[d] = BigInt(mem[Number(BigInt.asUintN(32, r[a]! + 8n)) & 1023]!); break;
    }
  }
  return performance.now() - t;
}

function splitRegs(): number {
  const lo = new Int32Array(32), hi = new Int32Array(32);
  lo[1] = 12345; lo[2] = 0x23456789; hi[2] = 1; lo[3] = 5;
  const t = performance.now();
  for (let i = 0; i < N; i++) {
    const a = (i & 7) + 1, b = ((i >> 3) & 7) + 1, d = ((i >> 6) & 7) + 9;
    switch (i & 3) {
      case 0: {
        const al = lo[a]!, l = (al + lo[b]!) | 0;
        hi[d] = (hi[a]! + hi[b]! + ((l >>> 0) < (al >>> 0) ? 1 : 0)) | 0; lo[d] = l; break;
      }
      case 1: {
        const s = lo[b]! & 63, al = lo[a]!, ah = hi[a]!;
        if (s === 0) { lo[d] = al; hi[d] = ah; } else if (s < 32) { hi[d] = (ah << s) | (al >>> (32 - s)); lo[d] = al << s; } else { hi[d] = al << (s - 32); lo[d] = 0; }
        break;
      }
      case 2: {
        const ah = hi[a]!, bh = hi[b]!;
        lo[d] = ah < bh || (ah === bh && (lo[a]! >>> 0) < (lo[b]! >>> 0)) ? 1 : 0; hi[d] = 0; break;
      }
      default: {
        const v = mem[((lo[a]! + 8) >>> 0) & 1023]!; lo[d] = v; hi[d] = v >> 31; break;
      }
    }
  }
  return performance.now() - t;
}

const rows: Record<string, number[]> = { bigint: [], 'lo/hi Int32Array': [] };
for (let k = 0; k < 5; k++) {
  rows.bigint!.push(N / bigintRegs() / 1000);
  rows['lo/hi Int32Array']!.push(N / splitRegs() / 1000);
}
for (const [name, v] of Object.entries(rows)) {
  v.sort((x, y) => x - y);
  console.log(`${name.padEnd(18)} median ${v[2]!.toFixed(1)} M ops/s`);
}
