/* chunkstore/cs_seal.c - sealing open stripes, and the erasure code.
 *
 * A stripe a worker is done with (all k units full, closed on request, or
 * abandoned after an error), and at pool open every stripe still OPEN, is
 * queued to one sealer thread. Sealing a stripe:
 *   1. cs_epoch_wait: every writer that could have records in it has
 *      committed or gone, so its committed fill is final;
 *   2. read each data unit's area up to its fill from D[i] (else from a
 *      replica, which is then written back to D[i]), verifying every chunk
 *      record, and make D[i] durable;
 *   3. compute the m parity units (ISA-L, Cauchy RS) over the data areas
 *      taken up to fill and zero beyond, and write .p<j> on D[k+j] (temp
 *      name, fdatasync, rename, directory fsync);
 *   4. commit the stripe record SEALED, with a "replicas to unlink" marker
 *      and the change of physical bytes;
 *   5. cs_epoch_wait again (readers that saw it OPEN may use replicas),
 *      unlink the replicas .u<i> on D[k..k+m), and drop the marker.
 * Invariant: at every instant the stripe is readable. Before step 4 it is
 * OPEN and the replicas are intact (parity files of an OPEN stripe are junk
 * and are rewritten); after it, it is SEALED and parity is durable. A crash
 * between 4 and 5 leaves the marker, and the next open finishes the unlink.
 * Memory: k + m unit buffers, one stripe at a time.
 */
#include <errno.h>
#include <fcntl.h>
#include <isa-l/erasure_code.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunkstore/cs_internal.h"
#include "core/fault.h"
#include "core/hash.h"
#include "core/io.h"
#include "core/log.h"
#include "ring/ring.h"

/* META_T_POOL keys "seal_unlink" + be64 stripe id: a sealed stripe whose
 * replicas may still exist. */
static const char K_UNLINK[] = "seal_unlink";
#define K_UNLINK_LEN (sizeof(K_UNLINK) - 1)

struct cs_close_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	unsigned pending;
};

/* ---- erasure code ---- */

int cs_ec_decode(unsigned k, unsigned m, const unsigned *srcs, const unsigned *targets,
		 unsigned ntargets, uint8_t **src, uint8_t **out, size_t len)
{
	uint8_t E[CS_MAX_FRAGS * CS_MAX_FRAGS], B[CS_MAX_FRAGS * CS_MAX_FRAGS];
	uint8_t D[CS_MAX_FRAGS * CS_MAX_FRAGS], C[CS_MAX_FRAGS * CS_MAX_FRAGS];
	if (k == 0 || k + m > CS_MAX_FRAGS || ntargets == 0 || ntargets > k + m || len > INT32_MAX)
		return CAIRN_EINVAL;
	gf_gen_cauchy1_matrix(E, (int)(k + m), (int)k);
	for (unsigned r = 0; r < k; r++)
		memcpy(B + r * k, E + srcs[r] * k, k);
	if (gf_invert_matrix(B, D, (int)k) != 0)
		return CAIRN_ECORRUPT;
	/* unit t = E[t] . data = E[t] . inv(E[srcs]) . sources */
	for (unsigned t = 0; t < ntargets; t++) {
		const uint8_t *row = E + targets[t] * k;
		for (unsigned c = 0; c < k; c++) {
			uint8_t v = 0;
			for (unsigned j = 0; j < k; j++)
				v ^= gf_mul(row[j], D[j * k + c]);
			C[t * k + c] = v;
		}
	}
	uint8_t *tbls = malloc(32u * k * ntargets);
	if (!tbls)
		return -ENOMEM;
	ec_init_tables((int)k, (int)ntargets, C, tbls);
	if (len)
		ec_encode_data((int)len, (int)k, (int)ntargets, tbls, src, out);
	free(tbls);
	return 0;
}

/* ---- small helpers ---- */

uint32_t cs_seal_plen(const struct cs_stripe_rec *s)
{
	uint32_t mx = 0;
	for (unsigned i = 0; i < s->k && i < CS_MAX_FRAGS; i++)
		if (s->fill[i] > mx)
			mx = s->fill[i];
	return (uint32_t)cs_align_up(mx, CS_BLOCK);
}

uint64_t cs_stripe_physical(const struct cs_stripe_rec *s)
{
	uint64_t data = 0;
	for (unsigned i = 0; i < s->k && i < CS_MAX_FRAGS; i++)
		if (s->fill[i])
			data += CS_UNIT_HDR_SIZE + (uint64_t)s->fill[i];
	if (s->state == CS_STRIPE_SEALED)
		return data + (uint64_t)s->m * (CS_UNIT_HDR_SIZE + cs_seal_plen(s));
	return data * (1u + s->m);
}

int cs_parity_path(const struct cs_pool *pool, uint32_t dev, uint64_t stripe_id, uint32_t part,
		   uint32_t j, char *dir, size_t dlen, char *path, size_t plen)
{
	int rc = cs_unit_path(pool, dev, stripe_id, part, j, dir, dlen, path, plen);
	if (rc < 0)
		return rc;
	char *dot = strrchr(path, '.');
	if (!dot || dot[1] != 'u')
		return CAIRN_EINVAL;
	dot[1] = 'p';
	return 0;
}

int cs_sunit_path(const struct cs_pool *pool, const struct cs_stripe_rec *s, uint64_t id,
		  unsigned idx, char *dir, size_t dlen, char *path, size_t plen)
{
	uint32_t part = cs_stripe_part(pool, id);
	if (idx < s->k)
		return cs_unit_path(pool, s->devs[idx], id, part, idx, dir, dlen, path, plen);
	return cs_parity_path(pool, s->devs[idx], id, part, idx - s->k, dir, dlen, path, plen);
}

void cs_unit_hdr_make(const struct cs_pool *pool, uint8_t *blk, uint64_t id, unsigned unit,
		      unsigned kind, const struct cs_stripe_rec *s)
{
	memset(blk, 0, CS_UNIT_HDR_SIZE);
	struct cs_unit_hdr h = {
	    .magic = CS_UNIT_MAGIC,
	    .version = CS_UNIT_VERSION,
	    .stripe_id = id,
	    .unit = unit,
	    .kind = (uint8_t)kind,
	    .k = s->k,
	    .m = s->m,
	    .unit_size = s->unit_size,
	    .data_offset = CS_UNIT_HDR_SIZE,
	    .created = s->created,
	};
	memcpy(h.pool_uuid, pool->rec.pool_uuid, sizeof(h.pool_uuid));
	h.hdr_crc = crc32c(0, &h, sizeof(h));
	memcpy(blk, &h, sizeof(h));
}

bool cs_unit_hdr_ok(const struct cs_pool *pool, const uint8_t *blk, uint64_t id, unsigned unit,
		    unsigned kind, const struct cs_stripe_rec *s)
{
	struct cs_unit_hdr h;
	memcpy(&h, blk, sizeof(h));
	uint32_t crc = h.hdr_crc;
	h.hdr_crc = 0;
	return h.magic == CS_UNIT_MAGIC && h.version == CS_UNIT_VERSION &&
	       crc32c(0, &h, sizeof(h)) == crc && h.stripe_id == id && h.unit == unit &&
	       h.kind == kind && h.k == s->k && h.m == s->m && h.unit_size == s->unit_size &&
	       h.data_offset == CS_UNIT_HDR_SIZE &&
	       !memcmp(h.pool_uuid, pool->rec.pool_uuid, sizeof(h.pool_uuid));
}

int cs_area_verify(const uint8_t *area, uint32_t fill, uint32_t *bad_off)
{
	uint64_t pos = 0;
	while (pos < fill) {
		struct cs_chunk_hdr h;
		uint32_t magic;
		memcpy(&magic, area + pos, sizeof(magic));
		if (magic == 0) { /* padding to the next block */
			pos = cs_align_up(pos + 1, CS_BLOCK);
			continue;
		}
		if (pos + sizeof(h) > fill)
			goto bad;
		memcpy(&h, area + pos, sizeof(h));
		uint32_t hc = h.hdr_crc;
		h.hdr_crc = 0;
		if (h.magic != CS_CHUNK_MAGIC || crc32c(0, &h, sizeof(h)) != hc ||
		    pos + sizeof(h) + h.stored_len > fill ||
		    crc32c(0, area + pos + sizeof(h), h.stored_len) != h.payload_crc)
			goto bad;
		pos = cs_align_up(pos + sizeof(h) + h.stored_len, CS_REC_ALIGN);
	}
	return 0;
bad:
	if (bad_off)
		*bad_off = (uint32_t)pos;
	return CAIRN_ECORRUPT;
}

int cs_unit_write_file(struct cs_pool *pool, struct io_ctx *io, uint32_t dev, uint32_t part,
		       const char *dir, const char *path, const uint8_t *buf, size_t len)
{
	char tmp[CS_PATH_MAX];
	uint8_t *state = NULL;
	int fd = -1;
	int rc = cs_fmt(tmp, sizeof(tmp), "%s.tmp", path);
	if (rc < 0)
		return rc;
	rc = cs_part_dir_make(pool, dev, part, dir, &state);
	if (rc < 0)
		goto out;
	fd = io_open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rc = fd;
		goto out;
	}
	if (FAULT("cs.unit_rewrite")) {
		rc = -EIO;
		goto out;
	}
	rc = io_pwrite(io, fd, buf, len, 0);
	if (rc == 0)
		rc = io_fdatasync(io, &fd, 1);
	if (rc < 0)
		goto out;
	io_close(fd);
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = -errno;
		goto out;
	}
	rc = io_fsync_dir(dir);
	if (rc == 0 && state && __atomic_load_n(state, __ATOMIC_ACQUIRE) == CS_DIR_PARENT_PENDING) {
		char parent[CS_PATH_MAX];
		snprintf(parent, sizeof(parent), "%s", dir);
		char *slash = strrchr(parent, '/');
		if (slash && slash != parent) {
			*slash = 0;
			rc = io_fsync_dir(parent);
			if (rc == 0)
				__atomic_store_n(state, CS_DIR_DURABLE, __ATOMIC_RELEASE);
		}
	}
out:
	if (fd >= 0) {
		io_close(fd);
		unlink(tmp);
	}
	if (rc < 0)
		log_err(CS_TAG, "writing %s: %s", path, cairn_strerror(rc));
	return rc;
}

/* ---- degraded reads ---- */

/* Next k-subset of [0, n) in lexicographic order; false after the last. */
static bool cs_next_subset(unsigned *c, unsigned k, unsigned n)
{
	int i = (int)k - 1;
	while (i >= 0 && c[i] == n - k + (unsigned)i)
		i--;
	if (i < 0)
		return false;
	c[i]++;
	for (unsigned j = (unsigned)i + 1; j < k; j++)
		c[j] = c[j - 1] + 1;
	return true;
}

#define CS_DECODE_TRIES 64 /* survivor sets tried before giving up */

int cs_ec_read_range(struct cs_pool *pool, struct io_ctx *io, const struct cs_sview *sv,
		     unsigned unit, uint64_t off, size_t len, uint8_t *out, uint8_t **extra,
		     int (*get_fd)(void *arg, const char *path), void *fd_arg, cs_chunk_ok_fn ok,
		     void *ok_arg)
{
	const struct cs_stripe_rec *s = &sv->rec;
	unsigned k = s->k, n = (unsigned)s->k + s->m;
	uint32_t plen = cs_seal_plen(s);
	uint8_t *bufs[CS_MAX_FRAGS] = {0};
	int fds[CS_MAX_FRAGS];
	struct io_req reqs[CS_MAX_FRAGS];
	unsigned map[CS_MAX_FRAGS], nreq = 0, cand[CS_MAX_FRAGS], ncand = 0;
	bool have[CS_MAX_FRAGS] = {false};
	char dir[CS_PATH_MAX], path[CS_PATH_MAX];
	int rc = CAIRN_ECORRUPT;

	if (n > CS_MAX_FRAGS || unit >= k || len % CS_BLOCK || off % CS_BLOCK)
		return CAIRN_EINVAL;
	if (extra)
		for (unsigned i = 0; i < k; i++)
			extra[i] = NULL;
	for (unsigned i = 0; i < n; i++)
		fds[i] = -1;
	for (unsigned idx = 0; idx < n; idx++) {
		if (idx == unit)
			continue;
		uint64_t valid = idx < k ? s->fill[idx] : plen;
		bufs[idx] = io_alloc(len); /* zeroed: what lies past valid */
		if (!bufs[idx]) {
			rc = -ENOMEM;
			goto out;
		}
		if (off >= valid) { /* nothing stored there: zeroes */
			have[idx] = true;
			continue;
		}
		if (cs_sunit_path(pool, s, sv->id, idx, dir, sizeof(dir), path, sizeof(path)) < 0)
			continue;
		int fd = get_fd ? get_fd(fd_arg, path)
				: io_open(path, O_RDONLY | O_DIRECT | O_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (!get_fd)
			fds[idx] = fd;
		/* A rebuilt unit file ends at its fill (4 KiB rounded): read
		 * only what it holds, since a read past the end fails whole. */
		struct stat st;
		if (fstat(fd, &st) < 0)
			continue;
		uint64_t held =
		    (uint64_t)st.st_size > CS_UNIT_HDR_SIZE + off
			? cs_align_down((uint64_t)st.st_size - CS_UNIT_HDR_SIZE - off, CS_BLOCK)
			: 0;
		size_t rlen = held < len ? (size_t)held : len;
		if (rlen < valid - off && rlen < len)
			continue; /* truncated: it lacks stored bytes */
		if (rlen == 0) {
			have[idx] = true;
			continue;
		}
		reqs[nreq] = (struct io_req){.op = IO_READ,
					     .fd = fd,
					     .buf = bufs[idx],
					     .len = rlen,
					     .off = CS_UNIT_HDR_SIZE + off};
		map[nreq++] = idx;
	}
	if (nreq && io_batch(io, reqs, nreq) < 0) {
		/* each request's own result is checked below */
	}
	for (unsigned q = 0; q < nreq; q++) {
		unsigned idx = map[q];
		uint64_t valid = idx < k ? s->fill[idx] : plen;
		uint64_t need = valid - off < len ? valid - off : len;
		if (reqs[q].result != (long)reqs[q].len || (uint64_t)reqs[q].result < need)
			continue;
		memset(bufs[idx] + need, 0, len - need); /* dead bytes past the fill */
		have[idx] = true;
	}
	for (unsigned idx = 0; idx < n; idx++)
		if (have[idx])
			cand[ncand++] = idx;

	if (ncand < k)
		goto out;
	/* targets: the unit asked for, then lost units with bytes here */
	unsigned tg[CS_MAX_FRAGS], nt = 1;
	uint8_t *outs[CS_MAX_FRAGS];
	tg[0] = unit;
	outs[0] = out;
	for (unsigned j = 0; extra && j < k; j++) {
		if (j == unit || have[j] || off >= s->fill[j])
			continue;
		if (!(extra[j] = io_alloc(len))) {
			rc = -ENOMEM;
			goto out;
		}
		tg[nt] = j;
		outs[nt++] = extra[j];
	}
	unsigned c[CS_MAX_FRAGS];
	for (unsigned i = 0; i < k; i++)
		c[i] = i;
	for (unsigned tries = 0; tries < CS_DECODE_TRIES; tries++) {
		unsigned srcs[CS_MAX_FRAGS];
		uint8_t *src[CS_MAX_FRAGS];
		for (unsigned i = 0; i < k; i++) {
			srcs[i] = cand[c[i]];
			src[i] = bufs[srcs[i]];
		}
		rc = cs_ec_decode(k, s->m, srcs, tg, nt, src, outs, len);
		if (rc == -ENOMEM)
			goto out;
		if (rc == 0 && ok(ok_arg, out))
			goto out;
		rc = CAIRN_ECORRUPT;
		if (!cs_next_subset(c, k, ncand))
			break;
	}
out:
	for (unsigned i = 0; i < n; i++) {
		io_free(bufs[i]);
		if (fds[i] >= 0)
			io_close(fds[i]);
	}
	for (unsigned j = 0; rc < 0 && extra && j < k; j++) {
		io_free(extra[j]);
		extra[j] = NULL;
	}
	return rc;
}

/* ---- the queue ---- */

static bool cs_held(const struct cs_pool *pool, uint64_t id)
{
	for (size_t i = 0; i < pool->seal_nheld; i++)
		if (pool->seal_held[i] == id)
			return true;
	return false;
}

static void cs_seal_push_locked(struct cs_pool *pool, uint64_t id)
{
	if (pool->seal_n == pool->seal_cap) {
		size_t cap = pool->seal_cap ? pool->seal_cap * 2 : 64;
		uint64_t *nq = realloc(pool->seal_q, cap * sizeof(*nq));
		if (!nq) {
			/* Not lost: an OPEN stripe is queued again at next open. */
			log_warn(CS_TAG, "no memory to queue stripe %016llx for sealing",
				 (unsigned long long)id);
			return;
		}
		pool->seal_q = nq;
		pool->seal_cap = cap;
	}
	pool->seal_q[pool->seal_n++] = id;
	pthread_cond_signal(&pool->seal_cv);
}

int cs_seal_hold(struct cs_pool *pool, uint64_t id)
{
	if (pool->seal_off)
		return 0;
	pthread_mutex_lock(&pool->seal_mu);
	if (pool->seal_nheld == pool->seal_heldcap) {
		size_t cap = pool->seal_heldcap ? pool->seal_heldcap * 2 : 16;
		uint64_t *nh = realloc(pool->seal_held, cap * sizeof(*nh));
		if (!nh) {
			pthread_mutex_unlock(&pool->seal_mu);
			return -ENOMEM;
		}
		pool->seal_held = nh;
		pool->seal_heldcap = cap;
	}
	pool->seal_held[pool->seal_nheld++] = id;
	pthread_mutex_unlock(&pool->seal_mu);
	return 0;
}

void cs_seal_enqueue(struct cs_pool *pool, uint64_t id)
{
	if (pool->seal_off)
		return;
	pthread_mutex_lock(&pool->seal_mu);
	for (size_t i = 0; i < pool->seal_nheld; i++)
		if (pool->seal_held[i] == id) {
			pool->seal_held[i] = pool->seal_held[--pool->seal_nheld];
			break;
		}
	cs_seal_push_locked(pool, id);
	pthread_mutex_unlock(&pool->seal_mu);
}

/* ---- sealing one stripe ---- */

struct cs_sealer {
	struct cs_pool *pool;
	struct io_ctx *io;
	uint8_t *buf[CS_MAX_FRAGS]; /* header block + unit_size, per unit */
	size_t buf_len;
};

static int cs_stripe_get(struct cs_pool *pool, uint64_t id, struct cs_stripe_rec *rec,
			 bool *pending)
{
	struct meta_txn *txn = NULL;
	uint8_t uk[K_UNLINK_LEN + 8];
	const void *v;
	size_t vl;
	int rc = meta_txn_begin(pool->meta, false, &txn);
	if (rc < 0)
		return rc;
	rc = cs_stripe_read(txn, pool, id, rec);
	if (rc == 0 && pending) {
		memcpy(uk, K_UNLINK, K_UNLINK_LEN);
		meta_be64(uk + K_UNLINK_LEN, id);
		int r2 = meta_get(txn, META_T_POOL, uk, sizeof(uk), &v, &vl);
		*pending = r2 == 0;
		if (r2 < 0 && r2 != CAIRN_ENOTFOUND)
			rc = r2;
	}
	meta_txn_abort(txn);
	return rc;
}

struct cs_seal_commit {
	uint64_t id;
	struct cs_stripe_rec expect;
};

static int cs_seal_commit_fn(struct cs_txn *t, void *arg)
{
	struct cs_seal_commit *sc = arg;
	struct cs_pool *pool = t->pool;
	struct cs_stripe_rec rec;
	uint8_t key[12], uk[K_UNLINK_LEN + 8];
	const void *v;
	size_t vl;
	cs_key_stripe(key, cs_stripe_part(pool, sc->id), sc->id);
	int rc = meta_get(t->txn, META_T_STRIPES, key, sizeof(key), &v, &vl);
	if (rc < 0)
		return rc;
	if (vl < sizeof(rec))
		return CAIRN_ECORRUPT;
	memcpy(&rec, v, sizeof(rec));
	/* Parity covers the fill it was computed over; anything else moved
	 * under us (it cannot, after the epoch wait: say so loudly). */
	if (rec.state != CS_STRIPE_OPEN || memcmp(rec.fill, sc->expect.fill, sizeof(rec.fill)))
		return -EAGAIN;
	uint64_t before = cs_stripe_physical(&rec);
	rec.state = CS_STRIPE_SEALED;
	t->d.physical_bytes += (int64_t)cs_stripe_physical(&rec) - (int64_t)before;
	rc = meta_put(t->txn, META_T_STRIPES, key, sizeof(key), &rec, sizeof(rec), 0);
	if (rc < 0)
		return rc;
	memcpy(uk, K_UNLINK, K_UNLINK_LEN);
	meta_be64(uk + K_UNLINK_LEN, sc->id);
	uint8_t one = 1;
	return meta_put(t->txn, META_T_POOL, uk, sizeof(uk), &one, 1, 0);
}

/* Reads data unit i's area (up to its fill) into buf from D[i], else from a
 * replica that verifies; a replica's bytes are written back to D[i]. D[i]
 * is made durable either way. */
static int cs_seal_read_unit(struct cs_sealer *se, uint64_t id, const struct cs_stripe_rec *s,
			     unsigned i, uint8_t *buf)
{
	struct cs_pool *pool = se->pool;
	uint32_t part = cs_stripe_part(pool, id);
	size_t len = CS_UNIT_HDR_SIZE + cs_align_up(s->fill[i], CS_BLOCK);
	char dir[CS_PATH_MAX], path[CS_PATH_MAX], dir0[CS_PATH_MAX], path0[CS_PATH_MAX];
	int rc =
	    cs_unit_path(pool, s->devs[i], id, part, i, dir0, sizeof(dir0), path0, sizeof(path0));
	if (rc < 0)
		return rc;
	for (unsigned c = 0; c <= s->m; c++) {
		uint32_t dev = c == 0 ? s->devs[i] : s->devs[s->k + c - 1];
		if (c &&
		    cs_unit_path(pool, dev, id, part, i, dir, sizeof(dir), path, sizeof(path)) < 0)
			continue;
		int fd = io_open(c ? path : path0, O_RDONLY | O_DIRECT | O_CLOEXEC, 0);
		if (fd < 0)
			continue;
		long got = io_pread(se->io, fd, buf, len, 0);
		bool good = got == (long)len && cs_unit_hdr_ok(pool, buf, id, i, CS_UNIT_DATA, s) &&
			    cs_area_verify(buf + CS_UNIT_HDR_SIZE, s->fill[i], NULL) == 0;
		if (good && c == 0) {
			rc = io_fdatasync(se->io, &fd, 1);
			if (rc == 0)
				rc = io_fsync_dir(dir0);
		}
		io_close(fd);
		if (!good) {
			log_warn(CS_TAG, "sealing stripe %016llx: copy %u of unit %u is %s",
				 (unsigned long long)id, c, i,
				 got < (long)len ? "missing or short" : "damaged");
			continue;
		}
		if (c == 0)
			return rc;
		/* D[i] lost or damaged: put the good replica's bytes there
		 * before its replicas go */
		return cs_unit_write_file(pool, se->io, s->devs[i], part, dir0, path0, buf, len);
	}
	log_err(CS_TAG, "sealing stripe %016llx: no copy of unit %u verifies; left open",
		(unsigned long long)id, i);
	return CAIRN_ECORRUPT;
}

static void cs_unlink_stripe_files(struct cs_pool *pool, uint64_t id, const uint32_t *devs,
				   unsigned k, unsigned m, bool data_too)
{
	uint32_t part = cs_stripe_part(pool, id);
	char dir[CS_PATH_MAX], path[CS_PATH_MAX];
	for (unsigned c = data_too ? 0 : 1; c <= m; c++) {
		bool any = false;
		for (unsigned i = 0; i < k; i++) {
			uint32_t dev = c == 0 ? devs[i] : devs[k + c - 1];
			if (cs_unit_path(pool, dev, id, part, i, dir, sizeof(dir), path,
					 sizeof(path)) < 0)
				continue;
			if (unlink(path) == 0)
				any = true;
			if (c == 0 && any) {
				if (io_fsync_dir(dir) < 0) {
					/* best effort: a replica back after a crash is
					 * only space, found again by scrub */
				}
				any = false;
			}
		}
		if (any && io_fsync_dir(dir) < 0) {
			/* as above; one directory per device */
		}
	}
}

/* Seals stripe id; *unlink set when its replicas are to be removed after
 * the next grace period. */
static int cs_seal_one(struct cs_sealer *se, uint64_t id, bool *unlink_after)
{
	struct cs_pool *pool = se->pool;
	struct cs_stripe_rec s;
	bool pending = false;
	*unlink_after = false;
	int rc = cs_stripe_get(pool, id, &s, &pending);
	if (rc == CAIRN_ENOTFOUND) {
		/* No writer committed a chunk into it (and none can now): its
		 * files hold dead bytes only. */
		uint32_t devs[CS_MAX_FRAGS];
		cs_stripe_devs(pool, id, devs);
		cs_unlink_stripe_files(pool, id, devs, pool->rec.k, pool->rec.m, true);
		return 0;
	}
	if (rc < 0)
		return rc;
	if (s.state == CS_STRIPE_SEALED) {
		*unlink_after = pending;
		return 0;
	}
	if (s.state != CS_STRIPE_OPEN)
		return CAIRN_ECORRUPT;
	unsigned k = s.k, m = s.m;
	uint32_t plen = cs_seal_plen(&s);
	uint32_t part = cs_stripe_part(pool, id);
	size_t need = CS_UNIT_HDR_SIZE + (size_t)s.unit_size;
	if (se->buf_len < need) {
		for (unsigned i = 0; i < CS_MAX_FRAGS; i++) {
			io_free(se->buf[i]);
			se->buf[i] = NULL;
		}
		se->buf_len = 0;
	}
	for (unsigned i = 0; i < k + m; i++)
		if (!se->buf[i] && !(se->buf[i] = io_alloc(need)))
			return -ENOMEM;
	se->buf_len = need;

	for (unsigned i = 0; i < k; i++) {
		uint8_t *b = se->buf[i];
		if (s.fill[i]) {
			rc = cs_seal_read_unit(se, id, &s, i, b);
			if (rc < 0)
				return rc;
		}
		/* the area counts up to its fill, zeroes beyond */
		memset(b + CS_UNIT_HDR_SIZE + s.fill[i], 0,
		       plen - (plen < s.fill[i] ? plen : s.fill[i]));
	}
	uint8_t *src[CS_MAX_FRAGS] = {0}, *dst[CS_MAX_FRAGS] = {0};
	unsigned srcs[CS_MAX_FRAGS] = {0}, tg[CS_MAX_FRAGS] = {0};
	for (unsigned i = 0; i < k; i++) {
		srcs[i] = i;
		src[i] = se->buf[i] + CS_UNIT_HDR_SIZE;
	}
	for (unsigned j = 0; j < m; j++) {
		tg[j] = k + j;
		dst[j] = se->buf[k + j] + CS_UNIT_HDR_SIZE;
		cs_unit_hdr_make(pool, se->buf[k + j], id, j, CS_UNIT_PARITY, &s);
	}
	rc = cs_ec_decode(k, m, srcs, tg, m, src, dst, plen);
	if (rc < 0)
		return rc;
	for (unsigned j = 0; j < m; j++) {
		char dir[CS_PATH_MAX], path[CS_PATH_MAX];
		rc = cs_parity_path(pool, s.devs[k + j], id, part, j, dir, sizeof(dir), path,
				    sizeof(path));
		if (rc == 0)
			rc = cs_unit_write_file(pool, se->io, s.devs[k + j], part, dir, path,
						se->buf[k + j], CS_UNIT_HDR_SIZE + (size_t)plen);
		if (rc < 0)
			return rc;
	}
	if (FAULT("cs.seal_parity")) /* a crash here: OPEN, junk parity */
		return -EIO;
	struct cs_seal_commit sc = {.id = id, .expect = s};
	rc = cs_commit(pool, NULL, cs_seal_commit_fn, &sc);
	if (rc < 0) {
		log_err(CS_TAG, "committing sealed stripe %016llx: %s", (unsigned long long)id,
			cairn_strerror(rc));
		return rc;
	}
	if (FAULT("cs.seal_unlink")) /* a crash here: SEALED, replicas left */
		return 0;
	*unlink_after = true;
	return 0;
}

static int cs_unlink_done_fn(struct cs_txn *t, void *arg)
{
	const uint64_t *ids = ((const uint64_t *const *)arg)[0];
	size_t n = (size_t)((const uint64_t *const *)arg)[1];
	uint8_t uk[K_UNLINK_LEN + 8];
	memcpy(uk, K_UNLINK, K_UNLINK_LEN);
	for (size_t i = 0; i < n; i++) {
		meta_be64(uk + K_UNLINK_LEN, ids[i]);
		int rc = meta_del(t->txn, META_T_POOL, uk, sizeof(uk));
		if (rc < 0 && rc != CAIRN_ENOTFOUND)
			return rc;
	}
	return 0;
}

static bool cs_seal_stopping(struct cs_pool *pool)
{
	pthread_mutex_lock(&pool->seal_mu);
	bool stop = pool->seal_stop;
	pthread_mutex_unlock(&pool->seal_mu);
	return stop;
}

static void cs_seal_batch(struct cs_sealer *se, uint64_t *ids, size_t n)
{
	struct cs_pool *pool = se->pool;
	size_t nun = 0;
	/* Writers that could have records in these stripes finish first: then
	 * each stripe's committed fill is final. */
	cs_epoch_wait(pool);
	for (size_t i = 0; i < n; i++) {
		bool dup = false;
		for (size_t j = 0; j < i && !dup; j++)
			dup = ids[j] == ids[i];
		if (dup)
			continue;
		pthread_mutex_lock(&pool->seal_mu);
		bool held = cs_held(pool, ids[i]);
		pthread_mutex_unlock(&pool->seal_mu);
		if (held)
			continue;
		bool un = false;
		/* busy before cs_seal_one reads the record: GC then cannot free
		 * the stripe under the parity writes */
		int rc = cs_stripe_busy_add(pool, ids[i]);
		if (rc == 0) {
			rc = cs_seal_one(se, ids[i], &un);
			cs_stripe_busy_del(pool, ids[i]);
		}
		if (rc < 0)
			log_warn(CS_TAG, "stripe %016llx not sealed: %s (stays open, replicated)",
				 (unsigned long long)ids[i], cairn_strerror(rc));
		if (un)
			ids[nun++] = ids[i];
		if (cs_seal_stopping(pool))
			break;
	}
	if (!nun)
		return;
	/* Readers that looked these stripes up while OPEN may still read the
	 * replicas: they leave first. */
	cs_epoch_wait(pool);
	for (size_t i = 0; i < nun; i++) {
		struct cs_stripe_rec s;
		if (cs_stripe_get(pool, ids[i], &s, NULL) < 0 || s.state != CS_STRIPE_SEALED)
			continue;
		cs_unlink_stripe_files(pool, ids[i], s.devs, s.k, s.m, false);
	}
	const void *arg[2] = {ids, (const void *)(uintptr_t)nun};
	int rc = cs_commit(pool, NULL, cs_unlink_done_fn, arg);
	if (rc < 0)
		log_warn(CS_TAG, "dropping %zu replica-unlink markers: %s (redone at next open)",
			 nun, cairn_strerror(rc));
}

static void *cs_sealer_main(void *arg)
{
	struct cs_pool *pool = arg;
	struct cs_sealer se = {.pool = pool};
	uint64_t *batch = NULL;
	size_t cap = 0;
	int io_rc = io_ctx_create(CS_WORKER_DEPTH, &se.io);
	if (io_rc < 0) {
		se.io = NULL;
		log_err(CS_TAG, "sealer: no io_uring (%s): stripes stay replicated",
			cairn_strerror(io_rc));
	}
	pthread_mutex_lock(&pool->seal_mu);
	pool->seal_err = io_rc < 0 ? io_rc : 0; /* drains must not wait for it */
	pthread_cond_broadcast(&pool->seal_idle_cv);
	for (;;) {
		if (pool->seal_stop)
			break;
		if (!pool->seal_n || !se.io) {
			pool->seal_busy = false;
			pthread_cond_broadcast(&pool->seal_idle_cv);
			pthread_cond_wait(&pool->seal_cv, &pool->seal_mu);
			continue;
		}
		if (cap < pool->seal_n) {
			uint64_t *nb = realloc(batch, pool->seal_n * sizeof(*nb));
			if (!nb) {
				pthread_mutex_unlock(&pool->seal_mu);
				usleep(1000);
				pthread_mutex_lock(&pool->seal_mu);
				continue;
			}
			batch = nb;
			cap = pool->seal_n;
		}
		size_t n = pool->seal_n;
		memcpy(batch, pool->seal_q, n * sizeof(*batch));
		pool->seal_n = 0;
		pool->seal_busy = true;
		pthread_mutex_unlock(&pool->seal_mu);
		cs_seal_batch(&se, batch, n);
		pthread_mutex_lock(&pool->seal_mu);
	}
	pool->seal_busy = false;
	pthread_cond_broadcast(&pool->seal_idle_cv);
	pthread_mutex_unlock(&pool->seal_mu);
	for (unsigned i = 0; i < CS_MAX_FRAGS; i++)
		io_free(se.buf[i]);
	io_ctx_free(se.io);
	free(batch);
	return NULL;
}

/* Queues OPEN stripes no worker holds (all of them at open), and sealed
 * ones whose replicas may still exist (a crash between commit and unlink). */
static int cs_seal_scan(struct cs_pool *pool)
{
	struct meta_txn *txn = NULL;
	struct meta_cursor *cur = NULL;
	const void *k, *v;
	size_t kl, vl;
	size_t nopen = 0, nun = 0;
	int rc = meta_txn_begin(pool->meta, false, &txn);
	if (rc < 0)
		return rc;
	rc = meta_cursor_open(txn, META_T_STRIPES, &cur);
	if (rc < 0)
		goto out;
	pthread_mutex_lock(&pool->seal_mu);
	for (rc = meta_cursor_seek(cur, "", 0, &k, &kl, &v, &vl); rc == 0;
	     rc = meta_cursor_next(cur, &k, &kl, &v, &vl)) {
		struct cs_stripe_rec s;
		if (kl != 12 || vl < sizeof(s))
			continue;
		memcpy(&s, v, sizeof(s));
		uint64_t id = meta_get_be64((const uint8_t *)k + 4);
		if (s.state == CS_STRIPE_OPEN && !cs_held(pool, id)) {
			cs_seal_push_locked(pool, id);
			nopen++;
		}
	}
	meta_cursor_close(cur);
	cur = NULL;
	if (rc == CAIRN_ENOTFOUND)
		rc = meta_cursor_open(txn, META_T_POOL, &cur);
	if (rc < 0)
		goto unlock;
	for (rc = meta_cursor_seek(cur, K_UNLINK, K_UNLINK_LEN, &k, &kl, &v, &vl); rc == 0;
	     rc = meta_cursor_next(cur, &k, &kl, &v, &vl)) {
		if (kl != K_UNLINK_LEN + 8 || memcmp(k, K_UNLINK, K_UNLINK_LEN))
			break;
		cs_seal_push_locked(pool, meta_get_be64((const uint8_t *)k + K_UNLINK_LEN));
		nun++;
	}
	if (rc == CAIRN_ENOTFOUND)
		rc = 0;
unlock:
	pthread_mutex_unlock(&pool->seal_mu);
out:
	meta_cursor_close(cur);
	meta_txn_abort(txn);
	if (rc == 0 && (nopen || nun))
		log_info(CS_TAG, "queued %zu open stripes for sealing, %zu sealed to clean up",
			 nopen, nun);
	return rc;
}

int cs_sealer_start(struct cs_pool *pool)
{
	int rc = cs_seal_scan(pool);
	if (rc < 0)
		return rc;
	rc = pthread_create(&pool->sealer, NULL, cs_sealer_main, pool);
	if (rc)
		return -rc;
	pool->seal_started = true;
	return 0;
}

void cs_sealer_stop(struct cs_pool *pool)
{
	if (pool->seal_started) {
		pthread_mutex_lock(&pool->seal_mu);
		pool->seal_stop = true;
		pthread_cond_broadcast(&pool->seal_cv);
		pthread_mutex_unlock(&pool->seal_mu);
		pthread_join(pool->sealer, NULL);
		pool->seal_started = false;
	}
	free(pool->seal_q);
	free(pool->seal_held);
	pool->seal_q = pool->seal_held = NULL;
	pool->seal_n = pool->seal_cap = pool->seal_nheld = pool->seal_heldcap = 0;
}

void cs_seal_close_done(struct cs_close_wait *cw)
{
	pthread_mutex_lock(&cw->mu);
	cw->pending--;
	pthread_cond_broadcast(&cw->cv);
	pthread_mutex_unlock(&cw->mu);
}

/* Every worker closes its open stripe (queued for sealing). */
static int cs_close_worker_stripes(struct cs_pool *pool)
{
	struct cs_close_wait cw = {.pending = 0};
	int rc = 0;
	pthread_mutex_init(&cw.mu, NULL);
	pthread_cond_init(&cw.cv, NULL);
	for (unsigned i = 0; i < pool->nstarted; i++) {
		struct cs_task *t = calloc(1, sizeof(*t));
		if (!t) {
			rc = -ENOMEM;
			break;
		}
		t->kind = CS_TASK_CLOSE;
		t->cw = &cw;
		pthread_mutex_lock(&cw.mu);
		cw.pending++;
		pthread_mutex_unlock(&cw.mu);
		struct cs_worker *wk = &pool->workers[i];
		pthread_mutex_lock(&pool->wq_mu);
		if (wk->flush_tail)
			wk->flush_tail->next = t;
		else
			wk->flush_head = t;
		wk->flush_tail = t;
		pthread_cond_broadcast(&pool->wq_cv);
		pthread_mutex_unlock(&pool->wq_mu);
	}
	pthread_mutex_lock(&cw.mu);
	while (cw.pending)
		pthread_cond_wait(&cw.cv, &cw.mu);
	pthread_mutex_unlock(&cw.mu);
	pthread_mutex_destroy(&cw.mu);
	pthread_cond_destroy(&cw.cv);
	return rc;
}

int cs_seal_close_idle(struct cs_pool *pool)
{
	if (pool->seal_off)
		return 0;
	return cs_close_worker_stripes(pool);
}

int cs_seal_drain(struct cs_pool *pool, bool close_open)
{
	int rc = 0;
	if (pool->seal_off)
		return 0;
	if (!pool->seal_started)
		return CAIRN_ESHUTDOWN;
	if (close_open) {
		rc = cs_close_worker_stripes(pool);
		if (rc == 0)
			rc = cs_seal_scan(pool);
		if (rc < 0)
			return rc;
	}
	pthread_mutex_lock(&pool->seal_mu);
	while ((pool->seal_n || pool->seal_busy) && !pool->seal_stop && !pool->seal_err)
		pthread_cond_wait(&pool->seal_idle_cv, &pool->seal_mu);
	if (pool->seal_stop)
		rc = CAIRN_ESHUTDOWN;
	else if (pool->seal_err)
		rc = pool->seal_err;
	pthread_mutex_unlock(&pool->seal_mu);
	return rc;
}
