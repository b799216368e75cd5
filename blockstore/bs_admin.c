/* blockstore/bs_admin.c - volume, snapshot and attachment operations (the
 * admin API's and the CLI's calls into the block store).
 *
 * Every change is one bs_commit whose callback re-reads the volume by name
 * inside the write transaction and checks its id, so an operation never
 * acts on a record another commit replaced since it was looked up. Changes
 * to the view an open volume serves (snapshot, rollback, resize, QoS,
 * state, attachment, delete, flatten) run between bs_vol_quiesce and
 * bs_vol_resume: I/O in flight drains first, and open handles see the new
 * record the moment the gate opens again.
 */
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blockstore/bs_internal.h"
#include "core/io.h"
#include "core/log.h"
#include "meta/meta.h"
#include "ring/ring.h"

#define BS_SECTOR 512u
#define BS_FLATTEN_BATCH 256 /* extents whose base records go in one commit */

static uint64_t bs_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int bs_check_name(const char *name, size_t max)
{
	size_t n = name ? strlen(name) : 0;
	return n == 0 || n > max ? CAIRN_EINVAL : 0;
}

/* Sizes: a positive multiple of 512 (what a block device can express),
 * rounded up to whole 64 KiB blocks. */
static int bs_round_size(uint64_t size, uint64_t *out)
{
	if (size == 0 || size % BS_SECTOR || size > UINT64_MAX - VOL_BLOCK_SIZE)
		return CAIRN_EINVAL;
	*out = (size + VOL_BLOCK_SIZE - 1) / VOL_BLOCK_SIZE * VOL_BLOCK_SIZE;
	return 0;
}

/* The volume's record in a read transaction of its own. */
static int bs_lookup(struct bs_store *bs, const char *name, struct vol *v)
{
	struct meta_txn *t = NULL;
	int ret;
	if (bs_check_name(name, VOL_NAME_MAX) < 0)
		return CAIRN_EINVAL;
	ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = vol_get(t, bs_part(bs, name), name, v);
	meta_txn_abort(t);
	return ret;
}

/* Inside a commit: the volume by name, which must still be the one with
 * id (a volume deleted and re-created meanwhile is another volume). */
static int bs_reget(struct meta_txn *t, struct bs_store *bs, const char *name,
		    const uint8_t id[VOL_ID_LEN], struct vol *v)
{
	int ret = vol_get(t, bs_part(bs, name), name, v);
	if (ret == 0 && memcmp(v->id, id, VOL_ID_LEN) != 0)
		ret = CAIRN_ENOTFOUND;
	return ret;
}

/* Open handles of a volume on this node, without opening it. */
static unsigned bs_connections(struct bs_store *bs, const uint8_t id[VOL_ID_LEN])
{
	unsigned n = 0;
	pthread_mutex_lock(&bs->lock);
	for (struct bs_vol *vol = bs->vols; vol; vol = vol->next)
		if (!memcmp(vol->id, id, VOL_ID_LEN)) {
			n = atomic_load(&vol->nhandles);
			break;
		}
	pthread_mutex_unlock(&bs->lock);
	return n;
}

/* ---- info ---- */

static int bs_count_snap(const struct vol_snap *s, void *arg)
{
	(void)s;
	(*(uint32_t *)arg)++;
	return 0;
}

struct bs_find_gen {
	uint32_t gen;
	char *name;
};

static int bs_find_gen_fn(const struct vol_snap *s, void *arg)
{
	struct bs_find_gen *f = arg;
	if (s->gen != f->gen)
		return 0;
	snprintf(f->name, VOL_SNAP_NAME_MAX + 1, "%s", s->name);
	return 1;
}

/* Bytes of the blocks the head view reads from v's own records (written
 * at depth 0, at any generation on the head's chain): what the volume
 * stores for its current contents, excluding what it reads through a
 * parent, zeroed blocks, and blocks only snapshots still hold. One scan of
 * v's extent records plus one resolve per extent that has one. */
static int bs_written_bytes(struct meta_txn *t, const struct vol *v, uint64_t *out)
{
	struct meta_cursor *c = NULL;
	struct vol_resolved *r = malloc(sizeof(*r));
	const void *k, *val;
	size_t kl, vl;
	uint64_t last = UINT64_MAX, blocks = 0;
	int ret;
	*out = 0;
	if (!r)
		return -ENOMEM;
	ret = meta_cursor_open(t, META_T_EXTENTS, &c);
	if (ret < 0)
		goto out;
	ret = meta_cursor_seek(c, v->id, VOL_ID_LEN, &k, &kl, &val, &vl);
	while (ret == 0 && kl == VOL_EXT_KEY_LEN && !memcmp(k, v->id, VOL_ID_LEN)) {
		uint64_t index = meta_get_be64((const uint8_t *)k + VOL_ID_LEN);
		uint8_t next[VOL_ID_LEN + 8];
		if (index != last) {
			last = index;
			ret = vol_map_resolve(t, v, v->gen, index, r);
			if (ret < 0)
				goto out;
			for (unsigned b = 0; b < VOL_BLOCKS; b++)
				blocks += r->blk[b].kind == VOL_BLK_WRITTEN && r->blk[b].depth == 0;
		}
		if (index == UINT64_MAX)
			break;
		/* Skip the extent's other generations: seek to the next index. */
		memcpy(next, v->id, VOL_ID_LEN);
		meta_be64(next + VOL_ID_LEN, index + 1);
		ret = meta_cursor_seek(c, next, sizeof(next), &k, &kl, &val, &vl);
	}
	if (ret == CAIRN_ENOTFOUND)
		ret = 0;
	*out = blocks * VOL_BLOCK_SIZE;
out:
	meta_cursor_close(c);
	free(r);
	return ret;
}

static int bs_fill_info(struct bs_store *bs, struct meta_txn *t, const struct vol *v,
			struct bs_vol_info *out)
{
	struct vol_attach_rec ar;
	int ret;
	memset(out, 0, sizeof(*out));
	out->v = *v;
	ret = vol_snapshot_list(t, v, bs_count_snap, &out->nsnaps);
	if (ret == 0)
		ret = bs_written_bytes(t, v, &out->written_bytes);
	if (ret < 0)
		return ret;
	if (v->has_parent) {
		struct vol p;
		struct bs_find_gen f = {.gen = v->parent_gen, .name = out->parent_snap};
		out->has_parent = true;
		ret = vol_get_by_id(t, v->parent_id, &p);
		if (ret == 0) {
			snprintf(out->parent_name, sizeof(out->parent_name), "%s", p.name);
			ret = vol_snapshot_list(t, &p, bs_find_gen_fn, &f);
			if (ret > 0)
				ret = 0;
		} else if (ret == CAIRN_ENOTFOUND) {
			ret = 0; /* bs.h: "" if gone (fsck reports it) */
		}
		if (ret < 0)
			return ret;
	}
	/* The base the views read: v's own or its chain root's (a chain with a
	 * parent gone has none to show; fsck reports it). */
	ret = vol_chain_base(t, v, &out->has_base, out->base_mid);
	if (ret == CAIRN_ECORRUPT) {
		out->has_base = false;
		ret = 0;
	}
	if (ret < 0)
		return ret;
	ret = bs_attach_load(t, v->id, &ar, out->host);
	if (ret == 0) {
		out->attached = true;
		out->attached_ns = ar.attached_ns;
		out->expires_ns = ar.expires_ns;
	} else if (ret != CAIRN_ENOTFOUND) {
		return ret;
	}
	out->connections = bs_connections(bs, v->id);
	return 0;
}

/* The info of a volume by id in a fresh read transaction (after a commit). */
static int bs_info_by_id(struct bs_store *bs, const uint8_t id[VOL_ID_LEN], struct bs_vol_info *out)
{
	struct meta_txn *t = NULL;
	struct vol v;
	int ret;
	if (!out)
		return 0;
	ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = vol_get_by_id(t, id, &v);
	if (ret == 0)
		ret = bs_fill_info(bs, t, &v, out);
	meta_txn_abort(t);
	return ret;
}

int bs_volume_get(struct bs_store *bs, const char *name, struct bs_vol_info *out)
{
	struct meta_txn *t = NULL;
	struct vol v;
	int ret;
	if (bs_check_name(name, VOL_NAME_MAX) < 0)
		return CAIRN_EINVAL;
	ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = vol_get(t, bs_part(bs, name), name, &v);
	if (ret == 0)
		ret = bs_fill_info(bs, t, &v, out);
	meta_txn_abort(t);
	return ret;
}

struct bs_name {
	uint32_t part;
	char name[VOL_NAME_MAX + 1];
};

int bs_volume_list(struct bs_store *bs, int (*fn)(const struct bs_vol_info *vi, void *arg),
		   void *arg)
{
	struct meta_txn *t = NULL;
	struct meta_cursor *c = NULL;
	struct bs_name *names = NULL;
	struct bs_vol_info *vi = NULL;
	size_t n = 0, cap = 0;
	const void *k, *val;
	size_t kl, vl;
	int ret;
	/* Names first, then each volume in a transaction of its own, so fn
	 * runs with no transaction open (it may call back into the store). */
	ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = meta_cursor_open(t, META_T_VOLUMES, &c);
	if (ret == 0)
		ret = meta_cursor_seek(c, NULL, 0, &k, &kl, &val, &vl);
	while (ret == 0) {
		if (kl > 4 && kl <= 4 + VOL_NAME_MAX) {
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 64;
				struct bs_name *nn = realloc(names, nc * sizeof(*nn));
				if (!nn) {
					ret = -ENOMEM;
					goto out;
				}
				names = nn;
				cap = nc;
			}
			names[n].part = meta_get_be32(k);
			memcpy(names[n].name, (const uint8_t *)k + 4, kl - 4);
			names[n].name[kl - 4] = 0;
			n++;
		}
		ret = meta_cursor_next(c, &k, &kl, &val, &vl);
	}
	if (ret != CAIRN_ENOTFOUND)
		goto out;
	meta_cursor_close(c);
	c = NULL;
	meta_txn_abort(t);
	t = NULL;
	vi = malloc(sizeof(*vi));
	if (!vi) {
		ret = -ENOMEM;
		goto out;
	}
	ret = 0;
	for (size_t i = 0; i < n && ret == 0; i++) {
		struct vol v;
		ret = meta_txn_begin(bs->meta, false, &t);
		if (ret == 0)
			ret = vol_get(t, names[i].part, names[i].name, &v);
		if (ret == 0)
			ret = bs_fill_info(bs, t, &v, vi);
		meta_txn_abort(t);
		t = NULL;
		if (ret == CAIRN_ENOTFOUND) { /* deleted meanwhile */
			ret = 0;
			continue;
		}
		if (ret == 0)
			ret = fn(vi, arg);
	}
out:
	meta_cursor_close(c);
	meta_txn_abort(t);
	free(names);
	free(vi);
	return ret;
}

/* ---- the quiesced-change pattern ---- */

/* One change of a volume's record: op runs inside the commit on the fresh
 * record (nv), with the open volume quiesced around the commit. */
struct bs_change {
	struct bs_store *bs;
	const char *name;
	uint8_t id[VOL_ID_LEN];
	struct bs_vol *vol;
	struct cs_txn *txn; /* the commit op runs in */
	int (*op)(struct meta_txn *t, struct bs_change *c);
	struct vol nv; /* the record, changed by op */
	bool gone;     /* op deleted the volume */
	/* op arguments */
	uint64_t size;
	uint64_t iops, bps;
	bool force;
	const char *snap;
	struct vol_snap snap_out;
	const char *host;
	uint32_t lease_s;
	uint8_t token_sha[SHA256_DIGEST_LENGTH];
	bool bump_epoch; /* set by op: revoke the handles of the old record */
};

static int bs_change_cb(struct cs_txn *txn, void *arg)
{
	struct bs_change *c = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	int ret = bs_reget(t, c->bs, c->name, c->id, &c->nv);
	c->txn = txn;
	if (ret == 0)
		ret = c->op(t, c);
	return ret;
}

/* Looks the volume up, opens (or finds) it, quiesces it, commits op, puts
 * the new record in place and lets I/O go on. pre runs quiesced before the
 * commit (snapshot: sync the files). */
static int bs_change(struct bs_change *c, int (*pre)(struct bs_change *c))
{
	struct vol v;
	int ret = bs_lookup(c->bs, c->name, &v);
	if (ret < 0)
		return ret;
	memcpy(c->id, v.id, VOL_ID_LEN);
	ret = bs_vol_get(c->bs, c->id, &c->vol);
	if (ret < 0)
		return ret;
	bs_vol_quiesce(c->vol);
	if (pre)
		ret = pre(c);
	if (ret == 0)
		ret = bs_commit(c->bs, bs_change_cb, c);
	if (ret == 0 && c->bump_epoch)
		atomic_fetch_add(&c->vol->epoch, 1);
	if (ret == 0 && c->gone) {
		/* Handles left (revoked) see a record that says so. */
		struct vol dead = c->vol->v;
		dead.state = VOL_DELETING;
		bs_vol_resume(c->vol, &dead);
	} else {
		bs_vol_resume(c->vol, ret == 0 ? &c->nv : NULL);
	}
	bs_vol_put(c->bs, c->vol);
	c->vol = NULL;
	return ret;
}

/* ---- volumes ---- */

struct bs_create {
	const char *name;
	uint32_t part;
	uint64_t size;
	struct vol_opts o;
	struct vol v;
	/* clone */
	const char *src, *snap;
	uint32_t src_part;
	const struct vol_opts *qos;
	/* from a manifest */
	struct bs_store *bs;
	struct cs_mid mid;
	uint64_t req_size; /* 0: the manifest's */
};

static int bs_create_cb(struct cs_txn *txn, void *arg)
{
	struct bs_create *c = arg;
	return vol_create(cs_txn_meta(txn), c->part, c->name, c->size, &c->o, &c->v);
}

int bs_volume_create(struct bs_store *bs, const char *name, uint64_t size,
		     const struct vol_opts *opts, struct bs_vol_info *out)
{
	struct bs_create c = {.name = name};
	unsigned max = ring_replicas(bs->ring);
	int ret;
	if (bs_check_name(name, VOL_NAME_MAX) < 0 || bs_round_size(size, &c.size) < 0)
		return CAIRN_EINVAL;
	if (opts)
		c.o = *opts;
	if (c.o.replicas == 0)
		c.o.replicas = max < 3 ? max : 3;
	if (c.o.replicas > max)
		return CAIRN_EINVAL;
	c.part = bs_part(bs, name);
	ret = bs_commit(bs, bs_create_cb, &c);
	if (ret < 0)
		return ret;
	log_info(BS_TAG, "created volume %s (%llu bytes, %u replicas)", name,
		 (unsigned long long)c.size, c.o.replicas);
	return bs_info_by_id(bs, c.v.id, out);
}

/* The manifest must be live (its reference taken here, in the commit that
 * creates the record that stands for it); the size is checked against it
 * inside the commit too. O(1): a manifest header read and put. */
static int bs_create_base_cb(struct cs_txn *txn, void *arg)
{
	struct bs_create *c = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	uint64_t msize, size = c->req_size;
	int ret = cs_manifest_size(t, c->bs->pool, &c->mid, &msize);
	if (ret < 0)
		return ret;
	if (size == 0)
		size = msize ? msize : 1;
	else if (size < msize)
		return CAIRN_EINVAL;
	c->size = (size + VOL_BLOCK_SIZE - 1) / VOL_BLOCK_SIZE * VOL_BLOCK_SIZE;
	ret = cs_manifest_ref(txn, &c->mid);
	if (ret == 0)
		ret = vol_create(t, c->part, c->name, c->size, &c->o, &c->v);
	if (ret == 0)
		ret = vol_set_base(t, &c->v, c->mid.b);
	return ret;
}

int bs_volume_create_from_manifest(struct bs_store *bs, const char *name, uint64_t size,
				   const uint8_t mid[16], const struct vol_opts *opts,
				   struct bs_vol_info *out)
{
	struct bs_create c = {.name = name, .bs = bs, .req_size = size};
	unsigned max = ring_replicas(bs->ring);
	char hex[2 * CS_MID_LEN + 1];
	int ret;
	if (bs_check_name(name, VOL_NAME_MAX) < 0 || !mid || size > UINT64_MAX - VOL_BLOCK_SIZE)
		return CAIRN_EINVAL;
	memcpy(c.mid.b, mid, CS_MID_LEN);
	if (opts)
		c.o = *opts;
	if (c.o.replicas == 0)
		c.o.replicas = max < 3 ? max : 3;
	if (c.o.replicas > max)
		return CAIRN_EINVAL;
	c.part = bs_part(bs, name);
	ret = bs_commit(bs, bs_create_base_cb, &c);
	if (ret < 0)
		return ret;
	for (unsigned i = 0; i < CS_MID_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", mid[i]);
	log_info(BS_TAG, "created volume %s (%llu bytes, %u replicas) on manifest %s", name,
		 (unsigned long long)c.size, c.o.replicas, hex);
	return bs_info_by_id(bs, c.v.id, out);
}

static int bs_clone_cb(struct cs_txn *txn, void *arg)
{
	struct bs_create *c = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	struct vol src;
	int ret = vol_get(t, c->src_part, c->src, &src);
	if (ret == 0)
		ret = vol_clone(t, &src, c->snap, c->part, c->name, &c->v);
	if (ret == 0 && c->qos)
		ret = vol_set_qos(t, &c->v, c->qos->iops_limit, c->qos->bps_limit);
	return ret;
}

int bs_volume_clone(struct bs_store *bs, const char *src, const char *snap, const char *new_name,
		    const struct vol_opts *opts, struct bs_vol_info *out)
{
	struct bs_create c = {.name = new_name, .src = src, .snap = snap, .qos = opts};
	int ret;
	if (bs_check_name(new_name, VOL_NAME_MAX) < 0 || bs_check_name(src, VOL_NAME_MAX) < 0 ||
	    bs_check_name(snap, VOL_SNAP_NAME_MAX) < 0)
		return CAIRN_EINVAL;
	c.part = bs_part(bs, new_name);
	c.src_part = bs_part(bs, src);
	ret = bs_commit(bs, bs_clone_cb, &c);
	if (ret < 0)
		return ret;
	log_info(BS_TAG, "cloned volume %s from %s@%s", new_name, src, snap);
	return bs_info_by_id(bs, c.v.id, out);
}

/* Deletes the volume's leftover write intents (the volume is detached and
 * its handles are gone or revoked, so no resync is owed to it). */
static int bs_del_intents(struct meta_txn *t, const uint8_t id[VOL_ID_LEN])
{
	struct meta_cursor *c = NULL;
	const void *k, *val;
	size_t kl, vl;
	int ret = meta_cursor_open(t, META_T_INTENTS, &c);
	if (ret == 0)
		ret = meta_cursor_seek(c, id, VOL_ID_LEN, &k, &kl, &val, &vl);
	while (ret == 0 && kl >= VOL_ID_LEN && !memcmp(k, id, VOL_ID_LEN)) {
		ret = meta_cursor_del(c);
		if (ret == 0)
			ret = meta_cursor_seek(c, id, VOL_ID_LEN, &k, &kl, &val, &vl);
	}
	if (ret == CAIRN_ENOTFOUND)
		ret = 0;
	meta_cursor_close(c);
	return ret;
}

static bool bs_is_attached(struct meta_txn *t, const struct vol *v, int *err)
{
	struct vol_attach_rec ar;
	int ret = bs_attach_load(t, v->id, &ar, NULL);
	*err = ret == CAIRN_ENOTFOUND ? 0 : ret;
	return ret == 0 || v->state == VOL_ATTACHED;
}

static int bs_delete_op(struct meta_txn *t, struct bs_change *c)
{
	int ret;
	if (bs_is_attached(t, &c->nv, &ret))
		return ret < 0 ? ret : -EBUSY;
	if (ret < 0)
		return ret;
	if (bs_snap_refs(c->vol, 0)) /* a snapshot handle reads it */
		return -EBUSY;
	ret = vol_delete(t, &c->nv, c->force);
	if (ret == 0)
		ret = bs_del_intents(t, c->nv.id);
	if (ret == 0 && c->nv.has_base) {
		/* The record's manifest reference goes with it. */
		struct cs_mid m;
		memcpy(m.b, c->nv.base_mid, CS_MID_LEN);
		ret = cs_manifest_unref(c->txn, &m);
		if (ret == CAIRN_ENOTFOUND) {
			/* Lost already (fsck reports such volumes): the
			 * volume must still go. */
			log_warn(BS_TAG, "volume %s: its base manifest was gone", c->nv.name);
			ret = 0;
		}
	}
	if (ret == 0) {
		c->gone = true;
		c->bump_epoch = true;
	}
	return ret;
}

int bs_volume_delete(struct bs_store *bs, const char *name, bool force)
{
	struct bs_change c = {.bs = bs, .name = name, .op = bs_delete_op, .force = force};
	int ret = bs_change(&c, NULL);
	if (ret < 0)
		return ret;
	log_info(BS_TAG, "deleted volume %s", name);
	/* The records are gone: the files are unreachable whatever happens
	 * next, and fsck removes what a failure here leaves. */
	ret = bs_vol_remove_files(bs, c.id);
	if (ret < 0)
		log_warn(BS_TAG,
			 "volume %s: removing its extent files: %s (fsck --fix removes them)", name,
			 cairn_strerror(ret));
	return 0;
}

static int bs_resize_op(struct meta_txn *t, struct bs_change *c)
{
	int ret = 0;
	if (c->size < c->nv.size) {
		if (!c->force)
			return CAIRN_EINVAL;
		if (bs_is_attached(t, &c->nv, &ret))
			return ret < 0 ? ret : -EBUSY;
		if (ret < 0)
			return ret;
	}
	return vol_resize(t, &c->nv, c->size, c->force);
}

int bs_volume_resize(struct bs_store *bs, const char *name, uint64_t size, bool force)
{
	struct bs_change c = {.bs = bs, .name = name, .op = bs_resize_op, .force = force};
	if (bs_round_size(size, &c.size) < 0)
		return CAIRN_EINVAL;
	return bs_change(&c, NULL);
}

static int bs_qos_op(struct meta_txn *t, struct bs_change *c)
{
	return vol_set_qos(t, &c->nv, c->iops, c->bps);
}

int bs_volume_set_qos(struct bs_store *bs, const char *name, uint64_t iops_limit,
		      uint64_t bps_limit)
{
	struct bs_change c = {
	    .bs = bs, .name = name, .op = bs_qos_op, .iops = iops_limit, .bps = bps_limit};
	return bs_change(&c, NULL);
}

static int bs_rollback_op(struct meta_txn *t, struct bs_change *c)
{
	int ret;
	if (bs_is_attached(t, &c->nv, &ret))
		return ret < 0 ? ret : -EBUSY;
	if (ret < 0)
		return ret;
	return vol_rollback(t, &c->nv, c->snap);
}

int bs_volume_rollback(struct bs_store *bs, const char *name, const char *snap)
{
	struct bs_change c = {.bs = bs, .name = name, .op = bs_rollback_op, .snap = snap};
	if (bs_check_name(snap, VOL_SNAP_NAME_MAX) < 0)
		return CAIRN_EINVAL;
	return bs_change(&c, NULL);
}

/* ---- snapshots ---- */

/* Before the head moves on, the files of the generation the snapshot
 * freezes must be durable: acknowledged writes that no flush covered yet
 * are in the page cache only, and the snapshot promises them. Always, not
 * only with open handles: the last close drops the handle count before its
 * flush, and a flush that failed there leaves dirty files behind. Cheap
 * when nothing is dirty (no fdatasync). */
static int bs_snap_pre(struct bs_change *c)
{
	struct io_ctx *ctx = NULL;
	int ret = io_ctx_create(32, &ctx);
	if (ret == 0)
		ret = bs_io_sync_vol(c->bs, c->vol, ctx);
	io_ctx_free(ctx);
	return ret;
}

static int bs_snap_create_op(struct meta_txn *t, struct bs_change *c)
{
	return vol_snapshot_create(t, &c->nv, c->snap, &c->snap_out);
}

int bs_snapshot_create(struct bs_store *bs, const char *vol, const char *snap, struct vol_snap *out)
{
	struct bs_change c = {.bs = bs, .name = vol, .op = bs_snap_create_op, .snap = snap};
	int ret;
	if (bs_check_name(snap, VOL_SNAP_NAME_MAX) < 0)
		return CAIRN_EINVAL;
	ret = bs_change(&c, bs_snap_pre);
	if (ret == 0 && out)
		*out = c.snap_out;
	return ret;
}

struct bs_snaps {
	struct vol_snap *s;
	size_t n, cap;
};

static int bs_snaps_fn(const struct vol_snap *s, void *arg)
{
	struct bs_snaps *l = arg;
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 16;
		struct vol_snap *ns = realloc(l->s, nc * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		l->s = ns;
		l->cap = nc;
	}
	l->s[l->n++] = *s;
	return 0;
}

int bs_snapshot_list(struct bs_store *bs, const char *vol,
		     int (*fn)(const struct vol_snap *s, void *arg), void *arg)
{
	struct bs_snaps l = {0};
	struct meta_txn *t = NULL;
	struct vol v;
	int ret;
	if (bs_check_name(vol, VOL_NAME_MAX) < 0)
		return CAIRN_EINVAL;
	/* Collected first: fn runs with no transaction open. */
	ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = vol_get(t, bs_part(bs, vol), vol, &v);
	if (ret == 0)
		ret = vol_snapshot_list(t, &v, bs_snaps_fn, &l);
	meta_txn_abort(t);
	for (size_t i = 0; i < l.n && ret == 0; i++)
		ret = fn(&l.s[i], arg);
	free(l.s);
	return ret;
}

static int bs_snap_delete_op(struct meta_txn *t, struct bs_change *c)
{
	struct vol_snap s;
	int ret = vol_snapshot_get(t, &c->nv, c->snap, &s);
	if (ret < 0)
		return ret;
	/* Quiesced: no snapshot handle opens or closes meanwhile. */
	if (bs_snap_refs(c->vol, s.gen))
		return -EBUSY;
	return vol_snapshot_delete(t, &c->nv, c->snap);
}

/* ---- flatten ---- */

struct bs_base_batch {
	struct bs_store *bs;
	const char *name;
	uint8_t id[VOL_ID_LEN];
	size_t n;
	uint64_t index[BS_FLATTEN_BATCH];
	uint64_t mask[BS_FLATTEN_BATCH];
	uint64_t zero[BS_FLATTEN_BATCH];
	bool unparent;
	/* The chain's base manifest, which the clone takes over (with a
	 * reference of its own) when it loses its parent. */
	bool has_base;
	struct cs_mid base;
	uint64_t size; /* the clone's, when quiesced for the commit */
	struct vol nv;
};

static int bs_base_cb(struct cs_txn *txn, void *arg)
{
	struct bs_base_batch *b = arg;
	struct meta_txn *t = cs_txn_meta(txn);
	int ret = bs_reget(t, b->bs, b->name, b->id, &b->nv);
	for (size_t i = 0; i < b->n && ret == 0; i++)
		ret = vol_map_put_base_zero(t, &b->nv, b->index[i], b->mask[i], b->zero[i]);
	if (ret == 0 && b->unparent)
		ret = vol_unparent(t, &b->nv);
	if (ret == 0 && b->unparent && b->has_base) {
		ret = cs_manifest_ref(txn, &b->base);
		if (ret == 0)
			ret = vol_set_base(t, &b->nv, b->base.b);
	}
	return ret;
}

/* The replica count of the volume with this id (a clone chain member). */
static int bs_replicas_of(struct meta_txn *t, const uint8_t id[VOL_ID_LEN], unsigned *out)
{
	struct vol v;
	int ret = vol_get_by_id(t, id, &v);
	if (ret == 0)
		*out = v.replicas;
	return ret;
}

static int bs_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* The extent indexes below limit where any volume of v's parent chain has
 * a record (ascending, no repeats): the only extents whose parent view can
 * show written blocks. One scan of each ancestor's extent records. */
static int bs_chain_indexes(struct meta_txn *t, const struct vol *v, uint64_t limit, uint64_t **out,
			    size_t *nout)
{
	struct meta_cursor *c = NULL;
	uint64_t *idx = NULL;
	size_t n = 0, cap = 0;
	struct vol p = *v;
	int ret = 0;
	for (unsigned depth = 0; ret == 0 && p.has_parent && depth < VOL_DEPTH_MAX; depth++) {
		const void *k, *val;
		size_t kl, vl;
		uint8_t id[VOL_ID_LEN];
		memcpy(id, p.parent_id, VOL_ID_LEN);
		ret = vol_get_by_id(t, id, &p);
		if (ret == CAIRN_ENOTFOUND)
			ret = CAIRN_ECORRUPT; /* a clone outlived its parent */
		if (ret == 0)
			ret = meta_cursor_open(t, META_T_EXTENTS, &c);
		if (ret == 0)
			ret = meta_cursor_seek(c, id, VOL_ID_LEN, &k, &kl, &val, &vl);
		while (ret == 0 && kl == VOL_EXT_KEY_LEN && !memcmp(k, id, VOL_ID_LEN)) {
			uint64_t index = meta_get_be64((const uint8_t *)k + VOL_ID_LEN);
			if (index < limit && (n == 0 || idx[n - 1] != index)) {
				if (n == cap) {
					size_t nc = cap ? cap * 2 : 256;
					uint64_t *ni = realloc(idx, nc * sizeof(*ni));
					if (!ni) {
						ret = -ENOMEM;
						break;
					}
					idx = ni;
					cap = nc;
				}
				idx[n++] = index;
			}
			ret = meta_cursor_next(c, &k, &kl, &val, &vl);
		}
		if (ret == CAIRN_ENOTFOUND)
			ret = 0;
		meta_cursor_close(c);
		c = NULL;
	}
	if (ret == 0 && n) {
		size_t u = 1;
		qsort(idx, n, sizeof(*idx), bs_cmp_u64);
		for (size_t i = 1; i < n; i++)
			if (idx[i] != idx[u - 1])
				idx[u++] = idx[i];
		n = u;
	}
	if (ret < 0) {
		free(idx);
		idx = NULL;
		n = 0;
	}
	*out = idx;
	*nout = n;
	return ret;
}

/* One source of a flattened extent's blocks: a (volume, generation). */
struct bs_src {
	uint8_t id[VOL_ID_LEN];
	uint32_t gen;
	unsigned replicas;
	uint64_t mask;
};

/* The blocks of extent index the clone cv reads through its parent,
 * grouped by the files that hold them (src, *nsrc), in one read txn. */
static int bs_parent_blocks(struct bs_store *bs, const struct vol *cv, uint64_t index,
			    struct vol_resolved *r, struct bs_src *src, unsigned *nsrc)
{
	struct meta_txn *t = NULL;
	struct vol pv;
	int ret = meta_txn_begin(bs->meta, false, &t);
	*nsrc = 0;
	if (ret == 0)
		ret = vol_get_by_id(t, cv->parent_id, &pv);
	if (ret == CAIRN_ENOTFOUND)
		ret = CAIRN_ECORRUPT;
	if (ret < 0)
		goto out;
	/* The parent's view as the clone reads it: masked by the clone's
	 * size, not the parent's. */
	pv.size = cv->size;
	ret = vol_map_resolve(t, &pv, cv->parent_gen, index, r);
	for (unsigned blk = 0; ret == 0 && blk < VOL_BLOCKS; blk++) {
		const struct vol_blk *k = &r->blk[blk];
		unsigned j;
		if (k->kind != VOL_BLK_WRITTEN)
			continue;
		for (j = 0; j < *nsrc; j++)
			if (src[j].gen == k->gen &&
			    !memcmp(src[j].id, r->ids[k->depth], VOL_ID_LEN))
				break;
		if (j == *nsrc) {
			memcpy(src[j].id, r->ids[k->depth], VOL_ID_LEN);
			src[j].gen = k->gen;
			src[j].mask = 0;
			ret = bs_replicas_of(t, src[j].id, &src[j].replicas);
			(*nsrc)++;
		}
		src[j].mask |= 1ull << blk;
	}
out:
	meta_txn_abort(t);
	return ret;
}

/* Blocks of extent index below size (a shrink may have cut some since the
 * copy: their base records must not be put). */
static uint64_t bs_size_mask(uint64_t size, uint64_t index)
{
	uint64_t start = index * VOL_EXTENT_SIZE;
	if (start >= size)
		return 0;
	if (size - start >= VOL_EXTENT_SIZE)
		return ~0ull;
	unsigned nb = (unsigned)((size - start + VOL_BLOCK_SIZE - 1) / VOL_BLOCK_SIZE);
	return (1ull << nb) - 1;
}

void (*bs_flatten_test_hook)(const uint8_t id[VOL_ID_LEN], void *arg);
void *bs_flatten_test_arg;

/* The copied extents of one flatten, committed once the copy is done. */
struct bs_copied {
	uint64_t *index, *mask, *zero;
	size_t n, cap;
};

/* Gives one clone (cvol) its own copy of every block its views read
 * through its parent: the parent's view at the clone's snapshot, copied
 * into the clone's generation-0 files, which every view of the clone walks
 * last; then the clone forgets its parent.
 *
 * The copy runs without the clone's gate: the parent's snapshot view is
 * immutable, the clone never writes its gen-0 files (its head is at
 * VOL_GEN_FIRST or later), and no record names them yet, so the clone's
 * I/O (its NBD workers) goes on reading through the parent meanwhile.
 * Only the commit (the gen-0 records, then vol_unparent, all of them while
 * quiesced) changes what the clone's views resolve to, and to the same
 * bytes: base records decide only what no record of the clone decides.
 * Data before records: a crash before the commit leaves unnamed gen-0
 * bytes that a retry copies again. Costs a scan of the ancestors' extent
 * records, a resolve per extent they touch and a copy of every block the
 * parent shows.
 *
 * A chain whose root has a base manifest (VOL_RECF_IMAGE): blocks the
 * parent's view reads from the base are not copied; the clone takes the
 * base over instead (VOL_RECF_IMAGE with its own manifest reference, in the
 * unparenting commit), and the blocks the parent's view reads as zero get
 * zero records at generation 0 so the base never shows through them.
 * out gets the committed record (out->has_parent false), or cvol's own
 * when it was flattened meanwhile. */
static int bs_flatten_clone(struct bs_store *bs, struct io_ctx *ctx, struct bs_vol *cvol,
			    const uint8_t parent_id[VOL_ID_LEN], uint32_t parent_gen,
			    struct vol *out)
{
	struct bs_base_batch *b = calloc(1, sizeof(*b));
	struct vol_resolved *r = malloc(sizeof(*r));
	struct bs_src *src = malloc(VOL_BLOCKS * sizeof(*src));
	struct bs_copied cp = {0};
	struct meta_txn *t = NULL;
	uint64_t *idx = NULL, copied = 0;
	size_t nidx = 0;
	bool quiesced = false;
	struct vol cv;
	int ret;
	if (!b || !r || !src) {
		ret = -ENOMEM;
		goto out;
	}
	pthread_rwlock_rdlock(&cvol->gate); /* a consistent copy of the record */
	cv = cvol->v;
	pthread_rwlock_unlock(&cvol->gate);
	if (!cv.has_parent || cv.parent_gen != parent_gen ||
	    memcmp(cv.parent_id, parent_id, VOL_ID_LEN) != 0) {
		ret = 0; /* flattened or re-parented meanwhile */
		*out = cv;
		goto out;
	}
	uint64_t next = (cv.size + VOL_EXTENT_SIZE - 1) / VOL_EXTENT_SIZE;
	ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = bs_chain_indexes(t, &cv, next, &idx, &nidx);
	if (ret == 0)
		ret = vol_chain_base(t, &cv, &b->has_base, b->base.b);
	meta_txn_abort(t);
	for (size_t i = 0; i < nidx && ret == 0; i++) {
		uint64_t mask = 0, zmask;
		unsigned nsrc = 0;
		ret = bs_parent_blocks(bs, &cv, idx[i], r, src, &nsrc);
		zmask = ret == 0 && b->has_base ? r->zero : 0;
		for (unsigned j = 0; j < nsrc && ret == 0; j++) {
			ret = bs_io_copy_blocks(bs, ctx, src[j].id, src[j].gen, src[j].replicas,
						cv.id, 0, cv.replicas, idx[i], src[j].mask);
			mask |= src[j].mask;
		}
		if (ret < 0 || !(mask | zmask))
			continue;
		if (cp.n == cp.cap) {
			size_t nc = cp.cap ? 2 * cp.cap : 256;
			uint64_t *ni = realloc(cp.index, nc * sizeof(*ni));
			if (ni)
				cp.index = ni;
			uint64_t *nm = ni ? realloc(cp.mask, nc * sizeof(*nm)) : NULL;
			if (nm)
				cp.mask = nm;
			uint64_t *nz = nm ? realloc(cp.zero, nc * sizeof(*nz)) : NULL;
			if (!nz) {
				ret = -ENOMEM;
				break;
			}
			cp.zero = nz;
			cp.cap = nc;
		}
		cp.index[cp.n] = idx[i];
		cp.zero[cp.n] = zmask;
		cp.mask[cp.n++] = mask;
		copied += (uint64_t)__builtin_popcountll(mask);
	}
	if (ret < 0)
		goto out;
	if (bs_flatten_test_hook)
		bs_flatten_test_hook(cv.id, bs_flatten_test_arg);
	bs_vol_quiesce(cvol);
	quiesced = true;
	/* Quiesced: the record in cvol->v is the committed one. */
	if (!cvol->v.has_parent || cvol->v.parent_gen != parent_gen ||
	    memcmp(cvol->v.parent_id, parent_id, VOL_ID_LEN) != 0) {
		*out = cvol->v;
		goto out;
	}
	b->bs = bs;
	b->name = cvol->v.name;
	b->size = cvol->v.size; /* a shrink meanwhile cut blocks off */
	memcpy(b->id, cv.id, VOL_ID_LEN);
	for (size_t i = 0; ret == 0; i++) {
		if (i == cp.n)
			b->unparent = true; /* the last batch and the unparenting together */
		if (i == cp.n || b->n == BS_FLATTEN_BATCH) {
			ret = bs_commit(bs, bs_base_cb, b);
			b->n = 0;
			if (i == cp.n)
				break;
		}
		uint64_t m = cp.mask[i] & bs_size_mask(b->size, cp.index[i]);
		uint64_t z = cp.zero[i] & bs_size_mask(b->size, cp.index[i]);
		if (m | z) {
			b->index[b->n] = cp.index[i];
			b->zero[b->n] = z;
			b->mask[b->n++] = m;
		}
	}
	if (ret == 0) {
		*out = b->nv;
		log_info(BS_TAG, "flattened clone %s: %llu blocks copied from its parent%s",
			 cv.name, (unsigned long long)copied,
			 b->has_base ? ", its base manifest taken over" : "");
	}
out:
	if (quiesced)
		bs_vol_resume(cvol, ret == 0 ? out : NULL);
	free(idx);
	free(cp.index);
	free(cp.mask);
	free(cp.zero);
	free(b);
	free(r);
	free(src);
	return ret;
}

/* The clones whose parent is (id, gen): a scan of every volume record. */
struct bs_ids {
	uint8_t (*id)[VOL_ID_LEN];
	size_t n, cap;
};

static int bs_find_clones(struct bs_store *bs, const uint8_t id[VOL_ID_LEN], uint32_t gen,
			  struct bs_ids *out)
{
	struct meta_txn *t = NULL;
	struct meta_cursor *c = NULL;
	const void *k, *val;
	size_t kl, vl;
	int ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = meta_cursor_open(t, META_T_VOLUMES, &c);
	if (ret == 0)
		ret = meta_cursor_seek(c, NULL, 0, &k, &kl, &val, &vl);
	while (ret == 0) {
		struct vol_rec r;
		if (vl >= sizeof(r)) {
			memcpy(&r, val, sizeof(r));
			if ((r.flags & VOL_RECF_PARENT) && r.parent_gen == gen &&
			    !memcmp(r.parent_id, id, VOL_ID_LEN)) {
				if (out->n == out->cap) {
					size_t nc = out->cap ? out->cap * 2 : 8;
					void *ni = realloc(out->id, nc * VOL_ID_LEN);
					if (!ni) {
						ret = -ENOMEM;
						break;
					}
					out->id = ni;
					out->cap = nc;
				}
				memcpy(out->id[out->n++], r.id, VOL_ID_LEN);
			}
		}
		ret = meta_cursor_next(c, &k, &kl, &val, &vl);
	}
	if (ret == CAIRN_ENOTFOUND)
		ret = 0;
	meta_cursor_close(c);
	meta_txn_abort(t);
	return ret;
}

/* Flattens run one at a time: the copy runs outside the clone's gate, and
 * two flattens of one clone would race creating its gen-0 files. */
static pthread_mutex_t bs_flatten_mu = PTHREAD_MUTEX_INITIALIZER;

static int bs_flatten_clones_of(struct bs_store *bs, const char *vol, const char *snap)
{
	struct bs_ids ids = {0};
	struct io_ctx *ctx = NULL;
	struct meta_txn *t = NULL;
	struct vol_snap s;
	struct vol v;
	int ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = vol_get(t, bs_part(bs, vol), vol, &v);
	if (ret == 0)
		ret = vol_snapshot_get(t, &v, snap, &s);
	meta_txn_abort(t);
	if (ret < 0 || s.nclones == 0)
		return ret;
	pthread_mutex_lock(&bs_flatten_mu);
	ret = bs_find_clones(bs, v.id, s.gen, &ids);
	if (ret == 0 && ids.n)
		ret = io_ctx_create(64, &ctx);
	for (size_t i = 0; i < ids.n && ret == 0; i++) {
		struct bs_vol *cvol = NULL;
		struct vol nv;
		ret = bs_vol_get(bs, ids.id[i], &cvol);
		if (ret == CAIRN_ENOTFOUND) { /* deleted meanwhile */
			ret = 0;
			continue;
		}
		if (ret < 0)
			break;
		ret = bs_flatten_clone(bs, ctx, cvol, v.id, s.gen, &nv);
		bs_vol_put(bs, cvol);
	}
	pthread_mutex_unlock(&bs_flatten_mu);
	io_ctx_free(ctx);
	free(ids.id);
	return ret;
}

int bs_snapshot_delete(struct bs_store *bs, const char *vol, const char *snap, bool flatten)
{
	struct bs_change c = {.bs = bs, .name = vol, .op = bs_snap_delete_op, .snap = snap};
	int ret;
	if (bs_check_name(vol, VOL_NAME_MAX) < 0 || bs_check_name(snap, VOL_SNAP_NAME_MAX) < 0)
		return CAIRN_EINVAL;
	if (flatten) {
		ret = bs_flatten_clones_of(bs, vol, snap);
		if (ret < 0)
			return ret;
	}
	/* A clone made after the flatten above still refuses (-EBUSY). */
	return bs_change(&c, NULL);
}

int bs_snapshot_diff(struct bs_store *bs, const char *vol, const char *from, const char *to,
		     int (*fn)(uint64_t off, uint64_t len, bool zero, void *arg), void *arg)
{
	struct meta_txn *t = NULL;
	struct vol v;
	int ret;
	if (bs_check_name(vol, VOL_NAME_MAX) < 0)
		return CAIRN_EINVAL;
	ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = vol_get(t, bs_part(bs, vol), vol, &v);
	if (ret == 0)
		ret = vol_snapshot_diff(t, &v, from, to, fn, arg);
	meta_txn_abort(t);
	return ret;
}

/* ---- attachments ---- */

static int bs_attach_op(struct meta_txn *t, struct bs_change *c)
{
	uint8_t buf[sizeof(struct vol_attach_rec) + VOL_HOST_MAX];
	char host[VOL_HOST_MAX + 1];
	struct vol_attach_rec ar;
	uint64_t now = bs_now_ns();
	size_t hl = strlen(c->host);
	int ret = bs_attach_load(t, c->nv.id, &ar, host);
	if (ret == 0) {
		bool live = ar.expires_ns > now || atomic_load(&c->vol->nhandles) > 0;
		if (strcmp(host, c->host) != 0 && live)
			return -EBUSY;
		/* Same host (a new token), or a dead attachment replaced:
		 * handles of the old token are revoked. */
		c->bump_epoch = true;
	} else if (ret != CAIRN_ENOTFOUND) {
		return ret;
	}
	memset(&ar, 0, sizeof(ar));
	ar.version = VOL_ATTACH_VERSION;
	ar.host_len = (uint8_t)hl;
	ar.lease_s = c->lease_s;
	memcpy(ar.token_sha256, c->token_sha, sizeof(ar.token_sha256));
	ar.attached_ns = now;
	ar.expires_ns = now + (uint64_t)c->lease_s * 1000000000ull;
	memcpy(buf, &ar, sizeof(ar));
	memcpy(buf + sizeof(ar), c->host, hl);
	ret = meta_put(t, META_T_ATTACH, c->nv.id, VOL_ID_LEN, buf, sizeof(ar) + hl, 0);
	if (ret == 0 && c->nv.state != VOL_ATTACHED)
		ret = vol_set_state(t, &c->nv, VOL_ATTACHED);
	return ret;
}

int bs_attach(struct bs_store *bs, const char *vol, const char *host, uint32_t lease_s,
	      char token[BS_TOKEN_LEN + 1], struct bs_vol_info *out)
{
	struct bs_change c = {.bs = bs, .name = vol, .op = bs_attach_op, .host = host};
	uint8_t raw[BS_TOKEN_LEN / 2];
	char hex[BS_TOKEN_LEN + 1];
	int ret;
	if (bs_check_name(host, VOL_HOST_MAX) < 0)
		return CAIRN_EINVAL;
	c.lease_s = lease_s ? lease_s : bs->lease_seconds;
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(hex + 2 * i, 3, "%02x", raw[i]);
	OPENSSL_cleanse(raw, sizeof(raw));
	bs_token_hash(hex, BS_TOKEN_LEN, c.token_sha);
	ret = bs_change(&c, NULL);
	if (ret == 0) {
		memcpy(token, hex, sizeof(hex));
		log_info(BS_TAG, "volume %s attached to %s (lease %us)", vol, host, c.lease_s);
		ret = bs_info_by_id(bs, c.id, out);
	}
	OPENSSL_cleanse(hex, sizeof(hex));
	return ret;
}

static int bs_detach_op(struct meta_txn *t, struct bs_change *c)
{
	struct vol_attach_rec ar;
	int ret = bs_attach_load(t, c->nv.id, &ar, NULL);
	if (ret < 0)
		return ret; /* CAIRN_ENOTFOUND: not attached */
	if (atomic_load(&c->vol->nhandles) > 0 && !c->force)
		return -EBUSY;
	ret = meta_del(t, META_T_ATTACH, c->nv.id, VOL_ID_LEN);
	if (ret == 0)
		ret = vol_set_state(t, &c->nv, VOL_AVAILABLE);
	/* Always: a handle that passed its attachment check just before this
	 * commit but is not counted yet must not outlive the attachment. */
	c->bump_epoch = true;
	return ret;
}

int bs_detach(struct bs_store *bs, const char *vol, bool force)
{
	struct bs_change c = {.bs = bs, .name = vol, .op = bs_detach_op, .force = force};
	int ret = bs_change(&c, NULL);
	if (ret == 0)
		log_info(BS_TAG, "volume %s detached%s", vol, force ? " (forced)" : "");
	return ret;
}
