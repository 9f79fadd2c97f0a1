/** Numbers from VIRTIO 1.2, 5.2 (block device), named as the spec and Linux's virtio_blk.h name them. */

/** Feature bits (VIRTIO 1.2, 5.2.3). Values are bit numbers. */
export const BLK_F_SIZE_MAX = 1;
export const BLK_F_SEG_MAX = 2;
export const BLK_F_GEOMETRY = 4;
export const BLK_F_RO = 5;
export const BLK_F_BLK_SIZE = 6;
export const BLK_F_FLUSH = 9;
export const BLK_F_TOPOLOGY = 10;
export const BLK_F_CONFIG_WCE = 11;
export const BLK_F_MQ = 12;
export const BLK_F_DISCARD = 13;
export const BLK_F_WRITE_ZEROES = 14;

/** Request types (VIRTIO 1.2, 5.2.6). */
export const BLK_T_IN = 0;
export const BLK_T_OUT = 1;
export const BLK_T_FLUSH = 4;
export const BLK_T_GET_ID = 8;
export const BLK_T_DISCARD = 11;
export const BLK_T_WRITE_ZEROES = 13;

/** Status values (VIRTIO 1.2, 5.2.6). */
export const BLK_S_OK = 0;
export const BLK_S_IOERR = 1;
export const BLK_S_UNSUPP = 2;

/** virtio_blk_discard_write_zeroes.flags bit 0 (VIRTIO 1.2, 5.2.6). */
export const BLK_WRITE_ZEROES_FLAG_UNMAP = 1;

/** The sector unit of every request, whatever blk_size says (VIRTIO 1.2, 5.2.6). */
export const SECTOR_SIZE = 512;
/** Size of struct virtio_blk_req's header: le32 type, le32 reserved, le64 sector. */
export const REQ_HEADER_SIZE = 16;
/** Size of struct virtio_blk_discard_write_zeroes. */
export const DWZ_SEGMENT_SIZE = 16;
/** Length of the GET_ID answer (VIRTIO_BLK_ID_BYTES). */
export const BLK_ID_BYTES = 20;

/** Offsets of struct virtio_blk_config fields (VIRTIO 1.2, 5.2.4). */
export const BLK_CFG = {
  capacity: 0, // le64, in 512-byte sectors
  sizeMax: 8, // le32
  segMax: 12, // le32
  geometryCylinders: 16, // le16
  geometryHeads: 18, // u8
  geometrySectors: 19, // u8
  blkSize: 20, // le32
  physicalBlockExp: 24, // u8
  alignmentOffset: 25, // u8
  minIoSize: 26, // le16
  optIoSize: 28, // le32
  writeback: 32, // u8
  numQueues: 34, // le16 (after one unused byte)
  maxDiscardSectors: 36, // le32
  maxDiscardSeg: 40, // le32
  discardSectorAlignment: 44, // le32
  maxWriteZeroesSectors: 48, // le32
  maxWriteZeroesSeg: 52, // le32
  writeZeroesMayUnmap: 56, // u8, then 3 unused bytes
} as const;
/** Config bytes storvm exposes: the struct up to and including unused1[3]. */
export const BLK_CFG_SIZE = 60;
