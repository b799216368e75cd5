/* core/io_powerloss.c - power-loss simulation for tests (see io.h).
 *
 * While enabled, every write appends an undo record to a log before it is
 * issued; syncs and directory syncs append records that mark what became
 * durable. io_powerloss_replay() later rolls the files back to a state a
 * power cut could have left.
 *
 * Log format (version 1; host byte order, little-endian on every platform
 * cairn runs on). The log is a plain sequence of records, each:
 *
 *   struct pl_hdr (64 bytes, below)
 *   path          path_len bytes, absolute, no NUL
 *   old bytes     old_len bytes (PL_WRITE only)
 *
 *   PL_WRITE   seq, path, off, len: a write of len bytes at off is about to
 *              be issued; old_size is the file size before it, and the old
 *              bytes are [off, off + old_len) as they were, where
 *              old_len = min(len, old_size - off) (0 when off >= old_size):
 *              bytes at or beyond old_size were absent.
 *   PL_SYNC    an fdatasync of path completed; every PL_WRITE of path with
 *              seq <= upto is durable.
 *   PL_CREATE  path did not exist and was created by io_open.
 *   PL_DIRSYNC an fsync of directory path completed; every PL_CREATE of a
 *              file directly in it with seq <= upto is durable.
 *
 * crc is CRC-32C over the header (crc field zero), path and old bytes. A
 * record that is short or fails its crc ends the log: it was being appended
 * when the process died, and the write it guards was never issued.
 *
 * Records are appended with writev(2) on an O_APPEND fd under one mutex, so
 * a kill -9 leaves them in the page cache. Sequence numbers start at 1 and
 * grow by one per record. io_ftruncate (and O_TRUNC in io_open) is logged
 * as a PL_WRITE over the bytes it cuts or adds. Not simulated: ftruncate,
 * fallocate, rename and unlink done outside this module (they count as
 * durable at once; a renamed file's later writes are logged under the new
 * path only if it is reopened) and LMDB's writes.
 */
#include "core/io.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "core/hash.h"
#include "core/io_int.h"
#include "core/log.h"

#define PL_MAGIC 0x314c5043u /* "CPL1" */

enum pl_type { PL_WRITE = 1, PL_SYNC = 2, PL_CREATE = 3, PL_DIRSYNC = 4 };

struct pl_hdr {
	uint32_t magic;
	uint16_t type;
	uint16_t path_len;
	uint64_t seq;
	uint64_t off;
	uint64_t len;
	uint64_t old_size;
	uint64_t old_len;
	uint64_t upto;
	uint32_t crc;
	uint32_t reserved;
};
_Static_assert(sizeof(struct pl_hdr) == 64, "power-loss record header is 64 bytes");

static pthread_mutex_t pl_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool pl_on;
static int pl_fd = -1;
static uint64_t pl_seq; /* last sequence number used; under pl_lock */
static char **pl_paths; /* fd -> absolute path; under pl_lock */
static size_t pl_npaths;

bool io_powerloss_enabled(void)
{
	return atomic_load_explicit(&pl_on, memory_order_acquire);
}

int io_powerloss_enable(const char *log_path)
{
	struct stat st;
	int fd, rc = 0;

	pthread_mutex_lock(&pl_lock);
	if (pl_fd >= 0) {
		rc = -EBUSY;
		goto out;
	}
	/* A non-empty log belongs to a killed run and must be replayed first;
	 * appending to it would restart the sequence numbers. */
	if (stat(log_path, &st) == 0 && st.st_size > 0) {
		log_err("io", "power-loss log %s exists: replay it first", log_path);
		rc = -EEXIST;
		goto out;
	}
	fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	pl_fd = fd;
	pl_seq = 0;
	atomic_store_explicit(&pl_on, true, memory_order_release);
	log_warn("io", "power-loss test mode on, undo log %s", log_path);
out:
	pthread_mutex_unlock(&pl_lock);
	return rc;
}

void io_powerloss_disable(void)
{
	pthread_mutex_lock(&pl_lock);
	atomic_store_explicit(&pl_on, false, memory_order_release);
	if (pl_fd >= 0)
		close(pl_fd);
	pl_fd = -1;
	for (size_t i = 0; i < pl_npaths; i++)
		free(pl_paths[i]);
	free(pl_paths);
	pl_paths = NULL;
	pl_npaths = 0;
	pthread_mutex_unlock(&pl_lock);
}

/* Appends one record; caller holds pl_lock. */
static int pl_append_locked(struct pl_hdr *h, const char *path, const void *old)
{
	struct iovec iov[3];
	size_t total, done = 0;
	int cnt = 0;
	uint32_t crc;

	h->magic = PL_MAGIC;
	h->seq = ++pl_seq;
	h->crc = 0;
	h->reserved = 0;
	crc = crc32c(0, h, sizeof(*h));
	crc = crc32c(crc, path, h->path_len);
	if (h->old_len)
		crc = crc32c(crc, old, h->old_len);
	h->crc = crc;
	iov[cnt++] = (struct iovec){h, sizeof(*h)};
	iov[cnt++] = (struct iovec){(void *)path, h->path_len};
	if (h->old_len)
		iov[cnt++] = (struct iovec){(void *)old, h->old_len};
	total = sizeof(*h) + h->path_len + h->old_len;
	while (done < total) {
		ssize_t w = writev(pl_fd, iov, cnt);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)w;
		/* Drop what was written from the front of iov. */
		while (cnt > 0 && (size_t)w >= iov[0].iov_len) {
			w -= (ssize_t)iov[0].iov_len;
			memmove(iov, iov + 1, sizeof(iov[0]) * (size_t)--cnt);
		}
		if (cnt > 0) {
			iov[0].iov_base = (char *)iov[0].iov_base + w;
			iov[0].iov_len -= (size_t)w;
		}
	}
	return 0;
}

static int pl_append(struct pl_hdr *h, const char *path, const void *old)
{
	int rc;

	pthread_mutex_lock(&pl_lock);
	rc = pl_fd >= 0 ? pl_append_locked(h, path, old) : 0;
	pthread_mutex_unlock(&pl_lock);
	return rc;
}

/* Returns a malloc'd absolute path for fd (NULL on failure). */
static char *pl_fd_path(int fd)
{
	char *p = NULL;

	pthread_mutex_lock(&pl_lock);
	if ((size_t)fd < pl_npaths && pl_paths[fd])
		p = strdup(pl_paths[fd]);
	pthread_mutex_unlock(&pl_lock);
	if (!p) {
		/* Not opened through io_open: ask the kernel. */
		char link[64], buf[PATH_MAX];
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = '\0';
			p = strdup(buf);
		}
	}
	return p;
}

int io_pl_note_open(int fd, const char *path, bool created)
{
	char *abs;
	int rc = 0;

	if (!io_powerloss_enabled())
		return 0;
	abs = realpath(path, NULL);
	if (!abs)
		return -errno;
	if (strlen(abs) > UINT16_MAX) {
		free(abs);
		return -ENAMETOOLONG;
	}
	pthread_mutex_lock(&pl_lock);
	if ((size_t)fd >= pl_npaths) {
		size_t n = (size_t)fd + 64;
		char **np = realloc(pl_paths, n * sizeof(*np));

		if (!np) {
			rc = -ENOMEM;
			goto out;
		}
		memset(np + pl_npaths, 0, (n - pl_npaths) * sizeof(*np));
		pl_paths = np;
		pl_npaths = n;
	}
	free(pl_paths[fd]);
	pl_paths[fd] = abs;
	if (created && pl_fd >= 0) {
		struct pl_hdr h = {.type = PL_CREATE, .path_len = (uint16_t)strlen(abs)};

		rc = pl_append_locked(&h, abs, NULL);
	}
	abs = NULL;
out:
	pthread_mutex_unlock(&pl_lock);
	free(abs);
	return rc;
}

void io_pl_note_close(int fd)
{
	if (!io_powerloss_enabled())
		return;
	pthread_mutex_lock(&pl_lock);
	if ((size_t)fd < pl_npaths) {
		free(pl_paths[fd]);
		pl_paths[fd] = NULL;
	}
	pthread_mutex_unlock(&pl_lock);
}

uint64_t io_pl_seq_now(void)
{
	uint64_t s;

	if (!io_powerloss_enabled())
		return 0;
	pthread_mutex_lock(&pl_lock);
	s = pl_seq;
	pthread_mutex_unlock(&pl_lock);
	return s;
}

int io_pl_before_write(int fd, uint64_t off, size_t len)
{
	struct pl_hdr h = {.type = PL_WRITE, .off = off, .len = len};
	char *path = NULL;
	uint8_t *old = NULL;
	struct stat st;
	int rfd = -1, rc = 0;

	if (!io_powerloss_enabled())
		return 0;
	path = pl_fd_path(fd);
	if (!path || strlen(path) > UINT16_MAX) {
		rc = path ? -ENAMETOOLONG : -EBADF;
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	h.path_len = (uint16_t)strlen(path);
	h.old_size = (uint64_t)st.st_size;
	h.old_len = off >= h.old_size ? 0 : (h.old_size - off < len ? h.old_size - off : len);
	if (h.old_len) {
		char link[64];
		size_t got = 0;

		old = malloc(h.old_len);
		if (!old) {
			rc = -ENOMEM;
			goto out;
		}
		/* The fd may be O_WRONLY or O_DIRECT: read through a fresh
		 * buffered descriptor of the same file. */
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		rfd = open(link, O_RDONLY | O_CLOEXEC);
		if (rfd < 0) {
			rc = -errno;
			goto out;
		}
		while (got < h.old_len) {
			ssize_t r = pread(rfd, old + got, h.old_len - got, (off_t)(off + got));

			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0) {
				rc = -errno;
				goto out;
			}
			if (r == 0)
				break;
			got += (size_t)r;
		}
		h.old_len = got; /* the file shrank meanwhile: the rest is absent */
	}
	rc = pl_append(&h, path, old);
out:
	if (rfd >= 0)
		close(rfd);
	free(old);
	free(path);
	if (rc < 0)
		log_err("io", "power-loss log append failed: %s", strerror(-rc));
	return rc;
}

int io_pl_synced(int fd, uint64_t upto)
{
	struct pl_hdr h = {.type = PL_SYNC, .upto = upto};
	char *path;
	int rc;

	if (!io_powerloss_enabled())
		return 0;
	path = pl_fd_path(fd);
	if (!path)
		return -EBADF;
	h.path_len = (uint16_t)strlen(path);
	rc = pl_append(&h, path, NULL);
	free(path);
	return rc;
}

int io_pl_dir_synced(const char *dir, uint64_t upto)
{
	struct pl_hdr h = {.type = PL_DIRSYNC, .upto = upto};
	char *abs;
	int rc;

	if (!io_powerloss_enabled())
		return 0;
	abs = realpath(dir, NULL);
	if (!abs)
		return -errno;
	h.path_len = (uint16_t)strlen(abs);
	rc = pl_append(&h, abs, NULL);
	free(abs);
	return rc;
}

/* ---- replay --------------------------------------------------------------- */

struct pl_ent {
	struct pl_hdr h;
	char *path;
	uint64_t data_pos; /* where the old bytes start in the log */
};

static int pl_ent_cmp(const void *a, const void *b)
{
	const struct pl_ent *x = a, *y = b;
	int c = strcmp(x->path, y->path);

	if (c)
		return c;
	return x->h.seq < y->h.seq ? -1 : x->h.seq > y->h.seq;
}

/* First index of path in the sorted entries, or n. */
static size_t pl_find(const struct pl_ent *e, size_t n, const char *path)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(e[mid].path, path) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && strcmp(e[lo].path, path) == 0 ? lo : n;
}

static int pl_read_full(int fd, void *buf, size_t len, uint64_t pos)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(pos + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ENODATA;
		got += (size_t)r;
	}
	return 0;
}

static int pl_write_full(int fd, const void *buf, size_t len, uint64_t pos)
{
	size_t done = 0;

	while (done < len) {
		ssize_t w = pwrite(fd, (const char *)buf + done, len - done, (off_t)(pos + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		done += (size_t)w;
	}
	return 0;
}

/* Parses the log into *out (sorted by path, then seq). Stops at the first
 * short or corrupt record. */
static int pl_parse(int lfd, struct pl_ent **out, size_t *nout)
{
	struct pl_ent *e = NULL;
	size_t n = 0, cap = 0;
	uint64_t pos = 0;
	uint8_t *buf = NULL;
	size_t bufcap = 0;
	struct stat st;
	int rc = 0;

	if (fstat(lfd, &st) < 0)
		return -errno;
	for (;;) {
		struct pl_hdr h;
		uint32_t crc, want;
		size_t body;

		if (pos == (uint64_t)st.st_size)
			break;
		if (pl_read_full(lfd, &h, sizeof(h), pos) < 0 || h.magic != PL_MAGIC ||
		    h.type < PL_WRITE || h.type > PL_DIRSYNC || h.path_len == 0 ||
		    (h.type != PL_WRITE && h.old_len) || h.old_len > h.len ||
		    h.old_len > (uint64_t)st.st_size) {
			log_warn("io",
				 "power-loss log: torn or bad record at %llu, ignoring the rest",
				 (unsigned long long)pos);
			break;
		}
		body = h.path_len + h.old_len;
		if (body + 1 > bufcap) {
			uint8_t *nb = realloc(buf, body + 1);

			if (!nb) {
				rc = -ENOMEM;
				goto out;
			}
			buf = nb;
			bufcap = body + 1;
		}
		if (pl_read_full(lfd, buf, body, pos + sizeof(h)) < 0) {
			log_warn("io", "power-loss log: torn last record at %llu",
				 (unsigned long long)pos);
			break;
		}
		want = h.crc;
		h.crc = 0;
		crc = crc32c(0, &h, sizeof(h));
		crc = crc32c(crc, buf, body);
		h.crc = want;
		if (crc != want) {
			log_warn("io", "power-loss log: bad crc at %llu, ignoring the rest",
				 (unsigned long long)pos);
			break;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct pl_ent *ne = realloc(e, nc * sizeof(*ne));

			if (!ne) {
				rc = -ENOMEM;
				goto out;
			}
			e = ne;
			cap = nc;
		}
		e[n].h = h;
		e[n].path = strndup((const char *)buf, h.path_len);
		if (!e[n].path) {
			rc = -ENOMEM;
			goto out;
		}
		e[n].data_pos = pos + sizeof(h) + h.path_len;
		n++;
		pos += sizeof(h) + body;
	}
	if (n)
		qsort(e, n, sizeof(*e), pl_ent_cmp);
out:
	free(buf);
	if (rc < 0) {
		for (size_t i = 0; i < n; i++)
			free(e[i].path);
		free(e);
		return rc;
	}
	*out = e;
	*nout = n;
	return 0;
}

/* Writes old bytes (from the log) or zeros over [lo, hi) of fd. */
static int pl_restore(int fd, int lfd, const struct pl_ent *w, uint64_t lo, uint64_t hi,
		      uint8_t *tmp, size_t tmpsz)
{
	while (lo < hi) {
		size_t n = hi - lo > tmpsz ? tmpsz : (size_t)(hi - lo);
		uint64_t old_end = w->h.off + w->h.old_len;
		int rc;

		if (lo < old_end) {
			if (n > old_end - lo)
				n = (size_t)(old_end - lo);
			rc = pl_read_full(lfd, tmp, n, w->data_pos + (lo - w->h.off));
		} else {
			memset(tmp, 0, n);
			rc = 0;
		}
		if (rc == 0)
			rc = pl_write_full(fd, tmp, n, lo);
		if (rc < 0)
			return rc;
		lo += n;
	}
	return 0;
}

/* Reverts one write, except bytes in the kept range [plo, phi) (the torn
 * newest write's surviving sectors; empty when plo == phi). Old bytes go
 * back; bytes the write put beyond the old size go away (truncate), or turn
 * to zeros where the kept range holds the file size up. */
static int pl_revert(int fd, int lfd, const struct pl_ent *w, uint64_t plo, uint64_t phi,
		     uint8_t *tmp, size_t tmpsz)
{
	uint64_t lo = w->h.off, hi = w->h.off + w->h.len;
	uint64_t target = w->h.old_size;
	struct stat st;
	int rc = 0;

	if (phi > plo && phi > target)
		target = phi;
	if (hi > target)
		hi = target; /* beyond target, the truncate below does it */
	if (plo < phi && plo < hi && phi > lo) {
		/* Two pieces around the kept range. */
		if (lo < plo)
			rc = pl_restore(fd, lfd, w, lo, plo, tmp, tmpsz);
		if (rc == 0 && phi < hi)
			rc = pl_restore(fd, lfd, w, phi, hi, tmp, tmpsz);
	} else if (lo < hi) {
		rc = pl_restore(fd, lfd, w, lo, hi, tmp, tmpsz);
	}
	if (rc < 0)
		return rc;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size > target && ftruncate(fd, (off_t)target) < 0)
		return -errno;
	return 0;
}

/* Percent of the torn write's sectors that survive (CAIRN_POWERLOSS_KEEP,
 * default 50). */
static unsigned pl_keep_percent(void)
{
	const char *s = getenv("CAIRN_POWERLOSS_KEEP");
	long v = s ? strtol(s, NULL, 10) : 50;

	return v < 0 ? 0 : v > 100 ? 100 : (unsigned)v;
}

static void pl_fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	char *slash;
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash)
		return;
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

long io_powerloss_replay(const char *log_path)
{
	struct pl_ent *e = NULL, *torn = NULL;
	size_t n = 0;
	const size_t tmpsz = 1u << 20;
	uint8_t *tmp = NULL;
	long reverted = 0;
	unsigned removed = 0;
	int lfd, rc;

	lfd = open(log_path, O_RDONLY | O_CLOEXEC);
	if (lfd < 0)
		return errno == ENOENT ? 0 : -errno;
	rc = pl_parse(lfd, &e, &n);
	if (rc < 0)
		goto out;
	tmp = malloc(tmpsz);
	if (!tmp) {
		rc = -ENOMEM;
		goto out;
	}

	/* The newest write not covered by a sync of its file gets torn. */
	for (size_t g = 0; g < n;) {
		size_t end = g;
		uint64_t synced = 0;

		while (end < n && strcmp(e[end].path, e[g].path) == 0)
			end++;
		for (size_t i = g; i < end; i++)
			if (e[i].h.type == PL_SYNC && e[i].h.upto > synced)
				synced = e[i].h.upto;
		for (size_t i = g; i < end; i++)
			if (e[i].h.type == PL_WRITE && e[i].h.seq > synced &&
			    (!torn || e[i].h.seq > torn->h.seq))
				torn = &e[i];
		g = end;
	}

	for (size_t g = 0; g < n;) {
		size_t end = g;
		uint64_t synced = 0, plo = 0, phi = 0;
		int fd = -1;

		while (end < n && strcmp(e[end].path, e[g].path) == 0)
			end++;
		for (size_t i = g; i < end; i++)
			if (e[i].h.type == PL_SYNC && e[i].h.upto > synced)
				synced = e[i].h.upto;
		if (torn && torn >= &e[g] && torn < &e[end]) {
			uint64_t sectors = (torn->h.len + 511) / 512;
			uint64_t keep = sectors * pl_keep_percent() / 100 * 512;

			plo = torn->h.off;
			phi = torn->h.off + (keep < torn->h.len ? keep : torn->h.len);
			log_info("io",
				 "power-loss replay: tearing write of %llu bytes at %llu in %s, "
				 "keeping %llu",
				 (unsigned long long)torn->h.len, (unsigned long long)torn->h.off,
				 torn->path, (unsigned long long)(phi - plo));
		}
		/* Newest first, so each range ends up as before its oldest
		 * unsynced write. */
		for (size_t i = end; i-- > g;) {
			struct pl_ent *w = &e[i];

			if (w->h.type != PL_WRITE || w->h.seq <= synced)
				continue;
			if (fd < 0) {
				fd = open(w->path, O_RDWR | O_CLOEXEC);
				if (fd < 0) {
					log_info("io",
						 "power-loss replay: %s is gone (%s), skipped",
						 w->path, strerror(errno));
					break;
				}
			}
			rc = pl_revert(fd, lfd, w, plo, phi, tmp, tmpsz);
			if (rc < 0) {
				log_err("io", "power-loss replay: reverting %s: %s", w->path,
					strerror(-rc));
				close(fd);
				goto out;
			}
			reverted++;
		}
		if (fd >= 0) {
			(void)fsync(fd);
			close(fd);
		}
		g = end;
	}

	/* Files whose directory entry never became durable disappear. */
	for (size_t g = 0; g < n;) {
		size_t end = g;
		const struct pl_ent *create = NULL;

		while (end < n && strcmp(e[end].path, e[g].path) == 0)
			end++;
		for (size_t i = g; i < end; i++)
			if (e[i].h.type == PL_CREATE)
				create = &e[i];
		if (create) {
			char dir[PATH_MAX];
			char *slash;
			uint64_t dsynced = 0;
			size_t d;

			snprintf(dir, sizeof(dir), "%s", create->path);
			slash = strrchr(dir, '/');
			if (slash == dir)
				slash[1] = '\0';
			else if (slash)
				*slash = '\0';
			d = pl_find(e, n, dir);
			for (; d < n && strcmp(e[d].path, dir) == 0; d++)
				if (e[d].h.type == PL_DIRSYNC && e[d].h.upto > dsynced)
					dsynced = e[d].h.upto;
			if (create->h.seq > dsynced) {
				if (unlink(create->path) == 0) {
					removed++;
					pl_fsync_parent(create->path);
				} else if (errno != ENOENT) {
					rc = -errno;
					log_err("io", "power-loss replay: unlink %s: %s",
						create->path, strerror(errno));
					goto out;
				}
			}
		}
		g = end;
	}
	log_warn("io", "power-loss replay of %s: %ld write(s) reverted, %u file(s) removed",
		 log_path, reverted, removed);
	if (unlink(log_path) < 0) {
		rc = -errno;
		goto out;
	}
	pl_fsync_parent(log_path);
out:
	close(lfd);
	for (size_t i = 0; i < n; i++)
		free(e[i].path);
	free(e);
	free(tmp);
	return rc < 0 ? rc : reverted;
}
