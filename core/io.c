/* core/io.c - io_uring file I/O (see io.h for the contract).
 *
 * One io_uring per io_ctx, used by one thread. io_batch keeps at most
 * `depth` requests in flight (so the CQ, twice the SQ, never overflows),
 * resubmits the remainder of short reads, and reaps every completion before
 * it returns: the caller's buffers are never touched after io_batch returns.
 * Power-loss bookkeeping lives in io_powerloss.c and is reached through
 * io_int.h.
 */
#include "core/io.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fault.h"
#include "core/io_int.h"
#include "core/log.h"

#define IO_DEFAULT_DEPTH 64u
#define IO_MAX_DEPTH 4096u
/* One SQE moves at most this much; the kernel caps a read/write at
 * MAX_RW_COUNT (2 GiB - 4 KiB) anyway. */
#define IO_MAX_PIECE ((size_t)1 << 30)
#define IO_MAX_RETRY 16

struct io_slot;

struct io_ctx {
	struct io_uring ring;
	unsigned depth;
	int broken; /* a hard submit error left SQEs queued: the ring is unusable */
	/* Per-request scratch for io_batch, grown to the largest batch seen
	 * so the data path does not allocate once warmed up. */
	struct io_slot *slots;
	size_t *queue;
	size_t scratch_cap;
};

/* ---- probe ---------------------------------------------------------------- */

int io_probe(void)
{
	static const struct {
		int op;
		const char *name;
		bool needed;
	} ops[] = {
	    {IORING_OP_READ, "read", true},
	    {IORING_OP_WRITE, "write", true},
	    {IORING_OP_FSYNC, "fsync", true},
	    {IORING_OP_READV, "readv", false},
	    {IORING_OP_WRITEV, "writev", false},
	    {IORING_OP_READ_FIXED, "read_fixed", false},
	    {IORING_OP_ACCEPT, "accept", false},
	    {IORING_OP_RECV, "recv", false},
	    {IORING_OP_SEND, "send", false},
	    {IORING_OP_POLL_ADD, "poll", false},
	    {IORING_OP_TIMEOUT, "timeout", false},
	    {IORING_OP_OPENAT, "openat", false},
	    {IORING_OP_FALLOCATE, "fallocate", false},
	    {IORING_OP_SPLICE, "splice", false},
	};
	struct io_uring_params p;
	struct io_uring ring;
	struct io_uring_probe *probe = NULL;
	char have[512] = "", missing[256] = "";
	size_t hl = 0, ml = 0;
	int rc;

	memset(&p, 0, sizeof(p));
	rc = io_uring_queue_init_params(4, &ring, &p);
	if (rc < 0) {
		log_err("io",
			"io_uring is not available (%s); cairn needs Linux >= 5.6 with "
			"io_uring enabled (check sysctl kernel.io_uring_disabled, seccomp)",
			strerror(-rc));
		return rc;
	}
	probe = io_uring_get_probe_ring(&ring);
	if (!probe) {
		log_err("io", "io_uring probe failed (kernel older than 5.6?)");
		rc = -ENOSYS;
		goto out;
	}
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		bool ok = io_uring_opcode_supported(probe, ops[i].op);

		if (ok)
			hl += (size_t)snprintf(have + hl, sizeof(have) - hl, " %s", ops[i].name);
		else
			ml += (size_t)snprintf(missing + ml, sizeof(missing) - ml, " %s",
					       ops[i].name);
		if (!ok && ops[i].needed)
			rc = -ENOSYS;
		if (hl >= sizeof(have))
			hl = sizeof(have) - 1;
		if (ml >= sizeof(missing))
			ml = sizeof(missing) - 1;
	}
	log_info("io", "io_uring: ops%s; missing:%s; features:%s%s%s%s%s", have,
		 ml ? missing : " none", (p.features & IORING_FEAT_NODROP) ? " nodrop" : "",
		 (p.features & IORING_FEAT_FAST_POLL) ? " fast_poll" : "",
		 (p.features & IORING_FEAT_SUBMIT_STABLE) ? " submit_stable" : "",
		 (p.features & IORING_FEAT_RW_CUR_POS) ? " rw_cur_pos" : "",
		 (p.features & IORING_FEAT_EXT_ARG) ? " ext_arg" : "");
	if (rc < 0)
		log_err("io", "io_uring lacks read/write/fsync: kernel too old");
out:
	if (probe)
		io_uring_free_probe(probe);
	io_uring_queue_exit(&ring);
	return rc;
}

/* ---- contexts ------------------------------------------------------------- */

int io_ctx_create(unsigned depth, struct io_ctx **out)
{
	struct io_ctx *ctx;
	int rc;

	*out = NULL;
	if (depth == 0)
		depth = IO_DEFAULT_DEPTH;
	if (depth > IO_MAX_DEPTH)
		depth = IO_MAX_DEPTH;
	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;
	rc = io_uring_queue_init(depth, &ctx->ring, IORING_SETUP_CLAMP);
	if (rc < 0) {
		log_err("io", "io_uring_queue_init(%u): %s", depth, strerror(-rc));
		free(ctx);
		return rc;
	}
	/* The kernel rounds the SQ up to a power of two; keep our own cap. */
	ctx->depth = depth;
	*out = ctx;
	return 0;
}

void io_ctx_free(struct io_ctx *ctx)
{
	if (!ctx)
		return;
	io_uring_queue_exit(&ctx->ring);
	free(ctx->slots);
	free(ctx->queue);
	free(ctx);
}

/* ---- open / close / directories -------------------------------------------- */

static int io_open_plain(const char *path, int flags, mode_t mode)
{
	static atomic_bool warned;
	int fd;

	do
		fd = open(path, flags | O_CLOEXEC, mode);
	while (fd < 0 && errno == EINTR);
	if (fd < 0 && errno == EINVAL && (flags & O_DIRECT)) {
		/* tmpfs and some FUSE file systems refuse O_DIRECT. */
		if (!atomic_exchange(&warned, true))
			log_warn("io",
				 "%s: O_DIRECT refused, falling back to buffered I/O "
				 "(logged once)",
				 path);
		do
			fd = open(path, (flags & ~O_DIRECT) | O_CLOEXEC, mode);
		while (fd < 0 && errno == EINTR);
	}
	return fd < 0 ? -errno : fd;
}

int io_open(const char *path, int flags, mode_t mode)
{
	bool created = false;
	int fd, rc;

	if (!io_powerloss_enabled())
		return io_open_plain(path, flags, mode);
	/* Power-loss mode: O_TRUNC becomes a logged io_ftruncate below, so the
	 * cut bytes can come back. */
	if (!(flags & O_CREAT) || (flags & O_EXCL)) {
		fd = io_open_plain(path, flags & ~O_TRUNC, mode);
		created = fd >= 0 && (flags & O_CREAT) && (flags & O_EXCL);
	} else {
		/* Tell "created now" from "already there": the power-loss log
		 * must know which files exist only by an unsynced directory. */
		for (int i = 0;; i++) {
			fd = io_open_plain(path, (flags & ~O_TRUNC) | O_EXCL, mode);
			if (fd >= 0) {
				created = true;
				break;
			}
			if (fd != -EEXIST)
				break;
			fd = io_open_plain(path, flags & ~(O_CREAT | O_TRUNC), mode);
			if (fd != -ENOENT || i > 8)
				break;
		}
	}
	if (fd < 0)
		return fd;
	rc = io_pl_note_open(fd, path, created);
	if (rc == 0 && (flags & O_TRUNC) && !created)
		rc = io_ftruncate(fd, 0);
	if (rc < 0) {
		io_close(fd);
		return rc;
	}
	return fd;
}

int io_ftruncate(int fd, uint64_t size)
{
	struct stat st;

	if (io_powerloss_enabled()) {
		int rc;

		if (fstat(fd, &st) < 0)
			return -errno;
		/* Logged as a write over the bytes that change: cut bytes are
		 * saved, added bytes were absent. */
		if ((uint64_t)st.st_size > size)
			rc = io_pl_before_write(fd, size, (size_t)((uint64_t)st.st_size - size));
		else if ((uint64_t)st.st_size < size)
			rc = io_pl_before_write(fd, (uint64_t)st.st_size,
						(size_t)(size - (uint64_t)st.st_size));
		else
			rc = 0;
		if (rc < 0)
			return rc;
	}
	return ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
}

int io_close(int fd)
{
	if (fd < 0)
		return -EBADF;
	io_pl_note_close(fd);
	/* close(2) must not be retried on EINTR on Linux: the fd is gone. */
	return close(fd) < 0 && errno != EINTR ? -errno : 0;
}

int io_fsync_dir(const char *dir)
{
	uint64_t upto = io_pl_seq_now();
	int fd, rc = 0;

	if (FAULT("io.fsync"))
		return -EIO;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0)
		rc = io_pl_dir_synced(dir, upto);
	return rc;
}

/* Creates each missing component; a created directory is made durable by
 * fsyncing its parent before the next level is made. */
int io_mkdirs(const char *dir, mode_t mode)
{
	char path[PATH_MAX];
	size_t len = strlen(dir);
	int rc = 0;

	if (len == 0 || len >= sizeof(path))
		return len ? -ENAMETOOLONG : -ENOENT;
	memcpy(path, dir, len + 1);
	while (len > 1 && path[len - 1] == '/')
		path[--len] = '\0';
	/* Fast path: the parent usually exists (one mkdir instead of one per
	 * component of the chain). */
	{
		char *slash = strrchr(path, '/');
		if (slash && slash != path) {
			if (mkdir(path, mode) == 0) {
				*slash = '\0';
				rc = io_fsync_dir(path);
				*slash = '/';
				return rc;
			}
			if (errno == EEXIST) {
				struct stat st;
				if (stat(path, &st) < 0)
					return -errno;
				return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
			}
			if (errno != ENOENT)
				return -errno;
		}
	}
	for (size_t i = 1; i <= len; i++) {
		struct stat st;
		char saved;

		if (i < len && path[i] != '/')
			continue;
		saved = path[i];
		path[i] = '\0';
		if (mkdir(path, mode) == 0) {
			char *slash = strrchr(path, '/');

			if (slash == path)
				rc = io_fsync_dir("/");
			else if (slash) {
				*slash = '\0';
				rc = io_fsync_dir(path);
				*slash = '/';
			} else {
				rc = io_fsync_dir(".");
			}
		} else if (errno == EEXIST) {
			rc = stat(path, &st) < 0 ? -errno : (S_ISDIR(st.st_mode) ? 0 : -ENOTDIR);
		} else {
			rc = -errno;
		}
		path[i] = saved;
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* ---- memory --------------------------------------------------------------- */

void *io_alloc(size_t len)
{
	void *p = NULL;
	size_t n = (len + IO_ALIGN - 1) & ~(size_t)(IO_ALIGN - 1);

	if (n < len)
		return NULL;
	if (n == 0)
		n = IO_ALIGN;
	if (posix_memalign(&p, IO_ALIGN, n) != 0)
		return NULL;
	memset(p, 0, n);
	return p;
}

void io_free(void *p)
{
	free(p);
}

/* ---- batches -------------------------------------------------------------- */

struct io_slot {
	size_t done;  /* bytes completed so far */
	size_t piece; /* bytes asked by the SQE in flight */
	int retries;
};

/* Makes room for n requests (and fdatasyncs) in the ctx scratch. */
static int io_scratch(struct io_ctx *ctx, size_t n)
{
	struct io_slot *slots;
	size_t *queue;

	if (n <= ctx->scratch_cap)
		return 0;
	slots = realloc(ctx->slots, n * sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	ctx->slots = slots;
	queue = realloc(ctx->queue, n * sizeof(*queue));
	if (!queue)
		return -ENOMEM;
	ctx->queue = queue;
	ctx->scratch_cap = n;
	return 0;
}

/* Bytes moved through io_batch by the whole process (metrics, benchmarks). */
static atomic_uint_fast64_t io_wbytes, io_rbytes;

uint64_t io_bytes_written(void)
{
	return atomic_load_explicit(&io_wbytes, memory_order_relaxed);
}

uint64_t io_bytes_read(void)
{
	return atomic_load_explicit(&io_rbytes, memory_order_relaxed);
}

/* Queues the next piece of request i. */
static void io_prep(struct io_uring_sqe *sqe, struct io_req *r, struct io_slot *s, size_t i)
{
	size_t left = r->len - s->done;

	s->piece = left > IO_MAX_PIECE ? IO_MAX_PIECE : left;
	if (r->op == IO_WRITE)
		io_uring_prep_write(sqe, r->fd, (const char *)r->buf + s->done, (unsigned)s->piece,
				    r->off + s->done);
	else
		io_uring_prep_read(sqe, r->fd, (char *)r->buf + s->done, (unsigned)s->piece,
				   r->off + s->done);
	io_uring_sqe_set_data64(sqe, i);
}

/* Runs the batch. allow_short: a read that meets end of file is complete
 * (io_pread); otherwise it fails with -ENODATA. */
static int io_run(struct io_ctx *ctx, struct io_req *reqs, size_t n, bool allow_short)
{
	struct io_slot *slots;
	size_t *queue; /* requests waiting for an SQE (FIFO ring of n) */
	size_t qhead = 0, qlen = 0, inflight = 0;
	int rc = 0;

	if (ctx->broken)
		return ctx->broken;
	if (n == 0)
		return 0;
	rc = io_scratch(ctx, n);
	if (rc < 0)
		return rc;
	slots = ctx->slots;
	queue = ctx->queue;
	memset(slots, 0, n * sizeof(*slots));
	for (size_t i = 0; i < n; i++) {
		struct io_req *r = &reqs[i];

		r->result = 0;
		if (r->fd < 0 || (!r->buf && r->len) || (r->op != IO_READ && r->op != IO_WRITE)) {
			r->result = -EINVAL;
			continue;
		}
		if (r->op == IO_WRITE ? FAULT("io.write") : FAULT("io.read")) {
			r->result = -EIO;
			continue;
		}
		if (r->len == 0)
			continue;
		if (r->op == IO_WRITE) {
			/* The undo record must be in the log before the write
			 * can reach the page cache. */
			int prc = io_pl_before_write(r->fd, r->off, r->len);

			if (prc < 0) {
				r->result = prc;
				continue;
			}
		}
		queue[(qhead + qlen++) % n] = i;
	}

	while (qlen > 0 || inflight > 0) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		int src;

		while (qlen > 0 && inflight < ctx->depth) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ctx->ring);
			size_t i;

			if (!sqe)
				break;
			i = queue[qhead];
			qhead = (qhead + 1) % n;
			qlen--;
			io_prep(sqe, &reqs[i], &slots[i], i);
			inflight++;
		}
		src = io_uring_submit_and_wait(&ctx->ring, 1);
		if (src < 0 && src != -EINTR && src != -EAGAIN && src != -EBUSY) {
			/* SQEs may still sit in the ring pointing at the
			 * caller's buffers: retire this ring for good. */
			log_err("io", "io_uring_submit: %s; ring retired", strerror(-src));
			ctx->broken = src;
			return src;
		}
		io_uring_for_each_cqe(&ctx->ring, head, cqe)
		{
			size_t i = (size_t)io_uring_cqe_get_data64(cqe);
			struct io_req *r = &reqs[i];
			struct io_slot *s = &slots[i];
			int res = cqe->res;

			seen++;
			inflight--;
			if ((res == -EAGAIN || res == -EINTR) && s->retries++ < IO_MAX_RETRY) {
				queue[(qhead + qlen++) % n] = i;
				continue;
			}
			if (res < 0) {
				r->result = res;
				continue;
			}
			s->done += (size_t)res;
			atomic_fetch_add_explicit(r->op == IO_WRITE ? &io_wbytes : &io_rbytes,
						  (uint64_t)res, memory_order_relaxed);
			if (s->done == r->len) {
				r->result = (long)s->done;
			} else if ((size_t)res < s->piece && r->op == IO_WRITE) {
				/* Short write: the device is full or failing. Writing
				 * the rest once more gets the kernel's reason (ENOSPC,
				 * EDQUOT, EIO), which callers map (S3: 507 when full). */
				if (res > 0 && s->retries++ < IO_MAX_RETRY) {
					queue[(qhead + qlen++) % n] = i;
				} else {
					r->result = -EIO;
					log_warn("io", "short write fd %d: %d of %zu bytes at %llu",
						 r->fd, res, s->piece,
						 (unsigned long long)(r->off + s->done - res));
				}
			} else if (res == 0) {
				/* End of file before len bytes. */
				r->result = allow_short ? (long)s->done : -ENODATA;
			} else {
				/* Short read (or the next 1 GiB piece): go on. */
				queue[(qhead + qlen++) % n] = i;
			}
		}
		io_uring_cq_advance(&ctx->ring, seen);
	}
	for (size_t i = 0; i < n; i++) {
		if (reqs[i].result < 0) {
			rc = (int)reqs[i].result;
			break;
		}
	}
	return rc;
}

int io_batch(struct io_ctx *ctx, struct io_req *reqs, size_t n)
{
	return io_run(ctx, reqs, n, false);
}

int io_pwrite(struct io_ctx *ctx, int fd, const void *buf, size_t len, uint64_t off)
{
	struct io_req r = {.op = IO_WRITE, .fd = fd, .buf = (void *)buf, .len = len, .off = off};

	return io_run(ctx, &r, 1, false);
}

long io_pread(struct io_ctx *ctx, int fd, void *buf, size_t len, uint64_t off)
{
	struct io_req r = {.op = IO_READ, .fd = fd, .buf = buf, .len = len, .off = off};
	int rc = io_run(ctx, &r, 1, true);

	return rc < 0 ? rc : r.result;
}

static bool io_fd_is_dir(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Power-loss bookkeeping of a completed sync: a directory's fsync makes the
 * creations in it durable (as io_fsync_dir does), a file's its writes. */
static int io_pl_synced_any(int fd, uint64_t upto)
{
	if (!io_powerloss_enabled())
		return 0;
	if (io_fd_is_dir(fd)) {
		char link[32], path[PATH_MAX];
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		ssize_t len = readlink(link, path, sizeof(path) - 1);
		if (len <= 0)
			return -EBADF;
		path[len] = '\0';
		return io_pl_dir_synced(path, upto);
	}
	return io_pl_synced(fd, upto);
}

int io_fdatasync(struct io_ctx *ctx, const int *fds, size_t n)
{
	size_t *res; /* scratch: (size_t)(-errno) per fd, 0 on success */
	size_t next = 0, inflight = 0;
	uint64_t upto = io_pl_seq_now();
	int rc = 0;

	if (ctx->broken)
		return ctx->broken;
	if (n == 0)
		return 0;
	rc = io_scratch(ctx, n);
	if (rc < 0)
		return rc;
	res = ctx->queue;
	memset(res, 0, n * sizeof(*res));
	while (next < n || inflight > 0) {
		struct io_uring_cqe *cqe;
		unsigned head, seen = 0;
		int src;

		while (next < n && inflight < ctx->depth) {
			struct io_uring_sqe *sqe;

			if (FAULT("io.fsync")) {
				res[next++] = (size_t)EIO;
				continue;
			}
			sqe = io_uring_get_sqe(&ctx->ring);
			if (!sqe)
				break;
			/* A directory gets a full fsync (its new entries), so
			 * callers can sync directories and files in one batch. */
			io_uring_prep_fsync(sqe, fds[next],
					    io_fd_is_dir(fds[next]) ? 0 : IORING_FSYNC_DATASYNC);
			io_uring_sqe_set_data64(sqe, next);
			next++;
			inflight++;
		}
		if (inflight == 0)
			continue;
		src = io_uring_submit_and_wait(&ctx->ring, 1);
		if (src < 0 && src != -EINTR && src != -EAGAIN && src != -EBUSY) {
			log_err("io", "io_uring_submit: %s; ring retired", strerror(-src));
			ctx->broken = src;
			return src;
		}
		io_uring_for_each_cqe(&ctx->ring, head, cqe)
		{
			size_t i = (size_t)io_uring_cqe_get_data64(cqe);

			res[i] = cqe->res < 0 ? (size_t)-cqe->res : 0;
			seen++;
			inflight--;
		}
		io_uring_cq_advance(&ctx->ring, seen);
	}
	for (size_t i = 0; i < n; i++) {
		int prc = res[i] ? -(int)res[i] : io_pl_synced_any(fds[i], upto);

		if (prc < 0 && rc == 0)
			rc = prc;
	}
	return rc;
}
