/* registry/registry.h - the image registry: Glance v2 images over the pool.
 *
 * An image is a record (registry/img_format.h) plus the manifests holding
 * its bytes in the deduplicated, erasure-coded pool; every active image is
 * also an object <image id> in the S3 system bucket (S3_SYSTEM_BUCKET). A
 * volume made from an image is a block-store volume whose base is the
 * image's manifest (its raw view for qcow2): no bytes are copied. The
 * registry is the one module that joins objstore/ and blockstore/.
 *
 * reg_open loads every image record into an in-memory index (listing never
 * scans LMDB) and finishes what a crash interrupted: images left saving or
 * importing go back to queued and the manifests they held are released, as
 * Glance does with a failed upload.
 *
 * Users: the image owner is a cairn user name; "admin" is the root user or
 * the configured admin token. Every operation here takes the acting user.
 *
 * Threads: any function from any thread; writes go through cs_commit.
 * Errors: CAIRN_ENOTFOUND (image, volume, object), CAIRN_EINVAL (arguments,
 * with a reason in why where there is one), CAIRN_EDENIED (not allowed),
 * -EBUSY (wrong image status for the operation), -EFBIG (over the size
 * limit), CAIRN_EEXISTS (id or volume name taken), and the pool's codes.
 */
#ifndef CAIRN_REGISTRY_REGISTRY_H
#define CAIRN_REGISTRY_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct cs_pool;
struct bs_store;
struct bs_vol_info;
struct vol_opts;
struct registry;
struct reg_server;

#define REG_ID_STR 37 /* a UUID string and its NUL */

struct reg_opts {
	uint64_t max_image_size; /* bytes of one image's data; 0 = 1 TiB */
	const char *tmp_dir;	 /* qcow2 conversion scratch; NULL = DATA/tmp */
	const char *qemu_img;	 /* NULL = "qemu-img" on PATH */
	/* web-download: comma-separated "host" or "host:port" entries (exact
	 * names or IP literals) that may be fetched; NULL or "" = web-download
	 * disabled (not advertised in /v2/info/import). The node's own ports
	 * are refused even when allowed. */
	const char *web_allow;
	/* the node's listening ports, 0-terminated; kept by pointer (not
	 * copied) and read at each web-download, so the caller may fill in ports
	 * bound after reg_open; it must outlive the registry */
	const uint16_t *own_ports;
};

int reg_open(struct cs_pool *pool, struct bs_store *bs, const struct reg_opts *opts,
	     struct registry **out) CAIRN_WUR;
/* Stop every server on it first; NULL is fine. */
void reg_close(struct registry *reg);

/* ---- the Glance v2 HTTP API ---- */

struct reg_config {
	const char *listen;	  /* "HOST:PORT", default ":9292" */
	const char *admin_token;  /* X-Auth-Token acting as the root user; NULL/"" = none */
	const char *public_url;	  /* base URL in links and "file" fields; NULL = from Host */
	unsigned max_connections; /* 0 = 512 */
	unsigned timeout_sec;	  /* idle connection timeout; 0 = 300 */
	bool access_log;
};

int reg_server_start(struct registry *reg, const struct reg_config *cfg,
		     struct reg_server **out) CAIRN_WUR;
uint16_t reg_server_port(const struct reg_server *srv);
void reg_server_stop(struct reg_server *srv);

/* ---- operations for the admin API and the CLI ----
 * Image JSON is the Glance v2 representation (jansson: callers json_decref). */

typedef struct json_t json_t;

/* An image as Glance shows it, as seen by user (NULL = admin). */
int reg_image_show(struct registry *reg, const char *user, const char *id, json_t **out) CAIRN_WUR;
/* Registers an existing S3 object ("s3://bucket/key") as a new active
 * image of user without writing its bytes: the object is read once for the
 * checksums (and, for qcow2, its raw view is made), then the image takes a
 * reference to the object's manifest. fields: Glance create fields (name,
 * disk_format, container_format, visibility, extra properties; may be
 * NULL: name = the key, disk_format from the bytes, container_format bare).
 * user must own the bucket or be admin (NULL). out: the new image. */
int reg_image_register_s3(struct registry *reg, const char *user, const char *uri, json_t *fields,
			  json_t **out, char *why, size_t whylen) CAIRN_WUR;
/* Snapshots volume vol, captures the snapshot's bytes as a new active raw
 * image of user (only chunks the pool lacks are stored), then deletes the
 * snapshot. fields as above (name defaults to the volume's). */
int reg_image_from_volume(struct registry *reg, const char *user, const char *vol, json_t *fields,
			  json_t **out, char *why, size_t whylen) CAIRN_WUR;
/* A volume named vol_name from an active raw or qcow2 image that user may
 * read: bs_volume_create_from_manifest on its raw bytes (size 0 = the
 * image's virtual size). Other disk formats: CAIRN_EINVAL with why. */
int reg_volume_from_image(struct registry *reg, const char *user, const char *id,
			  const char *vol_name, uint64_t size, const struct vol_opts *opts,
			  struct bs_vol_info *out, char *why, size_t whylen) CAIRN_WUR;

/* What each image costs (cs_manifest_usage over its manifests). */
struct reg_image_usage {
	char id[REG_ID_STR];
	char name[256];
	char owner[65];
	uint64_t size;	       /* bytes as uploaded */
	uint64_t unique_bytes; /* raw bytes of chunks only this image holds */
	uint64_t unique_stored;
	uint64_t shared_bytes; /* raw bytes of chunks shared with other data */
	uint64_t zero_bytes;
};
/* Calls fn for every image (user NULL: all; else the images user owns),
 * newest first. */
int reg_image_df(struct registry *reg, const char *user,
		 int (*fn)(const struct reg_image_usage *u, void *arg), void *arg) CAIRN_WUR;

#endif
