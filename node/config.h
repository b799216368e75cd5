/* node/config.h - the daemon's configuration: defaults, INI file, flags.
 *
 * One table lists every config key with its type, default and help, so the
 * defaults, the file parser (inih), `cairn serve --help` and the validation
 * can never disagree. Precedence: built-in defaults (the embedded single
 * node), then --config FILE, then command-line flags. Unknown sections or
 * keys are errors naming the file, line and key: a typo must not silently
 * fall back to a default.
 *
 * Threads: main thread only, at start-up. Strings in struct node_config are
 * owned by it and freed by node_config_free().
 */
#ifndef CAIRN_NODE_CONFIG_H
#define CAIRN_NODE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/err.h"

#define CAIRN_VERSION "0.1.0"

struct node_config {
	/* [node] */
	char *data_dir;
	char *log_level;
	bool access_log;
	/* [s3] */
	char *s3_listen;
	char *s3_region;
	char *s3_domain; /* "" = path-style only */
	uint64_t s3_max_connections;
	uint64_t s3_timeout;
	uint64_t s3_multipart_expiry;
	char *s3_tls_cert; /* PEM file; "" = plain HTTP (both or neither) */
	char *s3_tls_key;
	/* [api] */
	char *api_listen;
	/* [nbd] (the string here, the number at the end: see [pool]) */
	char *nbd_listen;
	/* [registry] (the Glance v2 API; its numbers at the end) */
	char *reg_listen;
	char *reg_admin_token; /* "" = none; CAIRN_ADMIN_TOKEN overrides it */
	char *reg_web_allow;   /* "" = web-download off */
	char *reg_public_url;  /* "" = from the Host header */
	/* [pool] (strings first: tests compare the numbers as one block) */
	char *chunking;	    /* "fastcdc" or "fixed" */
	char *compression;  /* "zstd" or "none" */
	char *dedup_domain; /* "global" or "tenant" */
	uint64_t devices;
	uint64_t k, m;
	uint64_t replicas;
	uint64_t chunk_size;
	uint64_t chunk_avg, chunk_min, chunk_max;
	uint64_t zstd_level;
	uint64_t gc_interval;
	uint64_t scrub_interval;
	uint64_t unit_size;
	uint64_t inline_max;
	uint64_t part_power;
	uint64_t map_size;
	uint64_t workers;
	/* [nbd] */
	uint64_t nbd_workers;
	/* [registry] numbers (its strings are before [pool]) */
	uint64_t reg_max_image_size;
	uint64_t reg_max_connections;
	uint64_t reg_timeout;
};

/* What `cairn serve` was asked, besides the config itself. */
struct node_serve_opts {
	const char *config_path; /* NULL: built-in defaults only */
	bool powerloss_sim;
	bool help;
};

/* Fills every field with its default. Returns 0 or -ENOMEM. */
int node_config_defaults(struct node_config *c) CAIRN_WUR;
void node_config_free(struct node_config *c);

/* Sets one key ("section", "key") from its text form. On failure returns
 * CAIRN_EINVAL (unknown key or bad value) and writes a message to err. */
int node_config_set(struct node_config *c, const char *section, const char *key, const char *value,
		    char *err, size_t errlen) CAIRN_WUR;

/* Reads an INI file over c. Errors name "FILE:LINE". Returns 0, -errno when
 * the file cannot be read, or CAIRN_EINVAL (message in err). */
int node_config_load(struct node_config *c, const char *path, char *err, size_t errlen) CAIRN_WUR;

/* Cross-field checks (k+m <= devices, listen addresses, TLS files both or
 * neither...). The TLS files themselves are read by s3_tls_check(). */
int node_config_validate(const struct node_config *c, char *err, size_t errlen) CAIRN_WUR;

/* Parses `cairn serve` arguments (argv[0] is "serve"): defaults, then the
 * --config file, then flags. Returns 0, or CAIRN_EINVAL with a message
 * (exit 2), or -errno for an unreadable config file. With --help, sets
 * opts->help and returns 0 without loading the file. c is initialised in
 * every case: the caller frees it with node_config_free(). */
int node_serve_args(int argc, char **argv, struct node_config *c, struct node_serve_opts *opts,
		    char *err, size_t errlen) CAIRN_WUR;

/* Prints `cairn serve --help`: every flag and every config key with its
 * default. */
void node_serve_help(FILE *f);

/* Splits "HOST:PORT" (IPv6 as "[::1]:PORT"). host gets the host without
 * brackets. Returns 0 or CAIRN_EINVAL. */
int node_split_listen(const char *listen, char *host, size_t hostlen, uint16_t *port) CAIRN_WUR;

#endif
