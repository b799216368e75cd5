/* node/config.c - config keys, INI parsing (inih) and `cairn serve` flags. */
#include "node/config.h"

#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/log.h"

enum cfg_type {
	CFG_STR,    /* any non-empty string */
	CFG_OPTSTR, /* string, may be empty */
	CFG_BOOL,
	CFG_UINT,   /* decimal, bounded */
	CFG_SIZE,   /* bytes with optional K/M/G/T suffix (powers of 1024) */
	CFG_LEVEL,  /* log level name */
	CFG_LISTEN, /* HOST:PORT */
};

struct cfg_key {
	const char *section;
	const char *name;
	enum cfg_type type;
	size_t off;
	const char *def;
	uint64_t min, max; /* CFG_UINT and CFG_SIZE */
	const char *help;
};

#define F(field) offsetof(struct node_config, field)
#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)
#define TIB (1024ull * GIB)

/* The one list of config keys. Pool keys marked "(creation)" are read only
 * when the pool is created; later starts use the pool's own record, because
 * chunk and stripe parameters are part of the on-disk format. */
static const struct cfg_key keys[] = {
    {"node", "data_dir", CFG_STR, F(data_dir), "./data", 0, 0,
     "data directory: meta/ (LMDB), devices/, ring/, root-credentials"},
    {"node", "log_level", CFG_LEVEL, F(log_level), "info", 0, 0, "error, warn, info or debug"},
    {"node", "access_log", CFG_BOOL, F(access_log), "true", 0, 0,
     "one log line per request (S3 and admin API)"},
    {"s3", "listen", CFG_LISTEN, F(s3_listen), "127.0.0.1:9000", 0, 0,
     "S3 API address HOST:PORT (port 0: any free port)"},
    {"s3", "region", CFG_STR, F(s3_region), "us-east-1", 0, 0,
     "region name clients sign for and GetBucketLocation reports"},
    {"s3", "domain", CFG_OPTSTR, F(s3_domain), "", 0, 0,
     "virtual-host suffix (bucket.DOMAIN); empty: path-style only"},
    {"s3", "max_connections", CFG_UINT, F(s3_max_connections), "1024", 1, 65536,
     "S3 connections served at once; more are refused"},
    {"s3", "timeout", CFG_UINT, F(s3_timeout), "60", 1, 86400,
     "seconds an idle or stalled S3 connection is kept"},
    {"s3", "multipart_expiry", CFG_UINT, F(s3_multipart_expiry), "604800", 1, 315360000,
     "seconds after which an unfinished multipart upload is aborted and its space freed"},
    {"s3", "tls_cert", CFG_OPTSTR, F(s3_tls_cert), "", 0, 0,
     "PEM certificate (chain) file; with tls_key the S3 port speaks HTTPS only"},
    {"s3", "tls_key", CFG_OPTSTR, F(s3_tls_key), "", 0, 0,
     "PEM private key file (unencrypted; keep it mode 0600) for tls_cert"},
    {"api", "listen", CFG_LISTEN, F(api_listen), "127.0.0.1:9100", 0, 0,
     "admin API, /metrics and /health address HOST:PORT"},
    {"nbd", "listen", CFG_LISTEN, F(nbd_listen), "0.0.0.0:10809", 0, 0,
     "NBD server address HOST:PORT for block volumes (port 0: any free port)"},
    {"nbd", "workers", CFG_UINT, F(nbd_workers), "16", 1, 256,
     "NBD I/O worker threads (requests in flight across all connections)"},
    {"registry", "listen", CFG_LISTEN, F(reg_listen), "127.0.0.1:9292", 0, 0,
     "Glance v2 image API address HOST:PORT (port 0: any free port)"},
    {"registry", "admin_token", CFG_OPTSTR, F(reg_admin_token), "", 0, 0,
     "X-Auth-Token that acts as the root user (empty: none; CAIRN_ADMIN_TOKEN wins)"},
    {"registry", "max_image_size", CFG_SIZE, F(reg_max_image_size), "1T", 1, 64 * TIB,
     "largest image upload in bytes; more is refused (413)"},
    {"registry", "web_download_allow", CFG_OPTSTR, F(reg_web_allow), "", 0, 0,
     "hosts (host or host:port, comma-separated) web-download may fetch; empty: off"},
    {"registry", "public_url", CFG_OPTSTR, F(reg_public_url), "", 0, 0,
     "base URL of the Glance API in version links; empty: from the Host header"},
    {"registry", "max_connections", CFG_UINT, F(reg_max_connections), "512", 1, 65536,
     "Glance API connections served at once; more are refused"},
    {"registry", "timeout", CFG_UINT, F(reg_timeout), "300", 1, 86400,
     "seconds an idle or stalled Glance API connection is kept"},
    {"pool", "devices", CFG_UINT, F(devices), "6", 1, 256,
     "(creation) device folders under DATA/devices"},
    {"pool", "k", CFG_UINT, F(k), "4", 1, 32, "(creation) erasure code data units per stripe"},
    {"pool", "m", CFG_UINT, F(m), "2", 1, 16, "(creation) erasure code parity units per stripe"},
    {"pool", "replicas", CFG_UINT, F(replicas), "3", 1, 16,
     "(creation) copies under the replica policy (volumes, metadata)"},
    {"pool", "chunking", CFG_STR, F(chunking), "fastcdc", 0, 0,
     "(creation) fastcdc (content-defined, dedups shifted data) or fixed"},
    {"pool", "chunk_size", CFG_SIZE, F(chunk_size), "64K", 4 * KIB, 64 * MIB,
     "(creation) fixed chunking: the chunk size, a multiple of 4K"},
    {"pool", "chunk_avg", CFG_SIZE, F(chunk_avg), "16K", 1 * KIB, 16 * MIB,
     "(creation) fastcdc: average chunk size, a power of 2"},
    {"pool", "chunk_min", CFG_SIZE, F(chunk_min), "4K", 256, 16 * MIB,
     "(creation) fastcdc: smallest chunk (< chunk_avg)"},
    {"pool", "chunk_max", CFG_SIZE, F(chunk_max), "64K", 2 * KIB, 64 * MIB,
     "(creation) fastcdc: largest chunk (> chunk_avg, < unit_size)"},
    {"pool", "dedup_domain", CFG_STR, F(dedup_domain), "global", 0, 0,
     "(creation) global (one index) or tenant (each user's uploads dedup apart)"},
    {"pool", "compression", CFG_STR, F(compression), "zstd", 0, 0,
     "new chunks: zstd (kept only when it saves 1/16) or none"},
    {"pool", "zstd_level", CFG_UINT, F(zstd_level), "3", 1, 19,
     "zstd level for new chunks (1 is ~1.5x faster, stores ~3% more)"},
    {"pool", "gc_interval", CFG_UINT, F(gc_interval), "60", 0, 86400,
     "seconds between background garbage collection passes; 0 = only `cairn gc`"},
    {"pool", "scrub_interval", CFG_UINT, F(scrub_interval), "604800", 0, 365 * 86400ull,
     "seconds between background scrubs (re-read, verify, repair); 0 = only `cairn scrub`"},
    {"pool", "unit_size", CFG_SIZE, F(unit_size), "1M", 64 * KIB, 1 * GIB,
     "(creation) stripe unit size, a multiple of 4K, > chunk_size"},
    {"pool", "inline_max", CFG_SIZE, F(inline_max), "4096", 1, 1 * MIB,
     "(creation) objects up to this size live inline in metadata (<= chunk_size)"},
    {"pool", "part_power", CFG_UINT, F(part_power), "10", 1, 24,
     "(creation) ring partition power: 2^N partitions"},
    {"pool", "map_size", CFG_SIZE, F(map_size), "64G", 16 * MIB, 64 * TIB,
     "LMDB map size (sparse; the metadata limit)"},
    {"pool", "workers", CFG_UINT, F(workers), "0", 0, 256,
     "chunk worker threads; 0 = one per core"},
};
#define NKEYS (sizeof(keys) / sizeof(keys[0]))

void node_seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || !errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static const struct cfg_key *find_key(const char *section, const char *name)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static bool known_section(const char *section)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (strcmp(keys[i].section, section) == 0)
			return true;
	return false;
}

static int parse_uint(const char *s, uint64_t *out)
{
	char *end;
	if (!*s || *s == '-' || *s == '+')
		return CAIRN_EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end)
		return CAIRN_EINVAL;
	*out = v;
	return 0;
}

/* "65536", "64K", "64KiB", "1M", "64G": powers of 1024. */
static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	if (!*s || *s == '-' || *s == '+')
		return CAIRN_EINVAL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s)
		return CAIRN_EINVAL;
	uint64_t mul = 1;
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		mul = KIB;
		end++;
		break;
	case 'm':
	case 'M':
		mul = MIB;
		end++;
		break;
	case 'g':
	case 'G':
		mul = GIB;
		end++;
		break;
	case 't':
	case 'T':
		mul = TIB;
		end++;
		break;
	default:
		return CAIRN_EINVAL;
	}
	if (mul > 1 && (strcasecmp(end, "iB") == 0 || strcasecmp(end, "B") == 0))
		end += strlen(end);
	if (*end)
		return CAIRN_EINVAL;
	if (v > UINT64_MAX / mul)
		return CAIRN_EINVAL;
	*out = v * mul;
	return 0;
}

static int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return CAIRN_EINVAL;
}

int node_split_listen(const char *listen, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon, *h = listen;
	size_t hl;
	if (!listen || !*listen)
		return CAIRN_EINVAL;
	if (listen[0] == '[') {
		const char *rb = strchr(listen, ']');
		if (!rb || rb[1] != ':')
			return CAIRN_EINVAL;
		h = listen + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(listen, ':');
		if (!colon || memchr(listen, ':', (size_t)(colon - listen)))
			return CAIRN_EINVAL; /* bare IPv6 needs brackets */
		hl = (size_t)(colon - listen);
	}
	if (hl == 0 || hl >= hostlen)
		return CAIRN_EINVAL;
	uint64_t p;
	if (parse_uint(colon + 1, &p) || p > 65535)
		return CAIRN_EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)p;
	return 0;
}

static int set_key(struct node_config *c, const struct cfg_key *k, const char *value, char *err,
		   size_t errlen)
{
	char *base = (char *)c;
	uint64_t v;
	bool b;
	enum log_level lvl;
	char host[256];
	uint16_t port;

	switch (k->type) {
	case CFG_STR:
	case CFG_OPTSTR:
	case CFG_LEVEL:
	case CFG_LISTEN:
		if (k->type != CFG_OPTSTR && !*value) {
			node_seterr(err, errlen, "[%s] %s must not be empty", k->section, k->name);
			return CAIRN_EINVAL;
		}
		if (k->type == CFG_LEVEL && log_parse_level(value, &lvl) != 0) {
			node_seterr(err, errlen,
				    "[%s] %s = '%s': expected error, warn, info or debug",
				    k->section, k->name, value);
			return CAIRN_EINVAL;
		}
		if (k->type == CFG_LISTEN &&
		    node_split_listen(value, host, sizeof(host), &port) != 0) {
			node_seterr(err, errlen,
				    "[%s] %s = '%s': expected HOST:PORT (IPv6 as [ADDR]:PORT)",
				    k->section, k->name, value);
			return CAIRN_EINVAL;
		}
		{
			char *dup = strdup(value);
			if (!dup) {
				node_seterr(err, errlen, "out of memory");
				return -ENOMEM;
			}
			char **slot = (char **)(base + k->off);
			free(*slot);
			*slot = dup;
		}
		return 0;
	case CFG_BOOL:
		if (parse_bool(value, &b) != 0) {
			node_seterr(err, errlen, "[%s] %s = '%s': expected true or false",
				    k->section, k->name, value);
			return CAIRN_EINVAL;
		}
		*(bool *)(base + k->off) = b;
		return 0;
	case CFG_UINT:
	case CFG_SIZE:
		if ((k->type == CFG_UINT ? parse_uint(value, &v) : parse_size(value, &v)) != 0) {
			node_seterr(
			    err, errlen, "[%s] %s = '%s': expected %s", k->section, k->name, value,
			    k->type == CFG_UINT ? "a whole number"
						: "a size in bytes (suffix K, M, G or T allowed)");
			return CAIRN_EINVAL;
		}
		if (v < k->min || v > k->max) {
			node_seterr(err, errlen, "[%s] %s = %s: out of range %llu..%llu",
				    k->section, k->name, value, (unsigned long long)k->min,
				    (unsigned long long)k->max);
			return CAIRN_EINVAL;
		}
		*(uint64_t *)(base + k->off) = v;
		return 0;
	}
	return CAIRN_EINVAL;
}

int node_config_set(struct node_config *c, const char *section, const char *key, const char *value,
		    char *err, size_t errlen)
{
	const struct cfg_key *k = find_key(section, key);
	if (!k) {
		if (!*section)
			node_seterr(err, errlen, "key '%s' outside any [section]", key);
		else if (!known_section(section))
			node_seterr(err, errlen,
				    "unknown section [%s] (known: [node], [s3], [api], [nbd], "
				    "[registry], [pool])",
				    section);
		else
			node_seterr(err, errlen, "unknown key '%s' in section [%s]", key, section);
		return CAIRN_EINVAL;
	}
	return set_key(c, k, value, err, errlen);
}

void node_config_free(struct node_config *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < NKEYS; i++) {
		enum cfg_type t = keys[i].type;
		if (t == CFG_STR || t == CFG_OPTSTR || t == CFG_LEVEL || t == CFG_LISTEN) {
			char **slot = (char **)((char *)c + keys[i].off);
			free(*slot);
			*slot = NULL;
		}
	}
}

int node_config_defaults(struct node_config *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < NKEYS; i++) {
		int r = set_key(c, &keys[i], keys[i].def, NULL, 0);
		if (r != 0) {
			/* Only ENOMEM can get here: the defaults are checked by tests. */
			node_config_free(c);
			return r;
		}
	}
	return 0;
}

struct load_ctx {
	struct node_config *c;
	int ret;
	char *err;
	size_t errlen;
};

static int cfg_ini_handler(void *user, const char *section, const char *name, const char *value)
{
	struct load_ctx *lc = user;
	char msg[512];
	if (lc->ret != 0)
		return 1; /* report only the first error; inih gives us its line */
	int r = node_config_set(lc->c, section, name, value ? value : "", msg, sizeof(msg));
	if (r != 0) {
		lc->ret = r;
		node_seterr(lc->err, lc->errlen, "%s", msg);
		return 0;
	}
	return 1;
}

int node_config_load(struct node_config *c, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		int e = errno;
		node_seterr(err, errlen, "%s: %s", path, strerror(e));
		return -e;
	}
	char msg[512] = "";
	struct load_ctx lc = {.c = c, .err = msg, .errlen = sizeof(msg)};
	int line = ini_parse_file(f, cfg_ini_handler, &lc);
	fclose(f);
	if (line == 0)
		return 0;
	if (line < 0) {
		node_seterr(err, errlen, "%s: cannot parse (%s)", path,
			    line == -2 ? "out of memory" : "read error");
		return line == -2 ? -ENOMEM : -EIO;
	}
	if (lc.ret == 0) /* inih's own syntax error (no '=', unclosed '[') */
		node_seterr(err, errlen, "%s:%d: syntax error (expected [section] or key = value)",
			    path, line);
	else
		node_seterr(err, errlen, "%s:%d: %s", path, line, msg);
	return CAIRN_EINVAL;
}

int node_config_validate(const struct node_config *c, char *err, size_t errlen)
{
	if (c->k + c->m > c->devices) {
		node_seterr(
		    err, errlen,
		    "[pool] k + m = %llu needs at least that many devices, but devices = %llu",
		    (unsigned long long)(c->k + c->m), (unsigned long long)c->devices);
		return CAIRN_EINVAL;
	}
	if (c->replicas > c->devices) {
		node_seterr(err, errlen, "[pool] replicas = %llu exceeds devices = %llu",
			    (unsigned long long)c->replicas, (unsigned long long)c->devices);
		return CAIRN_EINVAL;
	}
	bool cdc = strcmp(c->chunking, "fastcdc") == 0;
	if (!cdc && strcmp(c->chunking, "fixed") != 0) {
		node_seterr(err, errlen, "[pool] chunking must be fastcdc or fixed, not '%s'",
			    c->chunking);
		return CAIRN_EINVAL;
	}
	if (strcmp(c->dedup_domain, "global") != 0 && strcmp(c->dedup_domain, "tenant") != 0) {
		node_seterr(err, errlen, "[pool] dedup_domain must be global or tenant, not '%s'",
			    c->dedup_domain);
		return CAIRN_EINVAL;
	}
	if (strcmp(c->compression, "zstd") != 0 && strcmp(c->compression, "none") != 0) {
		node_seterr(err, errlen, "[pool] compression must be zstd or none, not '%s'",
			    c->compression);
		return CAIRN_EINVAL;
	}
	if (cdc && ((c->chunk_avg & (c->chunk_avg - 1)) || c->chunk_min >= c->chunk_avg ||
		    c->chunk_max <= c->chunk_avg || c->chunk_max >= c->unit_size)) {
		node_seterr(err, errlen,
			    "[pool] fastcdc needs chunk_min < chunk_avg (a power of 2) < chunk_max "
			    "< unit_size (have %llu, %llu, %llu, %llu)",
			    (unsigned long long)c->chunk_min, (unsigned long long)c->chunk_avg,
			    (unsigned long long)c->chunk_max, (unsigned long long)c->unit_size);
		return CAIRN_EINVAL;
	}
	if (c->chunk_size % 4096 || c->unit_size % 4096) {
		node_seterr(err, errlen, "[pool] chunk_size and unit_size must be multiples of 4K");
		return CAIRN_EINVAL;
	}
	/* A chunk is stored with a small header inside one unit. */
	if (c->chunk_size >= c->unit_size) {
		node_seterr(err, errlen,
			    "[pool] chunk_size (%llu) must be smaller than unit_size (%llu)",
			    (unsigned long long)c->chunk_size, (unsigned long long)c->unit_size);
		return CAIRN_EINVAL;
	}
	/* An inline object is one that ends before its first chunk is cut. */
	if (c->inline_max > (cdc ? c->chunk_min : c->chunk_size)) {
		node_seterr(err, errlen, "[pool] inline_max (%llu) exceeds %s (%llu)",
			    (unsigned long long)c->inline_max, cdc ? "chunk_min" : "chunk_size",
			    (unsigned long long)(cdc ? c->chunk_min : c->chunk_size));
		return CAIRN_EINVAL;
	}
	if (c->k + c->m > 32) {
		node_seterr(err, errlen, "[pool] k + m = %llu exceeds 32",
			    (unsigned long long)(c->k + c->m));
		return CAIRN_EINVAL;
	}
	if (!c->s3_tls_cert[0] != !c->s3_tls_key[0]) {
		node_seterr(err, errlen,
			    "[s3] tls_cert and tls_key go together: %s is set, %s is not",
			    c->s3_tls_cert[0] ? "tls_cert" : "tls_key",
			    c->s3_tls_cert[0] ? "tls_key" : "tls_cert");
		return CAIRN_EINVAL;
	}
	char host[256];
	uint16_t port = 0;
	if (strcmp(c->s3_listen, c->api_listen) == 0 &&
	    node_split_listen(c->s3_listen, host, sizeof(host), &port) == 0 && port != 0) {
		node_seterr(err, errlen, "[s3] listen and [api] listen are both %s", c->s3_listen);
		return CAIRN_EINVAL;
	}
	const char *other = strcmp(c->nbd_listen, c->s3_listen) == 0	? "[s3]"
			    : strcmp(c->nbd_listen, c->api_listen) == 0 ? "[api]"
									: NULL;
	if (other && node_split_listen(c->nbd_listen, host, sizeof(host), &port) == 0 &&
	    port != 0) {
		node_seterr(err, errlen, "[nbd] listen and %s listen are both %s", other,
			    c->nbd_listen);
		return CAIRN_EINVAL;
	}
	other = strcmp(c->reg_listen, c->s3_listen) == 0    ? "[s3]"
		: strcmp(c->reg_listen, c->api_listen) == 0 ? "[api]"
		: strcmp(c->reg_listen, c->nbd_listen) == 0 ? "[nbd]"
							    : NULL;
	if (other && node_split_listen(c->reg_listen, host, sizeof(host), &port) == 0 &&
	    port != 0) {
		node_seterr(err, errlen, "[registry] listen and %s listen are both %s", other,
			    c->reg_listen);
		return CAIRN_EINVAL;
	}
	return 0;
}

enum {
	OPT_CONFIG = 256,
	OPT_DATA,
	OPT_S3_LISTEN,
	OPT_API_LISTEN,
	OPT_NBD_LISTEN,
	OPT_REG_LISTEN,
	OPT_DEVICES,
	OPT_LOG_LEVEL,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_POWERLOSS,
	OPT_HELP,
};

static const struct option serve_opts[] = {
    {"config", required_argument, NULL, OPT_CONFIG},
    {"data", required_argument, NULL, OPT_DATA},
    {"s3-listen", required_argument, NULL, OPT_S3_LISTEN},
    {"api-listen", required_argument, NULL, OPT_API_LISTEN},
    {"nbd-listen", required_argument, NULL, OPT_NBD_LISTEN},
    {"registry-listen", required_argument, NULL, OPT_REG_LISTEN},
    {"devices", required_argument, NULL, OPT_DEVICES},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"powerloss-sim", no_argument, NULL, OPT_POWERLOSS},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Which config key each flag overrides. */
static const struct {
	int opt;
	const char *section, *key, *flag;
} flag_keys[] = {
    {OPT_DATA, "node", "data_dir", "--data"},
    {OPT_S3_LISTEN, "s3", "listen", "--s3-listen"},
    {OPT_API_LISTEN, "api", "listen", "--api-listen"},
    {OPT_NBD_LISTEN, "nbd", "listen", "--nbd-listen"},
    {OPT_REG_LISTEN, "registry", "listen", "--registry-listen"},
    {OPT_DEVICES, "pool", "devices", "--devices"},
    {OPT_LOG_LEVEL, "node", "log_level", "--log-level"},
    {OPT_TLS_CERT, "s3", "tls_cert", "--tls-cert"},
    {OPT_TLS_KEY, "s3", "tls_key", "--tls-key"},
};
#define NFLAGS (sizeof(flag_keys) / sizeof(flag_keys[0]))

int node_serve_args(int argc, char **argv, struct node_config *c, struct node_serve_opts *opts,
		    char *err, size_t errlen)
{
	const char *flag_val[NFLAGS] = {0};
	int ret;

	memset(opts, 0, sizeof(*opts));
	/* Defaults first, so c is always safe to node_config_free(). */
	ret = node_config_defaults(c);
	if (ret)
		return ret;
	optind = 0; /* glibc: full re-initialisation, so tests can parse twice */
	opterr = 0;
	for (;;) {
		int o = getopt_long(argc, argv, "+h", serve_opts, NULL);
		if (o == -1)
			break;
		switch (o) {
		case OPT_CONFIG:
			opts->config_path = optarg;
			break;
		case OPT_POWERLOSS:
			opts->powerloss_sim = true;
			break;
		case OPT_HELP:
		case 'h':
			opts->help = true;
			return 0;
		case '?':
			if (optopt >= OPT_CONFIG)
				node_seterr(err, errlen, "option '%s' needs a value",
					    argv[optind - 1]);
			else
				node_seterr(err, errlen,
					    "unknown option '%s' (see cairn serve --help)",
					    argv[optind - 1]);
			return CAIRN_EINVAL;
		default:
			for (size_t i = 0; i < NFLAGS; i++)
				if (flag_keys[i].opt == o)
					flag_val[i] = optarg;
			break;
		}
	}
	if (optind < argc) {
		node_seterr(err, errlen, "unexpected argument '%s' (see cairn serve --help)",
			    argv[optind]);
		return CAIRN_EINVAL;
	}

	if (opts->config_path) {
		ret = node_config_load(c, opts->config_path, err, errlen);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < NFLAGS; i++) {
		if (!flag_val[i])
			continue;
		char msg[400];
		ret = node_config_set(c, flag_keys[i].section, flag_keys[i].key, flag_val[i], msg,
				      sizeof(msg));
		if (ret) {
			node_seterr(err, errlen, "%s: %s", flag_keys[i].flag, msg);
			return ret;
		}
	}
	return node_config_validate(c, err, errlen);
}

void node_serve_help(FILE *f)
{
	fprintf(
	    f,
	    "usage: cairn serve [OPTIONS]\n"
	    "\n"
	    "Runs a cairn node: the S3 API, block volumes over NBD, the Glance v2 image\n"
	    "API and the admin API (/metrics, /health, users, keys, volumes). Settings\n"
	    "come from the built-in defaults (one node, six device folders under\n"
	    "./data), then --config FILE, then the flags below.\n"
	    "\n"
	    "options:\n"
	    "  --config FILE          read settings from an INI file (examples in conf/)\n"
	    "  --data DIR             data directory          ([node] data_dir, default ./data)\n"
	    "  --s3-listen HOST:PORT  S3 API address          ([s3] listen, default "
	    "127.0.0.1:9000)\n"
	    "  --api-listen HOST:PORT admin API address       ([api] listen, default "
	    "127.0.0.1:9100)\n"
	    "  --nbd-listen HOST:PORT NBD server address      ([nbd] listen, default "
	    "0.0.0.0:10809)\n"
	    "  --registry-listen HOST:PORT\n"
	    "                         Glance v2 image API     ([registry] listen, default "
	    "127.0.0.1:9292)\n"
	    "  --devices N            device folders at pool creation ([pool] devices, default 6)\n"
	    "  --log-level LEVEL      error|warn|info|debug   ([node] log_level, default info)\n"
	    "  --tls-cert FILE        PEM certificate (chain) ([s3] tls_cert; with --tls-key the\n"
	    "                                                  S3 port speaks HTTPS only)\n"
	    "  --tls-key FILE         PEM private key         ([s3] tls_key)\n"
	    "  --powerloss-sim        test mode: log undo records so a kill -9 can be replayed\n"
	    "                         as a power cut (DATA/powerloss.log; see\n"
	    "                         `cairn powerloss-replay`)\n"
	    "  -h, --help             this text\n"
	    "\n"
	    "environment:\n"
	    "  CAIRN_ROOT_USER, CAIRN_ROOT_PASSWORD\n"
	    "                         root access key and secret (password: 8+ characters).\n"
	    "                         Unset: generated once at first start, printed then, and\n"
	    "                         kept in DATA/root-credentials (mode 0600).\n"
	    "  CAIRN_ADMIN_TOKEN      the Glance API's admin token (acts as root); overrides\n"
	    "                         [registry] admin_token.\n"
	    "\n"
	    "config keys (INI; unknown keys are errors; (creation) keys apply only when\n"
	    "the pool is first created, later starts keep the pool's own values):\n");
	const char *sect = "";
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(sect, keys[i].section) != 0) {
			sect = keys[i].section;
			fprintf(f, "  [%s]\n", sect);
		}
		char kv[64];
		snprintf(kv, sizeof(kv), "%s = %s", keys[i].name, keys[i].def);
		fprintf(f, "    %-28s %s\n", kv, keys[i].help);
	}
}
