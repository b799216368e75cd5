/* registry/img_snap.c - a volume snapshot's bytes into an upload
 * (img_upload_from_snapshot in registry/img_data.h).
 *
 * The snapshot is opened read-only (bs_snapshot_open: it cannot be deleted
 * while we read), its map is walked with bs_block_status, and only written
 * ranges are read (bs_read with our own io_ctx, IMG_SNAP_BUF at a time);
 * holes and zeroed blocks are fed to the upload as zero bytes without any
 * device I/O (the hashes must cover them; the writer stores them as zero
 * chunks). Ranges are collected first and read after bs_block_status
 * returned, so no I/O runs inside its callback.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "blockstore/bs.h"
#include "core/io.h"
#include "registry/img_data.h"
#include "registry/img_internal.h"

#define IMG_SNAP_BUF (4u << 20) /* bytes per bs_read (<= 32 MiB) */
#define IMG_SNAP_RANGES 64	/* ranges taken per bs_block_status call */
#define IMG_SNAP_ZERO (1u << 20)

static const uint8_t snap_zero[IMG_SNAP_ZERO];

struct snap_ranges {
	unsigned n;
	struct {
		uint64_t off, len;
		unsigned flags;
	} r[IMG_SNAP_RANGES];
};

static int snap_collect(uint64_t off, uint64_t len, unsigned flags, void *arg)
{
	struct snap_ranges *c = arg;
	c->r[c->n].off = off;
	c->r[c->n].len = len;
	c->r[c->n].flags = flags;
	return ++c->n == IMG_SNAP_RANGES ? 1 : 0; /* full: stop here */
}

int img_upload_from_snapshot(struct img_upload *u, struct bs_store *bs, const char *vol,
			     const char *snap)
{
	struct bs_handle *h = NULL;
	struct io_ctx *ctx = NULL;
	struct snap_ranges *c = NULL;
	uint8_t *buf = NULL;
	int rc;

	if ((rc = bs_snapshot_open(bs, vol, snap, &h)) < 0)
		goto out;
	if ((rc = io_ctx_create(64, &ctx)) < 0)
		goto out;
	buf = io_alloc(IMG_SNAP_BUF);
	c = calloc(1, sizeof(*c));
	if (!buf || !c) {
		rc = -ENOMEM;
		goto out;
	}
	uint64_t size = bs_handle_size(h);
	for (uint64_t off = 0; off < size;) {
		c->n = 0;
		rc = bs_block_status(h, off, size - off, snap_collect, c);
		if (rc < 0)
			goto out;
		if (!c->n) {
			rc = -EIO; /* no progress: the map answered nothing */
			goto out;
		}
		for (unsigned i = 0; i < c->n; i++) {
			uint64_t end = c->r[i].off + c->r[i].len;
			if (c->r[i].off != off || end > size || end <= off) {
				rc = -EIO; /* ranges must tile [off, size) */
				goto out;
			}
			bool zero = c->r[i].flags & BS_STATE_ZERO;
			while (off < end) {
				uint64_t left = end - off;
				uint32_t n;
				if (zero) {
					n = left > IMG_SNAP_ZERO ? IMG_SNAP_ZERO : (uint32_t)left;
					rc = img_upload_write(u, snap_zero, n);
				} else {
					n = left > IMG_SNAP_BUF ? IMG_SNAP_BUF : (uint32_t)left;
					if ((rc = bs_read(h, ctx, buf, off, n)) < 0)
						goto out;
					rc = img_upload_write(u, buf, n);
				}
				if (rc < 0)
					goto out;
				off += n;
			}
		}
	}
	rc = 0;
out:
	if (rc < 0)
		img_upload_fail(u, rc);
	free(c);
	io_free(buf);
	io_ctx_free(ctx);
	bs_handle_close(h);
	return rc;
}
