/* registry/img_data.c - an image's bytes on their way into the pool
 * (registry/img_data.h): hashing, the qcow2 gate, the chunk writer and the
 * two-phase commit.
 *
 * Threads: the caller's thread copies each buffer into a segment, updates the
 * MD5 and watches the first bytes (qcow2_probe, the spool); a pipeline thread
 * takes full segments in order, updates the SHA-512 and feeds cs_writer_write
 * (content-defined cutting), and the pool's workers fingerprint, compress and
 * write the chunks. So the serial work of a stream is split over two threads
 * (MD5 ~ SHA-512 ~ 0.8 GB/s each on this class of machine) and memory is
 * bounded by IMG_PIPE_SEGS segments plus the writer's window. Only the
 * pipeline thread touches the SHA-512 context and the data writer until
 * seg_pipe_finish/seg_pipe_free joined it. The queue itself is core/pipe.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chunkstore/chunkstore.h"
#include "core/fault.h"
#include "core/log.h"
#include "core/pipe.h"
#include "registry/img_data.h"
#include "registry/img_internal.h"
#include "registry/qcow2.h"

_Static_assert(CS_MID_LEN == 16, "img_data_result holds 16-byte manifest ids");

#define IMG_PIPE_SEG (1u << 20)
#define IMG_PIPE_SEGS 4
#define IMG_READ_BUF (4u << 20) /* from_manifest: bytes per cs_reader_read */

enum img_probe { PROBE_UNDECIDED = 0, PROBE_QCOW2, PROBE_OTHER };

struct img_upload {
	struct cs_pool *pool;
	uint64_t max_size; /* 0 = no limit */
	char *tmp_dir, *qemu_img;
	char *owner;	 /* the dedup domain's user (NULL: none) */
	bool want_qcow2; /* disk_format "qcow2" */
	bool want_other; /* another disk_format declared */
	char fmt[32];	 /* the declared format, for messages */
	EVP_MD_CTX *md5; /* caller's thread */
	/* the pipeline thread's alone while it runs: SHA-512 and, per segment,
	 * the writer w */
	EVP_MD_CTX *sha512;
	struct seg_pipe *p;
	struct cs_writer *w;  /* the bytes (NULL with from_mid) */
	struct cs_writer *rw; /* the qcow2 raw view, after finish */
	uint64_t size;
	/* the qcow2 gate */
	enum img_probe probe;
	uint8_t *head; /* the first bytes, up to IMG_HEAD_MAX */
	size_t head_len;
	size_t need; /* probe again once head_len reaches this */
	struct qcow2_info qi;
	int spool_fd; /* qcow2: the bytes as uploaded, -1 until qcow2 */
	/* state */
	int err; /* the upload is dead: what killed it */
	bool finished, raw_committed, committed;
	bool from_mid;
	uint8_t src_mid[16];
	struct img_data_result res;
	char why[256];
};

/* ---- the pipeline ---- */

/* One full segment, on the pipeline thread (core/pipe.h). */
static int img_pipe_seg(void *arg, const uint8_t *data, size_t len)
{
	struct img_upload *u = arg;

	int rc = EVP_DigestUpdate(u->sha512, data, len) == 1 ? 0 : -EIO;
	if (rc == 0 && u->w)
		rc = FAULT("img_pipe_write") ? -EIO : cs_writer_write(u->w, data, len);
	return rc;
}

/* ---- scratch files ---- */

int img_scratch_open(const char *dir)
{
	if (FAULT("img_scratch"))
		return -ENOSPC;
	int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	/* file systems without O_TMPFILE: a name that lives for one call */
	char path[4096];
	if (snprintf(path, sizeof(path), "%s/cairn-img-XXXXXX", dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (unlink(path) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int write_full(int fd, const uint8_t *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* ---- the upload ---- */

static int refuse(struct img_upload *u, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int refuse(struct img_upload *u, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(u->why, sizeof(u->why), fmt, ap);
	va_end(ap);
	u->err = err;
	return err;
}

void img_writer_domain(struct cs_writer *w, const char *owner)
{
	uint8_t dom[32];
	/* the same domain objstore's s3_writer_open gives the user's PUTs,
	 * so an owner's images and objects dedup against each other */
	if (owner && EVP_Digest(owner, strlen(owner), dom, NULL, EVP_sha256(), NULL) == 1)
		cs_writer_set_domain(w, dom);
}

int img_upload_open(struct cs_pool *pool, const struct img_data_opts *opts, const char *disk_format,
		    struct img_upload **out)
{
	struct img_upload *u = NULL;
	int rc;

	*out = NULL;
	if (!pool || !opts || !opts->tmp_dir)
		return CAIRN_EINVAL;
	if (disk_format && strlen(disk_format) >= sizeof(u->fmt))
		return CAIRN_EINVAL;
	if (FAULT("img_upload_open"))
		return -ENOMEM;
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	u->pool = pool;
	u->spool_fd = -1;
	u->max_size = opts->max_size;
	u->tmp_dir = strdup(opts->tmp_dir);
	u->qemu_img = strdup(opts->qemu_img ? opts->qemu_img : "qemu-img");
	u->owner = opts->owner ? strdup(opts->owner) : NULL;
	u->head = malloc(IMG_HEAD_MAX);
	u->md5 = EVP_MD_CTX_new();
	u->sha512 = EVP_MD_CTX_new();
	if (!u->tmp_dir || !u->qemu_img || (opts->owner && !u->owner) || !u->head || !u->md5 ||
	    !u->sha512) {
		rc = -ENOMEM;
		goto out;
	}
	if (EVP_DigestInit_ex(u->md5, EVP_md5(), NULL) != 1 ||
	    EVP_DigestInit_ex(u->sha512, EVP_sha512(), NULL) != 1) {
		rc = -EIO;
		goto out;
	}
	if (disk_format && *disk_format) {
		snprintf(u->fmt, sizeof(u->fmt), "%s", disk_format);
		if (strcmp(disk_format, "qcow2") == 0)
			u->want_qcow2 = true;
		else
			u->want_other = true;
	}
	if ((rc = cs_writer_open(pool, &u->w)) < 0)
		goto out;
	img_writer_domain(u->w, u->owner);
	if ((rc = seg_pipe_new(IMG_PIPE_SEG, IMG_PIPE_SEGS, img_pipe_seg, u, &u->p)) < 0)
		goto out;
	*out = u;
	u = NULL;
	rc = 0;
out:
	img_upload_free(u);
	return rc;
}

/* The qcow2 gate on the first bytes: decides once enough of them arrived.
 * buf/len are the bytes of this write (not yet spooled). */
static int probe_step(struct img_upload *u, const uint8_t *buf, size_t len)
{
	size_t take = IMG_HEAD_MAX - u->head_len;
	if (take > len)
		take = len;
	memcpy(u->head + u->head_len, buf, take);
	u->head_len += take;
	if (u->head_len < u->need)
		return 0;
	char why[200];
	int rc = qcow2_probe(u->head, u->head_len, 0, &u->qi, why, sizeof(why));
	if (rc == -ENODATA) {
		if (u->qi.need > IMG_HEAD_MAX)
			return refuse(u, CAIRN_EINVAL,
				      "qcow2 header cluster needs %llu bytes, more than %u",
				      (unsigned long long)u->qi.need, IMG_HEAD_MAX);
		u->need = u->qi.need;
		return 0;
	}
	if (rc == CAIRN_EINVAL)
		return refuse(u, CAIRN_EINVAL, "unsafe qcow2 image: %s", why);
	if (rc < 0)
		return refuse(u, rc, "qcow2 check failed");
	if (rc == 0) {
		if (u->want_qcow2)
			return refuse(u, CAIRN_EINVAL,
				      "disk_format is qcow2 but the data is not a qcow2 image");
		u->probe = PROBE_OTHER;
		return 0;
	}
	if (u->want_other)
		return refuse(u, CAIRN_EINVAL, "the data is a qcow2 image but disk_format is %s",
			      u->fmt);
	/* its raw view is an image of that size too (and a small qcow2
	 * claiming a huge disk must not make us write terabytes of zeroes) */
	if (u->max_size && u->qi.virtual_size > u->max_size)
		return refuse(u, -EFBIG, "qcow2 virtual size %llu is over the limit %llu",
			      (unsigned long long)u->qi.virtual_size,
			      (unsigned long long)u->max_size);
	u->probe = PROBE_QCOW2;
	if ((rc = img_scratch_open(u->tmp_dir)) < 0)
		return refuse(u, rc, "cannot make a scratch file in %s", u->tmp_dir);
	u->spool_fd = rc;
	/* the bytes before this write; this write is spooled by the caller */
	if ((rc = write_full(u->spool_fd, u->head, u->head_len - take)) < 0)
		return refuse(u, rc, "cannot write the scratch file");
	return 0;
}

int img_upload_write(struct img_upload *u, const void *buf, size_t len)
{
	int rc;

	if (u->err)
		return u->err;
	if (u->finished)
		return CAIRN_EINVAL;
	if (!len)
		return 0;
	if (u->max_size && (len > u->max_size || u->size > u->max_size - len))
		return refuse(u, -EFBIG, "the image is larger than the limit of %llu bytes",
			      (unsigned long long)u->max_size);
	if (u->probe == PROBE_UNDECIDED && (rc = probe_step(u, buf, len)) < 0)
		return rc;
	if (u->spool_fd >= 0 && (rc = write_full(u->spool_fd, buf, len)) < 0)
		return refuse(u, rc, "cannot write the scratch file");
	if (EVP_DigestUpdate(u->md5, buf, len) != 1)
		return refuse(u, -EIO, "md5 failed");
	if ((rc = seg_pipe_push(u->p, buf, len)) < 0)
		return refuse(u, rc, "%s", "");
	u->size += len;
	return 0;
}

/* The gate's last word, with the whole size known. */
static int probe_final(struct img_upload *u)
{
	char why[200];
	int rc;

	if (u->probe == PROBE_OTHER)
		return 0;
	if (u->size == 0) {
		if (u->want_qcow2)
			return refuse(u, CAIRN_EINVAL,
				      "disk_format is qcow2 but the data is not a qcow2 image");
		u->probe = PROBE_OTHER;
		return 0;
	}
	rc = qcow2_probe(u->head, u->head_len, u->size, &u->qi, why, sizeof(why));
	if (rc == 1 && u->probe == PROBE_QCOW2)
		return 0;
	if (rc == 1) /* a small file decided only now */
		return refuse(u, CAIRN_EINVAL, "unsafe qcow2 image: too short to be one");
	if (rc == 0 && u->probe == PROBE_UNDECIDED) {
		if (u->want_qcow2)
			return refuse(u, CAIRN_EINVAL,
				      "disk_format is qcow2 but the data is not a qcow2 image");
		u->probe = PROBE_OTHER;
		return 0;
	}
	if (rc == CAIRN_EINVAL || rc == -ENODATA)
		return refuse(u, CAIRN_EINVAL, "unsafe qcow2 image: %s",
			      rc == CAIRN_EINVAL ? why : "header incomplete");
	return refuse(u, rc < 0 ? rc : CAIRN_EINVAL, "qcow2 check failed");
}

int img_upload_finish(struct img_upload *u, struct img_data_result *res)
{
	unsigned int mdlen;
	int rc;

	if (u->err)
		return u->err;
	if (u->finished)
		return CAIRN_EINVAL;
	rc = seg_pipe_finish(u->p);
	seg_pipe_free(u->p); /* the segments are not needed while commit waits */
	u->p = NULL;
	if (rc < 0)
		return refuse(u, rc, "%s", "");
	if (u->w && (rc = cs_writer_finish(u->w)) < 0)
		return refuse(u, rc, "%s", "");
	if (EVP_DigestFinal_ex(u->md5, u->res.md5, &mdlen) != 1 ||
	    EVP_DigestFinal_ex(u->sha512, u->res.sha512, &mdlen) != 1)
		return refuse(u, -EIO, "digest failed");
	if ((rc = probe_final(u)) < 0)
		return rc;
	u->res.size = u->size;
	u->res.virtual_size = u->size;
	if (u->probe == PROBE_QCOW2) {
		u->res.qcow2 = true;
		u->res.virtual_size = u->qi.virtual_size;
		rc = img_conv_raw(u->pool,
				  &(struct img_data_opts){.max_size = u->max_size,
							  .tmp_dir = u->tmp_dir,
							  .qemu_img = u->qemu_img,
							  .owner = u->owner},
				  u->spool_fd, u->qi.virtual_size, &u->rw, u->why, sizeof(u->why));
		close(u->spool_fd);
		u->spool_fd = -1;
		if (rc < 0) {
			u->err = rc;
			return rc;
		}
		u->res.has_raw = true;
	}
	free(u->head); /* only the gate needed the first bytes */
	u->head = NULL;
	u->finished = true;
	*res = u->res;
	return 0;
}

struct commit_ctx {
	struct img_upload *u;
	img_commit_fn fn;
	void *arg;
	enum img_phase phase;
};

static int commit_cb(struct cs_txn *txn, void *arg)
{
	struct commit_ctx *c = arg;
	struct img_upload *u = c->u;
	struct cs_mid mid;
	int rc;

	if (c->phase == IMG_PHASE_RAW) {
		if ((rc = cs_manifest_create(txn, &mid)) < 0)
			return rc;
		memcpy(u->res.raw_mid, mid.b, sizeof(mid.b));
	} else if (u->from_mid) {
		memcpy(mid.b, u->src_mid, sizeof(mid.b));
		if ((rc = cs_manifest_ref(txn, &mid)) < 0)
			return rc;
		memcpy(u->res.mid, mid.b, sizeof(mid.b));
	} else {
		if ((rc = cs_manifest_create(txn, &mid)) < 0)
			return rc;
		memcpy(u->res.mid, mid.b, sizeof(mid.b));
	}
	return c->fn(txn, c->arg, c->phase, &u->res);
}

int img_upload_commit(struct img_upload *u, img_commit_fn fn, void *arg)
{
	struct commit_ctx c = {.u = u, .fn = fn, .arg = arg};
	int rc;

	if (u->err)
		return u->err;
	if (!u->finished || u->committed || !fn)
		return CAIRN_EINVAL;
	if (u->res.has_raw && !u->raw_committed) {
		c.phase = IMG_PHASE_RAW;
		if ((rc = cs_commit(u->pool, u->rw, commit_cb, &c)) < 0)
			return rc;
		u->raw_committed = true;
	}
	c.phase = IMG_PHASE_DATA;
	if ((rc = cs_commit(u->pool, u->w, commit_cb, &c)) < 0)
		return rc;
	u->committed = true;
	return 0;
}

void img_upload_fail(struct img_upload *u, int err)
{
	if (!u->err)
		u->err = err < 0 ? err : -EIO;
}

const char *img_upload_why(const struct img_upload *u)
{
	return u->err == CAIRN_EINVAL ? u->why : "";
}

void img_upload_free(struct img_upload *u)
{
	if (!u)
		return;
	seg_pipe_free(u->p); /* before the writer: the pipeline thread uses it */
	/* an uncommitted writer's chunks are dead by construction */
	cs_writer_free(u->w);
	cs_writer_free(u->rw);
	if (u->spool_fd >= 0)
		close(u->spool_fd);
	EVP_MD_CTX_free(u->md5);
	EVP_MD_CTX_free(u->sha512);
	free(u->head);
	free(u->tmp_dir);
	free(u->qemu_img);
	free(u->owner);
	free(u);
}

/* ---- other sources ---- */

int img_upload_from_manifest(struct img_upload *u, const uint8_t mid[16])
{
	struct cs_reader *r = NULL;
	struct cs_mid m;
	uint8_t *buf = NULL;
	int rc;

	if (u->err)
		return u->err;
	if (u->finished || u->size || u->from_mid)
		return CAIRN_EINVAL;
	memcpy(m.b, mid, sizeof(m.b));
	if ((rc = cs_reader_open(u->pool, &m, &r)) < 0)
		goto out;
	/* The bytes are in the pool already: hash them, write nothing. The
	 * pipeline has seen no segment yet and reads u->w only for a segment,
	 * which reaches it through the pipeline's lock, so taking the writer
	 * away here is safe. */
	cs_writer_free(u->w);
	u->w = NULL;
	u->from_mid = true;
	memcpy(u->src_mid, mid, sizeof(u->src_mid));
	if (!(buf = malloc(IMG_READ_BUF))) {
		rc = -ENOMEM;
		goto out;
	}
	uint64_t size = cs_reader_size(r);
	for (uint64_t off = 0; off < size;) {
		long n = cs_reader_read(r, off, buf, IMG_READ_BUF);
		if (n <= 0) {
			rc = n < 0 ? (int)n : -EIO;
			goto out;
		}
		if ((rc = img_upload_write(u, buf, (size_t)n)) < 0)
			goto out;
		off += (uint64_t)n;
	}
	rc = 0;
out:
	if (rc < 0 && !u->err)
		u->err = rc;
	free(buf);
	cs_reader_free(r);
	return rc;
}
