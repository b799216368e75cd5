/* ring/ring_lookup.c - keyed hash, partition lookup and handoffs.
 *
 * Keyed hash choice: XXH3_64bits_withSecret (libxxhash, inlined from its
 * header) over a 192-byte XXH3 secret that we derive from the 32-byte cluster
 * secret with SHA-256 in counter mode (OpenSSL). Why: a 32-byte key costs ~3 ns,
 * so lookup stays far above the 20 M/s goal; XXH3's output is frozen since
 * xxHash 0.8.0 and our own expansion is fixed here, so rings hash the same on
 * every build. What it defends: a client cannot aim content or names at one
 * partition without the secret; chunk keys are SHA-256 fingerprints, so their
 * bits are not even chosen freely, and no partition number is ever shown to
 * clients. XXH3 is not a PRF; SipHash would be one, at several times the cost
 * and an extra library (libsodium), for an attacker who cannot observe the
 * hash output anyway. If partitions ever become observable, switch here and
 * bump RING_FORMAT_VERSION.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "ring/ring_int.h"

_Static_assert(RING_XSECRET_LEN >= XXH3_SECRET_SIZE_MIN, "XXH3 secret too short");

void ring_expand_secret(const uint8_t secret[RING_SECRET_LEN], uint8_t out[RING_XSECRET_LEN])
{
	static const char label[] = "cairn ring xxh3 secret v1";
	uint8_t buf[sizeof(label) + 1 + RING_SECRET_LEN], md[32];

	memcpy(buf, label, sizeof(label));
	memcpy(buf + sizeof(label) + 1, secret, RING_SECRET_LEN);
	for (unsigned i = 0; i * 32 < RING_XSECRET_LEN; i++) {
		unsigned int mdlen = 32;
		buf[sizeof(label)] = (uint8_t)i;
		EVP_Digest(buf, sizeof(buf), md, &mdlen, EVP_sha256(), NULL);
		memcpy(out + i * 32, md, 32);
	}
	explicit_bzero(buf, sizeof(buf));
	explicit_bzero(md, sizeof(md));
}

uint64_t ring_hash64(const uint8_t xsecret[RING_XSECRET_LEN], const void *key, size_t len)
{
	return XXH3_64bits_withSecret(key, len, xsecret, RING_XSECRET_LEN);
}

uint32_t ring_partition(const struct ring *r, const void *key, size_t len)
{
	uint64_t h = XXH3_64bits_withSecret(key, len, r->xsecret, RING_XSECRET_LEN);
	/* the top part_power bits; (h >> 1) >> (63 - P) is defined for P = 0 too */
	return (uint32_t)((h >> 1) >> (63 - r->part_power));
}

const uint32_t *ring_part_devs(const struct ring *r, uint32_t part)
{
	return r->table + (size_t)(part & ((1u << r->part_power) - 1)) * r->replicas;
}

uint32_t ring_part_power(const struct ring *r)
{
	return r->part_power;
}
uint32_t ring_replicas(const struct ring *r)
{
	return r->replicas;
}
uint32_t ring_dev_count(const struct ring *r)
{
	return r->ndevs;
}
uint64_t ring_generation(const struct ring *r)
{
	return r->generation;
}

const struct ring_dev *ring_dev(const struct ring *r, uint32_t id)
{
	if (id >= r->id_map_len || r->id_map[id] == RING_NONE)
		return NULL;
	return &r->devs[r->id_map[id]];
}

void ring_free(struct ring *r)
{
	if (!r)
		return;
	free(r->devs);
	free(r->id_map);
	free(r->table);
	free(r->dev_region);
	free(r->dev_zone);
	free(r->dev_node);
	explicit_bzero(r->secret, sizeof(r->secret));
	explicit_bzero(r->xsecret, sizeof(r->xsecret));
	free(r);
}

/* Small dense indexes of regions, zones and nodes, for handoff passes. O(n^2)
 * in devices, once per load: n is at most a few thousand. */
static int index_tiers(struct ring *r)
{
	uint32_t n = r->ndevs;

	r->dev_region = malloc((n + 1) * sizeof(uint32_t));
	r->dev_zone = malloc((n + 1) * sizeof(uint32_t));
	r->dev_node = malloc((n + 1) * sizeof(uint32_t));
	if (!r->dev_region || !r->dev_zone || !r->dev_node)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++) {
		const struct ring_dev *d = &r->devs[i];
		r->dev_region[i] = r->dev_zone[i] = r->dev_node[i] = i;
		for (uint32_t j = 0; j < i; j++) {
			const struct ring_dev *e = &r->devs[j];
			if (e->region != d->region)
				continue;
			if (r->dev_region[i] == i)
				r->dev_region[i] = r->dev_region[j];
			if (e->zone != d->zone)
				continue;
			if (r->dev_zone[i] == i)
				r->dev_zone[i] = r->dev_zone[j];
			if (e->port == d->port && strcmp(e->ip, d->ip) == 0) {
				r->dev_node[i] = r->dev_node[j];
				break;
			}
		}
	}
	return 0;
}

int ring_from_parts(uint32_t part_power, uint32_t replicas, uint32_t ec_m, uint64_t generation,
		    const uint8_t secret[RING_SECRET_LEN], const struct ring_dev *devs,
		    uint32_t ndevs, uint32_t *table, struct ring **out)
{
	struct ring *r;
	size_t nslots = (size_t)replicas << part_power;
	int ret = -ENOMEM;

	*out = NULL;
	r = aligned_alloc(64, (sizeof(*r) + 63) & ~(size_t)63);
	if (!r) {
		free(table);
		return -ENOMEM;
	}
	memset(r, 0, sizeof(*r));
	r->part_power = part_power;
	r->replicas = replicas;
	r->ec_m = ec_m;
	r->generation = generation;
	r->table = table;
	r->ndevs = ndevs;
	memcpy(r->secret, secret, RING_SECRET_LEN);
	ring_expand_secret(secret, r->xsecret);
	r->devs = malloc((ndevs + 1) * sizeof(*r->devs));
	if (!r->devs)
		goto out;
	memcpy(r->devs, devs, ndevs * sizeof(*devs));
	for (uint32_t i = 0; i < ndevs; i++)
		if (devs[i].id >= r->id_map_len)
			r->id_map_len = devs[i].id + 1;
	r->id_map = malloc((r->id_map_len + 1) * sizeof(uint32_t));
	if (!r->id_map)
		goto out;
	memset(r->id_map, 0xff, (r->id_map_len + 1) * sizeof(uint32_t));
	ret = CAIRN_ECORRUPT;
	for (uint32_t i = 0; i < ndevs; i++) {
		if (r->id_map[devs[i].id] != RING_NONE)
			goto out; /* duplicate id */
		r->id_map[devs[i].id] = i;
	}
	for (size_t s = 0; s < nslots; s++)
		if (table[s] >= r->id_map_len || r->id_map[table[s]] == RING_NONE)
			goto out; /* a replica on no device */
	ret = index_tiers(r);
out:
	if (ret) {
		ring_free(r);
		return ret;
	}
	*out = r;
	return 0;
}

/* Handoffs: walk the partitions that follow `part` in a stride derived from
 * it, taking their primaries' devices. That order is deterministic and
 * weight-proportional (it is the ring's own assignment), and it differs per
 * partition so one failed device's load spreads. Pass 0 takes devices in
 * regions the partition does not use yet, pass 1 new zones, pass 2 new
 * nodes, pass 3 anything left; each taken device counts as used. Cost: up to
 * four walks of the table in the worst case; callers ask only on failure. */
size_t ring_handoffs(const struct ring *r, uint32_t part, uint32_t *out, size_t max)
{
	uint32_t n = r->ndevs, R = r->replicas, parts = 1u << r->part_power;
	size_t got = 0;
	uint8_t *used_dev = NULL, *used_reg = NULL, *used_zone = NULL, *used_node = NULL;

	if (max == 0 || n <= R)
		return 0;
	used_dev = calloc(4 * (size_t)n, 1);
	if (!used_dev)
		return 0;
	used_reg = used_dev + n;
	used_zone = used_reg + n;
	used_node = used_zone + n;
	part &= parts - 1;
	const uint32_t *prim = ring_part_devs(r, part);
	for (uint32_t i = 0; i < R; i++) {
		uint32_t d = r->id_map[prim[i]];
		used_dev[d] = 1;
		used_reg[r->dev_region[d]] = used_zone[r->dev_zone[d]] = used_node[r->dev_node[d]] =
		    1;
	}
	size_t left = n - R;
	/* an odd stride visits every partition before repeating */
	uint32_t stride =
	    parts > 1 ? ((uint32_t)(ring_hash64(r->xsecret, &part, sizeof(part)) % parts) | 1u) : 1;
	for (int pass = 0; pass < 4 && got < max && left; pass++) {
		uint32_t p = part;
		for (uint32_t k = 0; k < parts && got < max && left; k++) {
			p = (p + stride) & (parts - 1);
			const uint32_t *row = ring_part_devs(r, p);
			for (uint32_t i = 0; i < R && got < max; i++) {
				uint32_t d = r->id_map[row[i]];
				if (used_dev[d])
					continue;
				if ((pass == 0 && used_reg[r->dev_region[d]]) ||
				    (pass == 1 && used_zone[r->dev_zone[d]]) ||
				    (pass == 2 && used_node[r->dev_node[d]]))
					continue;
				used_dev[d] = 1;
				used_reg[r->dev_region[d]] = used_zone[r->dev_zone[d]] = 1;
				used_node[r->dev_node[d]] = 1;
				out[got++] = r->devs[d].id;
				left--;
			}
		}
		/* devices that hold no partition at all come last, by index */
		if (pass == 3)
			for (uint32_t d = 0; d < n && got < max; d++)
				if (!used_dev[d]) {
					used_dev[d] = 1;
					out[got++] = r->devs[d].id;
				}
	}
	free(used_dev);
	return got;
}
