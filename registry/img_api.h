/* registry/img_api.h - the registry's insides shared by its .c files.
 *
 * struct registry joins the image store (img_store.h) with the pool, the
 * block store and the options. The Glance routes (img_api*.c) are kept apart
 * from libmicrohttpd (img_server.c): a handler takes a parsed request
 * (struct img_req) and fills a response (struct img_resp); only image data
 * streams through hooks the server calls as the body arrives
 * (img_api_data.c) or as the client reads (a cs_reader in the response).
 *
 * Access rules (Glance's defaults, no Keystone): "admin" is the root user or
 * the admin token; an image's owner or an admin may change it; everyone may
 * read public and community images; members read shared images; others get
 * 404 as if the image did not exist.
 *
 * Threads: handlers run on libmicrohttpd connection threads and on import
 * threads; they block on group commits and on the pool's I/O only.
 */
#ifndef CAIRN_REGISTRY_IMG_API_H
#define CAIRN_REGISTRY_IMG_API_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "chunkstore/chunkstore.h"
#include "registry/img_store.h"
#include "registry/registry.h"

struct cs_reader;
struct img_upload;

#define IMG_USER_MAX 64
#define IMG_LIST_DEFAULT 25 /* Glance's limit_param_default */
#define IMG_LIST_MAX 1000   /* Glance's api_limit_max */
/* Background imports (web-download, s3-object) running at once: each is a
 * thread plus an upload pipeline thread; more are refused with 503. */
#define IMG_IMPORTS_MAX 8

struct registry {
	struct cs_pool *pool;
	struct bs_store *bs;
	struct img_store *st;
	uint64_t max_size;
	char *tmp_dir;
	char *qemu_img;
	char *web_allow;	   /* NULL: web-download off */
	const uint16_t *own_ports; /* the caller's array (read at each import) */
	/* background imports (web-download, s3-object): reg_close waits */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned imports; /* running; at most IMG_IMPORTS_MAX */
	bool closing;
	/* bumped whenever an image's data appears or goes: cached usage
	 * figures of other images may have changed */
	_Atomic uint64_t data_gen;
};

/* ---- acting users and access ---- */
struct img_who {
	char user[IMG_USER_MAX + 1];
	bool admin;
};
/* who from user (NULL = admin). */
void img_who_set(struct img_who *w, const char *user);
bool img_can_read(const struct img_who *w, const struct img_entry *e);
bool img_can_write(const struct img_who *w, const struct img_entry *e);
/* A member's status ("pending"...) of user on e, or NULL. */
const char *img_member_status(const struct img_entry *e, const char *user);

/* The Glance view of an image (a new object). */
json_t *img_view(struct registry *reg, const struct img_entry *e);
/* "2024-01-01T00:00:00Z" */
void img_isotime(uint64_t ns, char out[32]);
const char *img_status_name(unsigned st);
const char *img_vis_name(unsigned v);
int img_vis_parse(const char *s);
/* Computes and caches cairn_unique_bytes/shared_bytes of an entry. */
int img_usage(struct registry *reg, const struct img_entry *e, struct cs_usage *out) CAIRN_WUR;
/* Whether a single-image GET should recompute them: never computed, an
 * image's data appeared or went since, or older than IMG_USAGE_MAX_AGE_NS
 * (objects and volumes sharing chunks change the figures unseen). */
#define IMG_USAGE_MAX_AGE_NS (10ll * 1000000000)
bool img_usage_stale(struct registry *reg, const struct img_entry *e);

/* ---- requests and responses ---- */
struct img_qparam {
	char *k, *v; /* decoded */
};

#define IMG_MAX_SEGS 8
#define IMG_MAX_QPARAMS 64

struct img_resp {
	unsigned status;
	json_t *json;	/* body, owned */
	char msg[1024]; /* error message when status >= 400 and no json */
	char location[256];
	const char *hdr_name; /* one extra header (static name) */
	char hdr_val[256];
	/* a download: the server streams rd[off, off + len) */
	struct cs_reader *rd;
	uint64_t off, len, total;
	bool partial;
	char md5_hex[33];
};

struct img_req {
	struct registry *reg;
	const char *method;
	char *segs[IMG_MAX_SEGS]; /* decoded path segments */
	int nsegs;
	struct img_qparam q[IMG_MAX_QPARAMS];
	int nq;
	struct img_who who;
	const char *content_type; /* NULL: none */
	const char *range;	  /* Range header or NULL */
	const char *accept;
	char base[300]; /* "http://host:port" for absolute links (versions) */
	char *body;	/* NUL-terminated (buffered routes) */
	size_t body_len;
	/* upload state (img_api_data.c) */
	struct img_upload *up;
	int up_err;
	bool up_stage;
	bool up_started;
	uint8_t up_id[IMG_ID_LEN];
	uint64_t up_claim; /* img_claim's */
	struct img_entry *up_entry;
	uint64_t up_bytes;
};

/* Fills an error response: status and message. */
void img_err(struct img_resp *rs, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The one table from cairn codes to Glance statuses; what: the message. */
void img_err_code(struct img_resp *rs, int err, const char *what);
const char *img_status_title(unsigned status);

/* Routes everything but the streaming uploads. */
void img_api_handle(struct img_req *rq, struct img_resp *rs);
/* Whether the request is an upload (PUT .../file or .../stage): the server
 * then calls begin before the body, feed per piece, end at the end. */
bool img_api_is_upload(const struct img_req *rq);
/* begin: 0 to stream, or the response already filled (an error). */
int img_upload_begin(struct img_req *rq, struct img_resp *rs);
void img_upload_feed(struct img_req *rq, const void *buf, size_t len);
void img_upload_end(struct img_req *rq, struct img_resp *rs);
/* Frees what an upload left (a request ended early): puts the image back
 * to queued. */
void img_upload_abort(struct img_req *rq);

/* Query helpers. */
const char *img_q(const struct img_req *rq, const char *k);

/* Route groups (img_api.c, img_api_members.c, img_api_data.c). */
void img_api_create(struct img_req *rq, struct img_resp *rs);
void img_api_list(struct img_req *rq, struct img_resp *rs);
void img_api_patch(struct img_req *rq, struct img_resp *rs, const uint8_t id[IMG_ID_LEN]);
void img_api_members(struct img_req *rq, struct img_resp *rs, const uint8_t id[IMG_ID_LEN]);
void img_api_download(struct img_req *rq, struct img_resp *rs, const uint8_t id[IMG_ID_LEN]);
void img_api_import(struct img_req *rq, struct img_resp *rs, const uint8_t id[IMG_ID_LEN]);
void img_api_info_import(struct img_req *rq, struct img_resp *rs);

/* Pure entry points of the parsers above (no pool, no server): what the
 * routes run on untrusted input, exposed for tests/fuzz/fuzz_glance.c.
 * img_parse_target: a request target into rq->segs (pointers into a new
 * *path_buf) and rq->q (each k and v malloc'd; the caller frees them and
 * *path_buf, also on failure); 0, CAIRN_EINVAL (too many segments or
 * parameters) or -ENOMEM. */
int img_parse_target(const char *target, char **path_buf, struct img_req *rq) CAIRN_WUR;
/* The list route's query rules on rq->q (filters, sorting, limit): 0, or
 * -1 with the 400 in rs. */
int img_list_query_check(const struct img_req *rq, struct img_resp *rs) CAIRN_WUR;
/* A PATCH as img_api_patch runs it, on rec/doc instead of the store
 * (changed in place, partly on failure, where the store would discard the
 * write): 0, or -1 with status and message in rs. */
int img_patch_try(const struct img_who *w, const char *content_type, const char *body, size_t len,
		  struct img_rec *rec, json_t *doc, struct img_resp *rs) CAIRN_WUR;
/* A member request (method POST, PUT or DELETE; member: the path's member
 * or NULL) as img_api_members runs it, on rec/doc instead of the store
 * (changed in place): 0 with status and the member in rs (rs->json owned
 * by the caller), or -1 with status and message in rs. */
int img_member_try(const struct img_who *w, const char *method, const char *member,
		   const char *body, size_t len, struct img_rec *rec, json_t *doc,
		   struct img_resp *rs) CAIRN_WUR;
/* The checks of an import body that need no image (method name, flags):
 * 0, or -1 with the 400 in rs. */
int img_import_body_check(const char *body, size_t len, bool web_allow,
			  struct img_resp *rs) CAIRN_WUR;
/* A Range header against an image of size bytes: 0 and [off, off + len),
 * CAIRN_EINVAL (several ranges: 400) or CAIRN_ERANGE (416). */
int img_parse_range(const char *h, uint64_t size, uint64_t *off, uint64_t *len) CAIRN_WUR;

/* Schemas (img_schema.c): new objects. */
json_t *img_schema_image(void);
json_t *img_schema_images(void);
json_t *img_schema_member(void);
json_t *img_schema_members(void);
json_t *img_schema_task(void);
json_t *img_schema_tasks(void);
/* Checks one base property value against the image schema; 0 or
 * CAIRN_EINVAL with a message like jsonschema's. */
int img_schema_check(const char *prop, const json_t *v, char *why, size_t whylen) CAIRN_WUR;
/* true for base (non-extra) properties. */
bool img_schema_is_base(const char *prop);
bool img_schema_is_readonly(const char *prop);

/* ---- shared image operations (img_ops.c, used by the HTTP routes) ---- */
/* Looks up an image user may read: 0 with a reference, or CAIRN_ENOTFOUND. */
int img_lookup(struct registry *reg, const struct img_who *w, const uint8_t id[IMG_ID_LEN],
	       struct img_entry **out) CAIRN_WUR;
/* An image owner must be a cairn user name (null: none) or its data could
 * never be linked into the system bucket. 0, or CAIRN_EINVAL with why (the
 * rule, for a 400). */
#define IMG_OWNER_RULE "1 to 64 of the characters A-Z a-z 0-9 _ . @ + = , -"
int img_owner_check(const json_t *v, char *why, size_t whylen) CAIRN_WUR;
/* Creates an image from Glance create fields (validated here); 0 with the
 * new entry, or a code with status/message in rs. */
int img_create(struct registry *reg, const struct img_who *w, json_t *body, struct img_entry **out,
	       struct img_resp *rs) CAIRN_WUR;
/* img_create's checks of the create fields, without the write: 0 with the
 * id (given or random), visibility, protection and the new doc (owned), or a
 * code with status/message in rs (*doc NULL). */
int img_create_check(const struct img_who *w, json_t *body, uint8_t id[IMG_ID_LEN],
		     uint8_t *visibility, bool *protect, json_t **doc,
		     struct img_resp *rs) CAIRN_WUR;
/* Data from a source into an image: the shared tail of uploads and imports.
 * kind: how the upload was fed. */
enum img_src { IMG_SRC_BODY, IMG_SRC_STAGE, IMG_SRC_MANIFEST, IMG_SRC_URL };
/* Puts an image whose data did not arrive back to queued (releasing raw,
 * stage and data manifests it held without being active), recording why
 * in doc "import" when import is non-NULL (shortened or left out when the
 * doc would not fit: the revert itself never fails for it). Acts only while
 * the record still carries claim (img_claim); otherwise (deleted, or
 * another upload's now) it touches nothing and returns 0. */
int img_revert_queued(struct registry *reg, const uint8_t id[IMG_ID_LEN], uint64_t claim,
		      const char *import_method, const char *why) CAIRN_WUR;
/* Commits a finished upload into image id (status active, or uploading
 * with stage_mid for a stage; the claim cleared); link: also the system
 * bucket object. For an s3-object import, s3_bucket/s3_key are re-resolved
 * in the commit. Every phase commits only while the record carries claim:
 * else -EBUSY (why), nothing committed by that phase. */
struct img_finish {
	enum img_src src;
	const char *s3_bucket, *s3_key;
	const uint8_t *s3_mid;
};
int img_commit_upload(struct registry *reg, const uint8_t id[IMG_ID_LEN], uint64_t claim,
		      struct img_upload *u, const struct img_finish *f, char *why,
		      size_t whylen) CAIRN_WUR;
/* Runs a whole import of id (claimed: claim) from a manifest or URL on this
 * thread: open, feed, finish, commit; on failure the image goes back to
 * queued (if it still carries claim). */
int img_import_run(struct registry *reg, const uint8_t id[IMG_ID_LEN], uint64_t claim,
		   enum img_src src, const char *url, const char *s3_bucket, const char *s3_key,
		   const uint8_t s3_mid[16], char *why, size_t whylen) CAIRN_WUR;
/* Moves a queued image to status (saving/importing/uploading) in one commit
 * and stamps a fresh claim (img_rec.claim) returned in *claim: the
 * claimer's commits and revert pass it. -EBUSY when it is not queued,
 * CAIRN_EINVAL when formats are missing (why). */
int img_claim(struct registry *reg, const uint8_t id[IMG_ID_LEN], unsigned status,
	      bool need_formats, char *why, size_t whylen, uint64_t *claim) CAIRN_WUR;
/* Inside the commit that makes m's image active or changes the owner of an
 * active one: (re)links its system bucket object to its data under the
 * record's owner (null: the root user), replacing an object already there
 * (whose reference is dropped). Every path that changes who may read the
 * bytes over S3 goes through here, in the same commit as the change. */
int img_sys_link_txn(struct cs_txn *txn, struct registry *reg, const struct img_mut *m) CAIRN_WUR;
/* Inside the commit that deactivates an image: removes its system bucket
 * object (and the object's reference); an object already gone is fine. */
int img_sys_unlink_txn(struct cs_txn *txn, struct registry *reg,
		       const uint8_t id[IMG_ID_LEN]) CAIRN_WUR;
/* Deletes an image (all its references, the system bucket object). */
int img_delete(struct registry *reg, const uint8_t id[IMG_ID_LEN]) CAIRN_WUR;

#endif
