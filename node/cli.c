/* node/cli.c - `cairn user|key ...`, `cairn fsck|gc|scrub|repair`,
 * `cairn df` (admin API clients) and `cairn powerloss-replay`.
 *
 * The CLI talks to a running node's admin API with libcurl and signs every
 * request with SigV4 (CURLOPT_AWS_SIGV4) using the root credentials, from
 * CAIRN_ROOT_USER/CAIRN_ROOT_PASSWORD, --credentials FILE, or
 * DATA/root-credentials, in that order. Exit codes: 0 done, 1 failed,
 * 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "core/hash.h"
#include "core/io.h"
#include "node/config.h"
#include "node/node.h"

#define DEFAULT_ENDPOINT NODE_DEFAULT_ENDPOINT

struct buf {
	char *p;
	size_t len;
};

static size_t write_cb(char *data, size_t size, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t add = size * n;
	char *np = realloc(b->p, b->len + add + 1);
	if (!np)
		return 0;
	memcpy(np + b->len, data, add);
	b->p = np;
	b->len += add;
	b->p[b->len] = '\0';
	return add;
}

int node_cli_creds(struct node_cli *c)
{
	char err[600], path[4096];
	int ret = node_creds_from_env(&c->creds, err, sizeof(err));
	if (ret == 0)
		return 0;
	if (ret < 0) {
		fprintf(stderr, "cairn: %s\n", err);
		return ret;
	}
	if (c->credentials) {
		ret = node_creds_read(c->credentials, &c->creds, err, sizeof(err));
		if (ret < 0)
			fprintf(stderr, "cairn: %s\n", err);
		return ret;
	}
	snprintf(path, sizeof(path), "%s/%s", c->data_dir, NODE_CREDS_FILE);
	ret = node_creds_read(path, &c->creds, err, sizeof(err));
	if (ret == -ENOENT || ret == -EACCES) {
		fprintf(stderr,
			"cairn: no root credentials: set CAIRN_ROOT_USER and CAIRN_ROOT_PASSWORD, "
			"pass --credentials FILE, or --data DIR of the node (%s: %s)\n",
			path, strerror(-ret));
		return ret;
	}
	if (ret < 0)
		fprintf(stderr, "cairn: %s\n", err);
	return ret;
}

/* Performs one signed request. On success *status is the HTTP status and
 * *out the parsed JSON body (NULL when there was none). Returns 0, or -1
 * after printing why the request could not be made. */
int node_api_call(struct node_cli *c, const char *method, const char *path, const char *body,
		  long *status, json_t **out)
{
	int ret = -1;
	char url[2048];
	struct buf resp = {0};
	struct curl_slist *hdrs = NULL;
	CURL *h = curl_easy_init();

	*out = NULL;
	if (!h) {
		fprintf(stderr, "cairn: cannot initialise libcurl\n");
		return -1;
	}
	size_t el = strlen(c->endpoint);
	while (el > 0 && c->endpoint[el - 1] == '/')
		el--;
	snprintf(url, sizeof(url), "%.*s%s", (int)el, c->endpoint, path);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_AWS_SIGV4, "aws:amz:us-east-1:s3");
	curl_easy_setopt(h, CURLOPT_USERNAME, c->creds.user);
	curl_easy_setopt(h, CURLOPT_PASSWORD, c->creds.password);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_sec > 0 ? c->timeout_sec : 60L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	/* S3-style signing: the body's SHA-256 goes in x-amz-content-sha256,
	 * which the server checks against the body (curl signs the same hash). */
	{
		uint8_t md[32];
		char hex[65], line[100];
		unsigned mdlen = 0;
		if (!EVP_Digest(body ? body : "", body ? strlen(body) : 0, md, &mdlen, EVP_sha256(),
				NULL)) {
			fprintf(stderr, "cairn: cannot hash the request body\n");
			goto out;
		}
		hash_hex(md, 32, hex);
		snprintf(line, sizeof(line), "x-amz-content-sha256: %s", hex);
		hdrs = curl_slist_append(hdrs, line);
	}
	if (body) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
	}
	if (strcmp(method, "GET") != 0 && !(strcmp(method, "POST") == 0 && body))
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);

	CURLcode cc = curl_easy_perform(h);
	if (cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST) {
		fprintf(stderr, "cairn: cannot reach cairn at %.*s: is `cairn serve` running?\n",
			(int)el, c->endpoint);
		goto out;
	}
	if (cc != CURLE_OK) {
		fprintf(stderr, "cairn: request to %s failed: %s\n", url, curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	if (resp.len) {
		json_error_t jerr;
		*out = json_loadb(resp.p, resp.len, 0, &jerr);
		if (!*out) {
			fprintf(stderr,
				"cairn: %s answered %ld with a body that is not JSON: is "
				"%.*s the admin API (not S3)?\n",
				url, *status, (int)el, c->endpoint);
			goto out;
		}
	}
	ret = 0;
out:
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(h);
	free(resp.p);
	return ret;
}

/* Prints the server's error and returns the exit code 1. */
int node_api_error(long status, json_t *body)
{
	json_t *e = json_object_get(body, "error");
	const char *code = json_string_value(json_object_get(e, "code"));
	const char *msg = json_string_value(json_object_get(e, "message"));
	fprintf(stderr, "cairn: %s (HTTP %ld): %s\n", code ? code : "error", status,
		msg ? msg : "no details");
	return 1;
}

void node_print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	if (s) {
		puts(s);
		free(s);
	}
}

static void fmt_time(json_int_t t, char *out, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!gmtime_r(&tt, &tm) || !strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, len, "%lld", (long long)t);
}

static void print_users(json_t *body)
{
	json_t *users = json_object_get(body, "users"), *u;
	size_t i;
	printf("%-32s %-5s %s\n", "NAME", "ROOT", "CREATED");
	json_array_foreach(users, i, u)
	{
		char t[32];
		fmt_time(json_integer_value(json_object_get(u, "created")), t, sizeof(t));
		printf("%-32s %-5s %s\n", json_string_value(json_object_get(u, "name")),
		       json_is_true(json_object_get(u, "root")) ? "yes" : "no", t);
	}
}

static void print_keys(json_t *body)
{
	json_t *keys = json_object_get(body, "keys"), *k;
	size_t i;
	printf("%-24s %-24s %s\n", "ACCESS KEY ID", "USER", "CREATED");
	json_array_foreach(keys, i, k)
	{
		char t[32];
		fmt_time(json_integer_value(json_object_get(k, "created")), t, sizeof(t));
		printf("%-24s %-24s %s\n", json_string_value(json_object_get(k, "id")),
		       json_string_value(json_object_get(k, "user")), t);
	}
}

static char *escape(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	if (!e) {
		fprintf(stderr, "cairn: out of memory\n");
		exit(1);
	}
	return e;
}

static void cli_usage(FILE *f, const char *what)
{
	if (strcmp(what, "volume") == 0 || strcmp(what, "snapshot") == 0) {
		node_vol_usage(f, what); /* cli_vol.c: its own option list */
		return;
	}
	if (strcmp(what, "image") == 0) {
		node_img_usage(f); /* cli_img.c */
		return;
	}
	if (strcmp(what, "token") == 0) {
		node_tok_usage(f); /* cli_tok.c */
		return;
	}
	if (strcmp(what, "user") == 0)
		fprintf(f, "usage: cairn user create NAME | list | delete NAME [OPTIONS]\n\n"
			   "Manages S3 users on a running node, through its admin API.\n");
	else if (strcmp(what, "key") == 0)
		fprintf(f, "usage: cairn key create USER | list [USER] | delete ID [OPTIONS]\n\n"
			   "Manages S3 access keys on a running node, through its admin API.\n");
	else if (strcmp(what, "fsck") == 0)
		fprintf(f, "usage: cairn fsck [--fix] [OPTIONS]\n\n"
			   "Recomputes chunk reference counts, stripe live bytes and the pool\n"
			   "counters from the manifests and reports every difference; --fix\n"
			   "writes the recomputed values. Then checks the block volumes: their\n"
			   "records, and that every written extent has all its replica files\n"
			   "(--fix copies missing ones from a good replica and removes orphan\n"
			   "folders). Runs on the node while it serves.\n"
			   "Exit 0: clean (or everything fixed); 1: problems remain or the job\n"
			   "failed; 2: usage.\n");
	else if (strcmp(what, "gc") == 0)
		fprintf(f, "usage: cairn gc [OPTIONS]\n\n"
			   "Frees manifests and chunks nothing references any more, and stripes\n"
			   "left without live data, once no reader or upload can still see them.\n"
			   "Prints the bytes freed. Exit 0 done; 1 failed; 2 usage.\n");
	else if (strcmp(what, "scrub") == 0)
		fprintf(f, "usage: cairn scrub [OPTIONS]\n\n"
			   "Re-reads every stripe unit, verifies every chunk checksum (and the\n"
			   "parity of sealed stripes) and rewrites damaged or missing units from\n"
			   "the survivors. Exit 0: clean or all repaired; 1: damage remains or\n"
			   "the job failed; 2: usage.\n");
	else if (strcmp(what, "repair") == 0)
		fprintf(f, "usage: cairn repair [OPTIONS]\n\n"
			   "Rebuilds every unit missing from its device (a lost or replaced\n"
			   "device folder) from the stripe's survivors, restoring full\n"
			   "redundancy. Exit 0: all rebuilt; 1: something could not be rebuilt\n"
			   "or the job failed; 2: usage.\n");
	else
		fprintf(f, "usage: cairn df [--json] [OPTIONS]\n\n"
			   "Shows the pool's space: logical, unique (after dedup), stored (after\n"
			   "compression) and physical bytes, the ratios between them, and each\n"
			   "device's used and free bytes.\n");
	if (!strcmp(what, "fsck") || !strcmp(what, "gc") || !strcmp(what, "scrub") ||
	    !strcmp(what, "repair"))
		fprintf(f, "\nThe job runs on the node: the command starts it, shows its progress\n"
			   "on stderr every 0.5 s (phase, percent, rate, ETA) and prints the\n"
			   "report. Interrupting the command does not stop the job; run\n"
			   "`cairn JOB --attach` to follow it again. One job runs at a time.\n");
	fprintf(
	    f,
	    "\n"
	    "options:\n"
	    "  --endpoint URL       admin API of the node (default %s)\n"
	    "  --credentials FILE   root credentials file (CAIRN_ROOT_USER=/CAIRN_ROOT_PASSWORD=\n"
	    "                       lines); default DATA/root-credentials\n"
	    "  --data DIR           the node's data directory, to find root-credentials\n"
	    "                       (default ./data)\n"
	    "  --json               machine-readable output\n"
	    "  --fix                (fsck) write the recomputed values\n"
	    "  --attach             (jobs) follow the running or last job; start none\n"
	    "  -h, --help           this text\n"
	    "\n"
	    "CAIRN_ROOT_USER and CAIRN_ROOT_PASSWORD in the environment take precedence.\n",
	    DEFAULT_ENDPOINT);
}

/* Parses the options; positional words are left in args. Returns the
 * number of positional words, or -1 (usage error; printed) or -2 (--help;
 * printed). Options outside the common ones and `allowed` are usage
 * errors, so `cairn user list --force` is refused rather than ignored. */
int node_cli_parse(int argc, char **argv, struct node_cli *c, char **args, int maxargs,
		   unsigned allowed)
{
	/* val: a NODE_OPT_* bit (shifted past the ASCII range) or a letter */
	enum { O = 256 };
	static const struct {
		struct option lo;
		unsigned bit;
	} opts[] = {
	    {{"endpoint", required_argument, NULL, 'e'}, 0},
	    {{"credentials", required_argument, NULL, 'c'}, 0},
	    {{"data", required_argument, NULL, 'd'}, 0},
	    {{"json", no_argument, NULL, 'j'}, 0},
	    {{"help", no_argument, NULL, 'h'}, 0},
	    {{"fix", no_argument, NULL, O + 0}, NODE_OPT_FIX},
	    {{"attach", no_argument, NULL, O + 1}, NODE_OPT_ATTACH},
	    {{"replicas", required_argument, NULL, O + 2}, NODE_OPT_REPLICAS},
	    {{"iops", required_argument, NULL, O + 3}, NODE_OPT_IOPS},
	    {{"bps", required_argument, NULL, O + 4}, NODE_OPT_BPS},
	    {{"from-snapshot", required_argument, NULL, O + 5}, NODE_OPT_FROM_SNAPSHOT},
	    {{"from-image", required_argument, NULL, O + 6}, NODE_OPT_FROM_IMAGE},
	    {{"force", no_argument, NULL, O + 7}, NODE_OPT_FORCE},
	    {{"host", required_argument, NULL, O + 8}, NODE_OPT_HOST},
	    {{"lease", required_argument, NULL, O + 9}, NODE_OPT_LEASE},
	    {{"from", required_argument, NULL, O + 10}, NODE_OPT_FROM},
	    {{"to", required_argument, NULL, O + 11}, NODE_OPT_TO},
	    {{"flatten", no_argument, NULL, O + 12}, NODE_OPT_FLATTEN},
	    {{"name", required_argument, NULL, O + 13}, NODE_OPT_NAME},
	    {{"disk-format", required_argument, NULL, O + 14}, NODE_OPT_DISK_FORMAT},
	    {{"container-format", required_argument, NULL, O + 15}, NODE_OPT_CONTAINER_FORMAT},
	    {{"owner", required_argument, NULL, O + 16}, NODE_OPT_OWNER},
	    {{"from-volume", required_argument, NULL, O + 17}, NODE_OPT_FROM_VOLUME},
	    {{"visibility", required_argument, NULL, O + 18}, NODE_OPT_VISIBILITY},
	};
	enum { NOPTS = sizeof(opts) / sizeof(opts[0]) };
	struct option lo[NOPTS + 1];
	for (size_t i = 0; i < NOPTS; i++)
		lo[i] = opts[i].lo;
	memset(&lo[NOPTS], 0, sizeof(lo[NOPTS]));

	memset(c, 0, sizeof(*c));
	c->endpoint = getenv("CAIRN_ENDPOINT") ? getenv("CAIRN_ENDPOINT") : DEFAULT_ENDPOINT;
	c->data_dir = "./data";
	optind = 0;
	opterr = 0;
	for (;;) {
		int o = getopt_long(argc, argv, "h", lo, NULL);
		if (o == -1)
			break;
		if (o >= O) {
			unsigned bit = 1u << (o - O);
			if (!(allowed & bit)) {
				fprintf(stderr, "cairn %s: option '%s' does not apply here\n",
					argv[0], argv[optind - 1]);
				cli_usage(stderr, argv[0]);
				return -1;
			}
			c->given |= bit;
		}
		switch (o) {
		case 'e':
			c->endpoint = optarg;
			break;
		case 'c':
			c->credentials = optarg;
			break;
		case 'd':
			c->data_dir = optarg;
			break;
		case 'j':
			c->json = true;
			break;
		case O + 0:
			c->fix = true;
			break;
		case O + 1:
			c->attach = true;
			break;
		case O + 2:
			c->replicas = optarg;
			break;
		case O + 3:
			c->iops = optarg;
			break;
		case O + 4:
			c->bps = optarg;
			break;
		case O + 5:
			c->from_snapshot = optarg;
			break;
		case O + 6:
			c->from_image = optarg;
			break;
		case O + 7:
			c->force = true;
			break;
		case O + 8:
			c->host = optarg;
			break;
		case O + 9:
			c->lease = optarg;
			break;
		case O + 10:
			c->from = optarg;
			break;
		case O + 11:
			c->to = optarg;
			break;
		case O + 12:
			c->flatten = true;
			break;
		case O + 13:
			c->name = optarg;
			break;
		case O + 14:
			c->disk_format = optarg;
			break;
		case O + 15:
			c->container_format = optarg;
			break;
		case O + 16:
			c->owner = optarg;
			break;
		case O + 17:
			c->from_volume = optarg;
			break;
		case O + 18:
			c->visibility = optarg;
			break;
		case 'h':
			cli_usage(stdout, argv[0]);
			return -2;
		default:
			fprintf(stderr, "cairn %s: %s '%s'\n", argv[0],
				optopt ? "option needs a value:" : "unknown option",
				argv[optind - 1]);
			cli_usage(stderr, argv[0]);
			return -1;
		}
	}
	int n = 0;
	for (int i = optind; i < argc; i++) {
		if (n >= maxargs) {
			fprintf(stderr, "cairn %s: too many arguments\n", argv[0]);
			cli_usage(stderr, argv[0]);
			return -1;
		}
		args[n++] = argv[i];
	}
	return n;
}

int node_user_main(int argc, char **argv)
{
	struct node_cli c;
	char *args[3];
	char path[1024];
	long status = 0;
	json_t *body = NULL;
	int rc = 1;
	int n = node_cli_parse(argc, argv, &c, args, 3, NODE_OPT_FIX | NODE_OPT_ATTACH);
	if (n == -2)
		return 0;
	if (n == -1)
		return 2; /* node_cli_parse printed the usage */
	if (n < 1 || c.fix || c.attach)
		goto usage;
	const char *verb = args[0];
	bool create = strcmp(verb, "create") == 0, del = strcmp(verb, "delete") == 0,
	     list = strcmp(verb, "list") == 0;
	if (!(create || del || list) || (list && n != 1) || ((create || del) && n != 2))
		goto usage;
	if (node_cli_creds(&c) < 0)
		return 1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (list) {
		if (node_api_call(&c, "GET", "/admin/v1/users", NULL, &status, &body) < 0)
			goto out;
	} else if (create) {
		json_t *req = json_pack("{s:s}", "name", args[1]);
		char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
		json_decref(req);
		if (!text)
			goto out;
		int r = node_api_call(&c, "POST", "/admin/v1/users", text, &status, &body);
		free(text);
		if (r < 0)
			goto out;
	} else {
		char *e = escape(args[1]);
		snprintf(path, sizeof(path), "/admin/v1/users/%s", e);
		curl_free(e);
		if (node_api_call(&c, "DELETE", path, NULL, &status, &body) < 0)
			goto out;
	}
	if (status < 200 || status > 299) {
		rc = node_api_error(status, body);
		goto out;
	}
	if (c.json)
		node_print_json(body);
	else if (list)
		print_users(body);
	else if (create)
		printf("created user %s\n", args[1]);
	else
		printf("deleted user %s (and its keys)\n", args[1]);
	rc = 0;
out:
	json_decref(body);
	curl_global_cleanup();
	memset(&c.creds, 0, sizeof(c.creds));
	return rc;
usage:
	cli_usage(stderr, "user");
	return 2;
}

int node_key_main(int argc, char **argv)
{
	struct node_cli c;
	char *args[3];
	char path[1024];
	long status = 0;
	json_t *body = NULL;
	int rc = 1;
	int n = node_cli_parse(argc, argv, &c, args, 3, NODE_OPT_FIX | NODE_OPT_ATTACH);
	if (n == -2)
		return 0;
	if (n == -1)
		return 2; /* node_cli_parse printed the usage */
	if (n < 1 || c.fix || c.attach)
		goto usage;
	const char *verb = args[0];
	bool create = strcmp(verb, "create") == 0, del = strcmp(verb, "delete") == 0,
	     list = strcmp(verb, "list") == 0;
	if (!(create || del || list) || (list && n > 2) || ((create || del) && n != 2))
		goto usage;
	if (node_cli_creds(&c) < 0)
		return 1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	char *e = n == 2 ? escape(args[1]) : NULL;
	if (list && !e)
		snprintf(path, sizeof(path), "/admin/v1/keys");
	else if (list || create)
		snprintf(path, sizeof(path), "/admin/v1/users/%s/keys", e);
	else
		snprintf(path, sizeof(path), "/admin/v1/keys/%s", e);
	curl_free(e);
	if (node_api_call(&c,
			  list	   ? "GET"
			  : create ? "POST"
				   : "DELETE",
			  path, create ? "{}" : NULL, &status, &body) < 0)
		goto out;
	if (status < 200 || status > 299) {
		rc = node_api_error(status, body);
		goto out;
	}
	if (c.json) {
		node_print_json(body);
	} else if (list) {
		print_keys(body);
	} else if (create) {
		printf("access key id:     %s\n"
		       "secret access key: %s\n"
		       "user:              %s\n"
		       "(the secret is shown only this once)\n",
		       json_string_value(json_object_get(body, "id")),
		       json_string_value(json_object_get(body, "secret")),
		       json_string_value(json_object_get(body, "user")));
	} else {
		printf("deleted key %s\n", args[1]);
	}
	rc = 0;
out:
	json_decref(body);
	curl_global_cleanup();
	memset(&c.creds, 0, sizeof(c.creds));
	return rc;
usage:
	cli_usage(stderr, "key");
	return 2;
}

/* ---- maintenance jobs and df ---- */

void node_fmt_bytes(double b, char *out, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
	unsigned u = 0;
	while (b >= 1024.0 && u < 5) {
		b /= 1024.0;
		u++;
	}
	if (u == 0)
		snprintf(out, len, "%.0f B", b);
	else
		snprintf(out, len, "%.1f %s", b, units[u]);
}

static uint64_t jint(json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));
	return v > 0 ? (uint64_t)v : 0;
}

static const char *jstr(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));
	return v ? v : "";
}

static void fmt_eta(json_t *eta, char *out, size_t len)
{
	if (!json_is_integer(eta)) {
		snprintf(out, len, "ETA --:--");
		return;
	}
	long long s = json_integer_value(eta);
	if (s >= 3600)
		snprintf(out, len, "ETA %lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(out, len, "ETA %lld:%02lld", s / 60, s % 60);
}

/* One progress line: "scrub: verify units  42.0%  123.4 MiB/s  ETA 0:12". */
static void job_line(json_t *job, char *out, size_t len)
{
	char rate[48], eta[32], pct[48];
	double r = json_number_value(json_object_get(job, "rate"));
	json_t *p = json_object_get(job, "percent");
	if (strcmp(jstr(job, "rate_unit"), "bytes") == 0)
		snprintf(rate, sizeof(rate), "%.1f MiB/s", r / (1024.0 * 1024.0));
	else
		snprintf(rate, sizeof(rate), "%.0f items/s", r);
	fmt_eta(json_object_get(job, "eta_seconds"), eta, sizeof(eta));
	if (json_is_number(p)) {
		/* tenths of a percent as integers: bounded output */
		long t = lround(json_number_value(p) * 10.0);
		t = t < 0 ? 0 : t > 1000 ? 1000 : t;
		snprintf(pct, sizeof(pct), "%3ld.%ld%%", t / 10, t % 10);
	} else
		snprintf(pct, sizeof(pct), "%llu done", (unsigned long long)jint(job, "done"));
	if (snprintf(out, len, "%s: %s  %s  %s  %s", jstr(job, "op"),
		     jstr(job, "phase")[0] ? jstr(job, "phase") : "starting", pct, rate,
		     eta) >= (int)len)
		out[len - 1] = '\0'; /* a long phase name is cut */
}

static void print_report(json_t *job)
{
	json_t *rep = json_object_get(job, "report");
	char b[32];
	const char *op = jstr(job, "op");
	printf("cairn %s: job %llu %s in %.1fs\n", op, (unsigned long long)jint(job, "id"),
	       jstr(job, "state"), json_number_value(json_object_get(job, "elapsed_seconds")));
	if (json_is_string(json_object_get(job, "error")))
		printf("  error:          %s\n", jstr(job, "error"));
	if (!rep)
		return;
	printf("  checked:        %llu\n", (unsigned long long)jint(rep, "checked"));
	node_fmt_bytes((double)jint(rep, "bytes"), b, sizeof(b));
	printf("  data:           %s\n", b);
	printf("  problems:       %llu\n", (unsigned long long)jint(rep, "problems"));
	printf("  fixed:          %llu\n", (unsigned long long)jint(rep, "fixed"));
	printf("  unrecoverable:  %llu\n", (unsigned long long)jint(rep, "unrecoverable"));
	if (strcmp(op, "gc") == 0) {
		node_fmt_bytes((double)jint(rep, "freed_bytes"), b, sizeof(b));
		printf("  freed:          %s\n", b);
	}
	if (jstr(rep, "first_problem")[0])
		printf("  first problem:  %s\n", jstr(rep, "first_problem"));
	json_t *vr = json_object_get(rep, "volumes");
	if (vr) {
		/* fsck: the block store's check (bs_fsck) */
		printf("  volumes:        %llu (%llu extents, %llu replica files checked)\n",
		       (unsigned long long)jint(vr, "volumes"),
		       (unsigned long long)jint(vr, "extents"),
		       (unsigned long long)jint(vr, "files_checked"));
		printf("    missing replica files: %llu\n",
		       (unsigned long long)jint(vr, "missing_files"));
		printf("    bad records:           %llu\n",
		       (unsigned long long)jint(vr, "bad_records"));
		printf("    orphan folders:        %llu\n",
		       (unsigned long long)jint(vr, "orphan_dirs"));
		printf("    write intents open:    %llu\n",
		       (unsigned long long)jint(vr, "intents"));
		printf("    fixed:                 %llu\n", (unsigned long long)jint(vr, "fixed"));
	}
	bool clean = json_is_true(json_object_get(job, "clean"));
	printf("result: %s\n",
	       clean ? "clean"
	       : strcmp(jstr(job, "state"), "failed") == 0
		   ? "FAILED"
		   : (strcmp(op, "fsck") == 0 && !json_is_true(json_object_get(job, "fix"))
			  ? "PROBLEMS FOUND (run `cairn fsck --fix` to repair them)"
			  : "PROBLEMS REMAIN"));
}

#define JOB_POLL_US 500000
#define JOB_POLL_RETRIES 20 /* consecutive failed polls (10 s) before giving up */

int node_job_main(int argc, char **argv)
{
	struct node_cli c;
	char *args[1];
	long status = 0;
	json_t *body = NULL;
	int rc = 1;
	const char *op = argv[0];
	int n = node_cli_parse(argc, argv, &c, args, 0, NODE_OPT_FIX | NODE_OPT_ATTACH);
	if (n == -2)
		return 0;
	if (n == -1)
		return 2; /* cli_parse printed the usage */
	if (n != 0 || (c.fix && strcmp(op, "fsck") != 0) || (c.fix && c.attach))
		goto usage;
	if (node_cli_creds(&c) < 0)
		return 1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (c.attach) {
		if (node_api_call(&c, "GET", "/admin/v1/pool/jobs", NULL, &status, &body) < 0)
			goto out;
	} else {
		json_t *req = json_pack("{s:s, s:b}", "op", op, "fix", c.fix);
		char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
		json_decref(req);
		if (!text)
			goto out;
		int r = node_api_call(&c, "POST", "/admin/v1/pool/jobs", text, &status, &body);
		free(text);
		if (r < 0)
			goto out;
	}
	if (status < 200 || status > 299) {
		rc = node_api_error(status, body);
		goto out;
	}
	json_int_t id = json_integer_value(json_object_get(body, "id"));
	bool tty = isatty(STDERR_FILENO);
	char line[256], last_phase[96] = "";
	struct timespec last_print = {0, 0};
	int fails = 0;
	bool drew = false;
	for (;;) {
		json_t *job = body;
		if (json_integer_value(json_object_get(job, "id")) != id) {
			fprintf(stderr,
				"%scairn %s: job %lld was followed by job %lld before its "
				"end was seen; see the node's log for its report\n",
				drew && tty ? "\n" : "", op, (long long)id,
				(long long)json_integer_value(json_object_get(job, "id")));
			goto out;
		}
		if (strcmp(jstr(job, "state"), "running") != 0)
			break;
		job_line(job, line, sizeof(line));
		struct timespec now;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (tty) {
			fprintf(stderr, "\r\033[K%s", line);
			drew = true;
		} else if (strcmp(last_phase, jstr(job, "phase")) != 0 ||
			   now.tv_sec - last_print.tv_sec >= 5) {
			/* Plain lines in a log: on each new phase and every 5 s. */
			fprintf(stderr, "%s\n", line);
			snprintf(last_phase, sizeof(last_phase), "%s", jstr(job, "phase"));
			last_print = now;
		}
		fflush(stderr);
		usleep(JOB_POLL_US);
		json_decref(body);
		body = NULL;
		if (node_api_call(&c, "GET", "/admin/v1/pool/jobs", NULL, &status, &body) < 0 ||
		    status != 200) {
			if (++fails >= JOB_POLL_RETRIES) {
				fprintf(stderr,
					"cairn %s: lost the node; the job may still run there\n",
					op);
				goto out;
			}
			json_decref(body);
			body = json_pack("{s:I, s:s}", "id", id, "state", "running");
			continue;
		}
		fails = 0;
	}
	if (drew)
		fprintf(stderr, "\r\033[K");
	if (c.json)
		node_print_json(body);
	else
		print_report(body);
	rc = json_is_true(json_object_get(body, "clean")) ? 0 : 1;
out:
	json_decref(body);
	curl_global_cleanup();
	memset(&c.creds, 0, sizeof(c.creds));
	return rc;
usage:
	cli_usage(stderr, op);
	return 2;
}

static void fmt_ratio(json_t *v, char *out, size_t len)
{
	if (json_is_number(v))
		snprintf(out, len, "%.2fx", json_number_value(v));
	else
		snprintf(out, len, "-");
}

static void print_df(json_t *body)
{
	json_t *p = json_object_get(body, "pool"), *devs = json_object_get(body, "devices"), *d;
	char lb[32], ub[32], sb[32], pb[32], dr[16], cr[16], sa[16], mu[32], mm[32], pol[48];
	size_t i;
	node_fmt_bytes((double)jint(p, "logical_bytes"), lb, sizeof(lb));
	node_fmt_bytes((double)jint(p, "unique_bytes"), ub, sizeof(ub));
	node_fmt_bytes((double)jint(p, "stored_bytes"), sb, sizeof(sb));
	node_fmt_bytes((double)jint(p, "physical_bytes"), pb, sizeof(pb));
	fmt_ratio(json_object_get(p, "dedup_ratio"), dr, sizeof(dr));
	fmt_ratio(json_object_get(p, "compression_ratio"), cr, sizeof(cr));
	fmt_ratio(json_object_get(p, "space_amplification"), sa, sizeof(sa));
	node_fmt_bytes((double)jint(p, "meta_used_bytes"), mu, sizeof(mu));
	node_fmt_bytes((double)jint(p, "meta_map_bytes"), mm, sizeof(mm));
	snprintf(pol, sizeof(pol), "ec %llu+%llu", (unsigned long long)jint(p, "k"),
		 (unsigned long long)jint(p, "m"));
	printf("%-10s %11s %11s %11s %11s %10s %10s %8s\n", "POOL", "LOGICAL", "UNIQUE", "STORED",
	       "PHYSICAL", "CHUNKS", "MANIFESTS", "STRIPES");
	printf("%-10s %11s %11s %11s %11s %10llu %10llu %8llu\n", pol, lb, ub, sb, pb,
	       (unsigned long long)jint(p, "chunks"), (unsigned long long)jint(p, "manifests"),
	       (unsigned long long)jint(p, "stripes"));
	printf("\ndedup %s (logical/unique)  compression %s (unique/stored)  "
	       "amplification %s (physical/stored)\nmetadata %s of a %s map\n\n",
	       dr, cr, sa, mu, mm);
	printf("%-10s %-8s %11s %11s %11s %5s  %s\n", "DEVICE", "STATE", "USED", "FREE", "SIZE",
	       "USE%", "PATH");
	json_array_foreach(devs, i, d)
	{
		char u[32], f[32], z[32], pct[8] = "-";
		uint64_t size = jint(d, "size_bytes"), fr = jint(d, "free_bytes");
		bool present = json_is_true(json_object_get(d, "present"));
		node_fmt_bytes((double)jint(d, "used_bytes"), u, sizeof(u));
		node_fmt_bytes((double)fr, f, sizeof(f));
		node_fmt_bytes((double)size, z, sizeof(z));
		if (size && fr <= size)
			snprintf(pct, sizeof(pct), "%.0f%%",
				 100.0 * (double)(size - fr) / (double)size);
		printf("%-10s %-8s %11s %11s %11s %5s  %s\n", jstr(d, "name"),
		       present ? "present" : "MISSING", present ? u : "-", present ? f : "-",
		       present ? z : "-", present ? pct : "-", jstr(d, "path"));
	}
}

int node_df_main(int argc, char **argv)
{
	struct node_cli c;
	char *args[1];
	long status = 0;
	json_t *body = NULL;
	int rc = 1;
	int n = node_cli_parse(argc, argv, &c, args, 0, NODE_OPT_FIX | NODE_OPT_ATTACH);
	if (n == -2)
		return 0;
	if (n == -1)
		return 2; /* cli_parse printed the usage */
	if (n != 0 || c.fix || c.attach)
		goto usage;
	if (node_cli_creds(&c) < 0)
		return 1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (node_api_call(&c, "GET", "/admin/v1/pool/stats", NULL, &status, &body) < 0)
		goto out;
	if (status != 200) {
		rc = node_api_error(status, body);
		goto out;
	}
	if (c.json)
		node_print_json(body);
	else
		print_df(body);
	rc = 0;
out:
	json_decref(body);
	curl_global_cleanup();
	memset(&c.creds, 0, sizeof(c.creds));
	return rc;
usage:
	cli_usage(stderr, "df");
	return 2;
}

int node_powerloss_replay_main(int argc, char **argv)
{
	char path[4096];
	if (argc != 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		FILE *f = argc == 2 ? stdout : stderr;
		fprintf(f, "usage: cairn powerloss-replay DATA\n\n"
			   "Applies DATA/powerloss.log, left by a node run with --powerloss-sim\n"
			   "and killed: reverts every write not covered by a sync, tears the last\n"
			   "one and removes files whose creation was not durable, as a power cut\n"
			   "would. `cairn serve` does this by itself at start.\n");
		return argc == 2 ? 0 : 2;
	}
	snprintf(path, sizeof(path), "%s/%s", argv[1], NODE_POWERLOSS_LOG);
	if (access(path, F_OK) != 0) {
		if (errno == ENOENT) {
			printf("no power-loss log at %s: nothing to replay\n", path);
			return 0;
		}
		fprintf(stderr, "cairn: %s: %s\n", path, strerror(errno));
		return 1;
	}
	char err[600];
	int lock_fd = node_data_lock(argv[1], err, sizeof(err));
	if (lock_fd < 0) {
		fprintf(stderr, "cairn: %s\n", err);
		return 1;
	}
	long n = io_powerloss_replay(path);
	close(lock_fd);
	if (n < 0) {
		fprintf(stderr, "cairn: cannot replay %s: %s\n", path, cairn_strerror((int)n));
		return 1;
	}
	printf("replayed %s: %ld unsynced write%s reverted\n", path, n, n == 1 ? "" : "s");
	return 0;
}
