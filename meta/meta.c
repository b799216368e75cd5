/* meta/meta.c - the node's LMDB environment (see meta.h for the contract).
 *
 * One MDB_env with one named DBI per enum meta_table, opened with MDB_NOTLS
 * so a read transaction is not tied to the thread that began it. The
 * wrappers (struct meta_txn, struct meta_cursor) exist so that cairn code
 * never touches MDB_* codes: every LMDB return goes through meta_err().
 *
 * Cursor lifetime: LMDB frees a write transaction's cursors when it ends but
 * leaves a read transaction's cursors to the caller. To give callers one
 * rule, a transaction keeps a list of the cursors opened in it and closes the
 * LMDB side of each one before it ends; the wrapper stays allocated (dead)
 * until meta_cursor_close(), and a dead cursor answers CAIRN_EINVAL.
 */
#include "meta/meta.h"

#include <errno.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/io.h"
#include "core/log.h"

#define META_DEFAULT_MAP ((size_t)64 << 30)
#define META_DEFAULT_READERS 1024u

static const char *const meta_table_names[META_T_COUNT] = {
    [META_T_POOL] = "pool",	  [META_T_CHUNKS] = "chunks",	    [META_T_STRIPES] = "stripes",
    [META_T_MHDR] = "mhdr",	  [META_T_MANIFESTS] = "manifests", [META_T_BUCKETS] = "buckets",
    [META_T_OBJECTS] = "objects", [META_T_USERS] = "users",	    [META_T_KEYS] = "keys",
    [META_T_UPLOADS] = "uploads", [META_T_UPARTS] = "uparts",	    [META_T_VOLUMES] = "volumes",
    [META_T_VOLIDS] = "volids",	  [META_T_EXTENTS] = "extents",	    [META_T_SNAPS] = "snaps",
    [META_T_INTENTS] = "intents", [META_T_ATTACH] = "attach",	    [META_T_IMAGES] = "images",
    [META_T_TOKENS] = "tokens",
};

struct meta_env {
	MDB_env *env;
	MDB_dbi dbi[META_T_COUNT];
};

struct meta_txn {
	MDB_txn *t;
	struct meta_env *env;
	struct meta_txn *parent;
	struct meta_txn *child;	     /* live nested txn, if any */
	struct meta_cursor *cursors; /* cursors opened in this txn */
	bool write;
};

struct meta_cursor {
	MDB_cursor *c; /* NULL once the txn has ended */
	struct meta_txn *txn;
	struct meta_cursor *prev, *next;
};

/* Maps an LMDB return code to cairn's convention (see meta.h). */
static int meta_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return 0;
	case MDB_NOTFOUND:
		return CAIRN_ENOTFOUND;
	case MDB_KEYEXIST:
		return CAIRN_EEXISTS;
	case MDB_MAP_FULL:
	case MDB_TXN_FULL:
		return CAIRN_ENOSPACE;
	case MDB_READERS_FULL:
		return -EAGAIN; /* every reader slot busy: retry later, not "full" */
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
		return CAIRN_ECORRUPT;
	case MDB_VERSION_MISMATCH:
		return CAIRN_EFORMAT;
	default:
		if (rc > 0)
			return -rc; /* LMDB passes errno values through */
		return CAIRN_EINVAL;
	}
}

static int meta_check_key(size_t klen)
{
	return (klen == 0 || klen > META_KEY_MAX) ? CAIRN_EINVAL : 0;
}

int meta_open(const char *dir, const struct meta_opts *opts, struct meta_env **out)
{
	struct meta_env *me = NULL;
	MDB_txn *txn = NULL;
	size_t map = (opts && opts->map_size) ? opts->map_size : META_DEFAULT_MAP;
	unsigned readers = (opts && opts->max_readers) ? opts->max_readers : META_DEFAULT_READERS;
	int dead = 0;
	int rc;

	*out = NULL;
	rc = io_mkdirs(dir, 0700);
	if (rc < 0)
		goto out;
	me = calloc(1, sizeof(*me));
	if (!me) {
		rc = -ENOMEM;
		goto out;
	}
	rc = meta_err(mdb_env_create(&me->env));
	if (rc < 0) {
		me->env = NULL;
		goto out;
	}
	rc = meta_err(mdb_env_set_maxdbs(me->env, META_T_COUNT));
	if (rc == 0)
		rc = meta_err(mdb_env_set_mapsize(me->env, map));
	if (rc == 0)
		rc = meta_err(mdb_env_set_maxreaders(me->env, readers));
	if (rc < 0)
		goto out;
	/* MDB_NOTLS: read txns are not bound to a thread (the committer and
	 * request threads hand them around); durability stays LMDB's default
	 * (fsync at commit). */
	rc = meta_err(mdb_env_open(me->env, dir, MDB_NOTLS, 0600));
	if (rc < 0) {
		log_err("meta", "cannot open LMDB environment in %s: %s", dir, cairn_strerror(rc));
		goto out;
	}
	/* Reader slots of processes that died (kill -9) would pin old pages
	 * and make the map grow; clear them before anyone reads. */
	rc = meta_err(mdb_reader_check(me->env, &dead));
	if (rc < 0)
		goto out;
	if (dead > 0)
		log_warn("meta", "cleared %d stale reader slot(s) in %s", dead, dir);

	rc = meta_err(mdb_txn_begin(me->env, NULL, 0, &txn));
	if (rc < 0)
		goto out;
	for (int t = 0; t < META_T_COUNT; t++) {
		rc = meta_err(mdb_dbi_open(txn, meta_table_names[t], MDB_CREATE, &me->dbi[t]));
		if (rc < 0) {
			mdb_txn_abort(txn);
			goto out;
		}
	}
	rc = meta_err(mdb_txn_commit(txn));
	if (rc < 0)
		goto out;
	log_debug("meta", "opened %s: map %zu bytes, %u readers", dir, map, readers);
	*out = me;
	me = NULL;
out:
	meta_close(me);
	return rc;
}

void meta_close(struct meta_env *env)
{
	if (!env)
		return;
	if (env->env)
		mdb_env_close(env->env);
	free(env);
}

static int meta_txn_wrap(struct meta_env *env, MDB_txn *t, bool write, struct meta_txn *parent,
			 struct meta_txn **out)
{
	struct meta_txn *txn = calloc(1, sizeof(*txn));

	if (!txn) {
		mdb_txn_abort(t);
		return -ENOMEM;
	}
	txn->t = t;
	txn->env = env;
	txn->write = write;
	txn->parent = parent;
	if (parent)
		parent->child = txn;
	*out = txn;
	return 0;
}

int meta_txn_begin(struct meta_env *env, bool write, struct meta_txn **out)
{
	MDB_txn *t = NULL;
	int rc;

	*out = NULL;
	rc = mdb_txn_begin(env->env, NULL, write ? 0 : MDB_RDONLY, &t);
	if (rc == MDB_MAP_RESIZED) {
		/* Another process grew the map: adopt its size and retry. */
		rc = mdb_env_set_mapsize(env->env, 0);
		if (rc == 0)
			rc = mdb_txn_begin(env->env, NULL, write ? 0 : MDB_RDONLY, &t);
	}
	if (rc != 0)
		return meta_err(rc);
	return meta_txn_wrap(env, t, write, NULL, out);
}

int meta_txn_begin_child(struct meta_txn *parent, struct meta_txn **out)
{
	MDB_txn *t = NULL;
	int rc;

	*out = NULL;
	if (!parent || !parent->write || parent->child)
		return CAIRN_EINVAL;
	rc = mdb_txn_begin(parent->env->env, parent->t, 0, &t);
	if (rc != 0)
		return meta_err(rc);
	return meta_txn_wrap(parent->env, t, true, parent, out);
}

/* Closes the LMDB side of every cursor of txn (they stay allocated, dead). */
static void meta_txn_kill_cursors(struct meta_txn *txn)
{
	for (struct meta_cursor *c = txn->cursors; c; c = c->next) {
		if (c->c)
			mdb_cursor_close(c->c);
		c->c = NULL;
		c->txn = NULL;
	}
	txn->cursors = NULL;
}

/* Shared end of commit and abort: a live child is aborted first (ending a
 * parent before its child is a caller bug, but must not corrupt memory). */
static void meta_txn_detach(struct meta_txn *txn)
{
	if (txn->child) {
		log_err("meta", "transaction ended with a live child; aborting the child");
		meta_txn_abort(txn->child);
	}
	meta_txn_kill_cursors(txn);
	if (txn->parent)
		txn->parent->child = NULL;
}

int meta_txn_commit(struct meta_txn *txn)
{
	int rc;

	if (!txn)
		return CAIRN_EINVAL;
	meta_txn_detach(txn);
	/* mdb_txn_commit frees the handle even when it fails. */
	rc = meta_err(mdb_txn_commit(txn->t));
	free(txn);
	return rc;
}

void meta_txn_abort(struct meta_txn *txn)
{
	if (!txn)
		return;
	meta_txn_detach(txn);
	mdb_txn_abort(txn->t);
	free(txn);
}

bool meta_txn_is_write(const struct meta_txn *txn)
{
	return txn && txn->write;
}

int meta_get(struct meta_txn *txn, enum meta_table t, const void *key, size_t klen,
	     const void **val, size_t *vlen)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
	MDB_val v = {0};
	int rc;

	if ((unsigned)t >= META_T_COUNT || meta_check_key(klen) < 0)
		return CAIRN_EINVAL;
	rc = meta_err(mdb_get(txn->t, txn->env->dbi[t], &k, &v));
	if (rc < 0)
		return rc;
	if (val)
		*val = v.mv_data;
	if (vlen)
		*vlen = v.mv_size;
	return 0;
}

int meta_put(struct meta_txn *txn, enum meta_table t, const void *key, size_t klen, const void *val,
	     size_t vlen, unsigned flags)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key};
	MDB_val v = {.mv_size = vlen, .mv_data = (void *)val};

	if ((unsigned)t >= META_T_COUNT || meta_check_key(klen) < 0 || !txn->write)
		return CAIRN_EINVAL;
	return meta_err(mdb_put(txn->t, txn->env->dbi[t], &k, &v,
				(flags & META_NOOVERWRITE) ? MDB_NOOVERWRITE : 0));
}

int meta_del(struct meta_txn *txn, enum meta_table t, const void *key, size_t klen)
{
	MDB_val k = {.mv_size = klen, .mv_data = (void *)key};

	if ((unsigned)t >= META_T_COUNT || meta_check_key(klen) < 0 || !txn->write)
		return CAIRN_EINVAL;
	return meta_err(mdb_del(txn->t, txn->env->dbi[t], &k, NULL));
}

int meta_cursor_open(struct meta_txn *txn, enum meta_table t, struct meta_cursor **out)
{
	struct meta_cursor *c;
	int rc;

	*out = NULL;
	if (!txn || (unsigned)t >= META_T_COUNT)
		return CAIRN_EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	rc = meta_err(mdb_cursor_open(txn->t, txn->env->dbi[t], &c->c));
	if (rc < 0) {
		free(c);
		return rc;
	}
	c->txn = txn;
	c->next = txn->cursors;
	if (txn->cursors)
		txn->cursors->prev = c;
	txn->cursors = c;
	*out = c;
	return 0;
}

void meta_cursor_close(struct meta_cursor *c)
{
	if (!c)
		return;
	if (c->txn) {
		if (c->prev)
			c->prev->next = c->next;
		else
			c->txn->cursors = c->next;
		if (c->next)
			c->next->prev = c->prev;
	}
	if (c->c)
		mdb_cursor_close(c->c);
	free(c);
}

static int meta_cursor_get(struct meta_cursor *c, MDB_val *k, MDB_val *v, MDB_cursor_op op)
{
	if (!c || !c->c)
		return CAIRN_EINVAL;
	return meta_err(mdb_cursor_get(c->c, k, v, op));
}

static void meta_cursor_out(const MDB_val *mk, const MDB_val *mv, const void **k, size_t *kl,
			    const void **v, size_t *vl)
{
	if (k)
		*k = mk->mv_data;
	if (kl)
		*kl = mk->mv_size;
	if (v)
		*v = mv->mv_data;
	if (vl)
		*vl = mv->mv_size;
}

int meta_cursor_seek(struct meta_cursor *c, const void *key, size_t klen, const void **k,
		     size_t *kl, const void **v, size_t *vl)
{
	MDB_val mk = {.mv_size = klen, .mv_data = (void *)key};
	MDB_val mv = {0};
	int rc;

	if (klen > META_KEY_MAX)
		return CAIRN_EINVAL;
	rc = meta_cursor_get(c, &mk, &mv, klen ? MDB_SET_RANGE : MDB_FIRST);
	if (rc == 0)
		meta_cursor_out(&mk, &mv, k, kl, v, vl);
	return rc;
}

int meta_cursor_next(struct meta_cursor *c, const void **k, size_t *kl, const void **v, size_t *vl)
{
	MDB_val mk = {0}, mv = {0};
	int rc = meta_cursor_get(c, &mk, &mv, MDB_NEXT);

	if (rc == 0)
		meta_cursor_out(&mk, &mv, k, kl, v, vl);
	return rc;
}

int meta_cursor_prev(struct meta_cursor *c, const void **k, size_t *kl, const void **v, size_t *vl)
{
	MDB_val mk = {0}, mv = {0};
	int rc = meta_cursor_get(c, &mk, &mv, MDB_PREV);

	if (rc == 0)
		meta_cursor_out(&mk, &mv, k, kl, v, vl);
	return rc;
}

/* SET_RANGE finds the first key >= key; if it is not equal, the answer is
 * the one before it; if there is none, the answer is the last key. */
int meta_cursor_seek_le(struct meta_cursor *c, const void *key, size_t klen, const void **k,
			size_t *kl, const void **v, size_t *vl)
{
	MDB_val mk = {.mv_size = klen, .mv_data = (void *)key};
	MDB_val mv = {0};
	int rc;

	if (klen > META_KEY_MAX)
		return CAIRN_EINVAL;
	if (klen == 0) {
		rc = meta_cursor_get(c, &mk, &mv, MDB_LAST);
		goto out;
	}
	rc = meta_cursor_get(c, &mk, &mv, MDB_SET_RANGE);
	if (rc == CAIRN_ENOTFOUND) {
		rc = meta_cursor_get(c, &mk, &mv, MDB_LAST);
		goto out;
	}
	if (rc < 0)
		goto out;
	if (mk.mv_size == klen && memcmp(mk.mv_data, key, klen) == 0)
		goto out;
	rc = meta_cursor_get(c, &mk, &mv, MDB_PREV);
out:
	if (rc == 0)
		meta_cursor_out(&mk, &mv, k, kl, v, vl);
	return rc;
}

int meta_cursor_del(struct meta_cursor *c)
{
	if (!c || !c->c || !c->txn->write)
		return CAIRN_EINVAL;
	return meta_err(mdb_cursor_del(c->c, 0));
}

int meta_usage(struct meta_env *env, uint64_t *used_bytes, uint64_t *map_bytes)
{
	MDB_envinfo info;
	MDB_stat st;
	int rc;

	rc = meta_err(mdb_env_info(env->env, &info));
	if (rc == 0)
		rc = meta_err(mdb_env_stat(env->env, &st));
	if (rc < 0)
		return rc;
	/* Pages up to the last one used; freed pages inside are reused by
	 * LMDB, so this is the high-water mark of the file, not live data. */
	if (used_bytes)
		*used_bytes = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	if (map_bytes)
		*map_bytes = info.me_mapsize;
	return 0;
}

int meta_live_bytes(struct meta_env *env, uint64_t *live_bytes, uint64_t *map_bytes)
{
	MDB_envinfo info;
	MDB_stat st;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	uint64_t free_pages = 0;
	int rc = meta_err(mdb_env_info(env->env, &info));
	if (rc == 0)
		rc = meta_err(mdb_env_stat(env->env, &st));
	if (rc < 0)
		return rc;
	rc = meta_err(mdb_txn_begin(env->env, NULL, MDB_RDONLY, &txn));
	if (rc < 0)
		return rc;
	/* dbi 0 is LMDB's free list: each value is an ID list whose first
	 * element counts the page numbers that follow. */
	rc = meta_err(mdb_cursor_open(txn, 0, &cur));
	if (rc < 0)
		goto out;
	int mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	while (mrc == 0) {
		if (v.mv_size >= sizeof(size_t)) {
			size_t n;
			memcpy(&n, v.mv_data, sizeof(n));
			free_pages += n;
		}
		mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (mrc != MDB_NOTFOUND)
		rc = meta_err(mrc);
	uint64_t pages = (uint64_t)info.me_last_pgno + 1;
	if (free_pages > pages)
		free_pages = pages;
	if (live_bytes)
		*live_bytes = (pages - free_pages) * st.ms_psize;
	if (map_bytes)
		*map_bytes = info.me_mapsize;
out:
	if (cur)
		mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc;
}
