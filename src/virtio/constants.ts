/** Numbers from the VIRTIO 1.2 specification, named as the spec names them. */

/** Device status bits (VIRTIO 1.2, 2.1). */
export const STATUS_ACKNOWLEDGE = 1;
export const STATUS_DRIVER = 2;
export const STATUS_DRIVER_OK = 4;
export const STATUS_FEATURES_OK = 8;
export const STATUS_DEVICE_NEEDS_RESET = 0x40;
export const STATUS_FAILED = 0x80;

/** Reserved feature bits (VIRTIO 1.2, 6). Values are bit numbers. */
export const F_INDIRECT_DESC = 28;
export const F_EVENT_IDX = 29;
export const F_VERSION_1 = 32;
export const F_ACCESS_PLATFORM = 33;
export const F_RING_PACKED = 34;
export const F_IN_ORDER = 35;
export const F_NOTIFICATION_DATA = 38;
export const F_RING_RESET = 40;

/** A feature bit number as a mask. */
export function bit(n: number): bigint {
  return 1n << BigInt(n);
}

/** Split virtqueue descriptor flags (VIRTIO 1.2, 2.7.5). */
export const DESC_F_NEXT = 1;
export const DESC_F_WRITE = 2;
export const DESC_F_INDIRECT = 4;
/** Size of one descriptor in bytes. */
export const DESC_SIZE = 16;

/** Packed virtqueue descriptor flags (VIRTIO 1.2, 2.8.1): the driver's and device's wrap bits. */
export const DESC_F_AVAIL = 1 << 7;
export const DESC_F_USED = 1 << 15;

/** Packed virtqueue event suppression flags (VIRTIO 1.2, 2.8.10). */
export const RING_EVENT_FLAGS_ENABLE = 0;
export const RING_EVENT_FLAGS_DISABLE = 1;
export const RING_EVENT_FLAGS_DESC = 2;

/** Ring flags (VIRTIO 1.2, 2.7.6 and 2.7.8). */
export const AVAIL_F_NO_INTERRUPT = 1;
export const USED_F_NO_NOTIFY = 1;

/** InterruptStatus bits (VIRTIO 1.2, 4.2.2). */
export const INT_USED_BUFFER = 1;
export const INT_CONFIG_CHANGE = 2;

/** virtio-mmio register offsets, version 2 (VIRTIO 1.2, 4.2.2, table "MMIO Device Register Layout"). */
export const MMIO = {
  MagicValue: 0x000,
  Version: 0x004,
  DeviceID: 0x008,
  VendorID: 0x00c,
  DeviceFeatures: 0x010,
  DeviceFeaturesSel: 0x014,
  DriverFeatures: 0x020,
  DriverFeaturesSel: 0x024,
  QueueSel: 0x030,
  QueueNumMax: 0x034,
  QueueNum: 0x038,
  QueueReady: 0x044,
  QueueNotify: 0x050,
  InterruptStatus: 0x060,
  InterruptACK: 0x064,
  Status: 0x070,
  QueueDescLow: 0x080,
  QueueDescHigh: 0x084,
  QueueDriverLow: 0x090,
  QueueDriverHigh: 0x094,
  QueueDeviceLow: 0x0a0,
  QueueDeviceHigh: 0x0a4,
  SHMSel: 0x0ac,
  SHMLenLow: 0x0b0,
  SHMLenHigh: 0x0b4,
  SHMBaseLow: 0x0b8,
  SHMBaseHigh: 0x0bc,
  QueueReset: 0x0c0,
  ConfigGeneration: 0x0fc,
  Config: 0x100,
} as const;

/** "virt" in little-endian ASCII. */
export const MMIO_MAGIC = 0x74726976;
export const MMIO_VERSION = 2;
/** storvm's vendor ID: "STVM" in little-endian ASCII. */
export const STORVM_VENDOR_ID = 0x4d565453;
/** Size of one virtio-mmio register window, config space included. */
export const MMIO_WINDOW = 0x1000;

/** Device IDs (VIRTIO 1.2, 5). */
export const DEVICE_ID_BLOCK = 2;
export const DEVICE_ID_9P = 9;
export const DEVICE_ID_FS = 26;

const DEVICE_NAMES: Readonly<Record<number, string>> = { [DEVICE_ID_BLOCK]: 'virtio-blk', [DEVICE_ID_9P]: 'virtio-9p', [DEVICE_ID_FS]: 'virtio-fs' };

/** What error messages and `snapshot info` call a device: virtio-blk, virtio-9p, virtio-fs, or its ID. */
export function deviceName(id: number): string {
  return DEVICE_NAMES[id] ?? `virtio device ${id}`;
}
