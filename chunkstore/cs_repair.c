/* chunkstore/cs_repair.c - scrub and repair of stripes.
 *
 * Both start by sealing every stripe they can (cs_seal_drain with
 * close_open: each worker closes its open stripe and the sealer seals it;
 * sealing rewrites a lost or damaged data unit from a replica that verifies
 * and puts parity where replicas were lost), then work on sealed stripes,
 * one at a time, with two sets of k+m unit buffers.
 *  - cs_scrub reads every unit, verifies its header, every chunk record of
 *    a data unit (up to the committed fill) and parity (recomputed from the
 *    verified data), and rewrites what is damaged or missing.
 *  - cs_repair reads only the header block of each unit to find the ones
 *    missing or unreadable (a lost or replaced device folder), counts the
 *    bytes to rebuild, then rebuilds those stripes reading k survivors each
 *    (data units first: they verify on their own).
 * Invariant: a unit is rewritten only from data that verified (every chunk
 * record of every data unit checks out), through a temp file, fdatasync,
 * rename and a directory fsync, so a crash leaves the old file or the new.
 * OPEN stripes a worker opened after the drain keep m+1 copies: skipped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunkstore/cs_internal.h"
#include "core/hash.h"
#include "core/io.h"
#include "core/log.h"

struct cs_fix {
	struct cs_pool *pool;
	struct io_ctx *io;
	uint8_t *buf[CS_MAX_FRAGS]; /* units as read: header block + area */
	uint8_t *out[CS_MAX_FRAGS]; /* units rebuilt */
	size_t blen;
	struct cs_check_report *rep;
	cs_progress_fn fn;
	void *arg;
	const char *phase;
	uint64_t done, total;
	bool count_writes; /* progress counts bytes written (repair), else read */
	/* rewritten units waiting for their group's sync and rename */
	struct cs_pend *pend;
	size_t npend;
	/* stripes registered busy (GC leaves them alone) from before their
	 * record is read until their rewritten units are renamed */
	uint64_t *held;
	size_t nheld, cap_held;
};

/* A unit written to its temp name, not yet durable nor renamed. Syncs of
 * many are issued together (one device flush each would bound repair at a
 * few hundred units a second), then the renames, then each directory once. */
struct cs_pend {
	int fd;
	uint8_t *dir_state;
	uint64_t len;
	char tmp[CS_PATH_MAX], path[CS_PATH_MAX], dir[CS_PATH_MAX];
};
#define CS_PEND_MAX 32

/* Unit states while a stripe is examined. */
enum { CS_U_UNREAD = 0, CS_U_GOOD, CS_U_MISSING, CS_U_BADHDR, CS_U_SHORT, CS_U_BADDATA };

static const char *cs_ustate_name(int st)
{
	switch (st) {
	case CS_U_MISSING:
		return "missing";
	case CS_U_BADHDR:
		return "bad header";
	case CS_U_SHORT:
		return "truncated";
	case CS_U_BADDATA:
		return "damaged chunk record";
	default:
		return "?";
	}
}

__attribute__((format(printf, 2, 3))) static void cs_problem(struct cs_fix *f, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	f->rep->problems++;
	if (!f->rep->first_problem[0])
		snprintf(f->rep->first_problem, sizeof(f->rep->first_problem), "%s", msg);
	log_warn(CS_TAG, "%s", msg);
}

static void cs_progress(struct cs_fix *f)
{
	if (f->fn)
		f->fn(f->arg, f->phase, f->done, f->total);
}

static int cs_fix_bufs(struct cs_fix *f)
{
	size_t need = CS_UNIT_HDR_SIZE + (size_t)f->pool->rec.unit_size;
	for (unsigned i = 0; i < CS_MAX_FRAGS; i++) {
		if (f->buf[i] && f->blen >= need)
			continue;
		io_free(f->buf[i]);
		io_free(f->out[i]);
		f->buf[i] = f->out[i] = NULL;
	}
	unsigned n = (unsigned)f->pool->rec.k + f->pool->rec.m;
	for (unsigned i = 0; i < n; i++) {
		if (!f->buf[i])
			f->buf[i] = io_alloc(need);
		if (!f->out[i])
			f->out[i] = io_alloc(need);
		if (!f->buf[i] || !f->out[i])
			return -ENOMEM;
	}
	f->blen = need;
	return 0;
}

/* Registers a stripe busy before its record is read (cs_internal.h: GC
 * then cannot free it while units of it are rewritten). */
static int cs_fix_hold(struct cs_fix *f, uint64_t id)
{
	int rc = cs_grow((void **)&f->held, &f->cap_held, f->nheld, sizeof(*f->held));
	if (rc == 0)
		rc = cs_stripe_busy_add(f->pool, id);
	if (rc == 0)
		f->held[f->nheld++] = id;
	return rc;
}

/* Once no rewritten unit waits for its rename: the held stripes go. */
static void cs_fix_release(struct cs_fix *f, bool force)
{
	if (f->npend && !force)
		return;
	for (size_t i = 0; i < f->nheld; i++)
		cs_stripe_busy_del(f->pool, f->held[i]);
	f->nheld = 0;
}

static void cs_fix_free(struct cs_fix *f)
{
	for (size_t i = 0; i < f->npend; i++) { /* an error path: never renamed */
		io_close(f->pend[i].fd);
		unlink(f->pend[i].tmp);
	}
	f->npend = 0;
	cs_fix_release(f, true);
	free(f->held);
	free(f->pend);
	for (unsigned i = 0; i < CS_MAX_FRAGS; i++) {
		io_free(f->buf[i]);
		io_free(f->out[i]);
	}
	io_ctx_free(f->io);
}

/* ---- the stripe list ---- */

struct cs_sent {
	uint64_t id;
	uint8_t state;
};

/* Every stripe id and state, in one read transaction (no I/O inside). */
static int cs_list_stripes(struct cs_pool *pool, struct cs_sent **out, size_t *nout,
			   uint64_t *bytes)
{
	struct meta_txn *txn = NULL;
	struct meta_cursor *cur = NULL;
	struct cs_sent *v = NULL;
	size_t n = 0, cap = 0;
	const void *k, *val;
	size_t kl, vl;
	*bytes = 0;
	int rc = meta_txn_begin(pool->meta, false, &txn);
	if (rc < 0)
		return rc;
	rc = meta_cursor_open(txn, META_T_STRIPES, &cur);
	if (rc < 0)
		goto out;
	for (rc = meta_cursor_seek(cur, "", 0, &k, &kl, &val, &vl); rc == 0;
	     rc = meta_cursor_next(cur, &k, &kl, &val, &vl)) {
		struct cs_stripe_rec s;
		if (kl != 12 || vl < sizeof(s))
			continue;
		memcpy(&s, val, sizeof(s));
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			struct cs_sent *nv = realloc(v, cap * sizeof(*nv));
			if (!nv) {
				rc = -ENOMEM;
				goto out;
			}
			v = nv;
		}
		v[n].id = meta_get_be64((const uint8_t *)k + 4);
		v[n].state = s.state;
		n++;
		if (s.state == CS_STRIPE_SEALED)
			*bytes += cs_stripe_physical(&s);
	}
	if (rc == CAIRN_ENOTFOUND)
		rc = 0;
out:
	meta_cursor_close(cur);
	meta_txn_abort(txn);
	if (rc < 0) {
		free(v);
		return rc;
	}
	*out = v;
	*nout = n;
	return 0;
}

static int cs_stripe_load(struct cs_pool *pool, uint64_t id, struct cs_stripe_rec *s)
{
	struct meta_txn *txn = NULL;
	int rc = meta_txn_begin(pool->meta, false, &txn);
	if (rc < 0)
		return rc;
	rc = cs_stripe_read(txn, pool, id, s);
	meta_txn_abort(txn);
	return rc;
}

/* ---- one sealed stripe ---- */

struct cs_sfix {
	uint64_t id;
	struct cs_stripe_rec s;
	unsigned k, m, n;
	uint32_t plen;
	uint32_t ulen[CS_MAX_FRAGS]; /* area bytes stored in each unit file */
	bool needed[CS_MAX_FRAGS];   /* a file must exist (data fill > 0, parity) */
	int st[CS_MAX_FRAGS];
};

static void cs_sfix_init(struct cs_sfix *x, uint64_t id, const struct cs_stripe_rec *s)
{
	memset(x, 0, sizeof(*x));
	x->id = id;
	x->s = *s;
	x->k = s->k;
	x->m = s->m;
	x->n = x->k + x->m;
	x->plen = cs_seal_plen(s);
	for (unsigned i = 0; i < x->n; i++) {
		x->needed[i] = i >= x->k || s->fill[i] > 0;
		x->ulen[i] = i < x->k ? (uint32_t)cs_align_up(s->fill[i], CS_BLOCK) : x->plen;
	}
}

/* Reads units which[] (header + area) in one batch and judges each. A unit
 * no file is needed for reads as zeroes. Data areas are zeroed past their
 * fill up to plen, so every unit is plen bytes of code word. */
static uint64_t cs_read_units(struct cs_fix *f, struct cs_sfix *x, const bool *which)
{
	struct io_req reqs[CS_MAX_FRAGS];
	int fds[CS_MAX_FRAGS];
	unsigned map[CS_MAX_FRAGS], nreq = 0;
	char dir[CS_PATH_MAX], path[CS_PATH_MAX];
	uint64_t bytes = 0;
	for (unsigned i = 0; i < x->n; i++) {
		if (!which[i])
			continue;
		memset(f->buf[i] + CS_UNIT_HDR_SIZE, 0, x->plen);
		if (!x->needed[i]) {
			x->st[i] = CS_U_GOOD;
			continue;
		}
		int fd = -1;
		if (cs_sunit_path(f->pool, &x->s, x->id, i, dir, sizeof(dir), path, sizeof(path)) ==
		    0)
			fd = io_open(path, O_RDONLY | O_DIRECT | O_CLOEXEC, 0);
		if (fd < 0) {
			x->st[i] = CS_U_MISSING;
			continue;
		}
		fds[nreq] = fd;
		reqs[nreq] = (struct io_req){.op = IO_READ,
					     .fd = fd,
					     .buf = f->buf[i],
					     .len = CS_UNIT_HDR_SIZE + (size_t)x->ulen[i],
					     .off = 0};
		map[nreq++] = i;
	}
	if (nreq && io_batch(f->io, reqs, nreq) < 0) {
		/* judged one by one below */
	}
	for (unsigned q = 0; q < nreq; q++) {
		unsigned i = map[q];
		io_close(fds[q]);
		long got = reqs[q].result;
		if (got > 0)
			bytes += (uint64_t)got;
		bool data = i < x->k;
		if (got < (long)CS_UNIT_HDR_SIZE ||
		    !cs_unit_hdr_ok(f->pool, f->buf[i], x->id, data ? i : i - x->k,
				    data ? CS_UNIT_DATA : CS_UNIT_PARITY, &x->s))
			x->st[i] = got < (long)CS_UNIT_HDR_SIZE ? CS_U_SHORT : CS_U_BADHDR;
		else if (got < (long)reqs[q].len)
			x->st[i] = CS_U_SHORT;
		else if (data &&
			 cs_area_verify(f->buf[i] + CS_UNIT_HDR_SIZE, x->s.fill[i], NULL) < 0)
			x->st[i] = CS_U_BADDATA;
		else
			x->st[i] = CS_U_GOOD;
		if (data && x->st[i] == CS_U_GOOD)
			memset(f->buf[i] + CS_UNIT_HDR_SIZE + x->s.fill[i], 0,
			       x->plen - x->s.fill[i]);
	}
	return bytes;
}

/* Header blocks only (repair's first pass): marks units missing or whose
 * header does not verify. Returns how many. */
static unsigned cs_check_headers(struct cs_fix *f, struct cs_sfix *x)
{
	struct io_req reqs[CS_MAX_FRAGS];
	int fds[CS_MAX_FRAGS];
	unsigned map[CS_MAX_FRAGS], nreq = 0, bad = 0;
	char dir[CS_PATH_MAX], path[CS_PATH_MAX];
	for (unsigned i = 0; i < x->n; i++) {
		if (!x->needed[i])
			continue;
		int fd = -1;
		if (cs_sunit_path(f->pool, &x->s, x->id, i, dir, sizeof(dir), path, sizeof(path)) ==
		    0)
			fd = io_open(path, O_RDONLY | O_DIRECT | O_CLOEXEC, 0);
		if (fd < 0) {
			x->st[i] = CS_U_MISSING;
			bad++;
			continue;
		}
		fds[nreq] = fd;
		reqs[nreq] = (struct io_req){
		    .op = IO_READ, .fd = fd, .buf = f->buf[i], .len = CS_UNIT_HDR_SIZE, .off = 0};
		map[nreq++] = i;
	}
	if (nreq && io_batch(f->io, reqs, nreq) < 0) {
		/* judged one by one below */
	}
	for (unsigned q = 0; q < nreq; q++) {
		unsigned i = map[q];
		bool data = i < x->k;
		io_close(fds[q]);
		f->rep->checked++;
		if (reqs[q].result > 0)
			f->rep->bytes += (uint64_t)reqs[q].result;
		if (reqs[q].result != (long)CS_UNIT_HDR_SIZE ||
		    !cs_unit_hdr_ok(f->pool, f->buf[i], x->id, data ? i : i - x->k,
				    data ? CS_UNIT_DATA : CS_UNIT_PARITY, &x->s)) {
			x->st[i] = CS_U_BADHDR;
			bad++;
		}
	}
	return bad;
}

/* Rebuilds the bad data units from k good units (trying other sets when
 * a result does not verify) into f->out, then parity from the full data.
 * Returns 0, or CAIRN_ECORRUPT when no set of survivors decodes to data
 * that verifies. */
static int cs_decode_stripe(struct cs_fix *f, struct cs_sfix *x)
{
	unsigned cand[CS_MAX_FRAGS], nc = 0, tg[CS_MAX_FRAGS], nt = 0;
	uint8_t *src[CS_MAX_FRAGS], *dst[CS_MAX_FRAGS], *data[CS_MAX_FRAGS];
	unsigned srcs[CS_MAX_FRAGS];
	int rc;
	for (unsigned i = 0; i < x->n; i++) {
		if (x->st[i] == CS_U_GOOD)
			cand[nc++] = i;
		else if (i < x->k)
			tg[nt++] = i;
	}
	for (unsigned i = 0; i < nt; i++)
		dst[i] = f->out[tg[i]] + CS_UNIT_HDR_SIZE;
	if (nt) {
		if (nc < x->k)
			return CAIRN_ECORRUPT;
		unsigned c[CS_MAX_FRAGS];
		for (unsigned i = 0; i < x->k; i++)
			c[i] = i;
		bool found = false;
		for (;;) {
			for (unsigned i = 0; i < x->k; i++) {
				srcs[i] = cand[c[i]];
				src[i] = f->buf[srcs[i]] + CS_UNIT_HDR_SIZE;
			}
			rc = cs_ec_decode(x->k, x->m, srcs, tg, nt, src, dst, x->plen);
			if (rc == -ENOMEM)
				return rc;
			bool ok = rc == 0;
			for (unsigned i = 0; ok && i < nt; i++) {
				uint32_t fill = x->s.fill[tg[i]];
				/* past the fill the code word is zero by
				 * definition: anything else is a bad source */
				ok = cs_area_verify(dst[i], fill, NULL) == 0 &&
				     (fill >= x->plen ||
				      hash_is_zero(dst[i] + fill, x->plen - fill));
			}
			if (ok) {
				found = true;
				break;
			}
			/* next set of k survivors */
			int p = (int)x->k - 1;
			while (p >= 0 && c[p] == nc - x->k + (unsigned)p)
				p--;
			if (p < 0)
				break;
			c[p]++;
			for (unsigned j = (unsigned)p + 1; j < x->k; j++)
				c[j] = c[j - 1] + 1;
		}
		if (!found)
			return CAIRN_ECORRUPT;
	}
	/* parity from the complete, verified data */
	unsigned di[CS_MAX_FRAGS], pj[CS_MAX_FRAGS];
	for (unsigned i = 0; i < x->k; i++) {
		di[i] = i;
		data[i] = (x->st[i] == CS_U_GOOD ? f->buf[i] : f->out[i]) + CS_UNIT_HDR_SIZE;
	}
	for (unsigned j = 0; j < x->m; j++) {
		pj[j] = x->k + j;
		dst[j] = f->out[x->k + j] + CS_UNIT_HDR_SIZE;
	}
	return cs_ec_decode(x->k, x->m, di, pj, x->m, data, dst, x->plen);
}

static int cs_str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Makes the pending units durable: fdatasync of all (in flight together),
 * renames, then an fsync of each distinct directory (and of a partition
 * directory's parent while its creation is not durable). Counts them fixed
 * only then. */
static int cs_pend_flush(struct cs_fix *f)
{
	size_t n = f->npend;
	int fds[CS_PEND_MAX * 2];
	const char *dirs[CS_PEND_MAX * 2];
	char parents[CS_PEND_MAX][CS_PATH_MAX];
	size_t nd = 0, ndfd = 0;
	int rc = 0;
	if (!n)
		return 0;
	for (size_t i = 0; i < n; i++)
		fds[i] = f->pend[i].fd;
	rc = io_fdatasync(f->io, fds, n);
	for (size_t i = 0; i < n; i++) {
		struct cs_pend *p = &f->pend[i];
		io_close(p->fd);
		p->fd = -1;
		if (rc == 0 && rename(p->tmp, p->path) < 0)
			rc = -errno;
		if (rc < 0) {
			unlink(p->tmp);
			continue;
		}
		dirs[nd++] = p->dir;
		if (p->dir_state &&
		    __atomic_load_n(p->dir_state, __ATOMIC_ACQUIRE) == CS_DIR_PARENT_PENDING) {
			snprintf(parents[i], sizeof(parents[i]), "%s", p->dir);
			char *slash = strrchr(parents[i], '/');
			if (slash && slash != parents[i]) {
				*slash = 0;
				dirs[nd++] = parents[i];
			}
		}
	}
	if (rc == 0) {
		qsort(dirs, nd, sizeof(*dirs), cs_str_cmp);
		for (size_t i = 0; i < nd && rc == 0; i++) {
			if (i && !strcmp(dirs[i - 1], dirs[i]))
				continue;
			int dfd = open(dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (dfd < 0)
				rc = -errno;
			else
				fds[ndfd++] = dfd;
		}
		if (rc == 0 && ndfd)
			rc = io_fdatasync(f->io, fds, ndfd); /* directories: full fsync */
		for (size_t i = 0; i < ndfd; i++)
			close(fds[i]);
	}
	for (size_t i = 0; i < n; i++) {
		struct cs_pend *p = &f->pend[i];
		if (rc < 0) {
			log_err(CS_TAG, "making %s durable: %s", p->path, cairn_strerror(rc));
			continue;
		}
		if (p->dir_state)
			__atomic_store_n(p->dir_state, CS_DIR_DURABLE, __ATOMIC_RELEASE);
		f->rep->bytes += p->len;
		f->rep->fixed++;
		if (f->count_writes) {
			f->done += p->len;
			cs_progress(f);
		}
	}
	f->npend = 0;
	return rc;
}

/* Writes unit i of x under its temp name (durable at the next flush). */
static int cs_write_unit(struct cs_fix *f, struct cs_sfix *x, unsigned i)
{
	bool data = i < x->k;
	if (!f->pend && !(f->pend = calloc(CS_PEND_MAX, sizeof(*f->pend))))
		return -ENOMEM;
	struct cs_pend *p = &f->pend[f->npend];
	int rc = cs_sunit_path(f->pool, &x->s, x->id, i, p->dir, sizeof(p->dir), p->path,
			       sizeof(p->path));
	if (rc == 0)
		rc = cs_fmt(p->tmp, sizeof(p->tmp), "%s.tmp", p->path);
	if (rc == 0)
		rc = cs_part_dir_make(f->pool, x->s.devs[i], cs_stripe_part(f->pool, x->id), p->dir,
				      &p->dir_state);
	if (rc < 0)
		return rc;
	cs_unit_hdr_make(f->pool, f->out[i], x->id, data ? i : i - x->k,
			 data ? CS_UNIT_DATA : CS_UNIT_PARITY, &x->s);
	p->len = CS_UNIT_HDR_SIZE + (uint64_t)x->ulen[i];
	p->fd = io_open(p->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644);
	if (p->fd < 0)
		return p->fd;
	rc = io_pwrite(f->io, p->fd, f->out[i], p->len, 0);
	if (rc < 0) {
		io_close(p->fd);
		unlink(p->tmp);
		return rc;
	}
	if (++f->npend == CS_PEND_MAX)
		return cs_pend_flush(f);
	return 0;
}

/* Decodes (unless decoded: the result of a cs_decode_stripe already run)
 * and rewrites every unit not GOOD (and, with check_parity, every parity
 * unit that disagrees with the data). Counts problems. */
static int cs_fix_units(struct cs_fix *f, struct cs_sfix *x, bool check_parity, int decoded)
{
	unsigned nbad = 0;
	for (unsigned i = 0; i < x->n; i++)
		if (x->st[i] != CS_U_GOOD && x->st[i] != CS_U_UNREAD) {
			cs_problem(f, "stripe %016llx %s unit %u on device %u: %s",
				   (unsigned long long)x->id, i < x->k ? "data" : "parity",
				   i < x->k ? i : i - x->k, x->s.devs[i], cs_ustate_name(x->st[i]));
			nbad++;
		}
	int rc = decoded <= 0 ? decoded : cs_decode_stripe(f, x);
	if (rc == CAIRN_ECORRUPT) {
		unsigned lost = 0;
		for (unsigned i = 0; i < x->k; i++)
			lost += x->st[i] != CS_U_GOOD;
		f->rep->unrecoverable += lost ? lost : 1;
		cs_problem(f, "stripe %016llx: fewer than %u units verify; data lost",
			   (unsigned long long)x->id, x->k);
		return 0;
	}
	if (rc < 0)
		return rc;
	for (unsigned j = 0; check_parity && j < x->m; j++) {
		unsigned i = x->k + j;
		if (x->st[i] == CS_U_GOOD &&
		    memcmp(f->buf[i] + CS_UNIT_HDR_SIZE, f->out[i] + CS_UNIT_HDR_SIZE, x->plen)) {
			cs_problem(f, "stripe %016llx parity unit %u on device %u: does not match",
				   (unsigned long long)x->id, j, x->s.devs[i]);
			x->st[i] = CS_U_BADDATA;
			nbad++;
		}
	}
	for (unsigned i = 0; i < x->n; i++) {
		if (x->st[i] == CS_U_GOOD || x->st[i] == CS_U_UNREAD || !x->needed[i])
			continue;
		rc = cs_write_unit(f, x, i);
		if (rc < 0) /* counted as a problem, not fixed */
			log_err(CS_TAG, "rewriting stripe %016llx unit %u: %s",
				(unsigned long long)x->id, i, cairn_strerror(rc));
	}
	(void)nbad;
	return 0;
}

/* Replicas of a sealed stripe left behind (a crash before the unlink whose
 * marker was lost, or a device folder restored from an old copy). */
static void cs_scrub_strays(struct cs_fix *f, struct cs_sfix *x)
{
	char dir[CS_PATH_MAX], path[CS_PATH_MAX];
	uint32_t part = cs_stripe_part(f->pool, x->id);
	for (unsigned j = 0; j < x->m; j++)
		for (unsigned i = 0; i < x->k; i++) {
			if (cs_unit_path(f->pool, x->s.devs[x->k + j], x->id, part, i, dir,
					 sizeof(dir), path, sizeof(path)) < 0)
				continue;
			if (unlink(path) == 0) {
				cs_problem(f, "stripe %016llx: stray replica %s removed",
					   (unsigned long long)x->id, path);
				f->rep->fixed++;
			}
		}
}

/* ---- the operations ---- */

static int cs_maint_begin(struct cs_pool *pool, struct cs_fix *f, struct cs_check_report *rep,
			  cs_progress_fn fn, void *arg)
{
	memset(f, 0, sizeof(*f));
	memset(rep, 0, sizeof(*rep));
	f->pool = pool;
	f->rep = rep;
	f->fn = fn;
	f->arg = arg;
	f->phase = "seal";
	cs_progress(f);
	/* Everything sealable is sealed first: the rest works on parity. */
	int rc = cs_seal_drain(pool, true);
	if (rc < 0)
		return rc;
	rc = io_ctx_create(CS_WORKER_DEPTH, &f->io);
	if (rc < 0) {
		f->io = NULL;
		return rc;
	}
	return cs_fix_bufs(f);
}

static void cs_open_left(struct cs_fix *f, uint64_t id)
{
	/* OPEN after the drain: opened since by a worker (fine, m+1 copies)
	 * or the sealer could not seal it (said in its log). */
	log_info(CS_TAG, "stripe %016llx is open (replicated): skipped", (unsigned long long)id);
}

int cs_scrub(struct cs_pool *pool, struct cs_check_report *rep, cs_progress_fn fn, void *arg)
{
	struct cs_fix f;
	struct cs_sent *list = NULL;
	size_t n = 0;
	int rc = cs_maint_begin(pool, &f, rep, fn, arg);
	if (rc < 0)
		goto out;
	rc = cs_list_stripes(pool, &list, &n, &f.total);
	if (rc < 0)
		goto out;
	f.phase = "scrub";
	cs_progress(&f);
	for (size_t e = 0; e < n; e++) {
		struct cs_stripe_rec s;
		if (list[e].state != CS_STRIPE_SEALED) {
			cs_open_left(&f, list[e].id);
			continue;
		}
		rc = cs_fix_hold(&f, list[e].id);
		if (rc < 0)
			goto out;
		rc = cs_stripe_load(pool, list[e].id, &s);
		if (rc == CAIRN_ENOTFOUND) { /* freed meanwhile (GC) */
			cs_fix_release(&f, false);
			continue;
		}
		if (rc < 0)
			goto out;
		struct cs_sfix x;
		cs_sfix_init(&x, list[e].id, &s);
		bool all[CS_MAX_FRAGS];
		for (unsigned i = 0; i < x.n; i++)
			all[i] = true;
		uint64_t got = cs_read_units(&f, &x, all);
		rep->bytes += got;
		rep->checked += x.n;
		f.done += got;
		rc = cs_fix_units(&f, &x, true, 1);
		if (rc < 0)
			goto out;
		cs_scrub_strays(&f, &x);
		cs_fix_release(&f, false);
		cs_progress(&f);
	}
	rc = 0;
	if (cs_pend_flush(&f) < 0) {
		/* logged; those units are not counted fixed */
	}
out:
	free(list);
	cs_fix_free(&f);
	return rc;
}

int cs_repair(struct cs_pool *pool, struct cs_check_report *rep, cs_progress_fn fn, void *arg)
{
	struct cs_fix f;
	struct cs_sent *list = NULL;
	uint64_t *lost = NULL; /* stripes with units to rebuild */
	size_t n = 0, nlost = 0;
	uint64_t phys;
	memset(&f, 0, sizeof(f));
	memset(rep, 0, sizeof(*rep));
	/* before sealing open stripes: that writes to every device too */
	int rc = cs_devices_recreate(pool);
	if (rc == 0)
		rc = cs_maint_begin(pool, &f, rep, fn, arg);
	if (rc < 0)
		goto out;
	rc = cs_list_stripes(pool, &list, &n, &phys);
	if (rc < 0)
		goto out;
	lost = calloc(n ? n : 1, sizeof(*lost));
	if (!lost) {
		rc = -ENOMEM;
		goto out;
	}
	/* Count first: header blocks only, so the total is known up front. */
	f.phase = "check";
	f.total = n;
	cs_progress(&f);
	uint64_t total = 0;
	for (size_t e = 0; e < n; e++) {
		struct cs_stripe_rec s;
		f.done = e + 1;
		if (list[e].state != CS_STRIPE_SEALED) {
			cs_open_left(&f, list[e].id);
			continue;
		}
		rc = cs_stripe_load(pool, list[e].id, &s);
		if (rc == CAIRN_ENOTFOUND)
			continue;
		if (rc < 0)
			goto out;
		struct cs_sfix x;
		cs_sfix_init(&x, list[e].id, &s);
		if (cs_check_headers(&f, &x)) {
			uint64_t b = 0;
			for (unsigned i = 0; i < x.n; i++)
				if (x.st[i] != CS_U_UNREAD && x.st[i] != CS_U_GOOD)
					b += CS_UNIT_HDR_SIZE + (uint64_t)x.ulen[i];
			lost[nlost++] = x.id;
			total += b;
		}
		if ((e & 255) == 0)
			cs_progress(&f);
	}
	f.phase = "rebuild";
	f.count_writes = true;
	f.total = total;
	f.done = 0;
	cs_progress(&f);
	for (size_t e = 0; e < nlost; e++) {
		struct cs_stripe_rec s;
		rc = cs_fix_hold(&f, lost[e]);
		if (rc < 0)
			goto out;
		rc = cs_stripe_load(pool, lost[e], &s);
		if (rc == CAIRN_ENOTFOUND) {
			cs_fix_release(&f, false);
			continue;
		}
		if (rc < 0)
			goto out;
		struct cs_sfix x;
		cs_sfix_init(&x, lost[e], &s);
		(void)cs_check_headers(&f, &x); /* again: it may have changed */
		/* read k survivors, data units first (they verify alone) */
		bool want[CS_MAX_FRAGS] = {false};
		unsigned nw = 0;
		for (unsigned i = 0; i < x.n && nw < x.k; i++)
			if (x.st[i] == CS_U_UNREAD) {
				want[i] = true;
				nw++;
			}
		rep->bytes += cs_read_units(&f, &x, want);
		rc = cs_decode_stripe(&f, &x);
		bool more = false;
		for (unsigned i = 0; i < x.n; i++)
			more |= x.st[i] == CS_U_UNREAD;
		if (rc == CAIRN_ECORRUPT && more) {
			/* a survivor did not verify: read the rest too */
			for (unsigned i = 0; i < x.n; i++)
				want[i] = x.st[i] == CS_U_UNREAD;
			rep->bytes += cs_read_units(&f, &x, want);
			rc = 1; /* decode again, with every survivor */
		}
		rc = cs_fix_units(&f, &x, false, rc);
		if (rc < 0)
			goto out;
		cs_fix_release(&f, false);
	}
	rc = 0;
	if (cs_pend_flush(&f) < 0) {
		/* logged; those units are not counted fixed */
	}
out:
	free(list);
	free(lost);
	cs_fix_free(&f);
	return rc;
}
