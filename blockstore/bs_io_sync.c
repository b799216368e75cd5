/* blockstore/bs_io_sync.c - replica resync at start (write intents), block
 * copies between generations (flatten, fsck --fix), and the I/O counters'
 * metrics. Runs with scratch I/O state (its own fd cache), never an open
 * volume's. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blockstore/bs_io_internal.h"
#include "core/io.h"
#include "core/log.h"
#include "core/metrics.h"
#include "meta/meta.h"

/* ---- metrics ---- */

static int gauge_fn(void *arg, double *value)
{
	*value = (double)atomic_load((atomic_uint_fast64_t *)arg);
	return 0;
}

static void metrics_register(void)
{
	static const struct {
		const char *name, *help;
		atomic_uint_fast64_t *v;
	} g[] = {
	    {"cairn_volume_read_ops", "volume reads answered", &bs_io_counters.read_ops},
	    {"cairn_volume_read_bytes", "volume bytes read", &bs_io_counters.read_bytes},
	    {"cairn_volume_write_ops", "volume writes answered", &bs_io_counters.write_ops},
	    {"cairn_volume_write_bytes", "volume bytes written", &bs_io_counters.write_bytes},
	    {"cairn_volume_map_commits", "extent map commits taken by writes and zeroes",
	     &bs_io_counters.map_commits},
	    {"cairn_volume_intents_committed", "write intent records committed",
	     &bs_io_counters.intents_committed},
	    {"cairn_volume_intents_cleared", "write intent records cleared",
	     &bs_io_counters.intents_cleared},
	};
	for (size_t i = 0; i < BS_ARRAY_LEN(g); i++)
		if (metrics_gauge(g[i].name, g[i].help, gauge_fn, g[i].v) < 0)
			log_warn(BS_TAG, "metric %s not registered", g[i].name);
}

/* ---- resync ---- */

struct intent_item {
	uint8_t id[VOL_ID_LEN];
	uint64_t index;
	uint32_t gen;
	bool keep; /* resync failed: the intent stays for the next start */
};

struct intent_list {
	struct intent_item *it;
	size_t n, cap;
};

static int intents_load(struct bs_store *bs, struct intent_list *l)
{
	struct meta_txn *t = NULL;
	struct meta_cursor *c = NULL;
	const void *k, *v;
	size_t kl, vl;
	int ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = meta_cursor_open(t, META_T_INTENTS, &c);
	if (ret == 0)
		ret = meta_cursor_seek(c, NULL, 0, &k, &kl, &v, &vl);
	while (ret == 0) {
		struct vol_intent_rec r;
		if (kl != VOL_INTENT_KEY_LEN || vl < 1) {
			ret = CAIRN_ECORRUPT;
			break;
		}
		if (((const uint8_t *)v)[0] > VOL_INTENT_VERSION) {
			ret = CAIRN_EFORMAT;
			break;
		}
		if (vl < sizeof(r)) {
			ret = CAIRN_ECORRUPT;
			break;
		}
		memcpy(&r, v, sizeof(r));
		if (l->n == l->cap) {
			size_t cap = l->cap ? 2 * l->cap : 64;
			struct intent_item *ni = realloc(l->it, cap * sizeof(*ni));
			if (!ni) {
				ret = -ENOMEM;
				break;
			}
			l->it = ni;
			l->cap = cap;
		}
		struct intent_item *it = &l->it[l->n++];
		memset(it, 0, sizeof(*it));
		memcpy(it->id, k, VOL_ID_LEN);
		it->index = meta_get_be64((const uint8_t *)k + VOL_ID_LEN);
		it->gen = r.gen;
		ret = meta_cursor_next(c, &k, &kl, &v, &vl);
	}
	if (ret == CAIRN_ENOTFOUND)
		ret = 0;
	meta_cursor_close(c);
	meta_txn_abort(t);
	return ret;
}

static int intents_del_cb(struct cs_txn *txn, void *arg)
{
	struct intent_list *l = arg;
	uint8_t k[VOL_INTENT_KEY_LEN];
	int ret = 0;
	for (size_t i = 0; i < l->n && ret == 0; i++) {
		if (l->it[i].keep)
			continue;
		memcpy(k, l->it[i].id, VOL_ID_LEN);
		meta_be64(k + VOL_ID_LEN, l->it[i].index);
		ret = meta_del(cs_txn_meta(txn), META_T_INTENTS, k, sizeof(k));
		if (ret == CAIRN_ENOTFOUND)
			ret = 0;
	}
	return ret;
}

/* Copies the gen file of one extent from its first replica that reads in
 * full to the others (creating missing ones), and makes them durable.
 * Whole files: which blocks a lost write touched is unknown. */
static int resync_one(struct bs_store *bs, struct bs_io_state *st, struct io_ctx *ctx,
		      const struct intent_item *it, uint8_t *buf)
{
	struct meta_txn *t = NULL;
	struct bs_fd *fds[BS_REPL_MAX] = {0};
	uint32_t devs[BS_REPL_MAX];
	struct vol v;
	int src = -1, ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = vol_get_by_id(t, it->id, &v);
	meta_txn_abort(t);
	if (ret == CAIRN_ENOTFOUND)
		return 0; /* the volume is gone: nothing to keep equal */
	if (ret < 0)
		return ret;
	unsigned n = bs_devs(bs, it->id, it->index, v.replicas, devs);
	for (unsigned r = 0; r < n && src < 0; r++) {
		if (bs_fd_get(bs, st, it->id, it->gen, it->index, devs[r], &fds[r]) < 0)
			continue;
		if (io_pread(ctx, fds[r]->fd, buf, VOL_EXTENT_SIZE, 0) == VOL_EXTENT_SIZE)
			src = (int)r;
	}
	for (unsigned r = 0; r < n; r++) {
		bs_fd_unpin(st, fds[r]);
		fds[r] = NULL;
	}
	if (src < 0) {
		/* The file was never created (the intent precedes it) or every
		 * copy is unreadable: no replica has bytes the map names. */
		log_warn(BS_TAG, "resync: volume %s extent %llu gen %u: no readable replica",
			 v.name, (unsigned long long)it->index, it->gen);
		return 0;
	}
	/* A file made anew is filled whole before it takes its name: a crash
	 * here must not leave an empty copy the next resync takes as source. */
	ret = bs_open_replicas(bs, st, ctx, it->id, it->gen, it->index, devs, n, true, ~0ull, fds);
	if (ret < 0)
		return ret;
	struct io_req reqs[BS_REPL_MAX];
	int sfd[BS_REPL_MAX];
	unsigned nr = 0;
	for (unsigned r = 0; r < n; r++) {
		sfd[r] = fds[r]->fd;
		if ((int)r != src)
			reqs[nr++] = (struct io_req){.op = IO_WRITE,
						     .fd = fds[r]->fd,
						     .buf = buf,
						     .len = VOL_EXTENT_SIZE,
						     .off = 0};
	}
	ret = nr ? io_batch(ctx, reqs, nr) : 0;
	if (ret == 0)
		ret = io_fdatasync(ctx, sfd, n);
	for (unsigned r = 0; r < n; r++)
		bs_fd_unpin(st, fds[r]);
	return ret;
}

static pthread_once_t metrics_once = PTHREAD_ONCE_INIT;

int bs_io_resync(struct bs_store *bs)
{
	struct intent_list l = {0};
	struct bs_io_state *st = NULL;
	struct io_ctx *ctx = NULL;
	uint8_t *buf = NULL;
	size_t kept = 0;
	struct timespec last, now;
	int ret;
	pthread_once(&metrics_once, metrics_register);
	ret = intents_load(bs, &l);
	if (ret < 0 || l.n == 0)
		goto out;
	log_info(BS_TAG, "resyncing %zu extents", l.n);
	st = bs_io_state_new();
	buf = io_alloc(VOL_EXTENT_SIZE);
	if (!st || !buf) {
		ret = -ENOMEM;
		goto out;
	}
	ret = io_ctx_create(32, &ctx);
	if (ret < 0)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &last);
	for (size_t i = 0; i < l.n; i++) {
		int r = resync_one(bs, st, ctx, &l.it[i], buf);
		if (r < 0) {
			log_err(BS_TAG, "resync: extent %llu gen %u: %s (intent kept)",
				(unsigned long long)l.it[i].index, l.it[i].gen, cairn_strerror(r));
			l.it[i].keep = true;
			kept++;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - last.tv_sec >= 5 || i + 1 == l.n) {
			log_info(BS_TAG, "resync: %zu/%zu extents", i + 1, l.n);
			last = now;
		}
	}
	/* Data first (synced above), then the intents go, in one commit. */
	ret = bs_commit(bs, intents_del_cb, &l);
	if (ret == 0 && kept)
		log_warn(BS_TAG, "resync: %zu extents could not be resynced", kept);
out:
	io_ctx_free(ctx);
	io_free(buf);
	bs_io_state_free(st, "resync");
	free(l.it);
	return ret;
}

/* ---- block copies ---- */

int bs_io_copy_blocks(struct bs_store *bs, struct io_ctx *ctx, const uint8_t src_id[VOL_ID_LEN],
		      uint32_t src_gen, unsigned src_replicas, const uint8_t dst_id[VOL_ID_LEN],
		      uint32_t dst_gen, unsigned dst_replicas, uint64_t index, uint64_t mask)
{
	struct piece p[VOL_BLOCKS];
	struct bs_fd *fds[BS_REPL_MAX] = {0};
	struct io_req reqs[VOL_BLOCKS * BS_REPL_MAX];
	uint32_t devs[BS_REPL_MAX];
	struct bs_io_state *st;
	uint8_t *buf;
	size_t np = 0, nr = 0;
	unsigned n;
	int ret;
	if (!mask)
		return 0;
	st = bs_io_state_new();
	buf = io_alloc(VOL_EXTENT_SIZE);
	if (!st || !buf) {
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned b = 0; b < VOL_BLOCKS;) {
		if (!(mask >> b & 1)) {
			b++;
			continue;
		}
		unsigned e = b;
		while (e < VOL_BLOCKS && (mask >> e & 1))
			e++;
		p[np] = (struct piece){.index = index,
				       .gen = src_gen,
				       .nrep = src_replicas,
				       .foff = (uint64_t)b * VOL_BLOCK_SIZE,
				       .len = (e - b) * VOL_BLOCK_SIZE,
				       .dst = buf + (size_t)b * VOL_BLOCK_SIZE};
		memcpy(p[np].id, src_id, VOL_ID_LEN);
		np++;
		b = e;
	}
	ret = bs_read_pieces(bs, st, ctx, p, np);
	if (ret < 0)
		goto out;
	n = bs_devs(bs, dst_id, index, dst_replicas, devs);
	/* In place (fsck --fix): the mask's blocks are what the record names,
	 * so a recreated file gets them before it takes its name; a crash
	 * mid-copy leaves no partial copy for a later reader to prefer. */
	bool same = src_gen == dst_gen && !memcmp(src_id, dst_id, VOL_ID_LEN);
	ret = bs_open_replicas(bs, st, ctx, dst_id, dst_gen, index, devs, n, true, same ? mask : 0,
			       fds);
	if (ret < 0)
		goto out;
	for (size_t i = 0; i < np; i++)
		for (unsigned r = 0; r < n; r++)
			reqs[nr++] = (struct io_req){.op = IO_WRITE,
						     .fd = fds[r]->fd,
						     .buf = p[i].dst,
						     .len = p[i].len,
						     .off = p[i].foff};
	ret = io_batch(ctx, reqs, nr);
	if (ret == 0) {
		int sfd[BS_REPL_MAX];
		for (unsigned r = 0; r < n; r++)
			sfd[r] = fds[r]->fd;
		ret = io_fdatasync(ctx, sfd, n);
	}
	for (unsigned r = 0; r < n; r++)
		bs_fd_unpin(st, fds[r]);
out:
	io_free(buf);
	bs_io_state_free(st, "copy");
	return ret;
}
