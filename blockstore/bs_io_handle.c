/* blockstore/bs_io_handle.c - volume handles (open with the attachment
 * token, close with the last-close duties) and the lazy clearing of write
 * intents once a flush made their writes durable. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "blockstore/bs_io_internal.h"
#include "core/io.h"
#include "core/log.h"
#include "meta/meta.h"

void bs_token_hash(const char *token, size_t len, uint8_t out[32])
{
	SHA256((const unsigned char *)token, len, out);
}

/* ---- intents ---- */

struct clear_list {
	struct bs_ext **e;
	size_t n, cap;
	uint64_t upto; /* writes up to this sequence are durable */
	const uint8_t *id;
	int err;
};

static void clear_pick(struct bs_ext *e, void *arg)
{
	struct clear_list *c = arg;
	pthread_mutex_lock(&e->sl);
	if (e->istate == BS_INT_ARMED && !e->inflight && !e->ikeep && e->last_seq <= c->upto) {
		if (c->n == c->cap) {
			size_t cap = c->cap ? 2 * c->cap : 64;
			struct bs_ext **ne = realloc(c->e, cap * sizeof(*ne));
			if (!ne) {
				c->err = -ENOMEM;
				goto out;
			}
			c->e = ne;
			c->cap = cap;
		}
		e->istate = BS_INT_CLEARING;
		c->e[c->n++] = e;
	}
out:
	pthread_mutex_unlock(&e->sl);
}

/* Runs on the committer: deletes the intents still CLEARING (a writer that
 * re-armed one meanwhile moved it to ARMING, and its put wins). */
static int clear_cb(struct cs_txn *txn, void *arg)
{
	struct clear_list *c = arg;
	uint8_t k[VOL_INTENT_KEY_LEN];
	int ret = 0;
	for (size_t i = 0; i < c->n && ret == 0; i++) {
		struct bs_ext *e = c->e[i];
		pthread_mutex_lock(&e->sl);
		if (e->istate == BS_INT_CLEARING) {
			bs_intent_key(k, c->id, e->index);
			ret = meta_del(cs_txn_meta(txn), META_T_INTENTS, k, sizeof(k));
			if (ret == CAIRN_ENOTFOUND)
				ret = 0;
			e->istate = BS_INT_NONE;
		}
		pthread_mutex_unlock(&e->sl);
	}
	return ret;
}

/* Deletes the intents of extents whose writes are all durable, in one
 * commit; without force at most once per BS_CLEAR_NS. Under flush_mu
 * would serialize flushes behind a commit: call it after flush_vol. */
int bs_intents_clear(struct bs_store *bs, struct bs_vol *vol, bool force)
{
	struct bs_io_state *st = vol->io;
	struct clear_list c = {.id = vol->id};
	uint64_t now = bs_mono_ns();
	int ret;
	pthread_mutex_lock(&st->flush_mu);
	if (!force && now - st->last_clear_ns < BS_CLEAR_NS) {
		pthread_mutex_unlock(&st->flush_mu);
		return 0;
	}
	st->last_clear_ns = now;
	/* Only extents not written since the previous pass (a second or more
	 * ago) lose their intent: a hot extent would otherwise pay an intent
	 * commit every second. */
	c.upto = force || st->clear_seq > st->synced_seq ? st->synced_seq : st->clear_seq;
	pthread_mutex_lock(&st->lock);
	st->clear_seq = st->seq;
	pthread_mutex_unlock(&st->lock);
	pthread_mutex_unlock(&st->flush_mu);
	bs_ext_each(st, clear_pick, &c);
	ret = c.err;
	if (c.n && ret == 0)
		ret = bs_commit(bs, clear_cb, &c);
	for (size_t i = 0; i < c.n; i++) { /* the callback did not run: stay unarmed */
		pthread_mutex_lock(&c.e[i]->sl);
		if (c.e[i]->istate == BS_INT_CLEARING)
			c.e[i]->istate = BS_INT_NONE;
		pthread_mutex_unlock(&c.e[i]->sl);
	}
	if (ret == 0 && c.n) {
		atomic_fetch_add(&bs_io_counters.intents_cleared, c.n);
		log_debug(BS_TAG, "volume %s: cleared %zu write intents", vol->v.name, c.n);
	}
	free(c.e);
	return ret;
}

/* ---- handles ---- */

static void ext_forget(struct bs_ext *e, void *arg)
{
	(void)arg;
	pthread_mutex_lock(&e->sl);
	e->wvalid = false;
	e->wver++;
	pthread_mutex_unlock(&e->sl);
}

int bs_handle_open(struct bs_store *bs, const char *export_name, struct bs_handle **out)
{
	struct meta_txn *t = NULL;
	struct bs_handle *h = NULL;
	struct bs_vol *vol = NULL;
	struct vol_attach_rec rec;
	struct vol v;
	char name[VOL_NAME_MAX + 1];
	uint8_t hash[32];
	const char *at;
	size_t nl, tl;
	int ret;
	*out = NULL;
	if (!bs || !export_name)
		return CAIRN_EINVAL;
	at = strrchr(export_name, '@');
	if (!at)
		return -EACCES;
	nl = (size_t)(at - export_name);
	tl = strlen(at + 1);
	if (nl == 0 || nl > VOL_NAME_MAX)
		return CAIRN_ENOTFOUND;
	memcpy(name, export_name, nl);
	name[nl] = 0;
	ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = vol_get(t, bs_part(bs, name), name, &v);
	meta_txn_abort(t);
	t = NULL;
	if (ret == 0 && v.state == VOL_DELETING)
		ret = CAIRN_ENOTFOUND;
	if (ret == 0)
		ret = bs_vol_get(bs, v.id, &vol);
	if (ret < 0)
		return ret;
	/* The epoch is read before the attachment: a forced detach deletes the
	 * record, then bumps the epoch, so a token checked against a record
	 * that is being revoked is caught by the epoch. */
	unsigned epoch = atomic_load(&vol->epoch);
	ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = bs_attach_load(t, v.id, &rec, NULL);
	meta_txn_abort(t);
	if (ret == CAIRN_ENOTFOUND)
		ret = -EACCES;
	if (ret < 0)
		goto out;
	bs_token_hash(at + 1, tl, hash);
	if (tl != BS_TOKEN_LEN || CRYPTO_memcmp(hash, rec.token_sha256, sizeof(hash)) != 0) {
		ret = -EACCES;
		goto out;
	}
	if (rec.expires_ns <= bs_now_ns() && atomic_load(&vol->nhandles) == 0) {
		ret = -EACCES;
		goto out;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		ret = -ENOMEM;
		goto out;
	}
	h->bs = bs;
	h->vol = vol;
	h->epoch = epoch;
	memcpy(h->name, name, nl + 1);
	atomic_fetch_add(&vol->nhandles, 1);
	*out = h;
	vol = NULL;
out:
	bs_vol_put(bs, vol);
	return ret;
}

/* Counts (delta +1/-1) an open snapshot handle of vol on gen. */
static int snap_ref(struct bs_vol *vol, uint32_t gen, int delta)
{
	size_t i;
	int ret = 0;
	pthread_mutex_lock(&vol->snap_mu);
	for (i = 0; i < vol->nsnap_refs && vol->snap_refs[i].gen != gen; i++)
		;
	if (delta > 0) {
		if (i == vol->nsnap_refs) {
			struct bs_snap_ref *nr =
			    realloc(vol->snap_refs, (i + 1) * sizeof(*vol->snap_refs));
			if (!nr) {
				ret = -ENOMEM;
				goto out;
			}
			vol->snap_refs = nr;
			vol->snap_refs[i] = (struct bs_snap_ref){.gen = gen};
			vol->nsnap_refs++;
		}
		vol->snap_refs[i].n++;
	} else if (i < vol->nsnap_refs && --vol->snap_refs[i].n == 0) {
		vol->snap_refs[i] = vol->snap_refs[--vol->nsnap_refs];
	}
out:
	pthread_mutex_unlock(&vol->snap_mu);
	return ret;
}

int bs_snapshot_open(struct bs_store *bs, const char *vname, const char *snap,
		     struct bs_handle **out)
{
	struct meta_txn *t = NULL;
	struct bs_handle *h = NULL;
	struct bs_vol *vol = NULL, *gate = NULL;
	struct vol_snap s;
	struct vol v;
	int ret;
	if (out)
		*out = NULL;
	if (!bs || !vname || !snap || !out || !*vname || strlen(vname) > VOL_NAME_MAX)
		return CAIRN_EINVAL;
	ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = vol_get(t, bs_part(bs, vname), vname, &v);
	meta_txn_abort(t);
	t = NULL;
	if (ret == 0 && v.state == VOL_DELETING)
		ret = CAIRN_ENOTFOUND;
	if (ret == 0)
		ret = bs_vol_get(bs, v.id, &vol);
	if (ret < 0)
		return ret;
	/* Under the shared gate, a snapshot delete (which checks the count
	 * under the exclusive gate around its commit) either committed before
	 * our lookup or sees our count. */
	pthread_rwlock_rdlock(&vol->gate);
	gate = vol;
	ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = vol_get_by_id(t, v.id, &v);
	if (ret == CAIRN_ECORRUPT) /* the id's volume went meanwhile */
		ret = CAIRN_ENOTFOUND;
	if (ret == 0)
		ret = vol_snapshot_get(t, &v, snap, &s);
	meta_txn_abort(t);
	if (ret < 0)
		goto out;
	h = calloc(1, sizeof(*h));
	if (!h) {
		ret = -ENOMEM;
		goto out;
	}
	ret = snap_ref(vol, s.gen, +1);
	if (ret < 0)
		goto out;
	h->bs = bs;
	h->vol = vol;
	h->epoch = atomic_load(&vol->epoch);
	snprintf(h->name, sizeof(h->name), "%s", vname);
	h->snap = true;
	h->snap_gen = s.gen;
	h->snap_size = s.size;
	*out = h;
	h = NULL;
	vol = NULL;
out:
	if (gate)
		pthread_rwlock_unlock(&gate->gate);
	free(h);
	bs_vol_put(bs, vol);
	return ret;
}

void bs_handle_close(struct bs_handle *h)
{
	struct io_ctx *ctx = NULL;
	int ret;
	if (!h)
		return;
	if (h->snap) {
		/* No attachment, no writes: only the snapshot's pin. */
		pthread_rwlock_rdlock(&h->vol->gate);
		(void)snap_ref(h->vol, h->snap_gen, -1);
		pthread_rwlock_unlock(&h->vol->gate);
		bs_vol_put(h->bs, h->vol);
		free(h);
		return;
	}
	if (atomic_fetch_sub(&h->vol->nhandles, 1) == 1) {
		/* Last one: everything durable, every intent gone, lease renewed
		 * from now. */
		ret = io_ctx_create(16, &ctx);
		if (ret == 0) {
			pthread_rwlock_rdlock(&h->vol->gate);
			ret = bs_flush_vol(h->vol->io, ctx);
			pthread_rwlock_unlock(&h->vol->gate);
		}
		if (ret == 0)
			ret = bs_intents_clear(h->bs, h->vol, true);
		/* No handle, no I/O: a shrink may change the map under the
		 * same generation before the next one opens. */
		bs_ext_each(h->vol->io, ext_forget, NULL);
		if (ret < 0)
			log_warn(BS_TAG,
				 "volume %s: last close: %s (intents stay; resynced at start)",
				 h->name, cairn_strerror(ret));
		io_ctx_free(ctx);
		ret = bs_attach_touch(h->bs, h->vol->id);
		if (ret < 0 && ret != CAIRN_ENOTFOUND)
			log_warn(BS_TAG, "volume %s: renewing the lease: %s", h->name,
				 cairn_strerror(ret));
	}
	bs_vol_put(h->bs, h->vol);
	free(h);
}

uint64_t bs_handle_size(struct bs_handle *h)
{
	if (h->snap)
		return h->snap_size;
	pthread_rwlock_rdlock(&h->vol->gate);
	uint64_t size = h->vol->v.size;
	pthread_rwlock_unlock(&h->vol->gate);
	return size;
}

const char *bs_handle_volume(const struct bs_handle *h)
{
	return h->name;
}

void bs_handle_qos(struct bs_handle *h, uint64_t *iops_limit, uint64_t *bps_limit)
{
	pthread_rwlock_rdlock(&h->vol->gate);
	*iops_limit = h->vol->v.iops_limit;
	*bps_limit = h->vol->v.bps_limit;
	pthread_rwlock_unlock(&h->vol->gate);
}

bool bs_handle_revoked(struct bs_handle *h)
{
	/* A snapshot handle holds no attachment to revoke (a volume delete
	 * waits until it is closed). */
	if (h->snap)
		return false;
	return atomic_load(&h->vol->epoch) != h->epoch;
}
