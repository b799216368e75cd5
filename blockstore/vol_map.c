/* blockstore/vol_map.c - volumes, extent maps, snapshots, clones (metadata).
 *
 * Invariant: the bytes a view shows for a block are decided by the newest
 * record on the view's generation chain whose present or zero bit is set for
 * it, else by the parent's view at the clone's snapshot, else zeroes. Every
 * function here either keeps each live view (head, snapshots) unchanged or is
 * the one operation meant to change it (writes change the head only).
 */
#include "blockstore/vol_map.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uuid/uuid.h>

#include "core/log.h"
#include "meta/meta.h"

#define VOL_ALL_BLOCKS UINT64_MAX

/* A contiguous range of generations [lo, hi] on a view's chain. */
struct vol_range {
	uint32_t lo;
	uint32_t hi;
};

static uint64_t vol_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- keys ---- */
static size_t vol_name_key(uint8_t *k, uint32_t part, const char *name)
{
	size_t n = strlen(name);

	meta_be32(k, part);
	memcpy(k + 4, name, n);
	return 4 + n;
}

static void vol_ext_key(uint8_t *k, const uint8_t *id, uint64_t index, uint32_t gen)
{
	memcpy(k, id, VOL_ID_LEN);
	meta_be64(k + VOL_ID_LEN, index);
	meta_be32(k + VOL_ID_LEN + 8, gen);
}

static void vol_snap_key(uint8_t *k, const uint8_t *id, uint32_t gen)
{
	memcpy(k, id, VOL_ID_LEN);
	meta_be32(k + VOL_ID_LEN, gen);
}

static int vol_check_name(const char *name, size_t max)
{
	size_t n = name ? strlen(name) : 0;

	return n == 0 || n > max ? CAIRN_EINVAL : 0;
}

/* ---- volume records ---- */
static int vol_decode(const void *val, size_t vlen, uint32_t part, const char *name, size_t nlen,
		      struct vol *out)
{
	struct vol_rec r;

	if (vlen < 1)
		return CAIRN_ECORRUPT;
	if (((const uint8_t *)val)[0] > VOL_REC_VERSION)
		return CAIRN_EFORMAT;
	if (vlen < sizeof(r) || nlen > VOL_NAME_MAX)
		return CAIRN_ECORRUPT;
	memcpy(&r, val, sizeof(r));
	if (vlen != sizeof(r) + (size_t)r.njumps * sizeof(struct vol_jump_rec) ||
	    r.njumps > VOL_JUMPS_MAX)
		return CAIRN_ECORRUPT;
	memset(out, 0, sizeof(*out));
	memcpy(out->id, r.id, VOL_ID_LEN);
	out->part = part;
	memcpy(out->name, name, nlen);
	out->size = r.size;
	out->extent_size = r.extent_size;
	out->gen = r.gen;
	out->state = r.state;
	out->replicas = r.replicas;
	if ((r.flags & VOL_RECF_PARENT) && (r.flags & VOL_RECF_IMAGE))
		return CAIRN_ECORRUPT; /* vol_format.h: never both */
	out->has_parent = (r.flags & VOL_RECF_PARENT) != 0;
	out->has_base = (r.flags & VOL_RECF_IMAGE) != 0;
	memcpy(out->has_base ? out->base_mid : out->parent_id, r.parent_id, VOL_ID_LEN);
	out->parent_gen = r.parent_gen;
	out->created_ns = r.created_ns;
	out->iops_limit = r.iops_limit;
	out->bps_limit = r.bps_limit;
	out->njumps = r.njumps;
	for (unsigned i = 0; i < r.njumps; i++) {
		struct vol_jump_rec j;

		memcpy(&j, (const uint8_t *)val + sizeof(r) + i * sizeof(j), sizeof(j));
		out->jumps[i].gen = j.gen;
		out->jumps[i].prev = j.prev;
	}
	if (out->extent_size != VOL_EXTENT_SIZE)
		return CAIRN_EFORMAT;
	return 0;
}

/* Writes v's record (the volumes table; volids only when asked). */
static int vol_put(struct meta_txn *t, const struct vol *v, bool with_id, unsigned flags)
{
	uint8_t val[sizeof(struct vol_rec) + VOL_JUMPS_MAX * sizeof(struct vol_jump_rec)];
	uint8_t k[4 + VOL_NAME_MAX];
	struct vol_rec r;
	size_t kl = vol_name_key(k, v->part, v->name);
	int rc;

	memset(&r, 0, sizeof(r));
	r.version = VOL_REC_VERSION;
	r.state = v->state;
	r.replicas = v->replicas;
	r.njumps = (uint8_t)v->njumps;
	r.extent_size = v->extent_size;
	memcpy(r.id, v->id, VOL_ID_LEN);
	memcpy(r.parent_id, v->has_base ? v->base_mid : v->parent_id, VOL_ID_LEN);
	r.size = v->size;
	r.created_ns = v->created_ns;
	r.iops_limit = v->iops_limit;
	r.bps_limit = v->bps_limit;
	r.gen = v->gen;
	r.parent_gen = v->parent_gen;
	r.flags = v->has_parent ? VOL_RECF_PARENT : 0;
	if (v->has_base)
		r.flags |= VOL_RECF_IMAGE;
	memcpy(val, &r, sizeof(r));
	for (unsigned i = 0; i < v->njumps; i++) {
		struct vol_jump_rec j = {.gen = v->jumps[i].gen, .prev = v->jumps[i].prev};

		memcpy(val + sizeof(r) + i * sizeof(j), &j, sizeof(j));
	}
	rc = meta_put(t, META_T_VOLUMES, k, kl, val,
		      sizeof(r) + v->njumps * sizeof(struct vol_jump_rec), flags);
	if (rc == 0 && with_id)
		rc = meta_put(t, META_T_VOLIDS, v->id, VOL_ID_LEN, k, kl, META_NOOVERWRITE);
	return rc;
}

int vol_get(struct meta_txn *t, uint32_t part, const char *name, struct vol *out)
{
	uint8_t k[4 + VOL_NAME_MAX];
	const void *val;
	size_t vl;
	int rc;

	if (vol_check_name(name, VOL_NAME_MAX) < 0)
		return CAIRN_EINVAL;
	rc = meta_get(t, META_T_VOLUMES, k, vol_name_key(k, part, name), &val, &vl);
	if (rc < 0)
		return rc;
	return vol_decode(val, vl, part, name, strlen(name), out);
}

int vol_get_by_id(struct meta_txn *t, const uint8_t id[VOL_ID_LEN], struct vol *out)
{
	uint8_t k[4 + VOL_NAME_MAX];
	const void *val;
	size_t kl, vl;
	int rc;

	rc = meta_get(t, META_T_VOLIDS, id, VOL_ID_LEN, &val, &kl);
	if (rc < 0)
		return rc;
	if (kl < 5 || kl > sizeof(k))
		return CAIRN_ECORRUPT;
	memcpy(k, val, kl); /* the next get may move what val points at */
	rc = meta_get(t, META_T_VOLUMES, k, kl, &val, &vl);
	if (rc == CAIRN_ENOTFOUND)
		return CAIRN_ECORRUPT; /* an id without its volume */
	if (rc < 0)
		return rc;
	return vol_decode(val, vl, meta_get_be32(k), (const char *)k + 4, kl - 4, out);
}

int vol_create(struct meta_txn *t, uint32_t part, const char *name, uint64_t size,
	       const struct vol_opts *opts, struct vol *out)
{
	struct vol v;
	int rc;

	if (vol_check_name(name, VOL_NAME_MAX) < 0 || size == 0 || size % VOL_BLOCK_SIZE)
		return CAIRN_EINVAL;
	memset(&v, 0, sizeof(v));
	uuid_generate_random(v.id);
	v.part = part;
	memcpy(v.name, name, strlen(name));
	v.size = size;
	v.extent_size = VOL_EXTENT_SIZE;
	v.gen = VOL_GEN_FIRST;
	v.state = VOL_AVAILABLE;
	v.replicas = opts && opts->replicas ? (uint8_t)opts->replicas : 3;
	v.created_ns = vol_now_ns();
	v.iops_limit = opts ? opts->iops_limit : 0;
	v.bps_limit = opts ? opts->bps_limit : 0;
	rc = vol_put(t, &v, true, META_NOOVERWRITE);
	if (rc == 0 && out)
		*out = v;
	return rc;
}

int vol_set_base(struct meta_txn *t, struct vol *v, const uint8_t mid[VOL_ID_LEN])
{
	struct vol nv = *v;
	int rc;

	if (v->has_parent || v->has_base)
		return CAIRN_EINVAL;
	nv.has_base = true;
	memcpy(nv.base_mid, mid, VOL_ID_LEN);
	rc = vol_put(t, &nv, false, 0);
	if (rc == 0)
		*v = nv;
	return rc;
}

int vol_chain_base(struct meta_txn *t, const struct vol *v, bool *has, uint8_t mid[VOL_ID_LEN])
{
	struct vol p = *v;
	int rc = 0;

	for (unsigned d = 0; p.has_parent; d++) {
		if (d >= VOL_DEPTH_MAX)
			return CAIRN_ETOOBIG;
		rc = vol_get_by_id(t, p.parent_id, &p);
		if (rc == CAIRN_ENOTFOUND)
			rc = CAIRN_ECORRUPT; /* a clone outlived its parent */
		if (rc < 0)
			return rc;
	}
	*has = p.has_base;
	if (p.has_base)
		memcpy(mid, p.base_mid, VOL_ID_LEN);
	return 0;
}

/* ---- views ---- */
/* The generation ranges of the view at gen view, newest first: walking down
 * from view, a jump at gen n sends the walk to its prev instead of n-1.
 * Returns the number of ranges (at most njumps + 1). */
static unsigned vol_view_ranges(const struct vol *v, uint32_t view, struct vol_range *r)
{
	uint32_t u = view;
	unsigned n = 0;

	for (;;) {
		int j;

		for (j = (int)v->njumps - 1; j >= 0 && v->jumps[j].gen > u; j--)
			;
		if (j < 0) {
			r[n++] = (struct vol_range){.lo = 0, .hi = u};
			return n;
		}
		r[n++] = (struct vol_range){.lo = v->jumps[j].gen, .hi = u};
		u = v->jumps[j].prev;
	}
}

static bool vol_in_ranges(const struct vol_range *r, unsigned n, uint32_t g)
{
	for (unsigned i = 0; i < n; i++)
		if (g >= r[i].lo && g <= r[i].hi)
			return true;
	return false;
}

static int vol_ext_decode(const void *val, size_t vl, struct vol_ext_rec *e)
{
	if (vl < 1)
		return CAIRN_ECORRUPT;
	if (((const uint8_t *)val)[0] > VOL_EXT_VERSION)
		return CAIRN_EFORMAT;
	if (vl != sizeof(*e))
		return CAIRN_ECORRUPT;
	memcpy(e, val, sizeof(*e));
	if (e->present & e->zero)
		return CAIRN_ECORRUPT;
	return 0;
}

/* Resolves the blocks in *undecided of one extent of volume id over the given
 * generation ranges (newest first) into out->blk at depth, clearing the
 * decided ones from *undecided. One seek per range, then prev; stops early once
 * every block is decided. */
static int vol_resolve_own(struct meta_txn *t, const uint8_t *id, const struct vol_range *r,
			   unsigned nr, uint64_t index, uint8_t depth, uint64_t *undecided,
			   struct vol_resolved *out)
{
	struct meta_cursor *c = NULL;
	uint8_t key[VOL_EXT_KEY_LEN];
	int rc;

	rc = meta_cursor_open(t, META_T_EXTENTS, &c);
	if (rc < 0)
		goto out;
	for (unsigned i = 0; i < nr && *undecided; i++) {
		const void *k, *val;
		size_t kl, vl;

		vol_ext_key(key, id, index, r[i].hi);
		rc = meta_cursor_seek_le(c, key, sizeof(key), &k, &kl, &val, &vl);
		while (rc == 0 && *undecided) {
			struct vol_ext_rec e;
			uint32_t g;
			uint64_t bits;

			if (kl != VOL_EXT_KEY_LEN || memcmp(k, key, VOL_ID_LEN + 8) != 0)
				break;
			g = meta_get_be32((const uint8_t *)k + VOL_ID_LEN + 8);
			if (g < r[i].lo)
				break;
			rc = vol_ext_decode(val, vl, &e);
			if (rc < 0)
				goto out;
			bits = (e.present | e.zero) & *undecided;
			for (uint64_t m = bits; m; m &= m - 1) {
				unsigned b = (unsigned)__builtin_ctzll(m);

				out->blk[b].kind =
				    (e.present >> b & 1) ? VOL_BLK_WRITTEN : VOL_BLK_ZERO;
				out->blk[b].depth = depth;
				out->blk[b].gen = g;
			}
			out->written |= e.present & bits;
			out->zero |= e.zero & bits;
			*undecided &= ~bits;
			rc = meta_cursor_prev(c, &k, &kl, &val, &vl);
		}
		if (rc == CAIRN_ENOTFOUND)
			rc = 0;
		if (rc < 0)
			goto out;
	}
out:
	meta_cursor_close(c);
	return rc;
}

/* The blocks of extent index inside a volume of size bytes. */
static uint64_t vol_size_mask(uint64_t size, uint64_t index)
{
	uint64_t first = index * VOL_BLOCKS, nblocks = size / VOL_BLOCK_SIZE;

	if (nblocks <= first)
		return 0;
	if (nblocks - first >= VOL_BLOCKS)
		return VOL_ALL_BLOCKS;
	return (1ull << (nblocks - first)) - 1;
}

int vol_map_resolve(struct meta_txn *t, const struct vol *v, uint32_t view_gen, uint64_t index,
		    struct vol_resolved *out)
{
	struct vol_range r[VOL_JUMPS_MAX + 1];
	struct vol *p = NULL;
	const struct vol *cur = v;
	uint64_t undecided = vol_size_mask(v->size, index);
	uint32_t view = view_gen;
	uint8_t depth;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	for (depth = 0;; depth++) {
		unsigned nr = vol_view_ranges(cur, view, r);

		memcpy(out->ids[depth], cur->id, VOL_ID_LEN);
		rc = vol_resolve_own(t, cur->id, r, nr, index, depth, &undecided, out);
		if (rc < 0 || !undecided || !cur->has_parent)
			break;
		if (depth + 1 > VOL_DEPTH_MAX) {
			rc = CAIRN_ETOOBIG;
			break;
		}
		if (!p && !(p = malloc(sizeof(*p)))) {
			rc = -ENOMEM;
			break;
		}
		view = cur->parent_gen;
		rc = vol_get_by_id(t, cur->parent_id, p);
		if (rc == CAIRN_ENOTFOUND)
			rc = CAIRN_ECORRUPT; /* a clone outlived its parent */
		if (rc < 0)
			break;
		cur = p;
	}
	/* What no record of the chain decides reads its root's base. */
	if (rc == 0 && undecided && cur->has_base) {
		for (uint64_t m = undecided; m; m &= m - 1) {
			unsigned b = (unsigned)__builtin_ctzll(m);

			out->blk[b].kind = VOL_BLK_BASE;
			out->blk[b].depth = depth;
			out->blk[b].gen = 0;
		}
		out->base = undecided;
		memcpy(out->base_mid, cur->base_mid, VOL_ID_LEN);
	}
	free(p);
	return rc;
}

/* ---- writes ---- */
static int vol_write_ext(struct meta_txn *t, const struct vol *v, uint64_t index, uint32_t off,
			 uint32_t len, enum vol_write_kind kind, struct vol_write_out *out)
{
	uint8_t key[VOL_EXT_KEY_LEN];
	struct vol_ext_rec e;
	const void *val;
	size_t vl;
	unsigned first = off / VOL_BLOCK_SIZE, last = (off + len - 1) / VOL_BLOCK_SIZE;
	uint64_t covered, partial = 0, whole;
	bool have;
	int rc;

	memset(out, 0, sizeof(*out));
	out->gen = v->gen;
	covered = (last == 63 ? VOL_ALL_BLOCKS : (1ull << (last + 1)) - 1) & ~((1ull << first) - 1);
	if (off % VOL_BLOCK_SIZE)
		partial |= 1ull << first;
	if ((off + len) % VOL_BLOCK_SIZE)
		partial |= 1ull << last;
	whole = covered & ~partial;
	rc = vol_map_resolve(t, v, v->gen, index, &out->prior);
	if (rc < 0)
		return rc;
	vol_ext_key(key, v->id, index, v->gen);
	rc = meta_get(t, META_T_EXTENTS, key, sizeof(key), &val, &vl);
	have = rc == 0;
	if (rc == 0)
		rc = vol_ext_decode(val, vl, &e);
	else if (rc == CAIRN_ENOTFOUND)
		rc = 0;
	if (rc < 0)
		return rc;
	if (!have) {
		memset(&e, 0, sizeof(e));
		e.version = VOL_EXT_VERSION;
		e.gen = v->gen;
	}
	for (uint64_t m = partial; m; m &= m - 1) {
		unsigned b = (unsigned)__builtin_ctzll(m);
		const struct vol_blk *pb = &out->prior.blk[b];

		if ((pb->kind == VOL_BLK_WRITTEN && !(pb->depth == 0 && pb->gen == v->gen)) ||
		    pb->kind == VOL_BLK_BASE)
			out->copyup |= 1ull << b;
		else if (pb->kind != VOL_BLK_WRITTEN)
			out->fill |= 1ull << b;
	}
	if (kind == VOL_ZERO) {
		/* Nothing to record when the blocks read zero already and the
		 * head has no record that could say otherwise. */
		if (!partial && !have && !((out->prior.written | out->prior.base) & whole))
			return 0;
		e.zero |= whole;
		e.present &= ~whole;
		out->write = partial;
	} else {
		out->write = covered;
	}
	e.present |= out->write;
	e.zero &= ~out->write;
	out->record = true;
	return meta_put(t, META_T_EXTENTS, key, sizeof(key), &e, sizeof(e), 0);
}

int vol_map_write(struct meta_txn *t, const struct vol *v, uint64_t index, uint32_t off,
		  uint32_t len, enum vol_write_kind kind, struct vol_write_out *out)
{
	if (len == 0 || off >= VOL_EXTENT_SIZE || len > VOL_EXTENT_SIZE - off ||
	    (kind != VOL_WRITE && kind != VOL_ZERO) || index >= v->size / VOL_EXTENT_SIZE + 1 ||
	    index * VOL_EXTENT_SIZE + off + len > v->size)
		return CAIRN_EINVAL;
	return vol_write_ext(t, v, index, off, len, kind, out);
}

/* ---- snapshots ---- */
static int vol_snap_decode(const void *k, size_t kl, const void *val, size_t vl,
			   struct vol_snap *out)
{
	struct vol_snap_rec r;

	if (kl != VOL_SNAP_KEY_LEN || vl < 1)
		return CAIRN_ECORRUPT;
	if (((const uint8_t *)val)[0] > VOL_SNAP_VERSION)
		return CAIRN_EFORMAT;
	if (vl < sizeof(r))
		return CAIRN_ECORRUPT;
	memcpy(&r, val, sizeof(r));
	if (vl != sizeof(r) + r.name_len || r.name_len > VOL_SNAP_NAME_MAX)
		return CAIRN_ECORRUPT;
	memset(out, 0, sizeof(*out));
	out->gen = meta_get_be32((const uint8_t *)k + VOL_ID_LEN);
	memcpy(out->name, (const uint8_t *)val + sizeof(r), r.name_len);
	out->created_ns = r.created_ns;
	out->size = r.size;
	out->nclones = r.nclones;
	return 0;
}

static int vol_snap_put(struct meta_txn *t, const uint8_t *id, const struct vol_snap *s)
{
	uint8_t val[sizeof(struct vol_snap_rec) + VOL_SNAP_NAME_MAX];
	uint8_t k[VOL_SNAP_KEY_LEN];
	struct vol_snap_rec r;
	size_t n = strlen(s->name);

	memset(&r, 0, sizeof(r));
	r.version = VOL_SNAP_VERSION;
	r.name_len = (uint8_t)n;
	r.nclones = s->nclones;
	r.created_ns = s->created_ns;
	r.size = s->size;
	memcpy(val, &r, sizeof(r));
	memcpy(val + sizeof(r), s->name, n);
	vol_snap_key(k, id, s->gen);
	return meta_put(t, META_T_SNAPS, k, sizeof(k), val, sizeof(r) + n, 0);
}

int vol_snapshot_list(struct meta_txn *t, const struct vol *v,
		      int (*fn)(const struct vol_snap *s, void *arg), void *arg)
{
	struct meta_cursor *c = NULL;
	const void *k, *val;
	size_t kl, vl;
	int rc;

	rc = meta_cursor_open(t, META_T_SNAPS, &c);
	if (rc < 0)
		goto out;
	rc = meta_cursor_seek(c, v->id, VOL_ID_LEN, &k, &kl, &val, &vl);
	while (rc == 0 && kl >= VOL_ID_LEN && memcmp(k, v->id, VOL_ID_LEN) == 0) {
		struct vol_snap s;

		rc = vol_snap_decode(k, kl, val, vl, &s);
		if (rc == 0)
			rc = fn(&s, arg);
		if (rc != 0)
			goto out;
		rc = meta_cursor_next(c, &k, &kl, &val, &vl);
	}
	if (rc == CAIRN_ENOTFOUND)
		rc = 0;
out:
	meta_cursor_close(c);
	return rc;
}

struct vol_find {
	const char *name;
	struct vol_snap *out;
	bool found;
};

static int vol_find_fn(const struct vol_snap *s, void *arg)
{
	struct vol_find *f = arg;

	if (strcmp(s->name, f->name) != 0)
		return 0;
	*f->out = *s;
	f->found = true;
	return 1;
}

int vol_snapshot_get(struct meta_txn *t, const struct vol *v, const char *name,
		     struct vol_snap *out)
{
	struct vol_find f = {.name = name, .out = out};
	int rc;

	if (vol_check_name(name, VOL_SNAP_NAME_MAX) < 0)
		return CAIRN_EINVAL;
	rc = vol_snapshot_list(t, v, vol_find_fn, &f);
	if (rc < 0)
		return rc;
	return f.found ? 0 : CAIRN_ENOTFOUND;
}

int vol_snapshot_create(struct meta_txn *t, struct vol *v, const char *name, struct vol_snap *out)
{
	struct vol_snap s;
	struct vol nv = *v;
	int rc;

	rc = vol_snapshot_get(t, v, name, &s);
	if (rc == 0)
		return CAIRN_EEXISTS;
	if (rc != CAIRN_ENOTFOUND)
		return rc;
	if (v->gen == UINT32_MAX)
		return CAIRN_ETOOBIG;
	memset(&s, 0, sizeof(s));
	s.gen = v->gen;
	memcpy(s.name, name, strlen(name));
	s.created_ns = vol_now_ns();
	s.size = v->size;
	rc = vol_snap_put(t, v->id, &s);
	if (rc < 0)
		return rc;
	nv.gen++;
	rc = vol_put(t, &nv, false, 0);
	if (rc < 0)
		return rc;
	*v = nv;
	if (out)
		*out = s;
	return 0;
}

/* The live views of v: the head and every snapshot (O(snapshots)). */
struct vol_views {
	uint32_t *gen;
	unsigned n;
	unsigned cap;
};

static int vol_views_fn(const struct vol_snap *s, void *arg)
{
	struct vol_views *w = arg;

	if (w->n == w->cap) {
		unsigned cap = w->cap ? w->cap * 2 : 16;
		uint32_t *g = realloc(w->gen, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		w->gen = g;
		w->cap = cap;
	}
	w->gen[w->n++] = s->gen;
	return 0;
}

static int vol_views_load(struct meta_txn *t, const struct vol *v, struct vol_views *w)
{
	int rc;

	w->n = 0;
	rc = vol_views_fn(&(struct vol_snap){.gen = v->gen}, w);
	if (rc == 0)
		rc = vol_snapshot_list(t, v, vol_views_fn, w);
	return rc;
}

static void vol_views_free(struct vol_views *w)
{
	if (w)
		free(w->gen);
	free(w);
}

/* Drops the jumps no live view's walk reaches (they only served views that
 * are gone). O(views x jumps). */
static void vol_prune_jumps(struct vol *v, const struct vol_views *w)
{
	bool used[VOL_JUMPS_MAX] = {false};
	struct vol_range r[VOL_JUMPS_MAX + 1];
	unsigned n = 0;

	for (unsigned i = 0; i < w->n; i++) {
		unsigned nr = vol_view_ranges(v, w->gen[i], r);

		for (unsigned k = 0; k < nr; k++)
			for (unsigned j = 0; j < v->njumps; j++)
				if (v->jumps[j].gen == r[k].lo)
					used[j] = true;
	}
	for (unsigned j = 0; j < v->njumps; j++)
		if (used[j])
			v->jumps[n++] = v->jumps[j];
	v->njumps = n;
}

int vol_rollback(struct meta_txn *t, struct vol *v, const char *snap_name)
{
	struct vol_views *w = NULL;
	struct vol_snap s;
	struct vol nv = *v;
	int rc;

	rc = vol_snapshot_get(t, v, snap_name, &s);
	if (rc < 0)
		goto out;
	if (v->gen == UINT32_MAX) {
		rc = CAIRN_ETOOBIG;
		goto out;
	}
	w = calloc(1, sizeof(*w));
	if (!w) {
		rc = -ENOMEM;
		goto out;
	}
	nv.gen = v->gen + 1;
	rc = vol_views_load(t, &nv, w);
	if (rc < 0)
		goto out;
	if (nv.njumps == VOL_JUMPS_MAX) {
		vol_prune_jumps(&nv, w);
		if (nv.njumps == VOL_JUMPS_MAX) {
			rc = CAIRN_ETOOBIG;
			goto out;
		}
	}
	nv.jumps[nv.njumps++] = (struct vol_jump){.gen = nv.gen, .prev = s.gen};
	vol_prune_jumps(&nv, w);
	nv.size = s.size;
	rc = vol_put(t, &nv, false, 0);
	if (rc == 0)
		*v = nv;
out:
	vol_views_free(w);
	return rc;
}

static int vol_clone_depth(struct meta_txn *t, const struct vol *v, unsigned *depth)
{
	struct vol p = *v;
	unsigned d = 0;
	int rc = 0;

	while (p.has_parent && d <= VOL_DEPTH_MAX) {
		rc = vol_get_by_id(t, p.parent_id, &p);
		if (rc < 0)
			return rc;
		d++;
	}
	*depth = d;
	return 0;
}

int vol_clone(struct meta_txn *t, const struct vol *v, const char *snap_name, uint32_t part,
	      const char *new_name, struct vol *out)
{
	struct vol c;
	struct vol_snap s;
	unsigned depth;
	int rc;

	rc = vol_snapshot_get(t, v, snap_name, &s);
	if (rc < 0)
		return rc;
	rc = vol_clone_depth(t, v, &depth);
	if (rc < 0)
		return rc;
	if (depth + 1 > VOL_DEPTH_MAX)
		return CAIRN_ETOOBIG;
	{
		struct vol_opts o = {.replicas = v->replicas,
				     .iops_limit = v->iops_limit,
				     .bps_limit = v->bps_limit};

		rc = vol_create(t, part, new_name, s.size, &o, &c);
	}
	if (rc < 0)
		return rc;
	c.has_parent = true;
	memcpy(c.parent_id, v->id, VOL_ID_LEN);
	c.parent_gen = s.gen;
	rc = vol_put(t, &c, false, 0);
	if (rc < 0)
		return rc;
	s.nclones++;
	rc = vol_snap_put(t, v->id, &s);
	if (rc == 0 && out)
		*out = c;
	return rc;
}

/* Collects the extent indexes of v that have a record at gen (all records
 * when gen is 0), ascending and without repeats. */
static int vol_collect(struct meta_txn *t, const struct vol *v, uint32_t gen, uint64_t **idx,
		       size_t *n)
{
	struct meta_cursor *c = NULL;
	const void *k, *val;
	size_t kl, vl, cap = 0;
	int rc;

	*idx = NULL;
	*n = 0;
	rc = meta_cursor_open(t, META_T_EXTENTS, &c);
	if (rc < 0)
		goto out;
	rc = meta_cursor_seek(c, v->id, VOL_ID_LEN, &k, &kl, &val, &vl);
	while (rc == 0 && kl == VOL_EXT_KEY_LEN && memcmp(k, v->id, VOL_ID_LEN) == 0) {
		uint64_t i = meta_get_be64((const uint8_t *)k + VOL_ID_LEN);
		uint32_t g = meta_get_be32((const uint8_t *)k + VOL_ID_LEN + 8);

		if ((gen == 0 || g == gen) && (*n == 0 || (*idx)[*n - 1] != i)) {
			if (*n == cap) {
				uint64_t *ni = realloc(*idx, (cap ? cap * 2 : 64) * sizeof(*ni));

				if (!ni) {
					rc = -ENOMEM;
					goto out;
				}
				*idx = ni;
				cap = cap ? cap * 2 : 64;
			}
			(*idx)[(*n)++] = i;
		}
		rc = meta_cursor_next(c, &k, &kl, &val, &vl);
	}
	if (rc == CAIRN_ENOTFOUND)
		rc = 0;
out:
	meta_cursor_close(c);
	if (rc < 0) {
		free(*idx);
		*idx = NULL;
		*n = 0;
	}
	return rc;
}

int vol_snapshot_delete(struct meta_txn *t, struct vol *v, const char *name)
{
	struct vol_range r[VOL_JUMPS_MAX + 1];
	struct vol_range *dep = NULL; /* per dependent view: its ranges above s */
	unsigned *ndep = NULL, nviews = 0;
	struct vol_views *w = NULL;
	uint8_t k[VOL_SNAP_KEY_LEN];
	uint64_t *idx = NULL;
	size_t nidx = 0;
	struct vol_snap s;
	struct vol nv = *v;
	int rc;

	rc = vol_snapshot_get(t, v, name, &s);
	if (rc < 0)
		goto out;
	if (s.nclones) {
		rc = -EBUSY;
		goto out;
	}
	vol_snap_key(k, v->id, s.gen);
	rc = meta_del(t, META_T_SNAPS, k, sizeof(k));
	if (rc < 0)
		goto out;
	w = calloc(1, sizeof(*w));
	if (!w) {
		rc = -ENOMEM;
		goto out;
	}
	rc = vol_views_load(t, v, w);
	if (rc < 0)
		goto out;
	/* The views that still read through s: their chain ranges above s. */
	dep = calloc(w->n, sizeof(r));
	ndep = calloc(w->n, sizeof(*ndep));
	if (!dep || !ndep) {
		rc = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < w->n; i++) {
		unsigned nr = vol_view_ranges(v, w->gen[i], r), m = 0;
		struct vol_range *d = dep + (size_t)nviews * (VOL_JUMPS_MAX + 1);

		if (w->gen[i] <= s.gen || !vol_in_ranges(r, nr, s.gen))
			continue;
		for (unsigned j = 0; j < nr && r[j].hi > s.gen; j++)
			d[m++] = (struct vol_range){.lo = r[j].lo > s.gen ? r[j].lo : s.gen + 1,
						    .hi = r[j].hi};
		ndep[nviews++] = m;
	}
	rc = vol_collect(t, v, s.gen, &idx, &nidx);
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < nidx; i++) {
		uint8_t ek[VOL_EXT_KEY_LEN];
		struct vol_resolved tmp;
		struct vol_ext_rec e;
		const void *val;
		size_t vl;
		uint64_t dead;

		vol_ext_key(ek, v->id, idx[i], s.gen);
		rc = meta_get(t, META_T_EXTENTS, ek, sizeof(ek), &val, &vl);
		if (rc == 0)
			rc = vol_ext_decode(val, vl, &e);
		if (rc < 0)
			goto out;
		dead = e.present | e.zero;
		for (unsigned d = 0; d < nviews && dead; d++) {
			uint64_t undecided = VOL_ALL_BLOCKS;

			memset(&tmp, 0, sizeof(tmp));
			rc = vol_resolve_own(t, v->id, dep + (size_t)d * (VOL_JUMPS_MAX + 1),
					     ndep[d], idx[i], 0, &undecided, &tmp);
			if (rc < 0)
				goto out;
			dead &= ~undecided; /* blocks this view decides above s */
		}
		e.present &= ~dead;
		e.zero &= ~dead;
		if (!(e.present | e.zero))
			rc = meta_del(t, META_T_EXTENTS, ek, sizeof(ek));
		else if (dead)
			rc = meta_put(t, META_T_EXTENTS, ek, sizeof(ek), &e, sizeof(e), 0);
		if (rc < 0)
			goto out;
	}
	vol_prune_jumps(&nv, w);
	if (nv.njumps != v->njumps) {
		rc = vol_put(t, &nv, false, 0);
		if (rc < 0)
			goto out;
	}
	*v = nv;
out:
	free(idx);
	free(dep);
	free(ndep);
	vol_views_free(w);
	return rc;
}

/* ---- delete, resize ---- */
static int vol_del_prefix(struct meta_txn *t, enum meta_table tab, const uint8_t *id)
{
	struct meta_cursor *c = NULL;
	const void *k, *val;
	size_t kl, vl;
	int rc;

	rc = meta_cursor_open(t, tab, &c);
	if (rc < 0)
		goto out;
	rc = meta_cursor_seek(c, id, VOL_ID_LEN, &k, &kl, &val, &vl);
	while (rc == 0 && kl >= VOL_ID_LEN && memcmp(k, id, VOL_ID_LEN) == 0) {
		rc = meta_cursor_del(c);
		if (rc == 0)
			rc = meta_cursor_seek(c, id, VOL_ID_LEN, &k, &kl, &val, &vl);
	}
	if (rc == CAIRN_ENOTFOUND)
		rc = 0;
out:
	meta_cursor_close(c);
	return rc;
}

struct vol_del_scan {
	unsigned snaps;
	unsigned clones;
};

static int vol_del_fn(const struct vol_snap *s, void *arg)
{
	struct vol_del_scan *d = arg;

	d->snaps++;
	d->clones += s->nclones;
	return 0;
}

/* A clone lets go of its parent snapshot: the snapshot's clone count
 * drops by one (a missing snapshot or a count of 0 is corruption). */
static int snap_release_clone(struct meta_txn *t, const struct vol *v)
{
	uint8_t sk[VOL_SNAP_KEY_LEN];
	struct vol_snap s;
	const void *val;
	size_t vl;
	int rc;
	vol_snap_key(sk, v->parent_id, v->parent_gen);
	rc = meta_get(t, META_T_SNAPS, sk, sizeof(sk), &val, &vl);
	if (rc == 0)
		rc = vol_snap_decode(sk, sizeof(sk), val, vl, &s);
	if (rc == CAIRN_ENOTFOUND)
		rc = CAIRN_ECORRUPT;
	if (rc < 0)
		return rc;
	if (s.nclones == 0)
		return CAIRN_ECORRUPT;
	s.nclones--;
	return vol_snap_put(t, v->parent_id, &s);
}

int vol_delete(struct meta_txn *t, struct vol *v, bool force)
{
	struct vol_del_scan d = {0};
	uint8_t k[4 + VOL_NAME_MAX];
	int rc;

	if (v->state == VOL_ATTACHED)
		return -EBUSY;
	rc = vol_snapshot_list(t, v, vol_del_fn, &d);
	if (rc < 0)
		return rc;
	if (d.clones)
		return -EBUSY;
	if (d.snaps && !force)
		return CAIRN_ENOTEMPTY;
	if (v->has_parent) {
		struct vol p;
		rc = vol_get_by_id(t, v->parent_id, &p);
		if (rc == CAIRN_ENOTFOUND)
			rc = CAIRN_ECORRUPT;
		if (rc == 0)
			rc = snap_release_clone(t, v);
		if (rc < 0)
			return rc;
	}
	rc = vol_del_prefix(t, META_T_SNAPS, v->id);
	if (rc == 0)
		rc = vol_del_prefix(t, META_T_EXTENTS, v->id);
	if (rc == 0)
		rc = meta_del(t, META_T_VOLIDS, v->id, VOL_ID_LEN);
	if (rc == 0)
		rc = meta_del(t, META_T_VOLUMES, k, vol_name_key(k, v->part, v->name));
	return rc;
}

int vol_resize(struct meta_txn *t, struct vol *v, uint64_t size, bool force)
{
	struct vol nv = *v;
	int rc = 0;

	if (size == 0 || size % VOL_BLOCK_SIZE)
		return CAIRN_EINVAL;
	if (size < v->size && !force)
		return CAIRN_EINVAL;
	/* Shrinking: the cut-off blocks read zero from the head on, so a later
	 * grow never shows them again; snapshots keep them. */
	for (uint64_t off = size; off < v->size && rc == 0;) {
		uint64_t index = off / VOL_EXTENT_SIZE;
		uint32_t eo = (uint32_t)(off % VOL_EXTENT_SIZE);
		uint64_t end = (index + 1) * (uint64_t)VOL_EXTENT_SIZE;
		struct vol_write_out wo;

		if (end > v->size)
			end = v->size;
		rc = vol_write_ext(t, v, index, eo, (uint32_t)(end - off), VOL_ZERO, &wo);
		off = end;
	}
	if (rc < 0)
		return rc;
	nv.size = size;
	rc = vol_put(t, &nv, false, 0);
	if (rc == 0)
		*v = nv;
	return rc;
}

int vol_set_state(struct meta_txn *t, struct vol *v, enum vol_state state)
{
	struct vol nv = *v;
	int rc;

	if (state != VOL_AVAILABLE && state != VOL_ATTACHED && state != VOL_DELETING)
		return CAIRN_EINVAL;
	nv.state = (uint8_t)state;
	rc = vol_put(t, &nv, false, 0);
	if (rc == 0)
		*v = nv;
	return rc;
}

int vol_set_qos(struct meta_txn *t, struct vol *v, uint64_t iops_limit, uint64_t bps_limit)
{
	struct vol nv = *v;
	int rc;

	nv.iops_limit = iops_limit;
	nv.bps_limit = bps_limit;
	rc = vol_put(t, &nv, false, 0);
	if (rc == 0)
		*v = nv;
	return rc;
}

/* ---- diff ---- */
struct vol_diff_run {
	uint64_t off;
	uint64_t len;
	bool zero;
	int (*fn)(uint64_t off, uint64_t len, bool zero, void *arg);
	void *arg;
};

static int vol_diff_emit(struct vol_diff_run *d, uint64_t off, bool zero)
{
	int rc = 0;

	if (d->len && d->off + d->len == off && d->zero == zero) {
		d->len += VOL_BLOCK_SIZE;
		return 0;
	}
	if (d->len)
		rc = d->fn(d->off, d->len, d->zero, d->arg);
	d->off = off;
	d->len = VOL_BLOCK_SIZE;
	d->zero = zero;
	return rc;
}

static bool vol_blk_same(const struct vol_resolved *a, const struct vol_resolved *b, unsigned i)
{
	const struct vol_blk *x = &a->blk[i], *y = &b->blk[i];

	/* Base blocks of two views of one volume read the same manifest. */
	if (x->kind == VOL_BLK_BASE || y->kind == VOL_BLK_BASE)
		return x->kind == y->kind;
	if (x->kind != VOL_BLK_WRITTEN || y->kind != VOL_BLK_WRITTEN)
		return x->kind != VOL_BLK_WRITTEN && y->kind != VOL_BLK_WRITTEN;
	return x->gen == y->gen && memcmp(a->ids[x->depth], b->ids[y->depth], VOL_ID_LEN) == 0;
}

int vol_snapshot_diff(struct meta_txn *t, const struct vol *v, const char *from, const char *to,
		      int (*fn)(uint64_t off, uint64_t len, bool zero, void *arg), void *arg)
{
	struct vol_range ra[VOL_JUMPS_MAX + 1], rb[VOL_JUMPS_MAX + 1];
	struct vol_resolved *a = NULL, *b = NULL;
	struct vol_diff_run d = {.fn = fn, .arg = arg};
	struct meta_cursor *c = NULL;
	uint64_t *idx = NULL;
	size_t nidx = 0, cap = 0;
	unsigned na = 0, nb;
	uint32_t ga = 0, gb = v->gen;
	struct vol_snap s;
	int rc = 0;

	if (from) {
		rc = vol_snapshot_get(t, v, from, &s);
		if (rc < 0)
			goto out;
		ga = s.gen;
		na = vol_view_ranges(v, ga, ra);
	}
	if (to) {
		rc = vol_snapshot_get(t, v, to, &s);
		if (rc < 0)
			goto out;
		gb = s.gen;
	}
	nb = vol_view_ranges(v, gb, rb);
	a = calloc(1, sizeof(*a));
	b = malloc(sizeof(*b));
	if (!a || !b) {
		rc = -ENOMEM;
		goto out;
	}
	if (!from && (v->has_parent || v->has_base)) {
		/* The parent's (or base's) blocks differ from an empty volume too. */
		nidx = (v->size + VOL_EXTENT_SIZE - 1) / VOL_EXTENT_SIZE;
		idx = malloc((nidx ? nidx : 1) * sizeof(*idx));
		if (!idx) {
			rc = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < nidx; i++)
			idx[i] = i;
	} else {
		/* Extents with a record one view sees and the other does not. */
		const void *k, *val;
		size_t kl, vl;

		rc = meta_cursor_open(t, META_T_EXTENTS, &c);
		if (rc < 0)
			goto out;
		rc = meta_cursor_seek(c, v->id, VOL_ID_LEN, &k, &kl, &val, &vl);
		while (rc == 0 && kl == VOL_EXT_KEY_LEN && memcmp(k, v->id, VOL_ID_LEN) == 0) {
			uint64_t i = meta_get_be64((const uint8_t *)k + VOL_ID_LEN);
			uint32_t g = meta_get_be32((const uint8_t *)k + VOL_ID_LEN + 8);

			if ((nidx == 0 || idx[nidx - 1] != i) &&
			    vol_in_ranges(ra, na, g) != vol_in_ranges(rb, nb, g)) {
				if (nidx == cap) {
					uint64_t *ni =
					    realloc(idx, (cap ? cap * 2 : 64) * sizeof(*ni));

					if (!ni) {
						rc = -ENOMEM;
						goto out;
					}
					idx = ni;
					cap = cap ? cap * 2 : 64;
				}
				idx[nidx++] = i;
			}
			rc = meta_cursor_next(c, &k, &kl, &val, &vl);
		}
		if (rc == CAIRN_ENOTFOUND)
			rc = 0;
		meta_cursor_close(c);
		c = NULL;
		if (rc < 0)
			goto out;
	}
	for (size_t i = 0; i < nidx; i++) {
		if (from) {
			rc = vol_map_resolve(t, v, ga, idx[i], a);
			if (rc < 0)
				goto out;
		}
		rc = vol_map_resolve(t, v, gb, idx[i], b);
		if (rc < 0)
			goto out;
		for (unsigned blk = 0; blk < VOL_BLOCKS; blk++) {
			if (vol_blk_same(a, b, blk))
				continue;
			rc = vol_diff_emit(
			    &d, idx[i] * VOL_EXTENT_SIZE + (uint64_t)blk * VOL_BLOCK_SIZE,
			    b->blk[blk].kind == VOL_BLK_ZERO ||
				b->blk[blk].kind == VOL_BLK_UNWRITTEN);
			if (rc != 0)
				goto out;
		}
	}
	if (d.len)
		rc = fn(d.off, d.len, d.zero, arg);
out:
	meta_cursor_close(c);
	free(idx);
	free(a);
	free(b);
	return rc;
}

/* ---- flatten ---- */
int vol_map_put_base(struct meta_txn *t, const struct vol *v, uint64_t index, uint64_t present)
{
	if (!present)
		return CAIRN_EINVAL;
	return vol_map_put_base_zero(t, v, index, present, 0);
}

int vol_map_put_base_zero(struct meta_txn *t, const struct vol *v, uint64_t index, uint64_t present,
			  uint64_t zero)
{
	uint8_t key[VOL_EXT_KEY_LEN];
	struct vol_ext_rec e;
	const void *val;
	size_t vl;
	int rc;

	if (!(present | zero) || (present & zero) ||
	    ((present | zero) & ~vol_size_mask(v->size, index)))
		return CAIRN_EINVAL;
	vol_ext_key(key, v->id, index, 0);
	rc = meta_get(t, META_T_EXTENTS, key, sizeof(key), &val, &vl);
	if (rc == 0)
		rc = vol_ext_decode(val, vl, &e);
	if (rc == CAIRN_ENOTFOUND) {
		memset(&e, 0, sizeof(e));
		e.version = VOL_EXT_VERSION;
		e.gen = 0;
		rc = 0;
	}
	if (rc < 0)
		return rc;
	e.present |= present;
	e.zero &= ~present;
	e.zero |= zero & ~e.present;
	return meta_put(t, META_T_EXTENTS, key, sizeof(key), &e, sizeof(e), 0);
}

int vol_unparent(struct meta_txn *t, struct vol *v)
{
	struct vol nv = *v;
	int rc;

	if (!v->has_parent)
		return CAIRN_EINVAL;
	rc = snap_release_clone(t, v);
	if (rc < 0)
		return rc;
	nv.has_parent = false;
	memset(nv.parent_id, 0, VOL_ID_LEN);
	nv.parent_gen = 0;
	rc = vol_put(t, &nv, false, 0);
	if (rc == 0)
		*v = nv;
	return rc;
}
