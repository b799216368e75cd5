/* registry/img_data.h - an image's bytes on their way into the pool.
 *
 * No HTTP, no JSON, no image records: the API layer feeds an upload (the
 * body of PUT .../file or .../stage, a web-download fetch, an S3 object
 * read once, or a volume snapshot) and commits the result into the image
 * record from its own callbacks.
 *
 * An upload streams once: the bytes are hashed (MD5 for Glance's
 * "checksum", SHA-512 for os_hash_value) and written to a chunk-store writer
 * (dedup, zstd, stripes) on a pipeline thread, so hashing and chunking run
 * on two cores; memory is bounded (the writer's in-flight window plus a few
 * MiB of queued buffers). The first bytes are checked with qcow2_probe
 * (registry/qcow2.h): a qcow2 image that names a backing file or an external
 * data file, is encrypted, dirty or corrupt, or whose header lies is
 * refused (CAIRN_EINVAL with the reason) before any tool sees it. A
 * disk_format of "qcow2" whose bytes are not qcow2 is refused, and qcow2
 * bytes declared as another format too (Glance's format inspector does the
 * same).
 *
 * qcow2: the bytes are also spooled to a scratch file; at finish
 * `qemu-img check` and `qemu-img convert -O raw` (as Glance's image
 * conversion plugin runs it: fixed formats, -f qcow2, resource limits on the
 * child) make the raw view, which is written into a second writer (its
 * chunks dedup against the qcow2's). Scratch files are removed on every path.
 *
 * Commit: img_upload_commit runs the API layer's callback inside the
 * commit that creates each manifest, so the record that holds a reference
 * is written in the same transaction as the reference (nothing leaks on a
 * crash): first the raw view (phase IMG_PHASE_RAW, when there is one), then
 * the data (IMG_PHASE_DATA, whose callback typically makes the image
 * active and links the system bucket object).
 *
 * Threads: an upload is used by one thread at a time.
 */
#ifndef CAIRN_REGISTRY_IMG_DATA_H
#define CAIRN_REGISTRY_IMG_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct cs_pool;
struct cs_txn;
struct bs_store;
struct img_upload;

struct img_data_opts {
	uint64_t max_size;    /* bytes; more is -EFBIG (as soon as it is seen) */
	const char *tmp_dir;  /* scratch for qcow2 conversion (exists) */
	const char *qemu_img; /* NULL = "qemu-img" */
	/* The image's owner: in a [pool] dedup_domain = tenant pool the
	 * upload's chunks (and its qcow2 raw view's) dedup only against that
	 * user's, as the user's own S3 PUTs do (SHA-256 of the name, as
	 * objstore's writers). NULL: the pool's default domain. */
	const char *owner;
};

struct img_data_result {
	uint8_t mid[16]; /* the data manifest (valid in and after IMG_PHASE_DATA) */
	uint64_t size;
	uint8_t md5[16];
	uint8_t sha512[64];
	bool qcow2;	       /* the bytes are a (safe) qcow2 image */
	uint64_t virtual_size; /* qcow2: the header's; otherwise size */
	bool has_raw;	       /* raw_mid holds the raw view (valid from IMG_PHASE_RAW) */
	uint8_t raw_mid[16];
};

/* disk_format: the image's declared format (NULL or "" = not declared yet:
 * qcow2 is detected from the bytes, anything else is taken as is). */
int img_upload_open(struct cs_pool *pool, const struct img_data_opts *opts, const char *disk_format,
		    struct img_upload **out) CAIRN_WUR;
/* Appends bytes. CAIRN_EINVAL (a refused qcow2 or a format mismatch: the
 * reason is in img_upload_why), -EFBIG (over max_size), or the pool's
 * codes; after an error the upload is dead (free it). */
int img_upload_write(struct img_upload *u, const void *buf, size_t len) CAIRN_WUR;
/* Ends the stream: finishes the writer, makes the qcow2 raw view, fills res
 * (mids not yet valid). Errors as img_upload_write, plus CAIRN_EINVAL when
 * qemu-img check/convert refuses the image (reason in img_upload_why). */
int img_upload_finish(struct img_upload *u, struct img_data_result *res) CAIRN_WUR;

enum img_phase { IMG_PHASE_RAW = 1, IMG_PHASE_DATA = 2 };
/* fn runs on the committer thread inside the transaction that created the
 * phase's manifest (refcount 1: the callback's record must hold it; a
 * negative return undoes the phase). A failure after IMG_PHASE_RAW
 * committed is the caller's to clean up (its record holds raw_mid). */
typedef int (*img_commit_fn)(struct cs_txn *txn, void *arg, enum img_phase phase,
			     const struct img_data_result *res);
int img_upload_commit(struct img_upload *u, img_commit_fn fn, void *arg) CAIRN_WUR;
/* A one-line reason for the last CAIRN_EINVAL ("" otherwise). */
const char *img_upload_why(const struct img_upload *u);
void img_upload_free(struct img_upload *u);

/* ---- sources other than an HTTP body: each streams into u, then the caller
 * calls img_upload_finish and img_upload_commit as usual. ---- */

/* Reads the object's manifest once into u's hashes (and qcow2 spool)
 * without writing chunks: at commit, IMG_PHASE_DATA's manifest is mid itself
 * with one new reference (cs_manifest_ref), not a new manifest. */
int img_upload_from_manifest(struct img_upload *u, const uint8_t mid[16]) CAIRN_WUR;

/* Fetches an http(s) URL into u (libcurl). Allowed only when the URL's
 * host (and port) is in allow (comma-separated "host" / "host:port"
 * entries) and it does not resolve to one of own_ports on a local address;
 * the address checked is the one connected to (no DNS rebinding), and
 * redirects are followed only to allowed hosts (at most 5). Errors:
 * CAIRN_EDENIED (not allowed: why), -EIO (HTTP status >= 400, connection
 * failure: why), and img_upload_write's. */
int img_upload_from_url(struct img_upload *u, const char *url, const char *allow,
			const uint16_t *own_ports, char *why, size_t whylen) CAIRN_WUR;

/* Writes the bytes of volume vol's snapshot snap (bs_snapshot_open) into u,
 * reading holes as zeroes without I/O. */
int img_upload_from_snapshot(struct img_upload *u, struct bs_store *bs, const char *vol,
			     const char *snap) CAIRN_WUR;

#endif
