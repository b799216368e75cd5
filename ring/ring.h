/* ring/ring.h - Swift-style consistent-hash placement.
 *
 * A ring maps a key (a name, or a chunk/stripe id) to a partition with a keyed
 * hash (the ring's cluster secret, so no client can aim data at a partition),
 * and a partition to `replicas` distinct devices, plus a deterministic handoff
 * sequence. One ring per storage policy ("ec": replicas = k+m fragments,
 * "replica": replicas = copies). The module does no I/O except loading and
 * saving ring and builder files, and knows nothing of objects.
 *
 * Threads: a loaded struct ring is immutable; any number of threads may look
 * up concurrently. A struct ring_builder is single-threaded.
 *
 * Pointers returned by ring_* getters live as long as the ring.
 */
#ifndef CAIRN_RING_RING_H
#define CAIRN_RING_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define RING_SECRET_LEN 32
#define RING_NAME_MAX 64

struct ring_dev {
	uint32_t id;
	uint32_t region;
	uint32_t zone;
	char ip[48]; /* node address; the node is (ip, port) */
	uint16_t port;
	char name[RING_NAME_MAX]; /* device name on its node, e.g. "d0" or "sdb" */
	double weight;
};

struct ring;
struct ring_builder;

/* ---- lookup (ring file) ---- */

/* Loads a ring file. Returns 0, -errno, CAIRN_ECORRUPT (checksum, truncation)
 * or CAIRN_EFORMAT (newer version). *out is freed with ring_free(). */
int ring_load(const char *path, struct ring **out) CAIRN_WUR;
void ring_free(struct ring *r);

uint32_t ring_part_power(const struct ring *r);
uint32_t ring_replicas(const struct ring *r);
uint32_t ring_dev_count(const struct ring *r);
/* Device by id, or NULL when the id is not in the ring. */
const struct ring_dev *ring_dev(const struct ring *r, uint32_t id);

/* Keyed hash of a key to its partition: [0, 2^part_power). */
uint32_t ring_partition(const struct ring *r, const void *key, size_t len);
/* The `replicas` primary device ids of a partition, in replica order. */
const uint32_t *ring_part_devs(const struct ring *r, uint32_t part);
/* Fills up to max handoff device ids for a partition (primaries excluded),
 * other zones first, then other nodes; returns how many were written. */
size_t ring_handoffs(const struct ring *r, uint32_t part, uint32_t *out, size_t max);

/* ---- builder ---- */

/* A new builder (Swift's `create PART_POWER REPLICAS MIN_PART_HOURS`); a
 * random cluster secret is generated. */
int ring_builder_create(uint32_t part_power, uint32_t replicas, uint32_t min_part_hours,
			struct ring_builder **out) CAIRN_WUR;
int ring_builder_load(const char *path, struct ring_builder **out) CAIRN_WUR;
/* Writes the builder file atomically (temp file, fsync, rename, dir fsync). */
int ring_builder_save(struct ring_builder *b, const char *path) CAIRN_WUR;
void ring_builder_free(struct ring_builder *b);
/* Adds a device; dev->id == UINT32_MAX picks the next free id (returned in
 * *id_out when non-NULL). Weight must be > 0; duplicate ids -> CAIRN_EEXISTS. */
int ring_builder_add(struct ring_builder *b, const struct ring_dev *dev,
		     uint32_t *id_out) CAIRN_WUR;
int ring_builder_remove(struct ring_builder *b, uint32_t id) CAIRN_WUR;
int ring_builder_set_weight(struct ring_builder *b, uint32_t id, double weight) CAIRN_WUR;
/* Sets the cluster secret (e.g. to keep several policies' rings in step). */
void ring_builder_set_secret(struct ring_builder *b, const uint8_t secret[RING_SECRET_LEN]);
/* For erasure-coded rings: at most `m` fragments of a partition share a zone
 * where the cluster allows (0 = plain replicated policy). */
void ring_builder_set_ec_m(struct ring_builder *b, uint32_t m);
/* Assigns partitions; *moved (optional) gets the partition-replicas moved.
 * `now` is the time in seconds used for min_part_hours. */
int ring_builder_rebalance(struct ring_builder *b, uint64_t now, uint64_t *moved) CAIRN_WUR;
/* Writes the ring file atomically (temp file, fsync, rename, dir fsync). */
int ring_builder_write_ring(struct ring_builder *b, const char *path) CAIRN_WUR;

/* ---- additions by the ring module (not used by other modules' contracts) ---- */

/* One partition-replica the last rebalance moved (device ids). */
struct ring_move {
	uint32_t part;
	uint32_t replica;
	uint32_t from;
	uint32_t to;
};

/* Per-device figures of a builder (see ring_builder_stats). */
struct ring_dev_stat {
	uint32_t id;
	uint64_t parts;	     /* partition-replicas assigned now */
	double weight_share; /* what its weight alone asks for (Swift's parts_wanted) */
	double wanted;	     /* its target once dispersion caps its tiers */
	double balance;	     /* 100 * (parts / weight_share - 1) */
};

struct ring_stats {
	double balance;	       /* max |balance| over devices (Swift's "balance") */
	double overload;       /* max positive balance (the most over-weighted device) */
	double balance_wanted; /* max |parts / wanted - 1| * 100 */
	double dispersion;     /* % of partitions with a tier holding more replicas
				* than the widest spread the cluster allows */
	uint32_t zones;	       /* zones with weight */
	uint32_t max_in_zone;  /* most replicas of one partition in one zone */
	uint64_t parts_over_m; /* EC rings: partitions with > m fragments in a zone */
	uint64_t unassigned;   /* partition-replicas with no device */
};

/* Figures of the builder's current assignment: st (required) and, when devs is
 * not NULL, one entry per device in ring_builder_dev_at() order. Devices
 * pending removal count as they are until the rebalance that drops them.
 * Returns 0 or CAIRN_EINVAL (never rebalanced). */
int ring_builder_stats(const struct ring_builder *b, struct ring_stats *st,
		       struct ring_dev_stat *devs) CAIRN_WUR;
/* Moves made by the last rebalance in this process (not saved in the builder
 * file); valid until the next rebalance or ring_builder_free(). */
const struct ring_move *ring_builder_moves(const struct ring_builder *b, size_t *n);
/* Seed of the rebalance tie-breaks (default 0): same inputs, same seed, same ring. */
void ring_builder_set_seed(struct ring_builder *b, uint64_t seed);
uint32_t ring_builder_part_power(const struct ring_builder *b);
uint32_t ring_builder_replicas(const struct ring_builder *b);
uint32_t ring_builder_min_part_hours(const struct ring_builder *b);
uint32_t ring_builder_ec_m(const struct ring_builder *b);
uint64_t ring_builder_generation(const struct ring_builder *b);
uint32_t ring_builder_dev_count(const struct ring_builder *b);
/* The i-th device (0 <= i < dev_count), sorted by id; *removed (optional) is
 * set when its removal waits for the next rebalance. NULL when out of range. */
const struct ring_dev *ring_builder_dev_at(const struct ring_builder *b, uint32_t i, bool *removed);
/* The replicas' device ids of a partition, or NULL before the first rebalance
 * (RING_DEV_NONE marks an unassigned replica). Valid until the builder changes. */
const uint32_t *ring_builder_part_devs(const struct ring_builder *b, uint32_t part);
/* Checks the assignment: every replica assigned, distinct devices, no tier
 * over its dispersion cap. Returns 0 or CAIRN_ECORRUPT / CAIRN_EINVAL and
 * writes a one-line reason into why (may be NULL). */
int ring_builder_validate(const struct ring_builder *b, char *why, size_t why_len) CAIRN_WUR;
/* The ring a builder would write, in memory (for tests and `lookup`). */
int ring_builder_to_ring(const struct ring_builder *b, struct ring **out) CAIRN_WUR;
uint64_t ring_generation(const struct ring *r);
/* The id of a device that is not assigned. */
#define RING_DEV_NONE UINT32_MAX

/* `cairn ring BUILDER_FILE VERB ...`: the CLI entry point (argv[0] is the
 * builder file). Returns the process exit code. */
int ring_cli_main(int argc, char **argv);

#endif
