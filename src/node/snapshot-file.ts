/**
 * Snapshot files on the host: written whole or not at all (a temporary file renamed over the
 * target), and described for `storvm snapshot info`.
 */
import { snapshotInfo } from '../machine/snapshot-info.js';
import { deviceName } from '../virtio/constants.js';
import { writeWhole } from './write-whole.js';

export async function writeSnapshotFile(file: string, bytes: Uint8Array): Promise<void> {
  try {
    await writeWhole(file, bytes);
  } catch (e) {
    throw new Error(`snapshot ${file}: ${(e as Error).message}`);
  }
}


/** The lines of `storvm snapshot info`. Throws SnapshotError for a file that is not a good snapshot. */
export function snapshotInfoLines(bytes: Uint8Array): string[] {
  const info = snapshotInfo(bytes);
  const m = info.meta;
  const mb = (n: number) => `${(n / 1e6).toFixed(2)} MB`;
  const lines = [
    `storvm snapshot, format ${info.version}, ${mb(info.bytes)}${typeof m.storvm === 'string' ? `, saved by storvm ${m.storvm}` : ''}${typeof m.created === 'string' ? ` on ${m.created}` : ''}`,
    `machine: ${String(m.memoryMiB)} MiB RAM, cpu ${String(m.cpu)}${m.deterministic === true ? ', deterministic' : ''}, ${Number(m.instret).toLocaleString('en-US')} instructions retired, guest time ${Number(m.guestSeconds).toFixed(2)} s`,
    `RAM: ${info.ram.stored} of ${info.ram.pages} pages stored (the rest are zero), ${mb(info.ram.bytes)} deflated`,
  ];
  const devices = Array.isArray(m.devices) ? (m.devices as Array<{ slot: number; deviceId: number; status: number }>) : [];
  const disks = Array.isArray(m.disks) ? (m.disks as Array<{ path: string; readOnly: boolean }>) : [];
  const shares = Array.isArray(m.shares) ? (m.shares as Array<{ dir: string; tag: string; readOnly: boolean; mode: string }>) : [];
  let d = 0, s = 0;
  for (const dev of devices) {
    const name = deviceName(dev.deviceId);
    let what = '';
    if (dev.deviceId === 2 && disks[d]) what = ` ${disks[d]!.path}${disks[d++]!.readOnly ? ' (ro)' : ''}`;
    else if (dev.deviceId !== 2 && shares[s]) what = ` ${shares[s]!.dir} tag ${shares[s]!.tag}${shares[s++]!.readOnly ? ' (ro)' : ''}`;
    lines.push(`virtio${dev.slot}: ${name}${what}, status 0x${dev.status.toString(16)}`);
  }
  lines.push(`sections: ${info.sections.map((x) => `${x.tag.trim()} ${mb(x.bytes)}`).join(', ')}`);
  return lines;
}
