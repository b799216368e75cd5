/* chunkstore/cs_pool.c - opening and creating a pool: devices, rings, the
 * pool record, stripe id allocation, counters.
 *
 * Creation order is devices, rings, then the pool record in one LMDB
 * transaction: until that record exists nothing else was stored, so a crash
 * during creation is repaired by creating again.
 */
#include <errno.h>
#include <inttypes.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

#include "chunkstore/cs_comp.h"
#include "chunkstore/cs_internal.h"
#include "core/io.h"
#include "core/log.h"
#include "ring/ring.h"

static const char K_POOL[] = "pool";
static const char K_NEXT[] = "next_stripe";
static const char K_STATS[] = "stats";

int cs_fmt(char *out, size_t n, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vsnprintf(out, n, fmt, ap);
	va_end(ap);
	return r < 0 || (size_t)r >= n ? -ENAMETOOLONG : 0;
}

uint32_t cs_stripe_part(const struct cs_pool *pool, uint64_t stripe_id)
{
	/* The 8-byte stripe id is hashed little-endian (format rule). */
	uint8_t b[8];
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(stripe_id >> (8 * i));
	return ring_partition(pool->ring_ec, b, sizeof(b));
}

uint32_t cs_chunk_part(const struct cs_pool *pool, const uint8_t fp[CS_FP_LEN])
{
	return ring_partition(pool->ring_ec, fp, CS_FP_LEN);
}

uint32_t cs_mid_part(const struct cs_pool *pool, const struct cs_mid *mid)
{
	return ring_partition(pool->ring_rep, mid->b, CS_MID_LEN);
}

uint32_t cs_name_partition(struct cs_pool *pool, const void *name, size_t len)
{
	return ring_partition(pool->ring_rep, name, len);
}

struct meta_env *cs_pool_meta(struct cs_pool *pool)
{
	return pool->meta;
}

const struct ring *cs_pool_ring(struct cs_pool *pool, enum cs_policy policy)
{
	return policy == CS_POLICY_EC ? pool->ring_ec : pool->ring_rep;
}

const struct cs_pool_rec *cs_pool_format(struct cs_pool *pool)
{
	return &pool->rec;
}

void cs_stripe_devs(const struct cs_pool *pool, uint64_t stripe_id, uint32_t *devs)
{
	unsigned n = (unsigned)pool->rec.k + pool->rec.m;
	const uint32_t *rd = ring_part_devs(pool->ring_ec, cs_stripe_part(pool, stripe_id));
	/* The ring lists a partition's devices in one order for every partition
	 * of a ring that uses them all; rotating by the stripe id spreads data
	 * units and parity evenly over the devices. */
	unsigned rot = (unsigned)(stripe_id % n);
	for (unsigned i = 0; i < n; i++)
		devs[i] = rd[(i + rot) % n];
}

int cs_unit_path(const struct cs_pool *pool, uint32_t dev, uint64_t stripe_id, uint32_t part,
		 uint32_t unit, char *dir, size_t dlen, char *path, size_t plen)
{
	if (dev >= pool->ndev_dirs || !pool->dev_dirs[dev][0])
		return CAIRN_ECORRUPT;
	int n = snprintf(dir, dlen, "%s/stripes/%04x", pool->dev_dirs[dev], part);
	if (n < 0 || (size_t)n >= dlen)
		return -ENAMETOOLONG;
	n = snprintf(path, plen, "%s/%016" PRIx64 ".u%u", dir, stripe_id, unit);
	if (n < 0 || (size_t)n >= plen)
		return -ENAMETOOLONG;
	return 0;
}

/* Creates a partition directory once per process. The common case (the
 * device's stripes/ folder exists) is one mkdir; the fsync of stripes/ that
 * makes the new entry durable is left to the next cs_files_sync of a file in
 * it (CS_DIR_PARENT_PENDING), where it joins that sync's batch instead of
 * costing a device flush on the worker here. A directory found already there
 * is treated the same way: a crashed earlier run may have left it unsynced. */
int cs_stripe_read(struct meta_txn *txn, const struct cs_pool *pool, uint64_t id,
		   struct cs_stripe_rec *rec)
{
	uint8_t key[12];
	const void *v;
	size_t vl;
	cs_key_stripe(key, cs_stripe_part(pool, id), id);
	int rc = meta_get(txn, META_T_STRIPES, key, sizeof(key), &v, &vl);
	if (rc == 0 && vl < sizeof(*rec))
		rc = CAIRN_ECORRUPT;
	if (rc < 0)
		return rc;
	memcpy(rec, v, sizeof(*rec));
	if (rec->version > CS_STRIPE_VERSION)
		return CAIRN_EFORMAT;
	if (rec->k == 0 || (unsigned)rec->k + rec->m > CS_MAX_FRAGS ||
	    rec->unit_size != pool->rec.unit_size)
		return CAIRN_ECORRUPT;
	return 0;
}

int cs_grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 256;
	void *na = realloc(*arr, nc * elem);
	if (!na)
		return -ENOMEM;
	*arr = na;
	*cap = nc;
	return 0;
}

int cs_devices_recreate(struct cs_pool *pool)
{
	for (uint32_t d = 0; d < pool->ndev_dirs; d++) {
		struct stat st;
		if (!pool->dev_dirs[d][0] || stat(pool->dev_dirs[d], &st) == 0)
			continue;
		log_warn(CS_TAG, "repair: making device folder %s again", pool->dev_dirs[d]);
		int rc = io_mkdirs(pool->dev_dirs[d], 0755);
		if (rc < 0)
			return rc;
		__atomic_fetch_and(&pool->dev_warned, ~(1ull << (d % 64)), __ATOMIC_RELAXED);
	}
	return 0;
}

int cs_part_dir_make(struct cs_pool *pool, uint32_t dev, uint32_t part, const char *dir,
		     uint8_t **state)
{
	size_t idx = (size_t)dev * ((size_t)1 << ring_part_power(pool->ring_ec)) + part;
	uint8_t *st_p = &pool->dir_made[idx];
	*state = st_p;
	struct stat st;
	if (__atomic_load_n(st_p, __ATOMIC_ACQUIRE) != CS_DIR_UNKNOWN && stat(dir, &st) == 0)
		return 0;
	if (mkdir(dir, 0755) == 0 || errno == EEXIST) {
		if (stat(dir, &st) < 0)
			return -errno;
		if (!S_ISDIR(st.st_mode))
			return -ENOTDIR;
		uint8_t expect = CS_DIR_UNKNOWN;
		__atomic_compare_exchange_n(st_p, &expect, CS_DIR_PARENT_PENDING, false,
					    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
		return 0;
	}
	if (errno != ENOENT)
		return -errno;
	/* A missing device folder may be a disk that is not mounted: writing
	 * there would fill the filesystem under it. Only cs_repair (an
	 * operator's decision) makes it again. */
	if (dev >= pool->ndev_dirs || stat(pool->dev_dirs[dev], &st) != 0) {
		uint64_t bit = 1ull << (dev % 64);
		if (!(__atomic_fetch_or(&pool->dev_warned, bit, __ATOMIC_RELAXED) & bit))
			log_warn(CS_TAG,
				 "device %u folder %s is missing: not recreated; writes that "
				 "need it fail until `cairn repair`",
				 dev, dev < pool->ndev_dirs ? pool->dev_dirs[dev] : "?");
		return CAIRN_EDEGRADED;
	}
	int rc = io_mkdirs(dir, 0755); /* the chain, each level made durable */
	if (rc < 0)
		return rc;
	__atomic_store_n(st_p, CS_DIR_DURABLE, __ATOMIC_RELEASE);
	return 0;
}

/* ---- stripe ids ---- */

struct cs_idblock {
	uint64_t limit; /* out */
};

static int cs_idblock_fn(struct cs_txn *t, void *arg)
{
	struct cs_idblock *b = arg;
	const void *v;
	size_t vl;
	int rc = meta_get(t->txn, META_T_POOL, K_NEXT, sizeof(K_NEXT) - 1, &v, &vl);
	if (rc < 0)
		return rc;
	if (vl != 8)
		return CAIRN_ECORRUPT;
	uint64_t cur;
	memcpy(&cur, v, 8);
	uint64_t next = cur + CS_STRIPE_ID_BLOCK;
	rc = meta_put(t->txn, META_T_POOL, K_NEXT, sizeof(K_NEXT) - 1, &next, 8, 0);
	if (rc < 0)
		return rc;
	b->limit = next;
	return 0;
}

/* Stripe ids are node_id << 48 | counter. The persisted "next_stripe" is
 * always past every id handed out, so ids never repeat after a crash; a
 * block is reserved through the committer (the only LMDB writer). */
int cs_stripe_id_alloc(struct cs_pool *pool, uint64_t *out)
{
	int rc = 0;
	pthread_mutex_lock(&pool->id_mu);
	if (pool->next_stripe >= pool->stripe_limit) {
		struct cs_idblock b = {0};
		rc = cs_commit(pool, NULL, cs_idblock_fn, &b);
		if (rc < 0)
			goto out;
		pool->next_stripe = b.limit - CS_STRIPE_ID_BLOCK;
		pool->stripe_limit = b.limit;
	}
	uint64_t ctr = pool->next_stripe++;
	if (ctr >= (1ull << 48)) {
		rc = CAIRN_ENOSPACE;
		goto out;
	}
	*out = (uint64_t)pool->rec.node_id << 48 | ctr;
	/* Busy from birth, under id_mu: GC's snapshot of (next id, busy set)
	 * then never misses a stripe a worker is about to write. */
	rc = cs_stripe_busy_add(pool, *out);
out:
	pthread_mutex_unlock(&pool->id_mu);
	return rc;
}

/* ---- creation ---- */

static int cs_build_ring(const char *ring_dir, const char *name, uint32_t part_power,
			 uint32_t replicas, uint32_t ec_m, uint32_t devices,
			 const uint8_t secret[RING_SECRET_LEN])
{
	struct ring_builder *b = NULL;
	char path[CS_PATH_MAX];
	int rc = ring_builder_create(part_power, replicas, 0, &b);
	if (rc < 0)
		goto out;
	ring_builder_set_secret(b, secret);
	if (ec_m)
		ring_builder_set_ec_m(b, ec_m);
	for (uint32_t i = 0; i < devices; i++) {
		struct ring_dev d = {.id = i, .region = 0, .zone = i, .port = 0, .weight = 100};
		snprintf(d.ip, sizeof(d.ip), "127.0.0.1");
		snprintf(d.name, sizeof(d.name), "d%u", i);
		rc = ring_builder_add(b, &d, NULL);
		if (rc < 0)
			goto out;
	}
	rc = ring_builder_rebalance(b, (uint64_t)time(NULL), NULL);
	if (rc < 0)
		goto out;
	(void)cs_fmt(path, sizeof(path), "%s/%s.builder", ring_dir, name);
	rc = ring_builder_save(b, path);
	if (rc < 0)
		goto out;
	(void)cs_fmt(path, sizeof(path), "%s/%s.ring", ring_dir, name);
	rc = ring_builder_write_ring(b, path);
out:
	ring_builder_free(b);
	if (rc < 0)
		log_err(CS_TAG, "building ring %s: %s", name, cairn_strerror(rc));
	return rc;
}

/* Marks a version 1 pool as version 2 before anything of version 2 is
 * written to it (format.h). */
static int cs_pool_upgrade(struct cs_pool *pool)
{
	struct meta_txn *txn = NULL;
	struct cs_pool_rec r = pool->rec;
	uint8_t from = r.version;
	r.version = CS_POOL_VERSION;
	int rc = meta_txn_begin(pool->meta, true, &txn);
	if (rc == 0)
		rc = meta_put(txn, META_T_POOL, K_POOL, sizeof(K_POOL) - 1, &r, sizeof(r), 0);
	if (rc == 0) {
		rc = meta_txn_commit(txn);
		txn = NULL;
	}
	meta_txn_abort(txn);
	if (rc < 0)
		return rc;
	pool->rec = r;
	log_info(CS_TAG,
		 "pool format upgraded from version %u to %u (sealed stripes, zstd chunks); "
		 "older builds will refuse it",
		 from, CS_POOL_VERSION);
	return 0;
}

static int cs_pool_create(struct cs_pool *pool, const struct cs_pool_opts *o)
{
	struct cs_pool_rec *r = &pool->rec;
	char path[CS_PATH_MAX];
	struct meta_txn *txn = NULL;
	int rc;

	memset(r, 0, sizeof(*r));
	uint32_t devices = o->devices ? o->devices : 6;
	uint32_t k = o->k ? o->k : 4, m = o->m ? o->m : 2;
	uint32_t replicas = o->replicas ? o->replicas : (devices < 3 ? devices : 3);
	uint32_t unit = o->unit_size ? o->unit_size : 1u << 20;
	uint32_t chunking = o->chunking ? o->chunking : CS_CHUNK_FASTCDC;
	uint32_t chunk, cmin = 0, cmax = 0;
	if (chunking == CS_CHUNK_FASTCDC) {
		/* 16 KiB average: see format.h next to CS_CHUNK_FASTCDC */
		chunk = o->chunk_avg ? o->chunk_avg : 16u << 10;
		cmin = o->chunk_min ? o->chunk_min : chunk / 4;
		cmax = o->chunk_max ? o->chunk_max : chunk * 4;
	} else {
		chunk = o->chunk_size ? o->chunk_size : 64u << 10;
	}
	uint32_t cap = chunking == CS_CHUNK_FASTCDC ? cmax : chunk;
	uint32_t inl = o->inline_max ? o->inline_max : 4096;
	uint32_t pp = o->part_power ? o->part_power : 10;
	struct cs_cdc cdc;
	if (k + m > CS_MAX_FRAGS || devices < k + m || replicas > devices || k > 255 || m > 255 ||
	    unit % CS_BLOCK || unit < CS_BLOCK || chunk == 0 ||
	    (chunking != CS_CHUNK_FIXED && chunking != CS_CHUNK_FASTCDC) ||
	    (chunking == CS_CHUNK_FASTCDC && cs_cdc_init(&cdc, cmin, chunk, cmax) < 0) ||
	    (uint64_t)cap + sizeof(struct cs_chunk_hdr) > unit || inl > cap || pp > 24) {
		log_err(CS_TAG,
			"bad pool options (devices %u, k %u, m %u, unit %u, chunking %u, chunk %u "
			"[%u, %u], inline %u)",
			devices, k, m, unit, chunking, chunk, cmin, cmax, inl);
		return CAIRN_EINVAL;
	}
	r->magic = CS_POOL_MAGIC;
	r->version = CS_POOL_VERSION;
	r->chunking = (uint8_t)chunking;
	r->chunk_min = cmin;
	r->chunk_max = cmax;
	r->dedup_domain = o->dedup_domain == CS_DEDUP_TENANT ? CS_DEDUP_TENANT : CS_DEDUP_GLOBAL;
	r->k = (uint8_t)k;
	r->m = (uint8_t)m;
	r->replicas = (uint8_t)replicas;
	r->chunk_size = chunk;
	r->unit_size = unit;
	r->inline_max = inl;
	r->node_id = 0;
	uuid_generate_random(r->pool_uuid);
	r->created = (uint64_t)time(NULL);

	for (uint32_t i = 0; i < devices; i++) {
		(void)cs_fmt(path, sizeof(path), "%s/devices/d%u", pool->data_dir, i);
		rc = io_mkdirs(path, 0755);
		if (rc < 0)
			goto out;
	}
	(void)cs_fmt(path, sizeof(path), "%s/ring", pool->data_dir);
	rc = io_mkdirs(path, 0755);
	if (rc < 0)
		goto out;
	uint8_t secret[RING_SECRET_LEN];
	if (RAND_bytes(secret, sizeof(secret)) != 1) {
		rc = -EIO;
		goto out;
	}
	rc = cs_build_ring(path, "ec", pp, k + m, m, devices, secret);
	if (rc < 0)
		goto out;
	rc = cs_build_ring(path, "replica", pp, replicas, 0, devices, secret);
	if (rc < 0)
		goto out;

	rc = meta_txn_begin(pool->meta, true, &txn);
	if (rc < 0)
		goto out;
	uint64_t next = 1;
	struct cs_stats_rec st = {.version = CS_STATS_VERSION};
	rc = meta_put(txn, META_T_POOL, K_NEXT, sizeof(K_NEXT) - 1, &next, 8, 0);
	if (rc == 0)
		rc = meta_put(txn, META_T_POOL, K_STATS, sizeof(K_STATS) - 1, &st, sizeof(st), 0);
	if (rc == 0)
		rc = meta_put(txn, META_T_POOL, K_POOL, sizeof(K_POOL) - 1, r, sizeof(*r), 0);
	if (rc < 0)
		goto out;
	rc = meta_txn_commit(txn);
	txn = NULL;
	if (rc == 0)
		log_info(
		    CS_TAG,
		    "created pool in %s: %u devices, ec %u+%u, %u replicas, unit %u, %s chunks "
		    "%u [%u, %u]",
		    pool->data_dir, devices, k, m, replicas, unit,
		    chunking == CS_CHUNK_FASTCDC ? "fastcdc" : "fixed", chunk, cmin, cmax);
out:
	meta_txn_abort(txn);
	return rc;
}

/* The pool's chunking policy, checked as every later chunk depends on it. */
static int cs_chunking_load(struct cs_pool *pool)
{
	const struct cs_pool_rec *r = &pool->rec;
	if (r->chunking == CS_CHUNK_FIXED) {
		pool->chunk_cap = r->chunk_size;
	} else if (r->chunking == CS_CHUNK_FASTCDC) {
		if (cs_cdc_init(&pool->cdc, r->chunk_min, r->chunk_size, r->chunk_max) < 0) {
			log_err(CS_TAG, "pool record: bad fastcdc bounds %u [%u, %u]",
				r->chunk_size, r->chunk_min, r->chunk_max);
			return CAIRN_ECORRUPT;
		}
		pool->chunk_cap = r->chunk_max;
	} else {
		log_err(CS_TAG, "pool record: unknown chunking %u", r->chunking);
		return CAIRN_EFORMAT;
	}
	if (pool->chunk_cap == 0 ||
	    (uint64_t)pool->chunk_cap + sizeof(struct cs_chunk_hdr) > r->unit_size ||
	    r->inline_max > pool->chunk_cap)
		return CAIRN_ECORRUPT;
	return 0;
}

static void cs_opts_compare(const struct cs_pool *pool, const struct cs_pool_opts *o)
{
	const struct cs_pool_rec *r = &pool->rec;
	if ((o->k && o->k != r->k) || (o->m && o->m != r->m) ||
	    (o->unit_size && o->unit_size != r->unit_size) ||
	    (o->chunking && o->chunking != r->chunking) ||
	    (r->chunking == CS_CHUNK_FIXED && o->chunk_size && o->chunk_size != r->chunk_size) ||
	    (r->chunking == CS_CHUNK_FASTCDC && o->chunk_avg && o->chunk_avg != r->chunk_size) ||
	    (o->inline_max && o->inline_max != r->inline_max) ||
	    (o->replicas && o->replicas != r->replicas) ||
	    (o->devices && o->devices != ring_dev_count(pool->ring_ec)) ||
	    (o->part_power && o->part_power != ring_part_power(pool->ring_ec)))
		log_warn(CS_TAG,
			 "pool in %s exists: creation options differ and are ignored "
			 "(pool: ec %u+%u, unit %u, chunk %u, inline %u)",
			 pool->data_dir, r->k, r->m, r->unit_size, r->chunk_size, r->inline_max);
}

static int cs_load_state(struct cs_pool *pool)
{
	struct meta_txn *txn = NULL;
	const void *v;
	size_t vl;
	int rc = meta_txn_begin(pool->meta, true, &txn);
	if (rc < 0)
		return rc;
	rc = meta_get(txn, META_T_POOL, K_STATS, sizeof(K_STATS) - 1, &v, &vl);
	if (rc == CAIRN_ENOTFOUND) {
		memset(&pool->stats, 0, sizeof(pool->stats));
		pool->stats.version = CS_STATS_VERSION;
		rc = 0;
	} else if (rc == 0) {
		if (vl < sizeof(pool->stats)) {
			rc = CAIRN_ECORRUPT;
			goto out;
		}
		memcpy(&pool->stats, v, sizeof(pool->stats));
		if (pool->stats.version > CS_STATS_VERSION) {
			rc = CAIRN_EFORMAT;
			goto out;
		}
	} else {
		goto out;
	}
	rc = meta_get(txn, META_T_POOL, K_NEXT, sizeof(K_NEXT) - 1, &v, &vl);
	if (rc < 0)
		goto out;
	if (vl != 8) {
		rc = CAIRN_ECORRUPT;
		goto out;
	}
	uint64_t next;
	memcpy(&next, v, 8);
	uint64_t limit = next + CS_STRIPE_ID_BLOCK;
	rc = meta_put(txn, META_T_POOL, K_NEXT, sizeof(K_NEXT) - 1, &limit, 8, 0);
	if (rc < 0)
		goto out;
	rc = meta_txn_commit(txn);
	txn = NULL;
	if (rc < 0)
		goto out;
	pool->next_stripe = next;
	pool->stripe_limit = limit;
out:
	meta_txn_abort(txn);
	return rc;
}

static int cs_load_rings(struct cs_pool *pool)
{
	char path[CS_PATH_MAX];
	(void)cs_fmt(path, sizeof(path), "%s/ring/ec.ring", pool->data_dir);
	int rc = ring_load(path, &pool->ring_ec);
	if (rc < 0) {
		log_err(CS_TAG, "loading %s: %s", path, cairn_strerror(rc));
		return rc;
	}
	(void)cs_fmt(path, sizeof(path), "%s/ring/replica.ring", pool->data_dir);
	rc = ring_load(path, &pool->ring_rep);
	if (rc < 0) {
		log_err(CS_TAG, "loading %s: %s", path, cairn_strerror(rc));
		return rc;
	}
	if (ring_replicas(pool->ring_ec) != (uint32_t)pool->rec.k + pool->rec.m) {
		log_err(CS_TAG, "ec ring has %u replicas, pool is %u+%u",
			ring_replicas(pool->ring_ec), pool->rec.k, pool->rec.m);
		return CAIRN_ECORRUPT;
	}
	/* Device folders by ring device id. */
	uint32_t n = ring_dev_count(pool->ring_ec), found = 0, maxid = 0;
	for (uint32_t id = 0; found < n && id < 65536; id++)
		if (ring_dev(pool->ring_ec, id)) {
			found++;
			maxid = id;
		}
	pool->ndev_dirs = maxid + 1;
	pool->dev_dirs = calloc(pool->ndev_dirs, sizeof(*pool->dev_dirs));
	size_t nparts = (size_t)1 << ring_part_power(pool->ring_ec);
	pool->dir_made = calloc((size_t)pool->ndev_dirs * nparts, 1);
	if (!pool->dev_dirs || !pool->dir_made)
		return -ENOMEM;
	for (uint32_t id = 0; id <= maxid; id++) {
		const struct ring_dev *d = ring_dev(pool->ring_ec, id);
		if (!d)
			continue;
		if (strchr(d->name, '/') || !strcmp(d->name, "..") || !d->name[0])
			return CAIRN_ECORRUPT;
		(void)cs_fmt(pool->dev_dirs[id], CS_PATH_MAX, "%s/devices/%s", pool->data_dir,
			     d->name);
		struct stat st;
		if (stat(pool->dev_dirs[id], &st) != 0 || !S_ISDIR(st.st_mode))
			/* Writes recreate it; what it held is read from the other
			 * copies or rebuilt from parity until cs_repair restores
			 * it, so say so where the operator looks. */
			log_warn(CS_TAG,
				 "device %s (id %u) is missing at %s: objects it held are "
				 "read from the other units, with less redundancy, until "
				 "a repair (cairn repair) rebuilds it",
				 d->name, id, pool->dev_dirs[id]);
	}
	return 0;
}

int cs_pool_open(const struct cs_pool_opts *opts, struct cs_pool **out)
{
	struct cs_pool *pool = NULL;
	struct meta_txn *txn = NULL;
	char path[CS_PATH_MAX];
	int rc;

	*out = NULL;
	if (!opts || !opts->data_dir || strlen(opts->data_dir) > CS_PATH_MAX - 128)
		return CAIRN_EINVAL;
	rc = io_probe();
	if (rc < 0)
		return rc;
	/* Unit files stay open until their writers commit: allow many. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	snprintf(pool->data_dir, sizeof(pool->data_dir), "%s", opts->data_dir);
	pthread_mutex_init(&pool->id_mu, NULL);
	pthread_mutex_init(&pool->dir_mu, NULL);
	pthread_mutex_init(&pool->wq_mu, NULL);
	pthread_cond_init(&pool->wq_cv, NULL);
	pthread_mutex_init(&pool->cq_mu, NULL);
	pthread_cond_init(&pool->cq_cv, NULL);
	pthread_mutex_init(&pool->st_mu, NULL);
	pthread_mutex_init(&pool->seal_mu, NULL);
	pthread_cond_init(&pool->seal_cv, NULL);
	pthread_cond_init(&pool->seal_idle_cv, NULL);
	cs_epoch_init(pool);
	pool->opened = time(NULL);
	cs_gc_init(pool);

	rc = io_mkdirs(pool->data_dir, 0755);
	if (rc < 0)
		goto out;
	if (opts->powerloss_sim && !io_powerloss_enabled()) {
		(void)cs_fmt(path, sizeof(path), "%s/powerloss.log", pool->data_dir);
		rc = io_powerloss_enable(path);
		if (rc < 0)
			goto out;
	}
	(void)cs_fmt(path, sizeof(path), "%s/meta", pool->data_dir);
	rc = io_mkdirs(path, 0755);
	if (rc < 0)
		goto out;
	struct meta_opts mo = {.map_size = opts->map_size};
	rc = meta_open(path, &mo, &pool->meta);
	if (rc < 0)
		goto out;

	const void *v;
	size_t vl;
	rc = meta_txn_begin(pool->meta, false, &txn);
	if (rc < 0)
		goto out;
	rc = meta_get(txn, META_T_POOL, K_POOL, sizeof(K_POOL) - 1, &v, &vl);
	if (rc == 0) {
		/* LMDB values are not aligned: copy before looking. */
		struct cs_pool_rec pr = {0};
		memcpy(&pr, v, vl < sizeof(pr) ? vl : sizeof(pr));
		if (vl < 9 || pr.magic != CS_POOL_MAGIC) {
			rc = CAIRN_ECORRUPT;
		} else if (pr.version > CS_POOL_VERSION) {
			log_err(CS_TAG, "pool format version %u is newer than this build (%u)",
				pr.version, CS_POOL_VERSION);
			rc = CAIRN_EFORMAT;
		} else if (vl < sizeof(pool->rec)) {
			rc = CAIRN_ECORRUPT;
		} else {
			pool->rec = pr;
		}
	}
	meta_txn_abort(txn);
	txn = NULL;
	bool created = false;
	if (rc == CAIRN_ENOTFOUND) {
		rc = cs_pool_create(pool, opts);
		created = true;
	}
	if (rc < 0)
		goto out;
	rc = cs_chunking_load(pool);
	if (rc < 0)
		goto out;
	rc = cs_load_rings(pool);
	if (rc < 0)
		goto out;
	if (!created)
		cs_opts_compare(pool, opts);
	if (!created && pool->rec.version < CS_POOL_VERSION) {
		rc = cs_pool_upgrade(pool);
		if (rc < 0)
			goto out;
	}
	rc = cs_load_state(pool);
	if (rc < 0)
		goto out;
	rc = io_ctx_create(CS_WORKER_DEPTH, &pool->cio);
	if (rc < 0)
		goto out;
	rc = cs_bloom_start(pool, opts->bloom_entries);
	if (rc < 0)
		goto out;
	rc = cs_committer_start(pool);
	if (rc < 0)
		goto out;
	pool->compress = !opts->no_compress;
	pool->zstd_level = opts->zstd_level ? opts->zstd_level : CS_ZSTD_LEVEL;
	pool->seal_off = opts->seal_off;
	rc = pool->seal_off ? 0 : cs_sealer_start(pool); /* before the workers: it queues
							  * every OPEN stripe */
	if (rc < 0)
		goto out;
	pool->nworkers = opts->workers;
	if (!pool->nworkers) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		pool->nworkers = n > 0 ? (unsigned)n : 1;
	}
	rc = cs_workers_start(pool);
	if (rc < 0)
		goto out;
	rc = cs_gc_thread_start(pool, opts->gc_interval ? opts->gc_interval : 60);
	if (rc < 0)
		goto out;
	*out = pool;
	pool = NULL;
out:
	meta_txn_abort(txn);
	if (rc < 0)
		log_err(CS_TAG, "opening pool %s: %s", opts->data_dir, cairn_strerror(rc));
	cs_pool_close(pool);
	return rc;
}

void cs_pool_close(struct cs_pool *pool)
{
	if (!pool)
		return;
	/* GC first (it commits and waits for grace periods), then workers:
	 * they may still ask the committer for stripe ids. */
	cs_gc_thread_stop(pool);
	cs_workers_stop(pool);
	cs_sealer_stop(pool); /* it commits through the committer */
	cs_committer_stop(pool);
	cs_bloom_stop(pool);
	io_ctx_free(pool->cio);
	meta_close(pool->meta);
	ring_free(pool->ring_ec);
	ring_free(pool->ring_rep);
	free(pool->dev_dirs);
	free(pool->dir_made);
	pthread_mutex_destroy(&pool->id_mu);
	pthread_mutex_destroy(&pool->dir_mu);
	pthread_mutex_destroy(&pool->wq_mu);
	pthread_cond_destroy(&pool->wq_cv);
	pthread_mutex_destroy(&pool->cq_mu);
	pthread_cond_destroy(&pool->cq_cv);
	pthread_mutex_destroy(&pool->st_mu);
	pthread_mutex_destroy(&pool->seal_mu);
	pthread_cond_destroy(&pool->seal_cv);
	pthread_cond_destroy(&pool->seal_idle_cv);
	cs_epoch_destroy(pool);
	cs_gc_destroy(pool);
	free(pool);
}

int cs_pool_stats(struct cs_pool *pool, struct cs_stats *out)
{
	pthread_mutex_lock(&pool->st_mu);
	const struct cs_stats_rec *s = &pool->stats;
	*out = (struct cs_stats){
	    .logical_bytes = s->logical_bytes,
	    .unique_bytes = s->unique_bytes,
	    .stored_bytes = s->stored_bytes,
	    .physical_bytes = s->physical_bytes,
	    .chunks = s->chunks,
	    .manifests = s->manifests,
	    .stripes = s->stripes,
	    .commits = s->commits,
	    .commit_requests = s->commit_requests,
	    .read_fallbacks = atomic_load(&pool->read_fallbacks),
	    .dedup_filter_skips = atomic_load(&pool->bloom_skips),
	    .dedup_index_lookups = atomic_load(&pool->bloom_lookups),
	    .dedup_filter_false = atomic_load(&pool->bloom_false),
	    .reconstructs = atomic_load(&pool->reconstructs),
	};
	pthread_mutex_unlock(&pool->st_mu);
	return 0;
}
