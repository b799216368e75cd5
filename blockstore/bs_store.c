/* blockstore/bs_store.c - the block store: open/close, the table of open
 * volumes, commits, replica placement and paths, attachment records. */
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blockstore/bs_internal.h"
#include "core/io.h"
#include "core/log.h"
#include "meta/meta.h"
#include "ring/ring.h"

/* Frees base readers past their age or idle every BS_SWEEP_MS: a cached
 * reader holds a chunk-store grace epoch that GC and compaction wait on. */
static void *bs_sweeper_main(void *arg)
{
	struct bs_store *bs = arg;
	pthread_mutex_lock(&bs->sweep_mu);
	while (!bs->sweeper_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += BS_SWEEP_MS * 1000000l;
		ts.tv_sec += ts.tv_nsec / 1000000000l;
		ts.tv_nsec %= 1000000000l;
		pthread_cond_timedwait(&bs->sweep_cv, &bs->sweep_mu, &ts);
		if (bs->sweeper_stop)
			break;
		pthread_mutex_unlock(&bs->sweep_mu);
		bs_io_sweep_readers(bs, false);
		pthread_mutex_lock(&bs->sweep_mu);
	}
	pthread_mutex_unlock(&bs->sweep_mu);
	return NULL;
}

int bs_open(struct cs_pool *pool, const struct bs_opts *opts, struct bs_store **out)
{
	struct bs_store *bs;
	int ret;
	*out = NULL;
	if (!pool || !opts || !opts->data_dir || strlen(opts->data_dir) >= sizeof(bs->data_dir))
		return CAIRN_EINVAL;
	bs = calloc(1, sizeof(*bs));
	if (!bs)
		return -ENOMEM;
	bs->pool = pool;
	bs->meta = cs_pool_meta(pool);
	bs->ring = cs_pool_ring(pool, CS_POLICY_REPLICA);
	snprintf(bs->data_dir, sizeof(bs->data_dir), "%s", opts->data_dir);
	bs->lease_seconds = opts->lease_seconds ? opts->lease_seconds : BS_LEASE_DEFAULT;
	pthread_mutex_init(&bs->lock, NULL);
	pthread_mutex_init(&bs->sweep_mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&bs->sweep_cv, &ca);
	pthread_condattr_destroy(&ca);
	ret = bs_io_resync(bs);
	if (ret < 0) {
		log_err(BS_TAG, "resyncing volume replicas: %s", cairn_strerror(ret));
		bs_close(bs);
		return ret;
	}
	ret = -pthread_create(&bs->sweeper, NULL, bs_sweeper_main, bs);
	if (ret < 0) {
		bs_close(bs);
		return ret;
	}
	bs->sweeper_running = true;
	*out = bs;
	return 0;
}

void bs_close(struct bs_store *bs)
{
	if (!bs)
		return;
	if (bs->sweeper_running) {
		pthread_mutex_lock(&bs->sweep_mu);
		bs->sweeper_stop = true;
		pthread_cond_signal(&bs->sweep_cv);
		pthread_mutex_unlock(&bs->sweep_mu);
		pthread_join(bs->sweeper, NULL);
	}
	while (bs->vols) {
		struct bs_vol *vol = bs->vols;
		bs->vols = vol->next;
		log_warn(BS_TAG, "volume %s still open at close (%u references)", vol->v.name,
			 vol->refs);
		bs_io_vol_free(vol);
		pthread_rwlock_destroy(&vol->gate);
		free(vol);
	}
	pthread_mutex_destroy(&bs->lock);
	pthread_mutex_destroy(&bs->sweep_mu);
	pthread_cond_destroy(&bs->sweep_cv);
	free(bs);
}

int bs_commit(struct bs_store *bs, cs_commit_fn fn, void *arg)
{
	return cs_commit(bs->pool, NULL, fn, arg);
}

uint32_t bs_part(struct bs_store *bs, const char *name)
{
	return cs_name_partition(bs->pool, name, strlen(name));
}

int bs_vol_get(struct bs_store *bs, const uint8_t id[VOL_ID_LEN], struct bs_vol **out)
{
	struct meta_txn *t = NULL;
	struct bs_vol *vol;
	int ret = 0;
	*out = NULL;
	pthread_mutex_lock(&bs->lock);
	for (vol = bs->vols; vol; vol = vol->next)
		if (!memcmp(vol->id, id, VOL_ID_LEN)) {
			vol->refs++;
			*out = vol;
			goto out;
		}
	vol = calloc(1, sizeof(*vol));
	if (!vol) {
		ret = -ENOMEM;
		goto out;
	}
	ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = vol_get_by_id(t, id, &vol->v);
	meta_txn_abort(t);
	if (ret == 0)
		ret = bs_io_vol_init(vol);
	if (ret < 0) {
		free(vol);
		goto out;
	}
	memcpy(vol->id, id, VOL_ID_LEN);
	/* Writer-preferring: under a steady stream of overlapping I/O a reader-
	 * preferring gate would never let a snapshot or detach --force in. No
	 * thread takes the gate shared twice, so this cannot deadlock. */
	pthread_rwlockattr_t ga;
	pthread_rwlockattr_init(&ga);
	pthread_rwlockattr_setkind_np(&ga, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&vol->gate, &ga);
	pthread_rwlockattr_destroy(&ga);
	vol->refs = 1;
	vol->next = bs->vols;
	bs->vols = vol;
	*out = vol;
out:
	pthread_mutex_unlock(&bs->lock);
	return ret;
}

void bs_vol_put(struct bs_store *bs, struct bs_vol *vol)
{
	struct bs_vol **pp;
	if (!vol)
		return;
	pthread_mutex_lock(&bs->lock);
	if (--vol->refs > 0) {
		pthread_mutex_unlock(&bs->lock);
		return;
	}
	for (pp = &bs->vols; *pp; pp = &(*pp)->next)
		if (*pp == vol) {
			*pp = vol->next;
			break;
		}
	pthread_mutex_unlock(&bs->lock);
	bs_io_vol_free(vol);
	pthread_rwlock_destroy(&vol->gate);
	free(vol);
}

void bs_vol_quiesce(struct bs_vol *vol)
{
	pthread_rwlock_wrlock(&vol->gate);
}

void bs_vol_resume(struct bs_vol *vol, const struct vol *v)
{
	if (v)
		vol->v = *v;
	pthread_rwlock_unlock(&vol->gate);
}

unsigned bs_extent_devs(struct bs_store *bs, const uint8_t id[VOL_ID_LEN], uint64_t index,
			unsigned replicas, uint32_t *devs)
{
	uint8_t key[VOL_ID_LEN + 8];
	unsigned n = ring_replicas(bs->ring);
	memcpy(key, id, VOL_ID_LEN);
	meta_be64(key + VOL_ID_LEN, index);
	const uint32_t *pd = ring_part_devs(bs->ring, ring_partition(bs->ring, key, sizeof(key)));
	if (replicas && replicas < n)
		n = replicas;
	for (unsigned i = 0; i < n; i++)
		devs[i] = pd[i];
	return n;
}

int bs_dev_dir(struct bs_store *bs, uint32_t dev, char *out, size_t len)
{
	const struct ring_dev *d = ring_dev(bs->ring, dev);
	if (!d)
		return CAIRN_ENOTFOUND;
	if ((size_t)snprintf(out, len, "%s/devices/%s", bs->data_dir, d->name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

static void id_hex(const uint8_t id[VOL_ID_LEN], char hex[2 * VOL_ID_LEN + 1])
{
	for (unsigned i = 0; i < VOL_ID_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", id[i]);
}

int bs_vol_dir(struct bs_store *bs, uint32_t dev, const uint8_t id[VOL_ID_LEN], char *out,
	       size_t len)
{
	char dir[PATH_MAX], hex[2 * VOL_ID_LEN + 1];
	int ret = bs_dev_dir(bs, dev, dir, sizeof(dir));
	if (ret < 0)
		return ret;
	id_hex(id, hex);
	if ((size_t)snprintf(out, len, "%s/extents/%s", dir, hex) >= len)
		return -ENAMETOOLONG;
	return 0;
}

int bs_extent_path(struct bs_store *bs, uint32_t dev, const uint8_t id[VOL_ID_LEN], uint32_t gen,
		   uint64_t index, char *out, size_t len)
{
	char dir[PATH_MAX];
	int ret = bs_vol_dir(bs, dev, id, dir, sizeof(dir));
	if (ret < 0)
		return ret;
	if ((size_t)snprintf(out, len, "%s/%u.%llu", dir, gen, (unsigned long long)index) >= len)
		return -ENAMETOOLONG;
	return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) == 0 || errno == ENOENT ? 0 : -errno;
}

int bs_vol_remove_files(struct bs_store *bs, const uint8_t id[VOL_ID_LEN])
{
	uint32_t n = ring_dev_count(bs->ring), found = 0;
	int first = 0;
	for (uint32_t dev = 0; found < n && dev < 65536; dev++) {
		char dir[PATH_MAX];
		if (!ring_dev(bs->ring, dev))
			continue;
		found++;
		if (bs_vol_dir(bs, dev, id, dir, sizeof(dir)) < 0)
			continue;
		int ret = nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		if (ret != 0 && errno != ENOENT && !first) {
			first = ret < 0 ? ret : -errno;
			log_warn(BS_TAG, "removing %s: %s", dir, cairn_strerror(first));
		}
	}
	return first;
}

int bs_attach_load(struct meta_txn *t, const uint8_t id[VOL_ID_LEN], struct vol_attach_rec *rec,
		   char *host)
{
	const void *v;
	size_t vl;
	int ret = meta_get(t, META_T_ATTACH, id, VOL_ID_LEN, &v, &vl);
	if (ret < 0)
		return ret;
	if (vl < sizeof(*rec))
		return CAIRN_ECORRUPT;
	memcpy(rec, v, sizeof(*rec));
	if (rec->version > VOL_ATTACH_VERSION)
		return CAIRN_EFORMAT;
	if (vl != sizeof(*rec) + rec->host_len)
		return CAIRN_ECORRUPT;
	if (host) {
		memcpy(host, (const uint8_t *)v + sizeof(*rec), rec->host_len);
		host[rec->host_len] = 0;
	}
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int touch_cb(struct cs_txn *txn, void *arg)
{
	const uint8_t *id = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	struct vol_attach_rec rec;
	char host[VOL_HOST_MAX + 1];
	uint8_t buf[sizeof(rec) + VOL_HOST_MAX];
	int ret = bs_attach_load(t, id, &rec, host);
	if (ret < 0)
		return ret;
	rec.expires_ns = now_ns() + (uint64_t)rec.lease_s * 1000000000ull;
	memcpy(buf, &rec, sizeof(rec));
	memcpy(buf + sizeof(rec), host, rec.host_len);
	return meta_put(t, META_T_ATTACH, id, VOL_ID_LEN, buf, sizeof(rec) + rec.host_len, 0);
}

int bs_attach_touch(struct bs_store *bs, const uint8_t id[VOL_ID_LEN])
{
	return bs_commit(bs, touch_cb, (void *)id);
}
