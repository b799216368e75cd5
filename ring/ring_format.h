/* ring/ring_format.h - on-disk layout of ring files and builder files.
 *
 * Both files are little-endian, fixed-width, and start with the same 128-byte
 * header: an 8-byte magic, a format version, and a CRC32C (Castagnoli, the
 * standard one: init ~0, final xor ~0, via ISA-L crc32_iscsi) computed over the
 * whole file with the crc field read as zero. A reader refuses a file whose
 * size or checksum does not match (CAIRN_ECORRUPT) or whose version is newer
 * than it knows (CAIRN_EFORMAT), before looking at anything else.
 *
 * Ring file ("CAIRNRNG"):  header | dev_count x struct ring_disk_dev |
 *                          table: 2^part_power x replicas u32 device ids,
 *                          partition-major (part p's replicas are contiguous).
 * Builder file ("CAIRNBLD"): header | dev_count x struct ring_disk_dev |
 *                          table (UINT32_MAX = unassigned; absent when
 *                          RING_DISK_F_ASSIGNED is clear) |
 *                          2^part_power x u64 last_moved (seconds, UINT64_MAX =
 *                          never), present with the table.
 *
 * Neither file holds a timestamp or anything else that is not an input, so the
 * same builder inputs give byte-identical files. Both hold the cluster secret:
 * they are written with mode 0600.
 */
#ifndef CAIRN_RING_RING_FORMAT_H
#define CAIRN_RING_RING_FORMAT_H

#include <stdint.h>

#define RING_FILE_MAGIC "CAIRNRNG"
#define RING_BUILDER_MAGIC "CAIRNBLD"
#define RING_FORMAT_VERSION 1

#define RING_DISK_F_ASSIGNED 0x1u  /* builder: the table and last_moved follow */
#define RING_DISK_DEV_REMOVED 0x1u /* builder: removal pending the next rebalance */

struct ring_disk_header {
	char magic[8];
	uint32_t version;
	uint32_t header_size; /* sizeof(struct ring_disk_header) */
	uint32_t crc;	      /* CRC32C of the file with this field zero */
	uint32_t part_power;
	uint32_t replicas;
	uint32_t dev_count;
	uint32_t dev_size; /* sizeof(struct ring_disk_dev) */
	uint32_t min_part_hours;
	uint32_t ec_m;
	uint32_t flags;
	uint64_t file_size;  /* total bytes, so truncation is caught first */
	uint64_t generation; /* rebalances that changed the assignment */
	uint64_t seed;	     /* builder: rebalance tie-break seed */
	uint8_t secret[32];  /* the cluster secret of the keyed hash */
	uint8_t reserved[24];
};
_Static_assert(sizeof(struct ring_disk_header) == 128, "ring header is 128 bytes");

struct ring_disk_dev {
	uint32_t id;
	uint32_t region;
	uint32_t zone;
	uint16_t port;
	uint16_t flags;	      /* RING_DISK_DEV_* */
	uint64_t weight_bits; /* IEEE-754 double, little-endian bits */
	char ip[48];	      /* NUL-terminated */
	char name[64];	      /* NUL-terminated */
};
_Static_assert(sizeof(struct ring_disk_dev) == 136, "ring device record is 136 bytes");

#endif
