/**
 * What the storage lab measures: the stores (variants), the workloads, and the guest shell script
 * that runs every workload on every variant and reports over the console in `@@lab` lines:
 *
 *   @@lab clock SOURCE HZ OVERHEAD_NS      the guest clock and what timing an empty command costs
 *   @@lab begin VARIANT WORKLOAD           a step starts (progress)
 *   @@lab result VARIANT WORKLOAD NS AMOUNT   it took NS nanoseconds for AMOUNT bytes or operations
 *   @@lab fail VARIANT WORKLOAD MESSAGE…   it failed
 *   @@lab na VARIANT WORKLOAD REASON…      it does not apply
 *   @@lab probe NAME                       the host samples the stores, then answers one line on
 *                                          the console, which the guest waits for
 *   @@lab done
 */

export interface Variant {
  id: string;
  kind: 'tmpfs' | 'blk-raw' | 'blk-ext4' | '9p' | 'virtiofs';
  /** For 9p. */
  msize?: number;
  cache?: 'none' | 'loose' | 'mmap';
  /** For virtio-fs: the FUSE server's cache mode (virtiofsd's cache=); the device's tag is the id. */
  fuseCache?: 'none' | 'auto' | 'always';
  /**
   * For the raw disks beside /dev/vda (the browser's): the disk's serial, by which the script
   * finds its /dev node, and whether it is a read-only image under a copy-on-write layer, so its
   * reads come first (a read after the writes would read the layer, not the image).
   */
  serial?: string;
  image?: boolean;
  what: string;
}

export const VARIANTS: readonly Variant[] = [
  { id: 'tmpfs', kind: 'tmpfs', what: "guest RAM (tmpfs): no device at all, the baseline" },
  { id: 'blk-raw', kind: 'blk-raw', what: 'virtio-blk /dev/vda used raw, no filesystem (sparse in-memory disk)' },
  { id: 'blk-ext4', kind: 'blk-ext4', what: "virtio-blk /dev/vdb with the guest's ext4 (sparse in-memory disk)" },
  { id: '9p-8k-none', kind: '9p', msize: 8192, cache: 'none', what: '9p share, msize 8192, cache=none' },
  { id: '9p-8k-loose', kind: '9p', msize: 8192, cache: 'loose', what: '9p share, msize 8192, cache=loose' },
  { id: '9p-512k-none', kind: '9p', msize: 512000, cache: 'none', what: '9p share, msize 512000, cache=none' },
  { id: '9p-512k-loose', kind: '9p', msize: 512000, cache: 'loose', what: '9p share, msize 512000, cache=loose' },
  { id: '9p-512k-mmap', kind: '9p', msize: 512000, cache: 'mmap', what: '9p share, msize 512000, cache=mmap (shared writable mmap)' },
  { id: 'vfs-none', kind: 'virtiofs', fuseCache: 'none', what: 'virtio-fs share, cache=none (no guest caching, DIRECT_IO)' },
  { id: 'vfs-auto', kind: 'virtiofs', fuseCache: 'auto', what: 'virtio-fs share, cache=auto (1 s timeouts, page cache dropped when a file changed)' },
  { id: 'vfs-always', kind: 'virtiofs', fuseCache: 'always', what: 'virtio-fs share, cache=always (long timeouts, kept page cache, writeback cache)' },
];

/**
 * The browser lab's other raw disks, beside /dev/vda in memory (src/browser/lab-worker.ts): a
 * persistent OPFS disk, and a lazily fetched image from the page's server. `storvm bench` has
 * neither; `labVariants(true)` adds them.
 */
export const BROWSER_VARIANTS: readonly Variant[] = [
  { id: 'blk-opfs', kind: 'blk-raw', serial: 'storvm-lab-opfs', what: 'virtio-blk used raw, a persistent OPFS disk (PersistentOverlayDisk over sync access handles)' },
  {
    id: 'blk-http',
    kind: 'blk-raw',
    serial: 'storvm-lab-http',
    image: true,
    what: "virtio-blk used raw, a lazily fetched image (HttpDisk: chunk files from the page's server, no chunk cache) under a memory copy-on-write layer; reads first",
  },
];

/** Every variant a lab may run: `storvm bench`'s, and in the browser the browser's disks too. */
export function labVariants(browser: boolean): readonly Variant[] {
  return browser ? [...VARIANTS, ...BROWSER_VARIANTS] : VARIANTS;
}

/** The virtio-fs variants (one device each: the cache mode belongs to the FUSE server). */
export const VIRTIOFS_VARIANTS = VARIANTS.filter((v) => v.kind === 'virtiofs');

export interface Workload {
  id: string;
  unit: 'bytes' | 'ops';
  what: string;
}

export const WORKLOADS: readonly Workload[] = [
  { id: 'seq-write', unit: 'bytes', what: 'dd 1 MiB blocks from /dev/zero, conv=fsync' },
  { id: 'seq-read', unit: 'bytes', what: 'dd 1 MiB blocks to /dev/null, caches dropped first' },
  { id: 'rand-read', unit: 'ops', what: '4 KiB preads at random offsets, caches dropped first' },
  { id: 'rand-write', unit: 'ops', what: '4 KiB pwrites at random offsets, then fsync' },
  { id: 'mmap-write', unit: 'bytes', what: 'shared writable mmap: store into every page, msync' },
  { id: 'create', unit: 'ops', what: 'create N empty files (shell loop)' },
  { id: 'stat', unit: 'ops', what: 'stat N files, caches dropped first' },
  { id: 'unlink', unit: 'ops', what: 'rm -r of the N files' },
  { id: 'untar', unit: 'ops', what: 'tar -x of a source tree, then sync (ops = entries)' },
];

export interface PlanOptions {
  sizeMiB: number;
  files: number;
  /** 4 KiB random operations per run. */
  ops: number;
  /** Entries in the source tarball. */
  tarEntries: number;
  /** Marker strings for the visibility checks, by store. */
  markers: Record<string, string>;
  /** Run only these variants (tests); default all. */
  variants?: readonly string[];
  /**
   * Why the virtio-fs variants don't apply on this machine (QEMU without virtiofsd); they then
   * report `na` with this reason and the virtio-fs visibility checks are left out.
   */
  noVirtiofs?: string;
  /** Offer the browser's disks (BROWSER_VARIANTS) too. */
  browser?: boolean;
  /** Variants that can't run here, by id, with the reason: every workload reports `na`. */
  unavailable?: Readonly<Record<string, string>>;
}

/** The probes the script takes, in order, with the store states they sample. */
export const PROBES = ['base', 'written', 'deleted', 'trimmed', 'vis-9p-none-written', 'vis-9p-none-unmounted', 'vis-9p-loose-written', 'vis-9p-loose-unmounted', 'vis-blk-ext4-written', 'vis-blk-ext4-unmounted'] as const;

/** The visibility stores: the 9p and ext4 ones always, the virtio-fs ones where virtio-fs runs. */
export const VIS_STORES = ['9p-none', '9p-loose', 'blk-ext4'] as const;
export const VIS_VIRTIOFS_STORES = ['vfs-auto', 'vfs-always'] as const;

/** The file in the share each share store's visibility check writes its marker to. */
export const VIS_FILES: Readonly<Record<string, string>> = {
  '9p-none': 'visible-none.txt',
  '9p-loose': 'visible-loose.txt',
  'vfs-auto': 'visible-vfs-auto.txt',
  'vfs-always': 'visible-vfs-always.txt',
};

/** The guest script (busybox ash). */
export function guestScript(o: PlanOptions): string {
  const S = o.sizeMiB;
  const bytes = S * 1048576;
  const blocks = S * 256;
  // The stores run in the order asked for (so a bench can rotate them), each once, else in catalogue order.
  const all = labVariants(o.browser ?? false);
  const chosen = o.variants === undefined ? all : [...new Set(o.variants)].map((id) => all.find((v) => v.id === id)).filter((v) => v !== undefined);
  const fileWork = WORKLOADS.map((w) => w.id).join(' ');
  const mount9p = (msize: number, cache: string) => `mount -t 9p -o trans=virtio,version=9p2000.L,msize=${msize},cache=${cache} bench /mnt/9p`;
  const lines: string[] = [
    '#!/bin/sh',
    '# storvm bench: generated by src/lab/plan.ts',
    'L=/mnt/lab/labio',
    'ERR=/tmp/lab.err',
    'say() { echo "@@lab $*"; }',
    'probe() { say probe "$1"; read -r _ack; }',
    'drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }',
    `firstline() { tr '\\n\\r' '  ' < "$ERR" | cut -c1-200 | sed 's/ *$//'; }`,
    '# timed VARIANT WORKLOAD AMOUNT PROG ARGS…: labio times PROG',
    'timed() { v=$1; w=$2; n=$3; shift 3; say begin $v $w; r=$($L time "$@" 2>$ERR); set -- $r; if [ "$2" = 0 ]; then say result $v $w $1 $n; else say fail $v $w "exit status ${2:-?}: $(firstline)"; fi; }',
    '# selftimed VARIANT WORKLOAD AMOUNT PROG ARGS…: PROG prints its own elapsed ns',
    'selftimed() { v=$1; w=$2; n=$3; shift 3; say begin $v $w; if r=$("$@" 2>$ERR); then say result $v $w $r $n; else say fail $v $w "$(firstline)"; fi; }',
    `mkpat() { i=0; while [ $i -lt ${S} ]; do cat /tmp/pat; i=$((i+1)); done; }`,
    '',
    '# The guest clock: its source, its frequency (device tree, big-endian u32), the cost of timing nothing.',
    'hz=$(hexdump -v -e \'4/1 "%02x"\' /proc/device-tree/cpus/timebase-frequency 2>/dev/null)',
    'o1=$($L time /bin/true); o2=$($L time /bin/true); o3=$($L time /bin/true)',
    'say clock $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource) $((0x${hz:-0})) ${o1% *} ${o2% *} ${o3% *}',
    'cp /mnt/lab/src.tar /tmp/src.tar',
    "yes storvm-lab-pattern | head -c 1048576 > /tmp/pat",
    'mkdir -p /mnt/ext4 /mnt/9p /mnt/vfs /tmp/bench',
    'mount -t ext4 -o noinit_itable /dev/vdb /mnt/ext4 || say error "cannot mount the ext4 disk"',
    '',
    '# Elasticity: host bytes used by each store after writing, deleting and trimming the same data.',
    'say begin properties elasticity',
    mount9p(512000, 'none') + ' || say error "cannot mount the 9p share"',
    'probe base',
    `mkpat | dd of=/dev/vda bs=1M conv=fsync 2>/dev/null`,
    'mkpat > /mnt/ext4/elastic.dat',
    'mkpat > /mnt/9p/elastic.dat',
    'sync',
    'probe written',
    'rm -f /mnt/ext4/elastic.dat /mnt/9p/elastic.dat; sync',
    'probe deleted',
    `fstrim /mnt/ext4 2>$ERR || say error "fstrim: $(firstline)"`,
    `blkdiscard -o 0 -l ${bytes} /dev/vda 2>$ERR || say error "blkdiscard: $(firstline)"`,
    'sync',
    'probe trimmed',
    'umount /mnt/9p',
    '',
    '# Visibility: is a file the guest just wrote there on the host, before and after unmounting?',
    'say begin properties visibility',
    `${mount9p(512000, 'none')} && echo ${o.markers['9p-none']} > /mnt/9p/${VIS_FILES['9p-none']}`,
    'probe vis-9p-none-written; umount /mnt/9p; probe vis-9p-none-unmounted',
    `${mount9p(512000, 'loose')} && echo ${o.markers['9p-loose']} > /mnt/9p/${VIS_FILES['9p-loose']}`,
    'probe vis-9p-loose-written; umount /mnt/9p; probe vis-9p-loose-unmounted',
    `echo ${o.markers['blk-ext4']} > /mnt/ext4/visible.txt`,
    'probe vis-blk-ext4-written; umount /mnt/ext4; probe vis-blk-ext4-unmounted',
    'mount -t ext4 -o noinit_itable /dev/vdb /mnt/ext4 && rm -f /mnt/ext4/visible.txt',
    ...(o.noVirtiofs === undefined
      ? VIS_VIRTIOFS_STORES.flatMap((st) => [
          `mount -t virtiofs ${st} /mnt/vfs && echo ${o.markers[st]} > /mnt/vfs/${VIS_FILES[st]}`,
          `probe vis-${st}-written; umount /mnt/vfs; probe vis-${st}-unmounted`,
        ])
      : []),
    `${mount9p(512000, 'none')} && rm -f /mnt/9p/visible-*.txt; umount /mnt/9p`,
    'sync',
    '',
    '# fileloads VARIANT DIR: every workload in DIR',
    'fileloads() {',
    '  v=$1; d=$2; F=$d/seq.dat',
    `  timed $v seq-write ${bytes} /bin/dd if=/dev/zero of=$F bs=1M count=${S} conv=fsync`,
    `  drop; timed $v seq-read ${bytes} /bin/dd if=$F of=/dev/null bs=1M count=${S}`,
    `  drop; selftimed $v rand-read ${o.ops} $L rand $F r ${blocks} ${o.ops} 1`,
    `  selftimed $v rand-write ${o.ops} $L rand $F w ${blocks} ${o.ops} 2`,
    `  selftimed $v mmap-write ${bytes} $L mmap $F ${bytes}`,
    '  rm -f $F',
    `  timed $v create ${o.files} /bin/sh -c "mkdir $d/files && i=0 && while [ \\$i -lt ${o.files} ]; do : > $d/files/f\\$i || exit 1; i=\\$((i+1)); done"`,
    `  drop; timed $v stat ${o.files} /bin/sh -c "i=0; while [ \\$i -lt ${o.files} ]; do [ -e $d/files/f\\$i ] || { echo f\\$i is missing >&2; exit 1; }; i=\\$((i+1)); done"`,
    `  timed $v unlink ${o.files} /bin/rm -r $d/files`,
    `  timed $v untar ${o.tarEntries} /bin/sh -c "mkdir $d/untar && tar -xf /tmp/src.tar -C $d/untar && sync"`,
    '  rm -rf $d/untar $d/files $F',
    '}',
    '# failall VARIANT MESSAGE: every workload of VARIANT failed',
    `failall() { for w in ${fileWork}; do say fail $1 $w "$2"; done; }`,
    '# devof SERIAL: the /dev node of the virtio-blk disk with that serial',
    'devof() { for d in /sys/block/vd*; do [ "$(cat $d/serial 2>/dev/null)" = "$1" ] && { echo /dev/${d##*/}; return; }; done; }',
    '# rawloads VARIANT DEV [image]: the raw-disk workloads (an image: reads before writes)',
    'rawloads() {',
    '  v=$1; D=$2',
    `  if [ "$3" != image ]; then timed $v seq-write ${bytes} /bin/dd if=/dev/zero of=$D bs=1M count=${S} conv=fsync; fi`,
    `  drop; timed $v seq-read ${bytes} /bin/dd if=$D of=/dev/null bs=1M count=${S}`,
    `  drop; selftimed $v rand-read ${o.ops} $L rand $D r ${blocks} ${o.ops} 1`,
    `  if [ "$3" = image ]; then timed $v seq-write ${bytes} /bin/dd if=/dev/zero of=$D bs=1M count=${S} conv=fsync; fi`,
    `  selftimed $v rand-write ${o.ops} $L rand $D w ${blocks} ${o.ops} 2`,
    `  selftimed $v mmap-write ${bytes} $L mmap $D ${bytes}`,
    '  for w in create stat unlink untar; do say na $v $w "a raw disk has no files"; done',
    '}',
    '',
  ];
  for (const v of chosen) {
    lines.push(`# ${v.id}: ${v.what}`);
    const why = o.unavailable?.[v.id];
    if (why !== undefined) lines.push(`for w in ${fileWork}; do say na ${v.id} $w "${why.replace(/["\\$`]/g, '')}"; done`);
    else if (v.kind === 'tmpfs') lines.push('fileloads tmpfs /tmp/bench');
    else if (v.kind === 'blk-ext4') lines.push('if grep -q " /mnt/ext4 " /proc/mounts; then fileloads blk-ext4 /mnt/ext4; else failall blk-ext4 "the ext4 disk is not mounted"; fi');
    else if (v.kind === 'blk-raw' && v.serial === undefined) lines.push(`rawloads ${v.id} /dev/vda`);
    else if (v.kind === 'blk-raw') {
      lines.push(`D=$(devof ${v.serial}); if [ -b "$D" ]; then rawloads ${v.id} $D${v.image ? ' image' : ''}; else failall ${v.id} "no disk with serial ${v.serial}"; fi`);
    } else if (v.kind === 'virtiofs') {
      if (o.noVirtiofs !== undefined) lines.push(`for w in ${fileWork}; do say na ${v.id} $w "${o.noVirtiofs}"; done`);
      else lines.push(`if mount -t virtiofs ${v.id} /mnt/vfs 2>$ERR; then fileloads ${v.id} /mnt/vfs; umount /mnt/vfs; else failall ${v.id} "mount failed: $(firstline)"; fi`);
    } else {
      lines.push(`if ${mount9p(v.msize!, v.cache!)} 2>$ERR; then fileloads ${v.id} /mnt/9p; umount /mnt/9p; else failall ${v.id} "mount failed: $(firstline)"; fi`);
    }
  }
  lines.push('say done', '');
  return lines.join('\n');
}
