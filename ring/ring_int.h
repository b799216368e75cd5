/* ring/ring_int.h - private structures shared by the ring's .c files.
 *
 * Not part of the contract: only the ring .c files include it (and white-box
 * tests).
 */
#ifndef CAIRN_RING_RING_INT_H
#define CAIRN_RING_RING_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "ring/ring.h"

#define RING_PART_POWER_MAX 24
#define RING_REPLICAS_MAX 64
#define RING_DEV_ID_MAX (1u << 20) /* ids are indexes of an id map: keep it small */
#define RING_XSECRET_LEN 192	   /* XXH3_SECRET_DEFAULT_SIZE */
#define RING_NONE UINT32_MAX
#define RING_NEVER UINT64_MAX

struct ring {
	uint32_t part_power;
	uint32_t replicas;
	uint32_t ndevs;
	uint32_t ec_m;
	uint64_t generation;
	struct ring_dev *devs; /* ndevs, in file order */
	uint32_t *id_map;      /* id -> index in devs, RING_NONE if absent */
	uint32_t id_map_len;
	uint32_t *table;      /* parts x replicas device ids, part-major */
	uint32_t *dev_region; /* per device index: tier indexes for handoffs */
	uint32_t *dev_zone;
	uint32_t *dev_node;
	uint8_t secret[RING_SECRET_LEN];
	uint8_t xsecret[RING_XSECRET_LEN] __attribute__((aligned(64)));
};

struct rb_dev {
	struct ring_dev d;
	bool removed; /* pending: its replicas go at the next rebalance */
};

struct ring_builder {
	uint32_t part_power;
	uint32_t replicas;
	uint32_t min_part_hours;
	uint32_t ec_m;
	uint64_t seed;
	uint64_t generation;
	uint8_t secret[RING_SECRET_LEN];
	struct rb_dev *devs;
	uint32_t ndevs;
	uint32_t cap;
	uint32_t *table;	 /* NULL before the first rebalance; device ids */
	uint64_t *last_moved;	 /* per partition; RING_NEVER = never moved */
	struct ring_move *moves; /* report of the last rebalance */
	size_t nmoves;
};

/* Expands the 32-byte cluster secret into the XXH3 secret (ring_hash.c). */
void ring_expand_secret(const uint8_t secret[RING_SECRET_LEN], uint8_t out[RING_XSECRET_LEN]);
uint64_t ring_hash64(const uint8_t xsecret[RING_XSECRET_LEN], const void *key, size_t len);
/* Standard CRC32C. */
uint32_t ring_crc32c(uint32_t crc, const void *buf, size_t len);
/* Builds the in-memory ring from builder state (ring_lookup.c). */
int ring_from_parts(uint32_t part_power, uint32_t replicas, uint32_t ec_m, uint64_t generation,
		    const uint8_t secret[RING_SECRET_LEN], const struct ring_dev *devs,
		    uint32_t ndevs, uint32_t *table, struct ring **out) CAIRN_WUR;
/* Writes buf atomically: temp file in the same dir, fsync, rename, dir fsync. */
int ring_write_atomic(const char *path, const void *buf, size_t len) CAIRN_WUR;

#endif
