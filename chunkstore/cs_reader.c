/* chunkstore/cs_reader.c - reading a manifest's bytes.
 *
 * A read finds the manifest record covering its offset (a range seek),
 * resolves the locations of that record's chunks (chunk index + stripe
 * record) in one short read transaction, ends it, then reads the chunks:
 * one contiguous O_DIRECT read per chunk (the 4 KiB-aligned range around
 * its record), several in one io_batch. Every chunk is verified (header
 * CRC, payload CRC, fingerprint); a bad or missing copy is replaced by the
 * unit's next copy (the open stripe's replicas on D[k..k+m)). A chunk of a
 * sealed stripe has one copy; when it fails, only its 4 KiB-aligned range is
 * rebuilt from the same range of k other units (cs_ec_read_range) and
 * verified the same way. A read that still fails looks its record up
 * again once: the stripe may have been sealed since (its replicas gone). A
 * zstd chunk is decompressed (after its CRC verified) when the caller first
 * touches it.
 *
 * The locations of the current records (up to CS_RRECS x 32 chunks) and a
 * window of up to CS_RSLOTS chunks / CS_RWIN bytes read are cached, so
 * sequential reads cost one short read txn per CS_RRECS records and one
 * batched read per window; a read that continues the previous one reads
 * ahead a full window.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chunkstore/cs_comp.h"
#include "chunkstore/cs_internal.h"
#include "core/hash.h"
#include "core/io.h"
#include "core/log.h"

/* A batched read covers up to CS_RSLOTS chunks and CS_RWIN bytes: 2 MiB at
 * 64 KiB chunks, ~2 MiB at 16 KiB CDC chunks (fewer bytes per batch stall the
 * stream between batches: measured 447 MiB/s at 32 x 16 KiB per batch). The
 * locations of up to CS_RRECS manifest records are resolved at once. */
#define CS_RSLOTS 128
#define CS_RWIN (2u << 20)
#define CS_RRECS 4
#define CS_RLOCS (CS_RRECS * CS_MENT_PER_REC)
#define CS_RFDS CS_RSLOTS

struct cs_rloc {
	uint64_t off; /* logical offset */
	uint32_t len;
	uint8_t flags;
	uint8_t compression;
	uint8_t fp[CS_FP_LEN];
	uint64_t stripe_id;
	uint32_t part;
	uint32_t unit, offset, stored_len, crc;
	uint32_t devs[CS_MAX_FRAGS]; /* copies of the unit: D[unit], D[k..k+m) */
	unsigned ncopies;
	bool sealed;	    /* the stripe has parity: rebuild instead of copies */
	struct cs_sview sv; /* the stripe, for a rebuild */
};

struct cs_rslot {
	bool valid;
	uint64_t off; /* logical offset of the chunk held */
	uint8_t *buf; /* own aligned buffer, for reads of other copies */
	size_t cap;
	bool staged;	     /* data points into r->stage (valid until the next fill) */
	const uint8_t *data; /* stored payload inside buf */
	uint8_t comp;	     /* enum cs_compress of the payload */
	uint32_t stored_len;
};

struct cs_rfd {
	uint64_t hash; /* of path: most lookups are told apart by it */
	char path[CS_PATH_MAX];
	int fd;
	uint64_t used; /* LRU stamp */
};

/* A rebuilt range of a lost data unit of a sealed stripe (degraded reads):
 * one read of the survivors rebuilds every lost unit over the range, and
 * the chunks that follow are served from here (each still verified). At
 * most CS_RCACHE ranges of up to a unit each, made only when degraded. */
#define CS_RCACHE 6
struct cs_rcache {
	uint8_t *buf; /* [lo, hi) of the unit's data area; NULL: empty */
	uint64_t stripe_id;
	uint32_t unit;
	uint64_t lo, hi;
	uint64_t used; /* LRU stamp */
};

struct cs_reader {
	struct cs_pool *pool;
	struct cs_mid mid;
	uint32_t part;
	uint64_t size;
	uint8_t *inline_bytes; /* CS_MHDR_INLINE */
	bool is_inline;
	/* the cached manifest records (consecutive) */
	uint64_t rec_start, rec_end;
	struct cs_rloc *locs; /* [CS_RLOCS] */
	unsigned nlocs;
	struct cs_rslot slots[CS_RSLOTS];
	size_t slot_len;
	uint8_t *stage; /* first reads of a window (stage_len) */
	size_t stage_len;
	struct cs_rfd *fds; /* [CS_RFDS], made on the first chunk read (an inline
			     * object never needs them) */
	uint64_t fd_clock;
	struct io_ctx *io;
	uint64_t last_end; /* end of the previous read (sequential detection) */
	/* the last compressed chunk read, decompressed (chunk_cap bytes) */
	ZSTD_DCtx *dctx;
	uint8_t *raw;
	uint64_t raw_off;
	bool raw_valid;
	struct cs_rcache rc[CS_RCACHE];
	uint64_t rc_clock;
	bool seq;		/* the current read continues the previous one */
	uint64_t epoch;		/* cs_epoch_enter ticket */
	uint64_t warned_stripe; /* the last unit whose failure was logged */
	uint32_t warned_unit;
};

int cs_reader_open(struct cs_pool *pool, const struct cs_mid *mid, struct cs_reader **out)
{
	struct meta_txn *txn = NULL;
	struct cs_reader *r = calloc(1, sizeof(*r));
	uint8_t key[4 + CS_MID_LEN];
	const void *v;
	size_t vl;
	int rc;

	*out = NULL;
	if (!r)
		return -ENOMEM;
	r->pool = pool;
	r->epoch = cs_epoch_enter(pool);
	r->mid = *mid;
	r->part = cs_mid_part(pool, mid);
	r->last_end = UINT64_MAX;
	rc = meta_txn_begin(pool->meta, false, &txn);
	if (rc < 0)
		goto out;
	size_t kl = cs_key_mhdr(key, r->part, mid);
	rc = meta_get(txn, META_T_MHDR, key, kl, &v, &vl);
	if (rc < 0)
		goto out;
	struct cs_mhdr_rec h;
	if (vl < sizeof(h)) {
		rc = CAIRN_ECORRUPT;
		goto out;
	}
	memcpy(&h, v, sizeof(h));
	if (h.version > CS_MHDR_VERSION) {
		rc = CAIRN_EFORMAT;
		goto out;
	}
	if (h.flags & CS_MHDR_DOOMED) {
		/* GC marked it: it is deleted once the readers opened before
		 * the mark have left, so no new reader may start. */
		rc = CAIRN_ENOTFOUND;
		goto out;
	}
	r->size = h.size;
	if (h.flags & CS_MHDR_INLINE) {
		if (vl != sizeof(h) + h.size) {
			rc = CAIRN_ECORRUPT;
			goto out;
		}
		r->is_inline = true;
		r->inline_bytes = malloc(h.size + 1);
		if (!r->inline_bytes) {
			rc = -ENOMEM;
			goto out;
		}
		memcpy(r->inline_bytes, (const uint8_t *)v + sizeof(h), h.size);
	}
out:
	meta_txn_abort(txn);
	if (rc < 0) {
		cs_reader_free(r);
		return rc;
	}
	*out = r;
	return 0;
}

uint64_t cs_reader_size(const struct cs_reader *r)
{
	return r->size;
}

void cs_reader_free(struct cs_reader *r)
{
	if (!r)
		return;
	for (unsigned i = 0; i < CS_RSLOTS; i++)
		io_free(r->slots[i].buf);
	io_free(r->stage);
	for (unsigned i = 0; i < CS_RCACHE; i++)
		io_free(r->rc[i].buf);
	for (unsigned i = 0; r->fds && i < CS_RFDS; i++)
		if (r->fds[i].fd >= 0)
			io_close(r->fds[i].fd);
	free(r->fds);
	io_ctx_free(r->io);
	free(r->locs);
	free(r->inline_bytes);
	ZSTD_freeDCtx(r->dctx);
	free(r->raw);
	cs_epoch_exit(r->pool, r->epoch);
	free(r);
}

/* Loads the manifest record covering pos and up to nrec - 1 records after
 * it, and their chunks' locations, in one short read transaction. */
static int cs_load_record(struct cs_reader *r, uint64_t pos, unsigned nrec)
{
	struct cs_pool *pool = r->pool;
	struct meta_txn *txn = NULL;
	struct meta_cursor *cur = NULL;
	uint8_t key[4 + CS_MID_LEN + 8];
	const void *k, *v;
	size_t kl, vl;
	unsigned n = 0;
	uint64_t off = 0, start = 0;
	int rc;

	if (!r->locs) {
		r->locs = calloc(CS_RLOCS, sizeof(*r->locs));
		if (!r->locs)
			return -ENOMEM;
	}
	if (nrec > CS_RRECS)
		nrec = CS_RRECS;
	r->nlocs = 0;
	r->rec_start = r->rec_end = 0;
	rc = meta_txn_begin(pool->meta, false, &txn);
	if (rc < 0)
		return rc;
	rc = meta_cursor_open(txn, META_T_MANIFESTS, &cur);
	if (rc < 0)
		goto out;
	size_t skl = cs_key_ment(key, r->part, &r->mid, pos);
	for (unsigned rec = 0; rec < nrec; rec++) {
		if (rec == 0) {
			rc = meta_cursor_seek_le(cur, key, skl, &k, &kl, &v, &vl);
			if (rc == CAIRN_ENOTFOUND ||
			    (rc == 0 && (kl != skl || memcmp(k, key, skl - 8) != 0))) {
				rc = CAIRN_ECORRUPT;
				goto out;
			}
		} else {
			rc = meta_cursor_next(cur, &k, &kl, &v, &vl);
			if (rc == CAIRN_ENOTFOUND ||
			    (rc == 0 && (kl != skl || memcmp(k, key, skl - 8) != 0))) {
				rc = 0; /* the manifest's last record */
				break;
			}
		}
		if (rc < 0)
			goto out;
		struct cs_ment_rec_hdr rh;
		if (vl < sizeof(rh)) {
			rc = CAIRN_ECORRUPT;
			goto out;
		}
		memcpy(&rh, v, sizeof(rh));
		if (rh.version > CS_MENT_VERSION) {
			rc = CAIRN_EFORMAT;
			goto out;
		}
		if (rh.count == 0 || rh.count > CS_MENT_PER_REC ||
		    vl != sizeof(rh) + (size_t)rh.count * sizeof(struct cs_ment)) {
			rc = CAIRN_ECORRUPT;
			goto out;
		}
		uint64_t roff = meta_get_be64((const uint8_t *)k + skl - 8);
		if (rec == 0)
			start = off = roff;
		else if (roff != off) {
			rc = CAIRN_ECORRUPT;
			goto out;
		}
		const uint8_t *ents = (const uint8_t *)v + sizeof(rh);
		for (unsigned i = 0; i < rh.count; i++) {
			struct cs_ment e;
			memcpy(&e, ents + i * sizeof(e), sizeof(e));
			struct cs_rloc *l = &r->locs[n++];
			memset(l, 0, offsetof(struct cs_rloc, devs));
			l->off = off;
			l->len = e.len;
			l->flags = e.flags;
			memcpy(l->fp, e.fp, CS_FP_LEN);
			off += e.len;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		struct cs_rloc *l = &r->locs[i];
		if (l->flags & CS_MENT_ZERO)
			continue;
		uint8_t ck[4 + CS_FP_LEN];
		size_t ckl = cs_key_chunk(ck, cs_chunk_part(pool, l->fp), l->fp);
		struct cs_chunk_rec c;
		rc = meta_get(txn, META_T_CHUNKS, ck, ckl, &v, &vl);
		if (rc == 0 && vl < sizeof(c))
			rc = CAIRN_ECORRUPT;
		if (rc < 0)
			goto lost;
		memcpy(&c, v, sizeof(c));
		if (c.version > CS_CHUNK_VERSION) {
			rc = CAIRN_EFORMAT;
			goto out;
		}
		l->compression = c.compression;
		l->stripe_id = c.stripe_id;
		l->unit = c.unit;
		l->offset = c.offset;
		l->stored_len = c.stored_len;
		l->crc = c.crc32c;
		if (c.raw_len != l->len) {
			rc = CAIRN_ECORRUPT;
			goto lost;
		}
		uint8_t sk[12];
		l->part = cs_stripe_part(pool, c.stripe_id);
		cs_key_stripe(sk, l->part, c.stripe_id);
		struct cs_stripe_rec s;
		rc = meta_get(txn, META_T_STRIPES, sk, sizeof(sk), &v, &vl);
		if (rc == 0 && vl < sizeof(s))
			rc = CAIRN_ECORRUPT;
		if (rc < 0)
			goto lost;
		memcpy(&s, v, sizeof(s));
		if (s.version > CS_STRIPE_VERSION) {
			rc = CAIRN_EFORMAT;
			goto out;
		}
		if (c.unit >= s.k || (unsigned)s.k + s.m > CS_MAX_FRAGS) {
			rc = CAIRN_ECORRUPT;
			goto lost;
		}
		l->devs[0] = s.devs[c.unit];
		l->ncopies = 1;
		/* Open stripes keep replicas of every data unit on D[k..k+m);
		 * sealed ones have parity there instead. */
		l->sealed = s.state == CS_STRIPE_SEALED;
		if (s.state == CS_STRIPE_OPEN)
			for (unsigned j = 0; j < s.m; j++)
				l->devs[l->ncopies++] = s.devs[s.k + j];
		if (l->sealed) {
			l->sv.id = c.stripe_id;
			l->sv.part = l->part;
			l->sv.rec = s;
		}
	}
	r->nlocs = n;
	r->rec_start = start;
	r->rec_end = off;
	if (pos < start || pos >= off)
		rc = CAIRN_ECORRUPT;
	goto out;
lost:
	if (rc == CAIRN_ENOTFOUND)
		rc = CAIRN_ECORRUPT;
	log_err(CS_TAG, "manifest record at %llu: chunk location: %s", (unsigned long long)pos,
		cairn_strerror(rc));
out:
	meta_cursor_close(cur);
	meta_txn_abort(txn);
	if (rc < 0)
		r->nlocs = 0, r->rec_start = r->rec_end = 0;
	return rc;
}

/* Unit file fds, least recently used evicted. A batch has at most
 * CS_RFDS requests, so an fd it uses is never evicted under it. */
static uint64_t cs_path_hash(const char *p)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	while (*p)
		h = (h ^ (uint8_t)*p++) * 0x100000001b3ull;
	return h;
}

static int cs_rfd_get(struct cs_reader *r, const char *path)
{
	uint64_t hash = cs_path_hash(path);
	if (!r->fds) {
		r->fds = malloc(CS_RFDS * sizeof(*r->fds));
		if (!r->fds)
			return -ENOMEM;
		for (unsigned i = 0; i < CS_RFDS; i++)
			r->fds[i] = (struct cs_rfd){.fd = -1};
	}
	struct cs_rfd *victim = &r->fds[0];
	for (unsigned i = 0; i < CS_RFDS; i++) {
		struct cs_rfd *s = &r->fds[i];
		if (s->fd >= 0 && s->hash == hash && !strcmp(s->path, path)) {
			s->used = ++r->fd_clock;
			return s->fd;
		}
		/* an empty slot first, else the least recently used */
		if (victim->fd >= 0 && (s->fd < 0 || s->used < victim->used))
			victim = s;
	}
	int fd = io_open(path, O_RDONLY | O_DIRECT | O_CLOEXEC, 0);
	if (fd < 0)
		return fd;
	if (victim->fd >= 0)
		io_close(victim->fd);
	snprintf(victim->path, sizeof(victim->path), "%s", path);
	victim->fd = fd;
	victim->hash = hash;
	victim->used = ++r->fd_clock;
	return fd;
}

static int cs_rfd_get_cb(void *arg, const char *path)
{
	return cs_rfd_get(arg, path);
}

static void cs_rfd_drop(struct cs_reader *r, int fd)
{
	for (unsigned i = 0; r->fds && i < CS_RFDS; i++)
		if (r->fds[i].fd == fd) {
			io_close(fd);
			r->fds[i].fd = -1;
		}
}

/* Prepares the read of copy c of a chunk into slot s; returns 0 or < 0 when
 * that copy cannot even be opened. */
/* The fd of copy c of a chunk's unit. */
static int cs_copy_fd(struct cs_reader *r, const struct cs_rloc *l, unsigned c)
{
	char dir[CS_PATH_MAX], path[CS_PATH_MAX];
	int rc = cs_unit_path(r->pool, l->devs[c], l->stripe_id, l->part, l->unit, dir, sizeof(dir),
			      path, sizeof(path));
	if (rc < 0)
		return rc;
	return cs_rfd_get(r, path);
}

static int cs_prep_read(struct cs_reader *r, const struct cs_rloc *l, unsigned c,
			struct cs_rslot *s, struct io_req *req)
{
	int fd = cs_copy_fd(r, l, c);
	if (fd < 0)
		return fd;
	uint64_t foff = CS_UNIT_HDR_SIZE + (uint64_t)l->offset;
	uint64_t a0 = cs_align_down(foff, CS_BLOCK);
	uint64_t a1 = cs_align_up(foff + sizeof(struct cs_chunk_hdr) + l->stored_len, CS_BLOCK);
	if (a1 - a0 > s->cap)
		return CAIRN_ECORRUPT;
	*req = (struct io_req){.op = IO_READ, .fd = fd, .buf = s->buf, .len = a1 - a0, .off = a0};
	s->data = s->buf + (foff - a0) + sizeof(struct cs_chunk_hdr);
	return 0;
}

/* data: the payload, right after its record header. */
static bool cs_verify_data(const struct cs_rloc *l, const uint8_t *data)
{
	struct cs_chunk_hdr h;
	memcpy(&h, data - sizeof(h), sizeof(h));
	uint32_t hc = h.hdr_crc;
	h.hdr_crc = 0;
	if (h.magic != CS_CHUNK_MAGIC || h.version > 1 || crc32c(0, &h, sizeof(h)) != hc)
		return false;
	if (h.stored_len != l->stored_len || h.raw_len != l->len ||
	    h.compression != l->compression || memcmp(h.fp, l->fp, CS_FP_LEN) != 0)
		return false;
	uint32_t pc = crc32c(0, data, h.stored_len);
	return pc == h.payload_crc && pc == l->crc;
}

/* A slot's own buffer, for a chunk read alone (another copy, a rebuild):
 * sized to the chunk in 16 KiB steps. */
static int cs_slot_reserve(struct cs_reader *r, struct cs_rslot *s, size_t need)
{
	if (s->cap >= need)
		return 0;
	io_free(s->buf);
	s->cap = cs_align_up(need, 16384);
	if (s->cap > r->slot_len)
		s->cap = r->slot_len;
	s->buf = io_alloc(s->cap);
	if (!s->buf) {
		s->cap = 0;
		return -ENOMEM;
	}
	return s->cap >= need ? 0 : CAIRN_ECORRUPT;
}

/* Bytes of the 4 KiB-aligned read of a chunk's record. */
static size_t cs_read_need(const struct cs_rloc *l)
{
	uint64_t foff = CS_UNIT_HDR_SIZE + (uint64_t)l->offset;
	return (size_t)(cs_align_up(foff + sizeof(struct cs_chunk_hdr) + l->stored_len, CS_BLOCK) -
			cs_align_down(foff, CS_BLOCK));
}

static bool cs_verify(const struct cs_rloc *l, const struct io_req *req, const struct cs_rslot *s)
{
	return req->result == (long)req->len && cs_verify_data(l, s->data);
}

struct cs_rebuild_ok {
	const struct cs_rloc *l;
	size_t skip; /* payload offset in the rebuilt range */
};

static bool cs_rebuild_ok(void *arg, const uint8_t *range)
{
	const struct cs_rebuild_ok *a = arg;
	return cs_verify_data(a->l, range + a->skip);
}

static int cs_rfd_get_cb(void *arg, const char *path);

/* The chunk's block range [a0, a1) in its unit's data area. */
static void cs_chunk_range(const struct cs_rloc *l, uint64_t *a0, uint64_t *a1)
{
	uint64_t foff = (uint64_t)l->offset;
	*a0 = cs_align_down(foff, CS_BLOCK);
	*a1 = cs_align_up(foff + sizeof(struct cs_chunk_hdr) + l->stored_len, CS_BLOCK);
}

static struct cs_rcache *cs_rcache_find(struct cs_reader *r, const struct cs_rloc *l, uint64_t a0,
					uint64_t a1)
{
	for (unsigned i = 0; i < CS_RCACHE; i++) {
		struct cs_rcache *c = &r->rc[i];
		if (c->buf && c->stripe_id == l->stripe_id && c->unit == l->unit && c->lo <= a0 &&
		    a1 <= c->hi) {
			c->used = ++r->rc_clock;
			return c;
		}
	}
	return NULL;
}

/* Takes ownership of buf. */
static void cs_rcache_put(struct cs_reader *r, uint64_t stripe_id, uint32_t unit, uint64_t lo,
			  uint64_t hi, uint8_t *buf)
{
	struct cs_rcache *v = &r->rc[0];
	for (unsigned i = 0; i < CS_RCACHE; i++) {
		struct cs_rcache *c = &r->rc[i];
		if (!c->buf) {
			v = c;
			break;
		}
		if (c->used < v->used)
			v = c;
	}
	io_free(v->buf);
	*v = (struct cs_rcache){.buf = buf,
				.stripe_id = stripe_id,
				.unit = unit,
				.lo = lo,
				.hi = hi,
				.used = ++r->rc_clock};
}

/* Copies the chunk out of a cached rebuilt range into slot s; verifies. */
static bool cs_rcache_serve(const struct cs_rcache *c, const struct cs_rloc *l, uint64_t a0,
			    uint64_t a1, struct cs_rslot *s)
{
	memcpy(s->buf, c->buf + (a0 - c->lo), a1 - a0);
	s->data = s->buf + (l->offset - a0) + sizeof(struct cs_chunk_hdr);
	return cs_verify_data(l, s->data);
}

/* A sealed stripe's chunk whose unit failed: serve it from a rebuilt range,
 * or rebuild the range of its unit that the batch's chunks in that unit
 * span (and, with the same reads, that range of every other lost data
 * unit) from the stripe's other units. want[0..n): the batch. */
static bool cs_rebuild_chunk(struct cs_reader *r, const struct cs_rloc *l, struct cs_rslot *s,
			     const unsigned *want, unsigned n)
{
	uint64_t a0, a1, lo, hi;
	cs_chunk_range(l, &a0, &a1);
	if (a1 - a0 > r->slot_len)
		return false;
	struct cs_rcache *c = cs_rcache_find(r, l, a0, a1);
	if (c && cs_rcache_serve(c, l, a0, a1, s)) {
		atomic_fetch_add(&r->pool->reconstructs, 1);
		return true;
	}
	bool single = c != NULL;
	if (c) { /* rebuilt from a set with a bad survivor: drop it */
		io_free(c->buf);
		c->buf = NULL;
	}
	lo = a0;
	hi = a1;
	if (r->seq && !single) {
		/* A sequential reader will want the rest of the stripe: one
		 * read of the survivors for all of it (a unit's worth per lost
		 * unit in memory) instead of one per window. */
		lo = 0;
		hi = cs_seal_plen(&l->sv.rec);
	}
	for (unsigned q = 0; !single && q < n; q++) {
		const struct cs_rloc *o = &r->locs[want[q]];
		uint64_t b0, b1;
		if (!o->sealed || o->stripe_id != l->stripe_id || o->unit != l->unit)
			continue;
		cs_chunk_range(o, &b0, &b1);
		lo = b0 < lo ? b0 : lo;
		hi = b1 > hi ? b1 : hi;
	}
	uint8_t *buf = io_alloc(hi - lo), *extra[CS_MAX_FRAGS];
	if (!buf)
		return false;
	struct cs_rebuild_ok ok = {.l = l,
				   .skip = (size_t)(l->offset - lo) + sizeof(struct cs_chunk_hdr)};
	/* A cached range that did not verify came from a bad set of
	 * survivors: this time the chunk's range alone, verified. */
	int rc = cs_ec_read_range(r->pool, r->io, &l->sv, l->unit, lo, hi - lo, buf,
				  single ? NULL : extra, cs_rfd_get_cb, r, cs_rebuild_ok, &ok);
	if (rc < 0) {
		io_free(buf);
		return false;
	}
	for (unsigned j = 0; !single && j < l->sv.rec.k; j++)
		if (extra[j])
			cs_rcache_put(r, l->stripe_id, j, lo, hi, extra[j]);
	cs_rcache_put(r, l->stripe_id, l->unit, lo, hi, buf);
	c = cs_rcache_find(r, l, a0, a1);
	if (!c || !cs_rcache_serve(c, l, a0, a1, s))
		return false;
	atomic_fetch_add(&r->pool->reconstructs, 1);
	return true;
}

/* Reads chunks want[0..n) of the current record into the given slots; a
 * chunk whose first copy fails is retried from its other copies. */
static int cs_read_chunks(struct cs_reader *r, const unsigned *want, struct cs_rslot **slots,
			  unsigned n)
{
	struct io_req reqs[CS_RSLOTS];
	bool ok[CS_RSLOTS];
	unsigned nreq = 0, map[CS_RSLOTS];
	int rc = 0;

	if (!r->io) {
		rc = io_ctx_create(CS_RSLOTS * 2, &r->io);
		if (rc < 0) {
			r->io = NULL;
			return rc;
		}
	}
	if (!r->stage) {
		r->stage_len = CS_RWIN + r->slot_len;
		r->stage = io_alloc(r->stage_len);
		if (!r->stage)
			return -ENOMEM;
	}
	/* First copies go to the stage, chunks whose records touch or share a
	 * block in one unit file merged into one read (a writer's chunks lie
	 * back to back: one read per unit instead of one per chunk, and shared
	 * blocks read once); the slots point into it. */
	size_t used = 0;
	for (unsigned i = 0; i < n; i++) {
		ok[i] = false;
		map[i] = UINT_MAX;
		slots[i]->valid = false;
		slots[i]->staged = false;
		const struct cs_rloc *l = &r->locs[want[i]];
		if (l->compression != CS_COMP_NONE && l->compression != CS_COMP_ZSTD)
			return CAIRN_EFORMAT;
		int fd = cs_copy_fd(r, l, 0);
		if (fd < 0)
			continue;
		uint64_t foff = CS_UNIT_HDR_SIZE + (uint64_t)l->offset;
		uint64_t a0 = cs_align_down(foff, CS_BLOCK);
		uint64_t a1 =
		    cs_align_up(foff + sizeof(struct cs_chunk_hdr) + l->stored_len, CS_BLOCK);
		struct io_req *q = nreq ? &reqs[nreq - 1] : NULL;
		if (q && q->fd == fd && a0 >= q->off && a0 <= q->off + q->len &&
		    a1 >= q->off + q->len && used + (a1 - (q->off + q->len)) <= r->stage_len) {
			used += a1 - (q->off + q->len);
			q->len = a1 - q->off;
		} else if (used + (a1 - a0) <= r->stage_len) {
			reqs[nreq++] = (struct io_req){.op = IO_READ,
						       .fd = fd,
						       .buf = r->stage + used,
						       .len = a1 - a0,
						       .off = a0};
			used += a1 - a0;
			q = &reqs[nreq - 1];
		} else {
			continue; /* cannot happen (window bytes <= stage): read alone below
				   */
		}
		map[i] = nreq - 1;
		slots[i]->staged = true;
		slots[i]->data = (uint8_t *)q->buf + (foff - q->off) + sizeof(struct cs_chunk_hdr);
	}
	if (nreq)
		rc = io_batch(r->io, reqs, nreq); /* per-request results checked below */
	for (unsigned i = 0; i < n; i++) {
		if (map[i] == UINT_MAX)
			continue;
		ok[i] = cs_verify(&r->locs[want[i]], &reqs[map[i]], slots[i]);
		if (!ok[i])
			cs_rfd_drop(r, reqs[map[i]].fd);
	}
	for (unsigned i = 0; i < n; i++) {
		const struct cs_rloc *l = &r->locs[want[i]];
		if (!ok[i]) {
			/* other copies are read into the slot's own buffer */
			slots[i]->staged = false;
			rc = cs_slot_reserve(r, slots[i], cs_read_need(l));
			if (rc < 0)
				return rc;
		}
		if (!ok[i])
			atomic_fetch_add(&r->pool->read_fallbacks, 1);
		/* once per unit and reader: a lost device would log every chunk */
		if (!ok[i] && (r->warned_stripe != l->stripe_id || r->warned_unit != l->unit)) {
			r->warned_stripe = l->stripe_id;
			r->warned_unit = l->unit;
			log_warn(CS_TAG,
				 "chunk at %llu: stripe %016llx unit %u copy 0 on device %u "
				 "missing or corrupt; trying %s",
				 (unsigned long long)l->off, (unsigned long long)l->stripe_id,
				 l->unit, l->devs[0], l->sealed ? "a rebuild" : "replicas");
		}
		for (unsigned c = 1; !ok[i] && c < l->ncopies; c++) {
			struct io_req req;
			if (cs_prep_read(r, l, c, slots[i], &req) < 0)
				continue;
			rc = io_batch(r->io, &req, 1);
			ok[i] = cs_verify(l, &req, slots[i]);
			if (!ok[i])
				cs_rfd_drop(r, req.fd);
		}
		if (!ok[i] && l->sealed)
			ok[i] = cs_rebuild_chunk(r, l, slots[i], want, n);
		if (!ok[i]) {
			log_err(CS_TAG, "chunk at %llu (stripe %016llx unit %u): no copy verifies",
				(unsigned long long)l->off, (unsigned long long)l->stripe_id,
				l->unit);
			return CAIRN_ECORRUPT;
		}
		slots[i]->valid = true;
		slots[i]->off = l->off;
		slots[i]->comp = l->compression;
		slots[i]->stored_len = l->stored_len;
	}
	return 0;
}

static struct cs_rslot *cs_slot_find(struct cs_reader *r, uint64_t off)
{
	for (unsigned i = 0; i < CS_RSLOTS; i++)
		if (r->slots[i].valid && r->slots[i].off == off)
			return &r->slots[i];
	return NULL;
}

/* Makes chunk i (and, when reading ahead, the window after it up to want_last)
 * resident. */
static int cs_fill_window(struct cs_reader *r, unsigned i, unsigned last)
{
	unsigned want[CS_RSLOTS], n = 0;
	bool keep[CS_RSLOTS] = {false};
	struct cs_rslot *slots[CS_RSLOTS];

	if (!r->slot_len) {
		r->slot_len =
		    cs_align_up(r->pool->chunk_cap + sizeof(struct cs_chunk_hdr), CS_BLOCK) +
		    CS_BLOCK;
	}
	size_t bytes = 0;
	/* the stage is about to be reused: what points into it goes */
	for (unsigned j = 0; j < CS_RSLOTS; j++)
		if (r->slots[j].staged)
			r->slots[j].valid = r->slots[j].staged = false;
	for (unsigned j = i; j <= last && j < r->nlocs && j < i + CS_RSLOTS; j++) {
		if (r->locs[j].flags & CS_MENT_ZERO)
			continue;
		struct cs_rslot *s = cs_slot_find(r, r->locs[j].off);
		if (s) {
			keep[s - r->slots] = true;
			continue;
		}
		size_t need = cs_read_need(&r->locs[j]);
		if (n && bytes + need > CS_RWIN)
			break;
		bytes += need;
		want[n++] = j;
	}
	unsigned si = 0;
	for (unsigned q = 0; q < n; q++) {
		while (keep[si])
			si++;
		if (cs_read_need(&r->locs[want[q]]) > r->slot_len)
			return CAIRN_ECORRUPT;
		slots[q] = &r->slots[si++];
	}
	return n ? cs_read_chunks(r, want, slots, n) : 0;
}

/* The decompressed bytes of a compressed slot, in r->raw. Decompressed
 * lazily and once: a read of any part of the chunk pays for all of it, the
 * next read of the same chunk nothing. The payload's CRC was verified when
 * it was read, so a failure here means it was stored bad: no copy helps. */
static int cs_expand(struct cs_reader *r, const struct cs_rslot *s, uint32_t raw_len)
{
	if (r->raw_valid && r->raw_off == s->off)
		return 0;
	r->raw_valid = false;
	if (!r->dctx)
		r->dctx = ZSTD_createDCtx();
	if (!r->raw)
		r->raw = malloc(r->pool->chunk_cap);
	if (!r->dctx || !r->raw)
		return -ENOMEM;
	if (raw_len > r->pool->chunk_cap ||
	    cs_comp_expand(r->dctx, s->data, s->stored_len, r->raw, raw_len) < 0) {
		log_err(CS_TAG, "chunk at %llu: zstd payload does not decompress to %u bytes",
			(unsigned long long)s->off, raw_len);
		return CAIRN_ECORRUPT;
	}
	r->raw_off = s->off;
	r->raw_valid = true;
	return 0;
}

long cs_reader_read(struct cs_reader *r, uint64_t off, void *buf, size_t len)
{
	uint8_t *out = buf;
	if (off >= r->size || len == 0)
		return 0;
	if (len > r->size - off)
		len = (size_t)(r->size - off);
	if (len > (size_t)INT64_MAX)
		len = (size_t)INT64_MAX;
	if (r->is_inline) {
		memcpy(out, r->inline_bytes + off, len);
		return (long)len;
	}
	bool seq = off == r->last_end;
	r->seq = seq;
	size_t done = 0;
	while (done < len) {
		uint64_t pos = off + done;
		int rc;
		if (pos < r->rec_start || pos >= r->rec_end) {
			/* a stream resolves several records at once; a small
			 * random read only the one it needs */
			rc = cs_load_record(r, pos, seq || len >= CS_RWIN / 4 ? CS_RRECS : 1);
			if (rc < 0)
				return rc;
		}
		unsigned i = 0;
		while (i + 1 < r->nlocs && r->locs[i + 1].off <= pos)
			i++;
		const struct cs_rloc *l = &r->locs[i];
		size_t in = (size_t)(pos - l->off);
		size_t n = l->len - in;
		if (n > len - done)
			n = len - done;
		if (l->flags & CS_MENT_ZERO) {
			memset(out + done, 0, n);
		} else {
			struct cs_rslot *s = cs_slot_find(r, l->off);
			if (!s) {
				/* the chunks this call needs, plus read-ahead when
				 * sequential */
				unsigned last = i;
				while (last + 1 < r->nlocs && r->locs[last + 1].off < off + len)
					last++;
				if (seq || last > i)
					last = i + CS_RSLOTS - 1;
				rc = cs_fill_window(r, i, last);
				if (rc == CAIRN_ECORRUPT) {
					/* The stripe may have changed state since the
					 * lookup (sealed, replicas gone): look again,
					 * once. The record's entries are immutable, so
					 * i and last still hold. */
					rc = cs_load_record(r, r->rec_start, CS_RRECS);
					if (rc == 0)
						rc = cs_fill_window(r, i, last);
				}
				if (rc < 0)
					return rc;
				s = cs_slot_find(r, l->off);
				if (!s)
					return CAIRN_ECORRUPT;
			}
			const uint8_t *src = s->data;
			if (s->comp == CS_COMP_ZSTD) {
				rc = cs_expand(r, s, l->len);
				if (rc < 0)
					return rc;
				src = r->raw;
			}
			memcpy(out + done, src + in, n);
		}
		done += n;
	}
	r->last_end = off + done;
	return (long)done;
}
