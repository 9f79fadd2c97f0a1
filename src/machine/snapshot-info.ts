/**
 * What is inside a snapshot, for `storvm snapshot info` and the page: read from the META section
 * and the section table, after the same checks a restore makes.
 */
import { ramImageStats } from './ram-image.js';
import { parseJsonSection, readSnapshot, SNAPSHOT_VERSION, SnapshotError } from './snapshot-format.js';

export interface SnapshotInfo {
  version: number;
  bytes: number;
  sections: Array<{ tag: string; bytes: number }>;
  /** The META section as saved: memory, engine, instret, guest time, devices, and what the saver added. */
  meta: Record<string, unknown>;
  ram: { pages: number; stored: number; bytes: number };
}

export function snapshotInfo(bytes: Uint8Array): SnapshotInfo {
  const sections = readSnapshot(bytes);
  const metaSection = sections.find((s) => s.tag === 'META');
  const ramSection = sections.find((s) => s.tag === 'RAM ');
  if (metaSection === undefined || ramSection === undefined) throw new SnapshotError('corrupt', 'snapshot lacks its META or RAM section');
  const meta = parseJsonSection(metaSection);
  if (typeof meta !== 'object' || meta === null) throw new SnapshotError('state', 'snapshot META is not an object');
  return {
    version: SNAPSHOT_VERSION,
    bytes: bytes.length,
    sections: sections.map((s) => ({ tag: s.tag, bytes: s.data.length })),
    meta: meta as Record<string, unknown>,
    ram: { ...ramImageStats(ramSection.data), bytes: ramSection.data.length },
  };
}
