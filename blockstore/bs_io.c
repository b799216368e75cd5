/* blockstore/bs_io.c - volume I/O: read/write/zero/flush/block
 * status over an extent's replica files, and the write intents that keep
 * replicas equal across a crash. Handles and intent clearing:
 * bs_io_handle.c; resync and block copies: bs_io_sync.c.
 *
 * Per open volume (struct bs_io_state, bs_io_internal.h):
 *  - an fd cache keyed by (volume id, gen, index, device), LRU-bounded, so
 *    steady-state I/O opens nothing; fds in use are pinned, dirty ones (a
 *    write reached them, no fdatasync since) are never evicted and sit on
 *    the dirty list that bs_flush syncs in one io_fdatasync call;
 *  - one struct bs_ext per extent touched: the slow-path mutex, a cache of
 *    the blocks known WRITTEN in the head generation at depth 0 (so a write
 *    or read of such blocks needs no LMDB transaction), and the extent's
 *    intent state.
 *
 * Invariants: (1) no byte reaches an extent's replica files before an
 * intent record naming that generation is committed and armed, and an
 * intent is deleted only when no write is in flight on the extent and
 * every write it covered was made durable by a flush; (2) the extent map
 * names a block only after its bytes were fdatasynced on every replica
 * (data before metadata); (3) the written-block cache only ever holds
 * blocks the committed map says are WRITTEN at the head: removals (zero)
 * bump wver, and additions learnt from a state older than the last
 * removal are dropped.
 *
 * Locks, outer to inner: gate (shared for I/O) > ext->mu (slow path, held
 * across I/O and commits) > block lock stripes (RMW of a 4 KiB device
 * block) > st->lock (fd cache, dirty list, seq) and ext->sl (brief, never
 * across I/O; commit callbacks take it on the committer thread).
 * bs->lock > vol->base_mu (the cached base readers; brief, never across a
 * read: a borrowed reader is the borrower's alone until returned).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blockstore/bs_io_internal.h"
#include "core/fault.h"
#include "core/io.h"
#include "core/log.h"
#include "meta/meta.h"

/* Shared by the zero-fill paths: writes only read it. An extent's worth
 * (NO_HOLE writes whole extents of it); never written, so its pages stay
 * the kernel's zero page. */
static uint8_t bs_zeros[VOL_EXTENT_SIZE] __attribute__((aligned(IO_ALIGN)));

uint64_t bs_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t bs_mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ---- per-volume state ---- */

struct bs_io_counters bs_io_counters;

struct bs_io_state *bs_io_state_new(void)
{
	struct bs_io_state *st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	pthread_mutex_init(&st->lock, NULL);
	pthread_mutex_init(&st->flush_mu, NULL);
	pthread_rwlock_init(&st->ext_lock, NULL);
	for (unsigned i = 0; i < BS_BLOCK_LOCKS; i++)
		pthread_mutex_init(&st->blk[i], NULL);
	return st;
}

int bs_io_vol_init(struct bs_vol *vol)
{
	vol->io = bs_io_state_new();
	if (!vol->io)
		return -ENOMEM;
	pthread_mutex_init(&vol->base_mu, NULL);
	pthread_mutex_init(&vol->snap_mu, NULL);
	return 0;
}

void bs_io_vol_free(struct bs_vol *vol)
{
	if (!vol || !vol->io)
		return;
	bs_io_state_free(vol->io, vol->v.name);
	vol->io = NULL;
	for (struct bs_base_rd *b = vol->base_free, *nx; b; b = nx) {
		nx = b->next;
		cs_reader_free(b->r);
		free(b);
	}
	vol->base_free = NULL;
	free(vol->snap_refs);
	vol->snap_refs = NULL;
	pthread_mutex_destroy(&vol->base_mu);
	pthread_mutex_destroy(&vol->snap_mu);
}

unsigned bs_snap_refs(struct bs_vol *vol, uint32_t gen)
{
	unsigned n = 0;
	pthread_mutex_lock(&vol->snap_mu);
	for (size_t i = 0; i < vol->nsnap_refs; i++)
		if (gen == 0 || vol->snap_refs[i].gen == gen)
			n += vol->snap_refs[i].n;
	pthread_mutex_unlock(&vol->snap_mu);
	return n;
}

/* ---- the base manifest (VOL_RECF_IMAGE) ---- */

/* A reader of mid from the volume's cache, or a new one. Give it back
 * with base_return. */
static int base_borrow(struct bs_store *bs, struct bs_vol *vol, const uint8_t *mid,
		       struct bs_base_rd **out)
{
	struct bs_base_rd *b, **pp;
	struct cs_mid m;
	int ret;
	pthread_mutex_lock(&vol->base_mu);
	for (pp = &vol->base_free; *pp && memcmp((*pp)->mid, mid, VOL_ID_LEN); pp = &(*pp)->next)
		;
	b = *pp;
	if (b) {
		*pp = b->next;
		vol->base_nfree--;
	}
	pthread_mutex_unlock(&vol->base_mu);
	if (b && bs_mono_ns() - b->born_ns < BS_BASE_READER_AGE_NS) {
		*out = b;
		return 0;
	}
	if (b) { /* too old: its grace epoch must end */
		cs_reader_free(b->r);
		free(b);
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	memcpy(b->mid, mid, VOL_ID_LEN);
	memcpy(m.b, mid, VOL_ID_LEN);
	ret = FAULT("bs.base_open") ? -EIO : cs_reader_open(bs->pool, &m, &b->r);
	if (ret < 0) {
		log_err(BS_TAG, "volume %s: opening its base manifest: %s", vol->v.name,
			cairn_strerror(ret));
		free(b);
		return ret;
	}
	b->born_ns = bs_mono_ns();
	*out = b;
	return 0;
}

static void base_return(struct bs_vol *vol, struct bs_base_rd *b)
{
	if (!b)
		return;
	b->used_ns = bs_mono_ns();
	pthread_mutex_lock(&vol->base_mu);
	if (vol->base_nfree < BS_BASE_READERS && b->used_ns - b->born_ns < BS_BASE_READER_AGE_NS) {
		b->next = vol->base_free;
		vol->base_free = b;
		vol->base_nfree++;
		b = NULL;
	}
	pthread_mutex_unlock(&vol->base_mu);
	if (b) {
		cs_reader_free(b->r);
		free(b);
	}
}

void bs_io_sweep_readers(struct bs_store *bs, bool all)
{
	struct bs_base_rd *dead = NULL;
	uint64_t now = bs_mono_ns();
	pthread_mutex_lock(&bs->lock); /* no volume is freed meanwhile */
	for (struct bs_vol *vol = bs->vols; vol; vol = vol->next) {
		if (!vol->io)
			continue;
		pthread_mutex_lock(&vol->base_mu);
		for (struct bs_base_rd **pp = &vol->base_free; *pp;) {
			struct bs_base_rd *b = *pp;
			if (all || now - b->born_ns >= BS_BASE_READER_AGE_NS ||
			    now - b->used_ns >= BS_BASE_READER_IDLE_NS) {
				*pp = b->next;
				vol->base_nfree--;
				b->next = dead;
				dead = b;
			} else {
				pp = &b->next;
			}
		}
		pthread_mutex_unlock(&vol->base_mu);
	}
	pthread_mutex_unlock(&bs->lock);
	/* Outside the locks: a free tears an io_uring down. */
	for (struct bs_base_rd *nx; dead; dead = nx) {
		nx = dead->next;
		cs_reader_free(dead->r);
		free(dead);
	}
}

/* A run of a view's bytes that reads the base manifest at its own offset. */
struct base_piece {
	uint64_t off;
	uint64_t len;
	uint8_t *dst;
};

/* Reads the pieces of mid with one borrowed reader, one cs_reader_read
 * per piece; bytes past the manifest's end read zero. */
static int base_read(struct bs_store *bs, struct bs_vol *vol, const uint8_t *mid,
		     struct base_piece *p, size_t n)
{
	struct bs_base_rd *b = NULL;
	int ret;
	if (!n)
		return 0;
	ret = base_borrow(bs, vol, mid, &b);
	for (size_t i = 0; ret == 0 && i < n; i++) {
		long got = FAULT("bs.base_read")
			       ? -EIO
			       : cs_reader_read(b->r, p[i].off, p[i].dst, p[i].len);
		if (got < 0) {
			ret = (int)got;
			log_err(BS_TAG, "volume %s: reading its base manifest at %llu: %s",
				vol->v.name, (unsigned long long)p[i].off, cairn_strerror(ret));
			break;
		}
		if ((uint64_t)got < p[i].len)
			memset(p[i].dst + got, 0, p[i].len - (uint64_t)got);
	}
	/* A reader that failed may hold a broken state: not cached. */
	if (ret < 0 && b) {
		cs_reader_free(b->r);
		free(b);
		b = NULL;
	}
	base_return(vol, b);
	return ret;
}

void bs_io_state_free(struct bs_io_state *st, const char *name)
{
	if (!st)
		return;
	for (unsigned i = 0; i < BS_FD_BUCKETS; i++)
		for (struct bs_fd *f = st->fd_hash[i], *nx; f; f = nx) {
			nx = f->hnext;
			if (f->dirty)
				log_warn(BS_TAG, "volume %s: closing a replica file never synced",
					 name);
			io_close(f->fd);
			free(f);
		}
	for (unsigned i = 0; i < BS_EXT_BUCKETS; i++)
		for (struct bs_ext *e = st->ext_hash[i], *nx; e; e = nx) {
			nx = e->next;
			pthread_mutex_destroy(&e->mu);
			pthread_mutex_destroy(&e->sl);
			free(e);
		}
	for (unsigned i = 0; i < BS_BLOCK_LOCKS; i++)
		pthread_mutex_destroy(&st->blk[i]);
	pthread_rwlock_destroy(&st->ext_lock);
	pthread_mutex_destroy(&st->flush_mu);
	pthread_mutex_destroy(&st->lock);
	free(st);
}

static unsigned ext_bucket(uint64_t index)
{
	return (unsigned)((index * 0x9E3779B97F4A7C15ull) >> 54) % BS_EXT_BUCKETS;
}

/* The extent's state, created on first use; lives until the volume closes. */
static int ext_get(struct bs_io_state *st, uint64_t index, struct bs_ext **out)
{
	unsigned b = ext_bucket(index);
	struct bs_ext *e;
	pthread_rwlock_rdlock(&st->ext_lock);
	for (e = st->ext_hash[b]; e && e->index != index; e = e->next)
		;
	pthread_rwlock_unlock(&st->ext_lock);
	if (e)
		goto out;
	pthread_rwlock_wrlock(&st->ext_lock);
	for (e = st->ext_hash[b]; e && e->index != index; e = e->next)
		;
	if (!e && (e = calloc(1, sizeof(*e)))) {
		e->index = index;
		pthread_mutex_init(&e->mu, NULL);
		pthread_mutex_init(&e->sl, NULL);
		e->next = st->ext_hash[b];
		st->ext_hash[b] = e;
	}
	pthread_rwlock_unlock(&st->ext_lock);
out:
	*out = e;
	return e ? 0 : -ENOMEM;
}

/* Calls fn on every extent state (brief: the table is read-locked). */
void bs_ext_each(struct bs_io_state *st, void (*fn)(struct bs_ext *e, void *arg), void *arg)
{
	pthread_rwlock_rdlock(&st->ext_lock);
	for (unsigned i = 0; i < BS_EXT_BUCKETS; i++)
		for (struct bs_ext *e = st->ext_hash[i]; e; e = e->next)
			fn(e, arg);
	pthread_rwlock_unlock(&st->ext_lock);
}

/* The view a cached written-block mask belongs to: a snapshot or rollback
 * moves gen, a forced detach moves epoch (a shrink needs a detach), and a
 * resize changes size. */
struct wkey {
	uint32_t gen, epoch;
	uint64_t size;
};

static bool wkey_ok(const struct bs_ext *e, const struct wkey *k)
{
	return e->wvalid && e->wgen == k->gen && e->wepoch == k->epoch && e->wsize == k->size;
}

/* Under e->sl: adds mask (blocks WRITTEN at the head, as of a state read
 * after wver was ver0) to the cache, unless a removal happened since. */
static void ext_learn_locked(struct bs_ext *e, const struct wkey *k, uint64_t ver0, uint64_t mask)
{
	if (!wkey_ok(e, k)) {
		e->wvalid = true;
		e->wgen = k->gen;
		e->wepoch = k->epoch;
		e->wsize = k->size;
		e->wmask = 0;
	}
	if (e->wver == ver0)
		e->wmask |= mask;
}

static void ext_learn(struct bs_ext *e, const struct wkey *k, uint64_t ver0, uint64_t mask)
{
	pthread_mutex_lock(&e->sl);
	ext_learn_locked(e, k, ver0, mask);
	pthread_mutex_unlock(&e->sl);
}

static uint64_t ext_ver(struct bs_ext *e)
{
	pthread_mutex_lock(&e->sl);
	uint64_t v = e->wver;
	pthread_mutex_unlock(&e->sl);
	return v;
}

/* Blocks of [off, off+len) inside one extent (len > 0). */
static uint64_t blocks_mask(uint32_t off, uint32_t len)
{
	unsigned first = off / VOL_BLOCK_SIZE, last = (off + len - 1) / VOL_BLOCK_SIZE;
	uint64_t hi = last == 63 ? ~0ull : (1ull << (last + 1)) - 1;
	return hi & ~((1ull << first) - 1);
}

static uint64_t head_mask(const struct vol_resolved *r, uint32_t gen)
{
	uint64_t m = 0;
	for (unsigned b = 0; b < VOL_BLOCKS; b++)
		if (r->blk[b].kind == VOL_BLK_WRITTEN && r->blk[b].depth == 0 &&
		    r->blk[b].gen == gen)
			m |= 1ull << b;
	return m;
}

/* ---- fd cache ---- */

static unsigned fd_bucket(const uint8_t *id, uint32_t gen, uint64_t index, uint32_t dev)
{
	uint64_t h;
	memcpy(&h, id, sizeof(h));
	h ^= (uint64_t)gen * 0x9E3779B97F4A7C15ull;
	h ^= index * 0xC2B2AE3D27D4EB4Full;
	h ^= (uint64_t)dev * 0x165667B19E3779F9ull;
	h ^= h >> 29;
	return (unsigned)(h % BS_FD_BUCKETS);
}

static void lru_unlink(struct bs_io_state *st, struct bs_fd *f)
{
	if (f->lprev)
		f->lprev->lnext = f->lnext;
	else
		st->lru_head = f->lnext;
	if (f->lnext)
		f->lnext->lprev = f->lprev;
	else
		st->lru_tail = f->lprev;
	f->lprev = f->lnext = NULL;
}

static void lru_push(struct bs_io_state *st, struct bs_fd *f)
{
	f->lprev = NULL;
	f->lnext = st->lru_head;
	if (st->lru_head)
		st->lru_head->lprev = f;
	st->lru_head = f;
	if (!st->lru_tail)
		st->lru_tail = f;
}

static struct bs_fd *fd_find_locked(struct bs_io_state *st, const uint8_t *id, uint32_t gen,
				    uint64_t index, uint32_t dev)
{
	for (struct bs_fd *f = st->fd_hash[fd_bucket(id, gen, index, dev)]; f; f = f->hnext)
		if (f->gen == gen && f->index == index && f->dev == dev &&
		    !memcmp(f->id, id, VOL_ID_LEN))
			return f;
	return NULL;
}

/* Closes least recently used fds that are neither pinned nor dirty until
 * the cache is back under its cap (it may stay over while all are busy). */
static void fd_evict_locked(struct bs_io_state *st)
{
	struct bs_fd *f = st->lru_tail;
	while (st->nfds > BS_FD_CAP && f) {
		struct bs_fd *prev = f->lprev;
		if (!f->pins && !f->dirty) {
			struct bs_fd **pp =
			    &st->fd_hash[fd_bucket(f->id, f->gen, f->index, f->dev)];
			while (*pp != f)
				pp = &(*pp)->hnext;
			*pp = f->hnext;
			lru_unlink(st, f);
			io_close(f->fd);
			free(f);
			st->nfds--;
		}
		f = prev;
	}
}

/* Inserts an open fd (pinned once); when another thread cached the same
 * file meanwhile, closes fd and pins that one. */
static struct bs_fd *fd_insert(struct bs_io_state *st, const uint8_t *id, uint32_t gen,
			       uint64_t index, uint32_t dev, int fd)
{
	struct bs_fd *f;
	pthread_mutex_lock(&st->lock);
	f = fd_find_locked(st, id, gen, index, dev);
	if (f) {
		f->pins++;
		pthread_mutex_unlock(&st->lock);
		io_close(fd);
		return f;
	}
	f = calloc(1, sizeof(*f));
	if (!f) {
		pthread_mutex_unlock(&st->lock);
		io_close(fd);
		return NULL;
	}
	memcpy(f->id, id, VOL_ID_LEN);
	f->gen = gen;
	f->index = index;
	f->dev = dev;
	f->fd = fd;
	f->pins = 1;
	unsigned b = fd_bucket(id, gen, index, dev);
	f->hnext = st->fd_hash[b];
	st->fd_hash[b] = f;
	lru_push(st, f);
	st->nfds++;
	fd_evict_locked(st);
	pthread_mutex_unlock(&st->lock);
	return f;
}

/* A pinned cached fd of an existing replica file: -ENOENT when the file is
 * not there. */
int bs_fd_get(struct bs_store *bs, struct bs_io_state *st, const uint8_t *id, uint32_t gen,
	      uint64_t index, uint32_t dev, struct bs_fd **out)
{
	char path[PATH_MAX];
	struct bs_fd *f;
	int fd, ret;
	*out = NULL;
	pthread_mutex_lock(&st->lock);
	f = fd_find_locked(st, id, gen, index, dev);
	if (f) {
		f->pins++;
		if (st->lru_head != f) {
			lru_unlink(st, f);
			lru_push(st, f);
		}
		pthread_mutex_unlock(&st->lock);
		*out = f;
		return 0;
	}
	pthread_mutex_unlock(&st->lock);
	ret = bs_extent_path(bs, dev, id, gen, index, path, sizeof(path));
	if (ret < 0)
		return ret;
	fd = io_open(path, O_RDWR | O_DIRECT, 0);
	if (fd < 0)
		return fd;
	*out = fd_insert(st, id, gen, index, dev, fd);
	return *out ? 0 : -ENOMEM;
}

void bs_fd_unpin(struct bs_io_state *st, struct bs_fd *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&st->lock);
	f->pins--;
	pthread_mutex_unlock(&st->lock);
}

/* Marks the files dirty (before the write returns, so a flush that starts
 * after covers them) and returns the write's sequence number. */
static uint64_t fd_mark_dirty(struct bs_io_state *st, struct bs_fd **fds, unsigned n)
{
	uint64_t seq;
	pthread_mutex_lock(&st->lock);
	for (unsigned i = 0; i < n; i++)
		if (!fds[i]->dirty) {
			fds[i]->dirty = true;
			fds[i]->dnext = st->dirty;
			st->dirty = fds[i];
			st->ndirty++;
		}
	seq = ++st->seq;
	pthread_mutex_unlock(&st->lock);
	return seq;
}

/* Creates a replica file in full: O_EXCL, then fallocate (the space
 * reservation: ENOSPC here fails the writer before anything changed).
 * path gets the real name; with tmp the file is made under that name plus
 * ".new", stored after path's terminating NUL (path needs room for both),
 * and a stale one a crash left is replaced. */
static int file_create(struct bs_store *bs, const uint8_t *id, uint32_t gen, uint64_t index,
		       uint32_t dev, char *path, size_t plen, bool tmp)
{
	char dir[PATH_MAX];
	const char *cpath = path;
	int fd, ret = bs_vol_dir(bs, dev, id, dir, sizeof(dir));
	if (ret == 0)
		ret = bs_extent_path(bs, dev, id, gen, index, path, plen);
	if (ret == 0 && tmp) {
		size_t l = strlen(path);
		char *t = path + l + 1;
		if (2 * l + 6 > plen)
			ret = -ENAMETOOLONG;
		else
			memcpy(t, path, l), memcpy(t + l, ".new", 5), cpath = t;
		if (ret == 0 && unlink(cpath) < 0 && errno != ENOENT)
			ret = -errno;
	}
	if (ret == 0)
		ret = io_mkdirs(dir, 0755);
	if (ret < 0)
		return ret;
	fd = io_open(cpath, O_RDWR | O_CREAT | O_EXCL | O_DIRECT, 0644);
	if (fd < 0)
		return fd;
	ret = FAULT("bs.fallocate") ? -ENOSPC : 0;
	if (ret == 0 && fallocate(fd, 0, 0, VOL_EXTENT_SIZE) < 0)
		ret = -errno;
	if (ret < 0) {
		io_close(fd);
		unlink(cpath);
		return ret;
	}
	return fd;
}

/* Reads the keep blocks of an existing replica file into buf (at their
 * extent offsets): from the first of the n opened files that reads them in
 * full; -EIO when none does. */
static int keep_read(struct io_ctx *ctx, struct bs_fd **fds, unsigned n, uint64_t keep,
		     uint8_t *buf)
{
	struct io_req reqs[VOL_BLOCKS];
	for (unsigned i = 0; i < n; i++) {
		unsigned nr = 0;
		bool full = true;
		if (!fds[i])
			continue;
		for (unsigned b = 0; b < VOL_BLOCKS;) {
			unsigned e = b;
			while (e < VOL_BLOCKS && (keep >> e & 1))
				e++;
			if (e > b)
				reqs[nr++] =
				    (struct io_req){.op = IO_READ,
						    .fd = fds[i]->fd,
						    .buf = buf + (size_t)b * VOL_BLOCK_SIZE,
						    .len = (e - b) * VOL_BLOCK_SIZE,
						    .off = (uint64_t)b * VOL_BLOCK_SIZE};
			b = e + 1;
		}
		if (io_batch(ctx, reqs, nr) < 0)
			full = false;
		for (unsigned j = 0; j < nr; j++)
			if (reqs[j].result != (long)reqs[j].len)
				full = false;
		if (full)
			return 0;
	}
	return -EIO;
}

/* Fills a new file (under its temporary name) with the keep blocks of buf
 * and makes them durable, before the file takes its real name. */
static int keep_write(struct io_ctx *ctx, int fd, uint64_t keep, uint8_t *buf)
{
	struct io_req reqs[VOL_BLOCKS];
	unsigned nr = 0;
	for (unsigned b = 0; b < VOL_BLOCKS;) {
		unsigned e = b;
		while (e < VOL_BLOCKS && (keep >> e & 1))
			e++;
		if (e > b)
			reqs[nr++] = (struct io_req){.op = IO_WRITE,
						     .fd = fd,
						     .buf = buf + (size_t)b * VOL_BLOCK_SIZE,
						     .len = (e - b) * VOL_BLOCK_SIZE,
						     .off = (uint64_t)b * VOL_BLOCK_SIZE};
		b = e + 1;
	}
	int ret = FAULT("bs.keep_write") ? -EIO : io_batch(ctx, reqs, nr);
	if (ret == 0)
		ret = io_fdatasync(ctx, &fd, 1);
	return ret;
}

/* Opens (pinned) the n replica files of (id, gen, index) on devs; with
 * create, makes the missing ones and syncs their folders, so the extent
 * map may name them afterwards. Without create, -ENOENT when one is
 * missing. On error nothing stays pinned and no new file stays.
 *
 * keep: blocks the map already names in this generation. A file made anew
 * for such a generation (its old copy was lost) gets those blocks copied
 * from a replica that still has its file, and made durable, under a
 * temporary name: a file under the real name never reads zeroes where the
 * map names bytes, so reads (replica 0 first), resync and fsck --fix may
 * take any copy present as their source. -EIO when no replica has them. */
int bs_open_replicas(struct bs_store *bs, struct bs_io_state *st, struct io_ctx *ctx,
		     const uint8_t *id, uint32_t gen, uint64_t index, const uint32_t *devs,
		     unsigned n, bool create, uint64_t keep, struct bs_fd **fds)
{
	char paths[BS_REPL_MAX][PATH_MAX];
	int newfd[BS_REPL_MAX];
	unsigned nnew = 0, named = 0;
	uint8_t *kbuf = NULL;
	int ret = 0;
	for (unsigned i = 0; i < n; i++) {
		fds[i] = NULL;
		ret = bs_fd_get(bs, st, id, gen, index, devs[i], &fds[i]);
		if (ret == -ENOENT && create) {
			ret = file_create(bs, id, gen, index, devs[i], paths[nnew],
					  sizeof(paths[0]), keep != 0);
			if (ret >= 0) {
				newfd[nnew++] = ret;
				ret = 0;
			}
		}
		if (ret < 0)
			goto out;
	}
	if (nnew && keep) {
		kbuf = io_alloc(VOL_EXTENT_SIZE);
		ret = kbuf ? keep_read(ctx, fds, n, keep, kbuf) : -ENOMEM;
		for (unsigned j = 0; ret == 0 && j < nnew; j++)
			ret = keep_write(ctx, newfd[j], keep, kbuf);
		/* link, not rename: like O_EXCL, never replaces a file a
		 * racing creator put there. */
		for (; ret == 0 && named < nnew; named++) {
			char *tmp = paths[named] + strlen(paths[named]) + 1;
			if (link(tmp, paths[named]) < 0)
				ret = -errno;
			else
				unlink(tmp);
		}
		if (ret < 0) {
			log_err(BS_TAG, "extent %llu gen %u: restoring a lost replica file: %s",
				(unsigned long long)index, gen, cairn_strerror(ret));
			goto out;
		}
	} else {
		named = nnew;
	}
	for (unsigned i = 0, j = 0; i < n && j < nnew; i++) {
		if (fds[i])
			continue;
		char *slash = strrchr(paths[j], '/');
		*slash = 0;
		ret = io_fsync_dir(paths[j]);
		*slash = '/';
		if (ret < 0)
			goto out;
		j++;
	}
	for (unsigned i = 0, j = 0; i < n; i++) {
		if (fds[i])
			continue;
		fds[i] = fd_insert(st, id, gen, index, devs[i], newfd[j]);
		newfd[j++] = -1;
		if (!fds[i]) {
			ret = -ENOMEM;
			goto out;
		}
	}
out:
	if (ret < 0) {
		for (unsigned j = 0; j < nnew; j++)
			if (newfd[j] >= 0) {
				io_close(newfd[j]);
				if (j < named)
					unlink(paths[j]);
				if (keep) /* the temporary name */
					unlink(paths[j] + strlen(paths[j]) + 1);
			}
		for (unsigned i = 0; i < n; i++) {
			bs_fd_unpin(st, fds[i]);
			fds[i] = NULL;
		}
	}
	io_free(kbuf);
	return ret;
}

/* ---- flush and intents ---- */

/* Makes every file dirtied before the call durable. Flushes are
 * serialized; one that finds a later flush already covered its writes
 * returns at once (concurrent FLUSHes share one fdatasync round). */
int bs_flush_vol(struct bs_io_state *st, struct io_ctx *ctx)
{
	struct bs_fd **list = NULL, *f;
	uint64_t s0, s;
	size_t n, i;
	int *fds = NULL, ret = 0;
	pthread_mutex_lock(&st->lock);
	s0 = st->seq;
	pthread_mutex_unlock(&st->lock);
	pthread_mutex_lock(&st->flush_mu);
	if (st->synced_seq >= s0)
		goto out;
	/* The dirty chain is copied out under the lock: once an entry is
	 * clean, a writer may put it on the new chain (rewriting dnext). */
	pthread_mutex_lock(&st->lock);
	n = st->ndirty;
	if (n && (!(list = malloc(n * sizeof(*list))) || !(fds = malloc(n * sizeof(*fds))))) {
		pthread_mutex_unlock(&st->lock);
		ret = -ENOMEM;
		goto out;
	}
	s = st->seq;
	for (i = 0, f = st->dirty; f; f = f->dnext) {
		f->dirty = false;
		f->pins++;
		list[i] = f;
		fds[i++] = f->fd;
	}
	st->dirty = NULL;
	st->ndirty = 0;
	pthread_mutex_unlock(&st->lock);
	if (n)
		ret = io_fdatasync(ctx, fds, n);
	pthread_mutex_lock(&st->lock);
	for (i = 0; i < n; i++) {
		f = list[i];
		f->pins--;
		if (ret < 0 && !f->dirty) { /* not durable: keep it for the next flush */
			f->dirty = true;
			f->dnext = st->dirty;
			st->dirty = f;
			st->ndirty++;
		}
	}
	pthread_mutex_unlock(&st->lock);
	if (ret == 0)
		st->synced_seq = s;
out:
	pthread_mutex_unlock(&st->flush_mu);
	free(list);
	free(fds);
	return ret;
}

struct intent_arg {
	const uint8_t *id;
	uint64_t index;
	uint32_t gen;
};

void bs_intent_key(uint8_t *k, const uint8_t *id, uint64_t index)
{
	memcpy(k, id, VOL_ID_LEN);
	meta_be64(k + VOL_ID_LEN, index);
}

static int intent_put_cb(struct cs_txn *txn, void *arg)
{
	struct intent_arg *a = arg;
	struct vol_intent_rec r;
	uint8_t k[VOL_INTENT_KEY_LEN];
	memset(&r, 0, sizeof(r));
	r.version = VOL_INTENT_VERSION;
	r.gen = a->gen;
	r.created_ns = bs_now_ns();
	bs_intent_key(k, a->id, a->index);
	return meta_put(cs_txn_meta(txn), META_T_INTENTS, k, sizeof(k), &r, sizeof(r), 0);
}

/* Under e->mu: makes sure an intent naming gen is committed, and counts
 * this write in flight (intent_release ends it). */
static int intent_hold_slow(struct bs_store *bs, struct bs_ext *e, const uint8_t *id, uint32_t gen)
{
	struct intent_arg a = {.id = id, .index = e->index, .gen = gen};
	int ret;
	pthread_mutex_lock(&e->sl);
	if (e->istate == BS_INT_ARMED && e->igen == gen) {
		e->inflight++;
		pthread_mutex_unlock(&e->sl);
		return 0;
	}
	e->istate = BS_INT_ARMING; /* a clear callback now leaves the record alone */
	bool check = !e->ichecked;
	pthread_mutex_unlock(&e->sl);
	if (check) {
		/* Start-up resync deleted every intent: a record found now was
		 * left by an earlier open of this volume whose writes were not
		 * all made durable (a failed last-close flush closed dirty
		 * files) or whose replicas diverged. Ours would overwrite it and
		 * a clear delete it: keep it for the next start's resync. */
		uint8_t k[VOL_INTENT_KEY_LEN];
		struct meta_txn *t = NULL;
		const void *val;
		size_t vl;
		bs_intent_key(k, id, e->index);
		ret = meta_txn_begin(bs->meta, false, &t);
		if (ret == 0)
			ret = meta_get(t, META_T_INTENTS, k, sizeof(k), &val, &vl);
		meta_txn_abort(t);
		pthread_mutex_lock(&e->sl);
		if (ret == 0 && !e->ikeep) {
			e->ikeep = true;
			log_warn(BS_TAG,
				 "extent %llu: an intent left by an earlier open stays "
				 "until the next start resyncs it",
				 (unsigned long long)e->index);
		}
		if (ret == 0 || ret == CAIRN_ENOTFOUND)
			e->ichecked = true;
		pthread_mutex_unlock(&e->sl);
	}
	ret = bs_commit(bs, intent_put_cb, &a);
	pthread_mutex_lock(&e->sl);
	if (ret == 0) {
		e->istate = BS_INT_ARMED;
		e->igen = gen;
		e->inflight++;
		atomic_fetch_add(&bs_io_counters.intents_committed, 1);
	} else {
		e->istate = BS_INT_NONE;
	}
	pthread_mutex_unlock(&e->sl);
	return ret;
}

/* failed: the write failed once its bytes could reach a replica (keep the
 * intent, see ikeep). */
static void intent_release(struct bs_ext *e, uint64_t seq, bool failed)
{
	pthread_mutex_lock(&e->sl);
	if (failed && !e->ikeep) {
		e->ikeep = true;
		log_warn(BS_TAG,
			 "extent %llu: a write failed, its replicas may differ: the "
			 "intent stays until the next start resyncs them",
			 (unsigned long long)e->index);
	}
	if (seq > e->last_seq)
		e->last_seq = seq;
	e->inflight--;
	pthread_mutex_unlock(&e->sl);
}

int bs_io_sync_vol(struct bs_store *bs, struct bs_vol *vol, struct io_ctx *ctx)
{
	(void)bs;
	return bs_flush_vol(vol->io, ctx);
}

/* Takes the gate shared and checks the handle and the range. */
static int io_enter(struct bs_handle *h, uint64_t off, uint64_t len, uint64_t max)
{
	if (bs_handle_revoked(h))
		return -ESHUTDOWN;
	pthread_rwlock_rdlock(&h->vol->gate);
	/* Revocation bumps the epoch under the exclusive gate: checked again
	 * inside, no call of a revoked handle touches the volume. */
	if (bs_handle_revoked(h)) {
		pthread_rwlock_unlock(&h->vol->gate);
		return -ESHUTDOWN;
	}
	uint64_t size = h->snap ? h->snap_size : h->vol->v.size;
	if (len > max || off > size || len > size - off) {
		pthread_rwlock_unlock(&h->vol->gate);
		return CAIRN_EINVAL;
	}
	return 0;
}

static void io_leave(struct bs_handle *h)
{
	pthread_rwlock_unlock(&h->vol->gate);
}

/* ---- reads ---- */

struct pieces {
	struct piece *p;
	size_t n, cap;
	struct piece small[16];
};

static struct piece *pieces_add(struct pieces *ps)
{
	if (ps->n == ps->cap) {
		size_t cap = ps->cap ? 2 * ps->cap : 64;
		struct piece *np = ps->p == ps->small ? malloc(cap * sizeof(*np))
						      : realloc(ps->p, cap * sizeof(*np));
		if (!np)
			return NULL;
		if (ps->p == ps->small)
			memcpy(np, ps->small, sizeof(ps->small));
		ps->p = np;
		ps->cap = cap;
	}
	return &ps->p[ps->n++];
}

static void pieces_init(struct pieces *ps)
{
	ps->p = ps->small;
	ps->n = 0;
	ps->cap = sizeof(ps->small) / sizeof(ps->small[0]);
}

static void pieces_free(struct pieces *ps)
{
	if (ps->p != ps->small)
		free(ps->p);
}

/* Reads every piece, from the first replica that answers: a missing file
 * or a failed read moves that piece to the next replica; -EIO when all
 * fail. One io_batch per replica round. */
int bs_read_pieces(struct bs_store *bs, struct bs_io_state *st, struct io_ctx *ctx, struct piece *p,
		   size_t n)
{
	struct io_req small[16], *reqs = small;
	struct bs_fd *sfd[16], **fds = sfd;
	size_t sidx[16], *pidx = sidx;
	size_t pending = n;
	int ret = 0;
	if (n > 16) {
		reqs = malloc(n * sizeof(*reqs));
		fds = malloc(n * sizeof(*fds));
		pidx = malloc(n * sizeof(*pidx));
		if (!reqs || !fds || !pidx) {
			ret = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++)
		p[i].ret = -EAGAIN;
	for (unsigned r = 0; pending && r < BS_REPL_MAX; r++) {
		size_t nr = 0;
		for (size_t i = 0; i < n; i++) {
			uint32_t devs[BS_REPL_MAX];
			if (p[i].ret != -EAGAIN)
				continue;
			unsigned nd = bs_devs(bs, p[i].id, p[i].index, p[i].nrep, devs);
			if (r >= nd) {
				p[i].ret = -EIO;
				pending--;
				continue;
			}
			if (bs_fd_get(bs, st, p[i].id, p[i].gen, p[i].index, devs[r], &fds[nr]) < 0)
				continue; /* missing here: the next replica */
			reqs[nr] = (struct io_req){.op = IO_READ,
						   .fd = fds[nr]->fd,
						   .buf = p[i].dst,
						   .len = p[i].len,
						   .off = p[i].foff};
			pidx[nr++] = i;
		}
		if (nr && io_batch(ctx, reqs, nr) < 0) {
			/* per-request results below say which */
		}
		for (size_t j = 0; j < nr; j++) {
			if (reqs[j].result == (long)reqs[j].len) {
				p[pidx[j]].ret = 0;
				pending--;
			}
			bs_fd_unpin(st, fds[j]);
		}
	}
	for (size_t i = 0; i < n; i++)
		if (p[i].ret != 0) {
			ret = -EIO;
			log_err(BS_TAG, "extent %llu gen %u: no replica could be read",
				(unsigned long long)p[i].index, p[i].gen);
			break;
		}
out:
	if (reqs != small)
		free(reqs);
	if (fds != sfd)
		free(fds);
	if (pidx != sidx)
		free(pidx);
	return ret;
}

/* Blocks b and b2 of r read from the same source (one piece): the same
 * generation file, the base, or zeroes. */
static bool same_run(const struct vol_resolved *r, unsigned b, unsigned b2)
{
	const struct vol_blk *k = &r->blk[b], *k2 = &r->blk[b2];
	if (k->kind == VOL_BLK_WRITTEN)
		return k2->kind == VOL_BLK_WRITTEN && k2->depth == k->depth && k2->gen == k->gen;
	if (k->kind == VOL_BLK_BASE)
		return k2->kind == VOL_BLK_BASE;
	return k2->kind != VOL_BLK_WRITTEN && k2->kind != VOL_BLK_BASE;
}

/* The view a handle reads under the gate: the head, or its snapshot's
 * generation with the snapshot's size (blocks a later shrink cut off still
 * belong to the snapshot). */
static const struct vol *handle_view(struct bs_handle *h, struct vol *tmp, uint32_t *gen)
{
	if (!h->snap) {
		*gen = h->vol->v.gen;
		return &h->vol->v;
	}
	*tmp = h->vol->v;
	tmp->size = h->snap_size;
	*gen = h->snap_gen;
	return tmp;
}

/* Reads [off, off+len) (IO_ALIGN-aligned, dst too) of the handle's view. */
static int read_aligned(struct bs_handle *h, struct io_ctx *ctx, uint8_t *dst, uint64_t off,
			uint64_t len)
{
	struct bs_vol *vol = h->vol;
	struct vol *tmp = h->snap ? malloc(sizeof(*tmp)) : NULL;
	uint32_t view = 0;
	const struct vol *v = h->snap && !tmp ? NULL : handle_view(h, tmp, &view);
	struct bs_io_state *st = vol->io;
	struct wkey key = {.gen = view, .epoch = h->epoch, .size = v ? v->size : 0};
	struct meta_txn *t = NULL;
	struct vol_resolved *res = NULL;
	struct base_piece *bp = NULL;
	size_t nbp = 0, capbp = 0;
	uint8_t base_mid[VOL_ID_LEN];
	struct pieces ps;
	int ret = 0;
	pieces_init(&ps);
	if (!v) {
		ret = -ENOMEM;
		goto out;
	}
	while (len) {
		uint64_t index = off / VOL_EXTENT_SIZE;
		uint32_t eoff = (uint32_t)(off % VOL_EXTENT_SIZE);
		uint32_t elen =
		    (uint32_t)(len < VOL_EXTENT_SIZE - eoff ? len : VOL_EXTENT_SIZE - eoff);
		uint64_t covered = blocks_mask(eoff, elen), ver0 = 0;
		struct bs_ext *e = NULL;
		struct piece *p;
		bool hit = false;
		/* The written-block cache knows the head only. */
		if (!h->snap) {
			ret = ext_get(st, index, &e);
			if (ret < 0)
				goto out;
			pthread_mutex_lock(&e->sl);
			hit = wkey_ok(e, &key) && (e->wmask & covered) == covered;
			ver0 = e->wver;
			pthread_mutex_unlock(&e->sl);
		}
		if (hit) {
			if (!(p = pieces_add(&ps))) {
				ret = -ENOMEM;
				goto out;
			}
			*p = (struct piece){.index = index,
					    .gen = v->gen,
					    .nrep = v->replicas,
					    .foff = eoff,
					    .len = elen,
					    .dst = dst};
			memcpy(p->id, v->id, VOL_ID_LEN);
			goto next;
		}
		if (!res && !(res = malloc(sizeof(*res)))) {
			ret = -ENOMEM;
			goto out;
		}
		if (!t && (ret = meta_txn_begin(h->bs->meta, false, &t)) < 0)
			goto out;
		ret = vol_map_resolve(t, v, view, index, res);
		if (ret < 0)
			goto out;
		if (e)
			ext_learn(e, &key, ver0, head_mask(res, v->gen));
		for (unsigned b = eoff / VOL_BLOCK_SIZE; b <= (eoff + elen - 1) / VOL_BLOCK_SIZE;) {
			const struct vol_blk *k = &res->blk[b];
			unsigned b2 = b + 1;
			while (b2 < VOL_BLOCKS && b2 <= (eoff + elen - 1) / VOL_BLOCK_SIZE &&
			       same_run(res, b, b2))
				b2++;
			uint32_t s = b * VOL_BLOCK_SIZE > eoff ? b * VOL_BLOCK_SIZE : eoff;
			uint32_t en =
			    b2 * VOL_BLOCK_SIZE < eoff + elen ? b2 * VOL_BLOCK_SIZE : eoff + elen;
			uint8_t *d = dst + (s - eoff);
			if (k->kind == VOL_BLK_BASE) {
				uint64_t vo = index * VOL_EXTENT_SIZE + s;
				/* One manifest per chain; runs that continue the
				 * previous one (across extents too) are merged, so a
				 * cold read is one cs_reader_read. */
				if (nbp && bp[nbp - 1].off + bp[nbp - 1].len == vo &&
				    bp[nbp - 1].dst + bp[nbp - 1].len == d) {
					bp[nbp - 1].len += en - s;
				} else {
					if (nbp == capbp) {
						size_t nc = capbp ? 2 * capbp : 8;
						struct base_piece *nb =
						    realloc(bp, nc * sizeof(*nb));
						if (!nb) {
							ret = -ENOMEM;
							goto out;
						}
						bp = nb;
						capbp = nc;
					}
					bp[nbp++] =
					    (struct base_piece){.off = vo, .len = en - s, .dst = d};
				}
				memcpy(base_mid, res->base_mid, VOL_ID_LEN);
			} else if (k->kind != VOL_BLK_WRITTEN) {
				memset(d, 0, en - s);
			} else {
				if (!(p = pieces_add(&ps))) {
					ret = -ENOMEM;
					goto out;
				}
				*p = (struct piece){.index = index,
						    .gen = k->gen,
						    .nrep = k->depth ? 0 : v->replicas,
						    .foff = s,
						    .len = en - s,
						    .dst = d};
				memcpy(p->id, res->ids[k->depth], VOL_ID_LEN);
			}
			b = b2;
		}
	next:
		off += elen;
		len -= elen;
		dst += elen;
	}
	meta_txn_abort(t);
	t = NULL;
	ret = bs_read_pieces(h->bs, st, ctx, ps.p, ps.n);
	if (ret == 0)
		ret = base_read(h->bs, vol, base_mid, bp, nbp);
out:
	meta_txn_abort(t);
	free(res);
	free(bp);
	free(tmp);
	pieces_free(&ps);
	return ret;
}

int bs_read(struct bs_handle *h, struct io_ctx *ctx, void *buf, uint64_t off, uint32_t len)
{
	uint8_t *bounce = NULL;
	int ret;
	if (!h || !ctx || (!buf && len))
		return CAIRN_EINVAL;
	ret = io_enter(h, off, len, BS_IO_MAX);
	if (ret < 0)
		return ret;
	if (len == 0)
		goto out;
	if ((off | len | (uintptr_t)buf) % IO_ALIGN == 0) {
		ret = read_aligned(h, ctx, buf, off, len);
		goto out;
	}
	/* Unaligned: read the aligned envelope into a bounce buffer. */
	uint64_t a = off & ~(uint64_t)(IO_ALIGN - 1);
	uint64_t b = (off + len + IO_ALIGN - 1) & ~(uint64_t)(IO_ALIGN - 1);
	uint64_t vsize = h->snap ? h->snap_size : h->vol->v.size;
	if (b > vsize) /* sizes are 64 KiB multiples: cannot happen */
		b = vsize;
	bounce = io_alloc(b - a);
	if (!bounce) {
		ret = -ENOMEM;
		goto out;
	}
	ret = read_aligned(h, ctx, bounce, a, b - a);
	if (ret == 0)
		memcpy(buf, bounce + (off - a), len);
out:
	if (ret == 0) {
		atomic_fetch_add(&bs_io_counters.read_ops, 1);
		atomic_fetch_add(&bs_io_counters.read_bytes, len);
	}
	io_leave(h);
	io_free(bounce);
	return ret;
}

/* ---- writes ---- */

/* The pinned head files a write keeps until it returns (FUA syncs them). */
struct wstate {
	struct bs_handle *h;
	struct io_ctx *ctx;
	const struct vol *v;
	struct wkey key;
	unsigned flags;
	struct bs_fd *held[BS_WRITE_EXTENTS_MAX * BS_REPL_MAX];
	unsigned nheld;
};

static pthread_mutex_t *blk_lock(struct bs_io_state *st, uint64_t index, uint64_t foff)
{
	uint64_t k = index * (VOL_EXTENT_SIZE / IO_ALIGN) + foff / IO_ALIGN;
	return &st->blk[(k * 0x9E3779B97F4A7C15ull >> 40) % BS_BLOCK_LOCKS];
}

/* Reads one 4 KiB device block of the head file from the first replica
 * that answers. */
static int rmw_read(struct io_ctx *ctx, struct bs_fd **fds, unsigned n, uint8_t *dst, uint64_t foff)
{
	int ret = -EIO;
	for (unsigned i = 0; i < n; i++) {
		long r = io_pread(ctx, fds[i]->fd, dst, IO_ALIGN, foff);
		if (r == IO_ALIGN)
			return 0;
		ret = r < 0 ? (int)r : -EIO;
	}
	return ret;
}

/* Writes len bytes at file offset foff to the n replica files at once
 * (one io_batch). An unaligned head or tail 4 KiB device block is
 * read-modify-written under its block lock: its other bytes must be
 * written bytes of this generation (the caller built whole 64 KiB blocks
 * for anything else). */
static int data_write(struct bs_io_state *st, struct io_ctx *ctx, uint64_t index,
		      struct bs_fd **fds, unsigned n, uint32_t foff, uint32_t len,
		      const uint8_t *src)
{
	struct io_req reqs[BS_REPL_MAX];
	uint32_t a = foff & ~(IO_ALIGN - 1), b = (foff + len + IO_ALIGN - 1) & ~(IO_ALIGN - 1);
	bool head = a != foff, tail = b != foff + len;
	pthread_mutex_t *l1 = NULL, *l2 = NULL;
	uint8_t *bounce = NULL;
	const uint8_t *out = src;
	int ret = 0;
	if (head || tail || (uintptr_t)src % IO_ALIGN) {
		bounce = io_alloc(b - a);
		if (!bounce)
			return -ENOMEM;
		out = bounce;
	}
	if (head)
		l1 = blk_lock(st, index, a);
	if (tail)
		l2 = blk_lock(st, index, b - IO_ALIGN);
	if (l1 && l2 && l1 == l2)
		l2 = NULL;
	if (l1 && l2 && l1 > l2) { /* one order for every thread */
		pthread_mutex_t *x = l1;
		l1 = l2;
		l2 = x;
	}
	if (!l1) {
		l1 = l2;
		l2 = NULL;
	}
	if (l1)
		pthread_mutex_lock(l1);
	if (l2)
		pthread_mutex_lock(l2);
	if (head)
		ret = rmw_read(ctx, fds, n, bounce, a);
	if (ret == 0 && tail && !(head && b - a == IO_ALIGN))
		ret = rmw_read(ctx, fds, n, bounce + (b - a - IO_ALIGN), b - IO_ALIGN);
	if (ret < 0)
		goto out;
	if (bounce)
		memcpy(bounce + (foff - a), src, len);
	for (unsigned i = 0; i < n; i++)
		reqs[i] = (struct io_req){
		    .op = IO_WRITE, .fd = fds[i]->fd, .buf = (void *)out, .len = b - a, .off = a};
	/* Test point bs.write_partial: the last replica's write fails. */
	bool partial = n > 1 && FAULT("bs.write_partial");
	ret = FAULT("bs.write") ? -EIO : io_batch(ctx, reqs, partial ? n - 1 : n);
	if (ret == 0 && partial)
		ret = -EIO;
out:
	if (l2)
		pthread_mutex_unlock(l2);
	if (l1)
		pthread_mutex_unlock(l1);
	io_free(bounce);
	return ret;
}

/* Block b of the head files, built whole: the older bytes it reads
 * (copy-up from an older generation or the parent) or zeroes, with the
 * write's bytes [s, en) of the extent laid over. */
static int build_block(struct wstate *ws, struct bs_io_state *st, uint64_t index,
		       const struct vol_resolved *prior, unsigned b, struct bs_fd **fds, unsigned n,
		       uint32_t s, uint32_t en, const uint8_t *src)
{
	const struct vol_blk *k = &prior->blk[b];
	uint8_t *buf = io_alloc(VOL_BLOCK_SIZE);
	int ret = 0;
	if (!buf)
		return -ENOMEM;
	if (k->kind == VOL_BLK_WRITTEN) {
		struct piece p = {.index = index,
				  .gen = k->gen,
				  .nrep = k->depth ? 0 : ws->v->replicas,
				  .foff = (uint64_t)b * VOL_BLOCK_SIZE,
				  .len = VOL_BLOCK_SIZE,
				  .dst = buf};
		memcpy(p.id, prior->ids[k->depth], VOL_ID_LEN);
		ret = bs_read_pieces(ws->h->bs, st, ws->ctx, &p, 1);
	} else if (k->kind == VOL_BLK_BASE) {
		/* Copy-up from the base manifest: this block only. */
		struct base_piece p = {.off =
					   index * VOL_EXTENT_SIZE + (uint64_t)b * VOL_BLOCK_SIZE,
				       .len = VOL_BLOCK_SIZE,
				       .dst = buf};
		ret = base_read(ws->h->bs, ws->h->vol, prior->base_mid, &p, 1);
	} /* else zeroes: io_alloc zeroes */
	if (ret == 0) {
		memcpy(buf + (s - b * VOL_BLOCK_SIZE), src, en - s);
		ret =
		    data_write(st, ws->ctx, index, fds, n, b * VOL_BLOCK_SIZE, VOL_BLOCK_SIZE, buf);
	}
	io_free(buf);
	return ret;
}

struct mapw_arg {
	const struct vol *v;
	uint64_t index;
	uint32_t off, len;
	enum vol_write_kind kind;
	struct vol_write_out out;
};

static int mapw_cb(struct cs_txn *txn, void *arg)
{
	struct mapw_arg *a = arg;
	return vol_map_write(cs_txn_meta(txn), a->v, a->index, a->off, a->len, a->kind, &a->out);
}

/* One extent's part of a write: [eoff, eoff+elen) of extent index. */
static int write_ext(struct wstate *ws, uint64_t index, uint32_t eoff, uint32_t elen,
		     const uint8_t *src)
{
	const struct vol *v = ws->v;
	struct bs_io_state *st = ws->h->vol->io;
	struct bs_store *bs = ws->h->bs;
	uint64_t covered = blocks_mask(eoff, elen), hm, ver0;
	uint32_t devs[BS_REPL_MAX];
	struct bs_fd *fds[BS_REPL_MAX] = {0};
	struct vol_resolved *prior = NULL;
	struct mapw_arg *ma = NULL;
	struct meta_txn *t = NULL;
	struct bs_ext *e;
	bool fast, held = false, locked = false;
	unsigned n = bs_devs(bs, v->id, index, v->replicas, devs);
	int ret = ext_get(st, index, &e);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&e->sl);
	fast = wkey_ok(e, &ws->key) && (e->wmask & covered) == covered &&
	       e->istate == BS_INT_ARMED && e->igen == v->gen;
	if (fast)
		e->inflight++;
	pthread_mutex_unlock(&e->sl);
	if (fast) {
		held = true;
		ret =
		    bs_open_replicas(bs, st, ws->ctx, v->id, v->gen, index, devs, n, false, 0, fds);
		if (ret == 0)
			ret = data_write(st, ws->ctx, index, fds, n, eoff, elen, src);
		goto out;
	}
	/* Slow path: the extent's mutex orders map changes of this extent. */
	pthread_mutex_lock(&e->mu);
	locked = true;
	prior = malloc(sizeof(*prior));
	ma = calloc(1, sizeof(*ma));
	if (!prior || !ma) {
		ret = -ENOMEM;
		goto out;
	}
	ver0 = ext_ver(e);
	ret = meta_txn_begin(bs->meta, false, &t);
	if (ret == 0)
		ret = vol_map_resolve(t, v, v->gen, index, prior);
	meta_txn_abort(t);
	if (ret < 0)
		goto out;
	hm = head_mask(prior, v->gen);
	ext_learn(e, &ws->key, ver0, hm);
	ret = intent_hold_slow(bs, e, v->id, v->gen);
	if (ret < 0)
		goto out;
	held = true;
	bool newblocks = (covered & ~hm) != 0;
	/* A head file made anew while the map names blocks in it (its old
	 * copy was lost) gets those blocks from another replica first. */
	ret = bs_open_replicas(bs, st, ws->ctx, v->id, v->gen, index, devs, n, newblocks, hm, fds);
	if (ret < 0)
		goto out;
	unsigned fb = eoff / VOL_BLOCK_SIZE, lb = (eoff + elen - 1) / VOL_BLOCK_SIZE;
	uint32_t s = eoff, en = eoff + elen;
	/* Partly covered blocks not yet in this generation are written whole. */
	if (eoff % VOL_BLOCK_SIZE && !(hm >> fb & 1)) {
		uint32_t bend = (fb + 1) * VOL_BLOCK_SIZE < en ? (fb + 1) * VOL_BLOCK_SIZE : en;
		ret = build_block(ws, st, index, prior, fb, fds, n, s, bend, src);
		if (ret < 0)
			goto out;
		s = bend;
	}
	if (s < en && en % VOL_BLOCK_SIZE && !(hm >> lb & 1)) {
		uint32_t bstart = lb * VOL_BLOCK_SIZE > s ? lb * VOL_BLOCK_SIZE : s;
		ret = build_block(ws, st, index, prior, lb, fds, n, bstart, en,
				  src + (bstart - eoff));
		if (ret < 0)
			goto out;
		en = bstart;
	}
	if (s < en) {
		ret = data_write(st, ws->ctx, index, fds, n, s, en - s, src + (s - eoff));
		if (ret < 0)
			goto out;
	}
	if (newblocks) {
		/* Data before metadata: the map names the blocks only once their
		 * bytes are durable on every replica. */
		int sfd[BS_REPL_MAX];
		for (unsigned i = 0; i < n; i++)
			sfd[i] = fds[i]->fd;
		ret = io_fdatasync(ws->ctx, sfd, n);
		if (ret < 0)
			goto out;
		ma->v = v;
		ma->index = index;
		ma->off = eoff;
		ma->len = elen;
		ma->kind = VOL_WRITE;
		ret = bs_commit(bs, mapw_cb, ma);
		if (ret < 0)
			goto out;
		atomic_fetch_add(&bs_io_counters.map_commits, 1);
		ext_learn(e, &ws->key, ver0, covered);
	}
out:
	if (locked)
		pthread_mutex_unlock(&e->mu);
	if (held) {
		uint64_t seq = 0;
		if (fds[0]) /* on failure too: bytes may have reached some replica */
			seq = fd_mark_dirty(st, fds, n);
		intent_release(e, seq, ret < 0 && fds[0]);
	}
	if (ret == 0 && fds[0] && (ws->flags & BS_FUA) && ws->nheld + n > BS_ARRAY_LEN(ws->held)) {
		int sfd[BS_REPL_MAX]; /* no room to hold them: durable now */
		for (unsigned i = 0; i < n; i++)
			sfd[i] = fds[i]->fd;
		ret = io_fdatasync(ws->ctx, sfd, n);
	}
	for (unsigned i = 0; i < n; i++) {
		if (!fds[i])
			continue;
		if (ret == 0 && (ws->flags & BS_FUA) && ws->nheld < BS_ARRAY_LEN(ws->held))
			ws->held[ws->nheld++] = fds[i];
		else
			bs_fd_unpin(st, fds[i]);
	}
	free(prior);
	free(ma);
	return ret;
}

static int write_range(struct wstate *ws, uint64_t off, uint64_t len, const uint8_t *src)
{
	int ret = 0;
	while (len && ret == 0) {
		uint64_t index = off / VOL_EXTENT_SIZE;
		uint32_t eoff = (uint32_t)(off % VOL_EXTENT_SIZE);
		uint32_t elen =
		    (uint32_t)(len < VOL_EXTENT_SIZE - eoff ? len : VOL_EXTENT_SIZE - eoff);
		ret = write_ext(ws, index, eoff, elen, src);
		off += elen;
		len -= elen;
		src += elen;
	}
	return ret;
}

/* Dirty files are never closed, so a client that never flushes would
 * hold an fd per extent written: past half the cache's cap, the writer
 * that notices flushes (what a FLUSH would do, only earlier). */
static int dirty_bound(struct bs_io_state *st, struct io_ctx *ctx)
{
	pthread_mutex_lock(&st->lock);
	bool over = st->ndirty > BS_FD_CAP / 2;
	pthread_mutex_unlock(&st->lock);
	return over ? bs_flush_vol(st, ctx) : 0;
}

/* FUA: the files this write touched, durable before it returns. */
static int ws_finish(struct wstate *ws, int ret)
{
	struct bs_io_state *st = ws->h->vol->io;
	if (ret == 0 && ws->nheld) {
		int fds[BS_ARRAY_LEN(ws->held)];
		for (unsigned i = 0; i < ws->nheld; i++)
			fds[i] = ws->held[i]->fd;
		ret = io_fdatasync(ws->ctx, fds, ws->nheld);
	}
	for (unsigned i = 0; i < ws->nheld; i++)
		bs_fd_unpin(st, ws->held[i]);
	ws->nheld = 0;
	return ret;
}

int bs_write(struct bs_handle *h, struct io_ctx *ctx, const void *buf, uint64_t off, uint32_t len,
	     unsigned flags)
{
	struct wstate ws;
	int ret;
	if (!h || !ctx || (!buf && len))
		return CAIRN_EINVAL;
	if (h->snap)
		return -EROFS;
	ret = io_enter(h, off, len, BS_IO_MAX);
	if (ret < 0)
		return ret;
	ws = (struct wstate){.h = h, .ctx = ctx, .v = &h->vol->v, .flags = flags};
	ws.key = (struct wkey){.gen = ws.v->gen, .epoch = h->epoch, .size = ws.v->size};
	ret = write_range(&ws, off, len, buf);
	ret = ws_finish(&ws, ret);
	if (ret == 0)
		ret = dirty_bound(h->vol->io, ctx);
	if (ret == 0) {
		atomic_fetch_add(&bs_io_counters.write_ops, 1);
		atomic_fetch_add(&bs_io_counters.write_bytes, len);
	}
	io_leave(h);
	return ret;
}

/* ---- zeroes ---- */

/* Writes zero bytes over [off, off+len) (inside one 64 KiB block) unless
 * the block reads zero already. */
static int zero_partial(struct wstate *ws, uint64_t off, uint64_t len, bool fast_only)
{
	struct meta_txn *t = NULL;
	struct vol_resolved *r = malloc(sizeof(*r));
	uint64_t index = off / VOL_EXTENT_SIZE;
	unsigned b = (unsigned)(off % VOL_EXTENT_SIZE / VOL_BLOCK_SIZE);
	int ret;
	if (!r)
		return -ENOMEM;
	ret = meta_txn_begin(ws->h->bs->meta, false, &t);
	if (ret == 0)
		ret = vol_map_resolve(t, ws->v, ws->v->gen, index, r);
	meta_txn_abort(t);
	if (ret == 0 && (r->blk[b].kind == VOL_BLK_WRITTEN || r->blk[b].kind == VOL_BLK_BASE))
		ret = fast_only ? -ENOTSUP : 1;
	free(r);
	if (ret == 1 && !fast_only)
		ret = write_range(ws, off, len, bs_zeros);
	return ret;
}

struct zero_arg {
	const struct vol *v;
	uint64_t *index; /* extents to record */
	size_t n;
	uint64_t off, end; /* whole blocks, volume bytes */
	uint64_t *zeroed;  /* out: per extent, the blocks recorded zero */
};

static int zero_cb(struct cs_txn *txn, void *arg)
{
	struct zero_arg *a = arg;
	struct vol_write_out *out = malloc(sizeof(*out));
	int ret = 0;
	if (!out)
		return -ENOMEM;
	for (size_t i = 0; i < a->n && ret == 0; i++) {
		uint64_t s = a->index[i] * VOL_EXTENT_SIZE, en = s + VOL_EXTENT_SIZE;
		if (s < a->off)
			s = a->off;
		if (en > a->end)
			en = a->end;
		ret = vol_map_write(cs_txn_meta(txn), a->v, a->index[i],
				    (uint32_t)(s % VOL_EXTENT_SIZE), (uint32_t)(en - s), VOL_ZERO,
				    out);
		a->zeroed[i] = blocks_mask((uint32_t)(s % VOL_EXTENT_SIZE), (uint32_t)(en - s));
	}
	free(out);
	return ret;
}

/* Whole blocks [off, end): one commit for every extent that has a block
 * that does not read zero yet; none at all when every block does. */
static int zero_whole(struct wstate *ws, uint64_t off, uint64_t end)
{
	struct bs_io_state *st = ws->h->vol->io;
	struct vol_resolved *r = malloc(sizeof(*r));
	struct zero_arg a = {.v = ws->v, .off = off, .end = end};
	struct meta_txn *t = NULL;
	size_t cap = 0;
	int ret;
	if (!r)
		return -ENOMEM;
	ret = meta_txn_begin(ws->h->bs->meta, false, &t);
	for (uint64_t index = off / VOL_EXTENT_SIZE; ret == 0 && index * VOL_EXTENT_SIZE < end;
	     index++) {
		uint64_t s = index * VOL_EXTENT_SIZE, en = s + VOL_EXTENT_SIZE;
		if (s < off)
			s = off;
		if (en > end)
			en = end;
		ret = vol_map_resolve(t, ws->v, ws->v->gen, index, r);
		if (ret < 0)
			break;
		/* Base blocks are recorded zero too (metadata only). */
		if (!((r->written | r->base) &
		      blocks_mask((uint32_t)(s % VOL_EXTENT_SIZE), (uint32_t)(en - s))))
			continue;
		if (a.n == cap) {
			cap = cap ? 2 * cap : 16;
			uint64_t *ni = realloc(a.index, cap * sizeof(*ni));
			if (!ni) {
				ret = -ENOMEM;
				break;
			}
			a.index = ni;
		}
		a.index[a.n++] = index;
	}
	meta_txn_abort(t);
	free(r);
	if (ret == 0 && a.n) {
		a.zeroed = calloc(a.n, sizeof(*a.zeroed));
		ret = a.zeroed ? bs_commit(ws->h->bs, zero_cb, &a) : -ENOMEM;
	}
	if (ret == 0) {
		for (size_t i = 0; i < a.n; i++) {
			struct bs_ext *e;
			if (ext_get(st, a.index[i], &e) < 0)
				continue;
			pthread_mutex_lock(&e->sl);
			e->wmask &= ~a.zeroed[i];
			e->wver++;
			pthread_mutex_unlock(&e->sl);
		}
		if (a.n)
			atomic_fetch_add(&bs_io_counters.map_commits, 1);
	} else if (a.zeroed) {
		/* The commit may have happened: forget what the cache knows. */
		for (size_t i = 0; i < a.n; i++) {
			struct bs_ext *e;
			if (ext_get(st, a.index[i], &e) < 0)
				continue;
			pthread_mutex_lock(&e->sl);
			e->wvalid = false;
			e->wver++;
			pthread_mutex_unlock(&e->sl);
		}
	}
	free(a.index);
	free(a.zeroed);
	return ret;
}

int bs_zero(struct bs_handle *h, struct io_ctx *ctx, uint64_t off, uint64_t len, unsigned flags)
{
	struct wstate ws;
	uint64_t end = off + len, ws_s, ws_e;
	int ret;
	if (!h || !ctx)
		return CAIRN_EINVAL;
	if (h->snap)
		return -EROFS;
	ret = io_enter(h, off, len, UINT64_MAX);
	if (ret < 0)
		return ret;
	if (len == 0)
		goto out;
	ws = (struct wstate){.h = h, .ctx = ctx, .v = &h->vol->v, .flags = flags};
	ws.key = (struct wkey){.gen = ws.v->gen, .epoch = h->epoch, .size = ws.v->size};
	if (flags & BS_NO_HOLE) {
		/* Provisioned: zero bytes through the write path, so the blocks
		 * become present. Data writes are never fast. */
		if (flags & (BS_FAST_ZERO | BS_TRIM)) {
			ret = flags & BS_FAST_ZERO ? -ENOTSUP : CAIRN_EINVAL;
			goto out;
		}
		for (uint64_t o = off; ret == 0 && o < end;) {
			uint32_t eoff = (uint32_t)(o % VOL_EXTENT_SIZE);
			uint64_t elen =
			    VOL_EXTENT_SIZE - eoff < end - o ? VOL_EXTENT_SIZE - eoff : end - o;
			ret = write_ext(&ws, o / VOL_EXTENT_SIZE, eoff, (uint32_t)elen, bs_zeros);
			o += elen;
		}
		ret = ws_finish(&ws, ret);
		if (ret == 0)
			ret = dirty_bound(h->vol->io, ctx);
		goto out;
	}
	ws_s = (off + VOL_BLOCK_SIZE - 1) & ~(uint64_t)(VOL_BLOCK_SIZE - 1);
	ws_e = end & ~(uint64_t)(VOL_BLOCK_SIZE - 1);
	if (ws_s > ws_e) /* inside one block: [off, end) is the head part */
		ws_s = ws_e = end;
	/* Partial blocks: [off, ws_s) and [ws_e, end). */
	if (!(flags & BS_TRIM)) {
		/* FAST_ZERO: refuse before anything changed. */
		if (flags & BS_FAST_ZERO) {
			if (off < ws_s && (ret = zero_partial(&ws, off, ws_s - off, true)) < 0)
				goto out;
			if (ws_e < end && (ret = zero_partial(&ws, ws_e, end - ws_e, true)) < 0)
				goto out;
		}
		if (off < ws_s && (ret = zero_partial(&ws, off, ws_s - off, false)) < 0)
			goto out;
		if (ws_e < end && (ret = zero_partial(&ws, ws_e, end - ws_e, false)) < 0)
			goto out;
	}
	if (ws_s < ws_e)
		ret = zero_whole(&ws, ws_s, ws_e);
	ret = ws_finish(&ws, ret);
out:
	io_leave(h);
	return ret;
}

int bs_flush(struct bs_handle *h, struct io_ctx *ctx)
{
	int ret;
	if (!h || !ctx)
		return CAIRN_EINVAL;
	if (h->snap) /* nothing to make durable: a snapshot never changes */
		return 0;
	ret = io_enter(h, 0, 0, 0);
	if (ret < 0)
		return ret;
	ret = bs_flush_vol(h->vol->io, ctx);
	io_leave(h);
	if (ret == 0) {
		/* Outside the gate: a clear commits, and management waits on
		 * the gate for no commit of ours. Its failure costs a resync
		 * at the next start, never this flush's answer. */
		int r = bs_intents_clear(h->bs, h->vol, false);
		if (r < 0)
			log_warn(BS_TAG, "volume %s: clearing write intents: %s", h->name,
				 cairn_strerror(r));
	}
	return ret;
}

/* ---- block status ---- */

struct run {
	uint64_t off, len;
	unsigned flags;
};

int bs_block_status(struct bs_handle *h, uint64_t off, uint64_t len,
		    int (*fn)(uint64_t off, uint64_t len, unsigned flags, void *arg), void *arg)
{
	struct meta_txn *t = NULL;
	struct vol_resolved *r = NULL;
	struct vol *tmp = NULL;
	struct run *runs = NULL;
	size_t n = 0, cap = 0;
	uint64_t start = off;
	int ret;
	if (!h || !fn)
		return CAIRN_EINVAL;
	ret = io_enter(h, off, len, UINT64_MAX);
	if (ret < 0)
		return ret;
	uint32_t view;
	uint64_t msize = 0;
	bool have_msize = false;
	tmp = h->snap ? malloc(sizeof(*tmp)) : NULL;
	r = malloc(sizeof(*r));
	if (!r || (h->snap && !tmp)) {
		ret = -ENOMEM;
		goto out;
	}
	const struct vol *v = handle_view(h, tmp, &view);
	ret = meta_txn_begin(h->bs->meta, false, &t);
	/* Collected under the read transaction, reported after it ended (fn
	 * may do network I/O). */
	while (ret == 0 && len) {
		uint64_t index = off / VOL_EXTENT_SIZE;
		uint32_t eoff = (uint32_t)(off % VOL_EXTENT_SIZE);
		uint32_t elen =
		    (uint32_t)(len < VOL_EXTENT_SIZE - eoff ? len : VOL_EXTENT_SIZE - eoff);
		if (n && off - start >= BS_STATUS_MAX)
			break;
		ret = vol_map_resolve(t, v, view, index, r);
		if (ret == 0 && r->base && !have_msize) {
			struct cs_mid m;
			memcpy(m.b, r->base_mid, VOL_ID_LEN);
			ret = cs_manifest_size(t, h->bs->pool, &m, &msize);
			have_msize = ret == 0;
		}
		for (uint32_t p = eoff; ret == 0 && p < eoff + elen;) {
			unsigned b = p / VOL_BLOCK_SIZE;
			uint32_t be = (b + 1) * VOL_BLOCK_SIZE;
			if (be > eoff + elen)
				be = eoff + elen;
			uint64_t vo = index * VOL_EXTENT_SIZE + p;
			/* Base blocks: data where the manifest has bytes (a block
			 * holding its end included), holes past it. */
			unsigned fl =
			    r->blk[b].kind == VOL_BLK_WRITTEN ||
				    (r->blk[b].kind == VOL_BLK_BASE &&
				     index * VOL_EXTENT_SIZE + (uint64_t)b * VOL_BLOCK_SIZE < msize)
				? 0
				: BS_STATE_HOLE | BS_STATE_ZERO;
			if (n && runs[n - 1].flags == fl &&
			    runs[n - 1].off + runs[n - 1].len == vo) {
				runs[n - 1].len += be - p;
			} else {
				if (n == cap) {
					size_t nc = cap ? 2 * cap : 32;
					struct run *nr = realloc(runs, nc * sizeof(*nr));
					if (!nr) {
						ret = -ENOMEM;
						break;
					}
					runs = nr;
					cap = nc;
				}
				runs[n++] = (struct run){.off = vo, .len = be - p, .flags = fl};
			}
			p = be;
		}
		off += elen;
		len -= elen;
	}
	meta_txn_abort(t);
	t = NULL;
	/* The gate is left before calling out: fn may block on the network. */
	io_leave(h);
	for (size_t i = 0; ret == 0 && i < n; i++)
		ret = fn(runs[i].off, runs[i].len, runs[i].flags, arg);
	free(r);
	free(tmp);
	free(runs);
	return ret;
out:
	io_leave(h);
	free(r);
	free(tmp);
	return ret;
}
