/* node/node.h - the pieces of the `cairn` binary: daemon, admin API, CLI.
 *
 * node_serve_main runs the daemon until SIGINT/SIGTERM. The admin API is a
 * libmicrohttpd server of its own (thread per connection; low traffic) that
 * serves /metrics, /health and the users/keys JSON API the CLI talks to,
 * authenticated by SigV4 exactly like S3 and allowed only to the root user.
 * Root credentials are an S3 access key id and secret ("user" and
 * "password" to operators), from the environment or DATA/root-credentials.
 *
 * Threads: *_main and the creds helpers run on the main thread; the admin
 * server's handlers run on its connection threads and only call the
 * thread-safe objstore/chunkstore APIs.
 */
#ifndef CAIRN_NODE_NODE_H
#define CAIRN_NODE_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

#define NODE_CREDS_FILE "root-credentials"
#define NODE_POWERLOSS_LOG "powerloss.log"
#define NODE_PASSWORD_MIN 8
#define NODE_CRED_MAX 128 /* S3_KEY_ID_MAX and S3_SECRET_MAX */

struct cs_pool;

/* ---- commands (return the process exit code) ---- */
/* Formats an error message into err (NULL or errlen 0: dropped). */
void node_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

int node_serve_main(int argc, char **argv);
int node_user_main(int argc, char **argv);
int node_key_main(int argc, char **argv);
int node_powerloss_replay_main(int argc, char **argv);
/* `cairn fsck|gc|scrub|repair`: argv[0] is the job's op. Exit 0 clean (or
 * all fixed), 1 problems remain or the job failed, 2 usage. */
int node_job_main(int argc, char **argv);
/* `cairn df [--json]`. */
int node_df_main(int argc, char **argv);

/* ---- root credentials (node/creds.c) ---- */
struct node_creds {
	char user[NODE_CRED_MAX + 1];	  /* access key id */
	char password[NODE_CRED_MAX + 1]; /* secret access key */
};

/* From CAIRN_ROOT_USER/CAIRN_ROOT_PASSWORD: 0 when both are set, 1 when
 * neither is, CAIRN_EINVAL (message in err) when only one is or a value is
 * invalid. */
int node_creds_from_env(struct node_creds *out, char *err, size_t errlen) CAIRN_WUR;
/* Reads a credentials file (KEY=VALUE lines; CAIRN_ROOT_USER/PASSWORD or
 * AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; '#' comments; an "export "
 * prefix is ignored, so the file can be sourced by a shell). Returns 0,
 * -errno, or CAIRN_EINVAL with a message. */
int node_creds_read(const char *path, struct node_creds *out, char *err, size_t errlen) CAIRN_WUR;
/* Checks the access key id (3..128 of [A-Za-z0-9._@+=-]) and the password
 * (8..128 printable characters, no spaces). */
int node_creds_validate(const struct node_creds *c, char *err, size_t errlen) CAIRN_WUR;
/* Random credentials from RAND_bytes: a 20-character key id, a 40-character
 * secret. */
int node_creds_generate(struct node_creds *out) CAIRN_WUR;
/* Writes the file durably with mode 0600; fails with -EEXIST rather than
 * replace one. */
int node_creds_write(const char *path, const struct node_creds *c) CAIRN_WUR;

/* ---- the data directory lock (node/serve.c) ---- */

/* Takes DATA/cairn.lock (flock, exclusive, non-blocking) for the life of the
 * process, so two daemons (or a replay under a running daemon) never share
 * a data directory. Returns the fd to keep open, or -EWOULDBLOCK (message
 * with the holder's pid in err) or -errno. */
int node_data_lock(const char *data_dir, char *err, size_t errlen) CAIRN_WUR;

/* ---- admin API (node/admin.c) ---- */
struct admin_server;

struct admin_config {
	const char *listen;   /* HOST:PORT */
	const char *data_dir; /* DATA: device folders are DATA/devices/NAME */
	const char *root_key; /* the root access key id; its user is the root user */
	bool access_log;
	uint64_t scrub_interval; /* seconds between background scrubs; 0: none */
	/* Block volumes (/admin/v1/volumes, node/admin_vol.c); NULL: those
	 * routes answer 503. nbd_host/nbd_port make the nbd:// URLs attach
	 * returns (the bound port; host 127.0.0.1 for a wildcard listen). */
	struct bs_store *bs;
	const char *nbd_host;
	uint16_t nbd_port;
	/* The image registry (/admin/v1/images, volume from image,
	 * upload-image; node/admin_img.c); NULL: those routes answer 503. */
	struct registry *reg;
	/* The registry's admin token (Authorization: Bearer acts as root);
	 * NULL or "": none. */
	const char *admin_token;
};

/* Binds and starts serving. Errors: -EADDRINUSE etc. from bind (message
 * names the address in err), CAIRN_ENOTFOUND when the root key is unknown. */
int admin_start(const struct admin_config *cfg, struct cs_pool *pool, struct admin_server **out,
		char *err, size_t errlen) CAIRN_WUR;
uint16_t admin_port(const struct admin_server *srv);
/* /health answers 503 from now on (the pool is going away). */
void admin_set_stopping(struct admin_server *srv);
/* Stops the listener, waits for requests in flight, frees; NULL is fine. */
void admin_stop(struct admin_server *srv);

/* ---- volumes on the admin API (node/admin_vol.c) ----
 * The /admin/v1/volumes routes (docs: briefs i6-api, README "Volumes"),
 * kept apart from libmicrohttpd so admin.c only authenticates and
 * answers. Handlers call the thread-safe bs_* management functions and
 * may block on a group commit. */
struct bs_store;
struct json_t;

struct admin_vol_env {
	struct bs_store *bs;  /* NULL: 503 ServiceUnavailable */
	const char *nbd_host; /* host part of nbd:// URLs */
	uint16_t nbd_port;
	const char *peer; /* the client's address: attach's default host */
	/* The image registry, for {"image": ID} in POST /admin/v1/volumes
	 * (NULL: that form answers 503). */
	struct registry *reg;
};

/* Whether target (the raw request target, percent-encoded, query allowed)
 * is a volume route. If so: *op is its metrics label, or NULL when the
 * route exists but not for this method; *allow the methods it takes. */
bool admin_vol_match(const char *method, const char *target, const char **op, const char **allow);
/* Serves one authenticated volume request. Returns the HTTP status and in
 * *out a new JSON body (NULL for 204 and when out of memory: the caller
 * drops the connection then). */
unsigned admin_vol_handle(const struct admin_vol_env *env, const char *method, const char *target,
			  const char *body, size_t body_len, struct json_t **out);

/* Percent-decodes n bytes of s into out (cap bytes with the NUL): false on
 * a bad escape, a NUL byte, or too long. */
bool admin_pct_decode(const char *s, size_t n, char *out, size_t cap);
/* Query parameter key of q (the part after '?'), percent-decoded into out:
 * 1 found, 0 absent, -1 bad escape or too long. */
int admin_query_get(const char *q, const char *key, char *out, size_t cap);

/* ---- images on the admin API (node/admin_img.c) ----
 * Same shape as the volume routes: admin.c matches and authenticates, these
 * parse and answer. Errors are {"error": {"code", "message"}}: NoSuchImage,
 * NoSuchObject, NoSuchVolume, NoSuchUser (404),
 * InvalidArgument (400, the registry's reason as message), ImageNotActive
 * (409), AccessDenied (403), ServiceUnavailable (503: no registry). */
struct registry;

struct admin_img_env {
	struct registry *reg; /* NULL: 503 ServiceUnavailable */
	struct cs_pool *pool;
};

/* /admin/v1/images/register, /admin/v1/images/df and
 * /admin/v1/volumes/NAME/upload-image (checked before the volume routes). */
bool admin_img_match(const char *method, const char *target, const char **op, const char **allow);
unsigned admin_img_handle(const struct admin_img_env *env, const char *method, const char *target,
			  const char *body, size_t body_len, struct json_t **out);
/* What a registry call was doing, for its error's code. */
enum admin_img_ctx {
	ADMIN_IMG_REGISTER,    /* an S3 object becomes an image: NoSuchObject */
	ADMIN_IMG_FROM_VOLUME, /* a volume becomes an image: NoSuchVolume, VolumeBusy */
	ADMIN_IMG_VOLUME,      /* a volume from an image: NoSuchImage, ImageNotActive,
				* VolumeExists */
};
/* The one table mapping registry codes to admin API errors. name: what the
 * request named (for the message); why: the registry's reason ("" or NULL:
 * none). Returns the status, *out the error body (NULL: out of memory). */
unsigned admin_img_error(int err, enum admin_img_ctx ctx, const char *name, const char *why,
			 struct json_t **out);

/* ---- bearer tokens on the admin API (node/admin_tok.c) ----
 * POST/GET /admin/v1/tokens, DELETE /admin/v1/tokens/ID, matched and
 * answered as the volume routes are. */
struct cs_pool;
bool admin_tok_match(const char *method, const char *target, const char **op, const char **allow);
/* Serves one authenticated token request: the HTTP status, and in *out a
 * new JSON body (NULL for 204 and when out of memory). */
unsigned admin_tok_handle(struct cs_pool *pool, const char *method, const char *target,
			  const char *body, size_t body_len, struct json_t **out);

/* ---- CLI helpers shared by node/cli.c and node/cli_vol.c ---- */
#define NODE_DEFAULT_ENDPOINT "http://127.0.0.1:9100" /* [api] listen's default */
/* Options a command may take besides the common ones (--endpoint,
 * --credentials, --data, --json, --help). */
enum {
	NODE_OPT_FIX = 1u << 0,
	NODE_OPT_ATTACH = 1u << 1,
	NODE_OPT_REPLICAS = 1u << 2,
	NODE_OPT_IOPS = 1u << 3,
	NODE_OPT_BPS = 1u << 4,
	NODE_OPT_FROM_SNAPSHOT = 1u << 5,
	NODE_OPT_FROM_IMAGE = 1u << 6,
	NODE_OPT_FORCE = 1u << 7,
	NODE_OPT_HOST = 1u << 8,
	NODE_OPT_LEASE = 1u << 9,
	NODE_OPT_FROM = 1u << 10,
	NODE_OPT_TO = 1u << 11,
	NODE_OPT_FLATTEN = 1u << 12,
	NODE_OPT_NAME = 1u << 13,
	NODE_OPT_DISK_FORMAT = 1u << 14,
	NODE_OPT_CONTAINER_FORMAT = 1u << 15,
	NODE_OPT_OWNER = 1u << 16,
	NODE_OPT_FROM_VOLUME = 1u << 17,
	NODE_OPT_VISIBILITY = 1u << 18,
};

struct node_cli {
	const char *endpoint;
	const char *credentials;
	const char *data_dir;
	bool json;
	bool fix;
	bool attach;
	bool force, flatten;
	/* option values as given (NULL: absent); see NODE_OPT_* */
	const char *replicas, *iops, *bps, *from_snapshot, *from_image, *host, *lease, *from, *to;
	const char *name, *disk_format, *container_format, *owner, *from_volume, *visibility;
	unsigned given;	  /* NODE_OPT_* bits of the options given */
	long timeout_sec; /* whole request; 0: 60 s (image captures take longer) */
	struct node_creds creds;
};

/* Parses the options (allowed: NODE_OPT_* bits the command takes; others
 * are usage errors); positional words go to args. Returns their number,
 * -1 (usage error, printed) or -2 (--help, printed). argv[0] names the
 * command for the usage text. */
int node_cli_parse(int argc, char **argv, struct node_cli *c, char **args, int maxargs,
		   unsigned allowed);
/* Loads the root credentials into c->creds; prints why not. */
int node_cli_creds(struct node_cli *c);
/* One SigV4-signed request to the admin API (path: percent-encoded, query
 * allowed; body: JSON or NULL). 0 with *status and *out (parsed body or
 * NULL), or -1 after printing why it could not be made. */
int node_api_call(struct node_cli *c, const char *method, const char *path, const char *body,
		  long *status, struct json_t **out);
/* Loads the credentials, sends body (a JSON object, consumed; NULL: none)
 * and parses the answer: 0 with *resp (may be NULL) for a 2xx answer, else
 * 1 after printing the API's error or why the call failed (cli_vol.c). */
int node_api_request(struct node_cli *c, const char *method, const char *path, struct json_t *body,
		     struct json_t **resp);
/* Prints the API's error to stderr; returns the exit code 1. */
int node_api_error(long status, struct json_t *body);
void node_print_json(struct json_t *j);
/* "1.5 GiB" style (binary units). */
void node_fmt_bytes(double b, char *out, size_t len);
/* Usage of `cairn volume` / `cairn snapshot` (cli_vol.c). */
void node_vol_usage(FILE *f, const char *what);
int node_volume_main(int argc, char **argv);
int node_snapshot_main(int argc, char **argv);
/* `cairn token create|list|delete` (cli_tok.c). */
int node_token_main(int argc, char **argv);
void node_tok_usage(FILE *f);
/* "3600", "90s", "15m", "12h", "7d" -> seconds; false when malformed. */
bool node_ttl_parse(const char *s, uint64_t *out);
/* `cairn image register|create|df` (cli_img.c). */
int node_image_main(int argc, char **argv);
void node_img_usage(FILE *f);

/* ---- maintenance jobs (node/jobs.c) ----
 * One job at a time on a thread of its own; it outlives the request (and
 * the CLI) that started it. Any thread may call these. */
struct node_jobs;
struct json_t;

/* true for "fsck", "gc", "scrub", "repair". */
bool node_job_op_valid(const char *op);
int node_jobs_create(struct cs_pool *pool, struct node_jobs **out) CAIRN_WUR;
/* Starts op (fix: fsck writes what it recomputed). Returns 0 (*id set),
 * CAIRN_EINVAL for an unknown op, CAIRN_EEXISTS while a job runs (its op
 * copied into running), or -errno when no thread could start. */
int node_job_start(struct node_jobs *j, const char *op, bool fix, uint64_t *id, char *running,
		   size_t runlen) CAIRN_WUR;
/* The current or last job as a new JSON object (id, op, fix, state, phase,
 * done, total, percent, rate, rate_unit, eta_seconds, started, finished,
 * elapsed_seconds; once ended: report, clean, and error when failed), or
 * NULL when no job ran since start (or out of memory). */
struct json_t *node_job_json(struct node_jobs *j);
/* For /metrics: returns the state (0 none, 1 running, 2 done, 3 failed),
 * fills the phase's progress and the op's name. */
int node_job_progress(struct node_jobs *j, bool *running, double *ratio, uint64_t *done,
		      uint64_t *total, char *op, size_t oplen);
/* WAITS for a running job to end (the chunk store cannot cancel one), then
 * frees; NULL is fine. */
/* Runs a scrub job every `seconds` (0: never), timed from DATA/scrub-last so
 * restarts do not postpone it forever. */
int node_jobs_scrub_every(struct node_jobs *j, const char *data_dir, uint64_t seconds) CAIRN_WUR;
void node_jobs_free(struct node_jobs *j);
/* fsck jobs also check the block store (bs_fsck; the report gains
 * "volumes"). Call before any job starts; NULL: none. */
void node_jobs_set_bs(struct node_jobs *j, struct bs_store *bs);

/* ---- pool and device figures (node/pool_info.c) ---- */
#define NODE_DEV_MAX 256

struct node_dev_info {
	uint32_t id; /* ring device id */
	char name[64];
	char path[4096];
	bool present;	     /* the folder exists */
	uint64_t used_bytes; /* allocated under the folder */
	uint64_t free_bytes; /* statvfs f_bavail of its file system */
	uint64_t size_bytes; /* statvfs size of its file system */
};

/* The "ec" ring's devices, up to max of them filled (a walk of each
 * folder: O(files)). Returns the number of devices (may exceed max). */
long node_pool_devices(struct cs_pool *pool, const char *data_dir, struct node_dev_info *out,
		       size_t max);
/* a / b; 1 when both are 0; NaN when only b is. */
double node_ratio(uint64_t a, uint64_t b);
/* GET /admin/v1/pool/stats: {"pool": {...}, "devices": [...]}; NULL with
 * *err set on failure. */
struct json_t *node_pool_stats_json(struct cs_pool *pool, const char *data_dir, int *err);
/* Prometheus text of what core/metrics gauges cannot carry (labels, ratios,
 * jobs): pool ratios, read fallbacks, per-device gauges (the device walk is
 * cached for 10 s), job progress. *out is malloc'd. */
int node_pool_metrics(struct cs_pool *pool, const char *data_dir, struct node_jobs *jobs,
		      char **out, size_t *len) CAIRN_WUR;

/* Binds a listening TCP socket on "HOST:PORT" (SO_REUSEADDR, CLOEXEC).
 * Returns the fd or -errno (-EADDRINUSE, -EADDRNOTAVAIL, -EINVAL for an
 * unparsable or unresolvable address). */
int node_listen_socket(const char *listen) CAIRN_WUR;

#endif
