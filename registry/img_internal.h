/* registry/img_internal.h - what the pieces of registry/img_data.h share
 * (img_data.c: uploads; img_conv.c: the qcow2 raw view; img_fetch.c: web
 * download). Not a public contract: nothing outside registry/img_*.c
 * includes it.
 */
#ifndef CAIRN_REGISTRY_IMG_INTERNAL_H
#define CAIRN_REGISTRY_IMG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct cs_pool;
struct cs_writer;
struct img_data_opts;

#define IMG_HEAD_MAX (1u << 20) /* qcow2_probe gets at most this many first bytes */

struct img_upload;

/* Sets w's dedup domain to owner's (img_data_opts.owner); NULL: none. */
void img_writer_domain(struct cs_writer *w, const char *owner);

/* Kills the upload (a source failed part way: what was written must never
 * be committed); later calls return err. */
void img_upload_fail(struct img_upload *u, int err);

/* An anonymous scratch file in dir (O_TMPFILE, else mkstemp + unlink at
 * once): it has no name, so no path leaks it. Returns the fd or -errno. */
int img_scratch_open(const char *dir) CAIRN_WUR;

/* Makes the raw view of the qcow2 image in spool_fd (virtual_size bytes from
 * its header): `qemu-img check` then `qemu-img convert -O raw` into a sparse
 * scratch file (children under resource limits, empty environment, no
 * shell), then streams that file's data into a new writer (holes are fed as
 * zeroes, which the writer stores as zero chunks). On success *out is a
 * finished writer (the caller frees it). CAIRN_EINVAL when qemu-img refuses
 * the image (why says so), -EIO when it cannot be run, or the pool's codes.
 * The scratch file is closed on every path. */
int img_conv_raw(struct cs_pool *pool, const struct img_data_opts *opts, int spool_fd,
		 uint64_t virtual_size, struct cs_writer **out, char *why, size_t whylen) CAIRN_WUR;

#endif
