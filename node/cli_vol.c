/* node/cli_vol.c - `cairn volume ...` and `cairn snapshot ...`: clients of
 * the admin API's /admin/v1/volumes routes (node/admin_vol.c).
 *
 * Parsing, credentials and the signed request are cli.c's (node_cli_*,
 * node_api_*); this file maps each verb to one or two requests and prints
 * tables for people or, with --json, the API's JSON for tools. Sizes take
 * K/M/G/T suffixes (powers of 1024); anything else is a usage error (exit
 * 2). Exit 1: the API refused (its message on stderr) or was unreachable.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "node/node.h"

#define VOL_OPTS                                                                                   \
	(NODE_OPT_REPLICAS | NODE_OPT_IOPS | NODE_OPT_BPS | NODE_OPT_FROM_SNAPSHOT |               \
	 NODE_OPT_FROM_IMAGE | NODE_OPT_FORCE | NODE_OPT_HOST | NODE_OPT_LEASE | NODE_OPT_FROM |   \
	 NODE_OPT_TO | NODE_OPT_FLATTEN)

static const char snap_synopsis[] = "usage: cairn snapshot create VOL SNAP\n"
				    "       cairn snapshot list VOL\n"
				    "       cairn snapshot delete VOL SNAP [--flatten]\n"
				    "       cairn snapshot diff VOL [--from SNAP1] [--to SNAP2]\n";
static const char vol_synopsis[] =
    "usage: cairn volume create NAME SIZE [--replicas N] [--iops N] [--bps N]\n"
    "       cairn volume create NAME [SIZE] --from-image ID [--replicas N] [--iops N] [--bps N]\n"
    "       cairn volume clone NAME --from-snapshot VOL@SNAP [--iops N] [--bps N]\n"
    "       cairn volume list | show NAME\n"
    "       cairn volume resize NAME SIZE [--force]\n"
    "       cairn volume qos NAME [--iops N] [--bps N]\n"
    "       cairn volume delete NAME [--force]\n"
    "       cairn volume rollback NAME SNAP\n"
    "       cairn volume attach NAME [--host HOST] [--lease SECONDS]\n"
    "       cairn volume detach NAME [--force]\n";

/* The whole text for --help (stdout); the synopsis after a usage error. */
void node_vol_usage(FILE *f, const char *what)
{
	bool snap = strcmp(what, "snapshot") == 0;
	fputs(snap ? snap_synopsis : vol_synopsis, f);
	if (f != stdout) {
		fprintf(f, "Run 'cairn %s --help' for the options.\n",
			snap ? "snapshot" : "volume");
		return;
	}
	if (snap)
		fprintf(
		    f, "\nSnapshots freeze a volume's contents in constant time. delete refuses a\n"
		       "snapshot clones depend on unless --flatten (each clone gets its own copy\n"
		       "of the data first). diff prints the byte ranges that differ between two\n"
		       "snapshots (no --from: an empty volume; no --to: the volume now), one\n"
		       "\"OFFSET LENGTH data|zero\" line each, for incremental backups.\n");
	else
		fprintf(
		    f,
		    "\nBlock volumes served over NBD. SIZE: bytes, or with K, M, G or T (powers\n"
		    "of 1024): 10G, 512M, 1T. Volumes are thin: unwritten space costs nothing.\n"
		    "clone makes a new volume from a snapshot in constant time. resize grows\n"
		    "online; shrinking needs --force and a detached volume. qos sets limits\n"
		    "(0: none; --bps takes suffixes); without options it shows them. delete\n"
		    "--force also deletes the volume's snapshots. attach gives HOST (default:\n"
		    "this machine's name) the volume and prints the NBD export and URL, e.g.\n"
		    "  qemu-img info nbd://127.0.0.1:10809/NAME@TOKEN\n"
		    "detach --force cuts open NBD connections. create --from-image makes a\n"
		    "volume of an active image in constant time (a copy-on-write view of the\n"
		    "image's raw bytes; SIZE defaults to the image's virtual size and may be\n"
		    "larger); clone --from-image ID does the same.\n");
	fprintf(f,
		"\noptions:\n"
		"  --endpoint URL       admin API of the node (default %s,\n"
		"                       or $CAIRN_ENDPOINT)\n"
		"  --credentials FILE   root credentials file; default DATA/root-credentials\n"
		"  --data DIR           the node's data directory (default ./data)\n"
		"  --json               print the API's JSON\n"
		"  -h, --help           this text\n"
		"\nCAIRN_ROOT_USER and CAIRN_ROOT_PASSWORD in the environment take precedence.\n"
		"Exit 0 done, 1 refused by the node (the reason on stderr), 2 usage.\n",
		NODE_DEFAULT_ENDPOINT);
}

/* ---- argument parsing ---- */

/* Decimal digits and an optional K/M/G/T suffix (binary). false on
 * anything else, or on overflow. */
static bool parse_size(const char *s, bool suffixes, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	const char *p = s;
	if (!*p)
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return false;
	if (*p && suffixes) {
		switch (*p) {
		case 'K':
		case 'k':
			mul = 1ull << 10;
			break;
		case 'M':
		case 'm':
			mul = 1ull << 20;
			break;
		case 'G':
		case 'g':
			mul = 1ull << 30;
			break;
		case 'T':
		case 't':
			mul = 1ull << 40;
			break;
		default:
			return false;
		}
		p++;
	}
	if (*p)
		return false;
	if (v > (uint64_t)INT64_MAX / mul) /* JSON integers are signed 64-bit */
		return false;
	*out = v * mul;
	return true;
}

static bool num_arg(const char *cmd, const char *what, const char *s, bool suffixes, uint64_t min,
		    uint64_t *out)
{
	if (parse_size(s, suffixes, out) && *out >= min)
		return true;
	fprintf(stderr, "cairn %s: %s '%s' is not %s%s\n", cmd, what, s,
		min ? "a positive number" : "a number",
		suffixes ? " (bytes, or with K, M, G or T: 10G, 512M; below 8 EiB)" : "");
	return false;
}

static char *esc(const char *s)
{
	char *e = curl_easy_escape(NULL, s, 0);
	if (!e) {
		fprintf(stderr, "cairn: out of memory\n");
		exit(1);
	}
	return e;
}

/* ---- output ---- */

static uint64_t ju(json_t *o, const char *key)
{
	json_int_t v = json_integer_value(json_object_get(o, key));
	return v > 0 ? (uint64_t)v : 0;
}

static const char *js(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));
	return v ? v : "";
}

static void fmt_b(uint64_t b, char *out, size_t len)
{
	node_fmt_bytes((double)b, out, len);
}

static void fmt_qos(json_t *v, char *out, size_t len)
{
	uint64_t iops = ju(v, "iops_limit"), bps = ju(v, "bps_limit");
	char b[32];
	if (!iops && !bps) {
		snprintf(out, len, "no limit");
		return;
	}
	fmt_b(bps, b, sizeof(b));
	if (iops && bps)
		snprintf(out, len, "%llu IOPS, %s/s", (unsigned long long)iops, b);
	else if (iops)
		snprintf(out, len, "%llu IOPS", (unsigned long long)iops);
	else
		snprintf(out, len, "%s/s", b);
}

static void print_volume(json_t *v)
{
	char sz[32], wr[32], q[64];
	json_t *par = json_object_get(v, "parent"), *att = json_object_get(v, "attachment");
	fmt_b(ju(v, "size"), sz, sizeof(sz));
	fmt_b(ju(v, "written_bytes"), wr, sizeof(wr));
	fmt_qos(v, q, sizeof(q));
	printf("name:        %s\n", js(v, "name"));
	printf("id:          %s\n", js(v, "id"));
	printf("size:        %s (%llu bytes)\n", sz, (unsigned long long)ju(v, "size"));
	printf("written:     %s\n", wr);
	printf("state:       %s\n", js(v, "state"));
	printf("replicas:    %llu\n", (unsigned long long)ju(v, "replicas"));
	printf("extent size: %llu\n", (unsigned long long)ju(v, "extent_size"));
	printf("created:     %s\n", js(v, "created"));
	printf("qos:         %s\n", q);
	printf("snapshots:   %llu\n", (unsigned long long)ju(v, "snapshots"));
	if (par)
		printf("parent:      %s@%s\n", js(par, "volume"), js(par, "snapshot"));
	if (json_object_get(v, "base"))
		printf("base:        image manifest %s\n",
		       js(json_object_get(v, "base"), "manifest"));
	if (att)
		printf("attached:    to %s since %s, lease until %s, %llu connection%s\n",
		       js(att, "host"), js(att, "attached"), js(att, "expires"),
		       (unsigned long long)ju(att, "connections"),
		       ju(att, "connections") == 1 ? "" : "s");
}

static void print_volumes(json_t *body)
{
	json_t *arr = json_object_get(body, "volumes"), *v;
	size_t i;
	printf("%-24s %10s %10s %-9s %4s %5s %-16s %s\n", "NAME", "SIZE", "WRITTEN", "STATE",
	       "REPL", "SNAPS", "HOST", "PARENT");
	json_array_foreach(arr, i, v)
	{
		char sz[32], wr[32], par[300] = "-";
		json_t *p = json_object_get(v, "parent"), *a = json_object_get(v, "attachment");
		fmt_b(ju(v, "size"), sz, sizeof(sz));
		fmt_b(ju(v, "written_bytes"), wr, sizeof(wr));
		if (p)
			snprintf(par, sizeof(par), "%s@%s", js(p, "volume"), js(p, "snapshot"));
		printf("%-24s %10s %10s %-9s %4llu %5llu %-16s %s\n", js(v, "name"), sz, wr,
		       js(v, "state"), (unsigned long long)ju(v, "replicas"),
		       (unsigned long long)ju(v, "snapshots"), a ? js(a, "host") : "-", par);
	}
}

static void print_snapshots(json_t *body)
{
	json_t *arr = json_object_get(body, "snapshots"), *s;
	size_t i;
	printf("%-24s %-20s %10s %6s\n", "NAME", "CREATED", "SIZE", "CLONES");
	json_array_foreach(arr, i, s)
	{
		char sz[32];
		fmt_b(ju(s, "size"), sz, sizeof(sz));
		printf("%-24s %-20s %10s %6llu\n", js(s, "name"), js(s, "created"), sz,
		       (unsigned long long)ju(s, "clones"));
	}
}

static void print_diff(json_t *body)
{
	json_t *arr = json_object_get(body, "ranges"), *r;
	size_t i;
	json_array_foreach(arr, i, r)
	    printf("%llu %llu %s\n", (unsigned long long)ju(r, "offset"),
		   (unsigned long long)ju(r, "length"),
		   json_is_true(json_object_get(r, "zero")) ? "zero" : "data");
}

/* ---- commands ---- */

/* Loads the credentials and sends method path body (body: a jansson object,
 * consumed; NULL: none). Returns 0 with *resp for a 2xx answer, else the
 * exit code (1) after printing why. */
static int call(struct node_cli *c, const char *method, const char *path, json_t *body,
		json_t **resp)
{
	long status = 0;
	char *text = NULL;
	*resp = NULL;
	if (node_cli_creds(c) < 0) {
		json_decref(body);
		return 1;
	}
	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		json_decref(body);
		if (!text) {
			fprintf(stderr, "cairn: out of memory\n");
			return 1;
		}
	}
	int r = node_api_call(c, method, path, text, &status, resp);
	free(text);
	if (r < 0)
		return 1;
	if (status < 200 || status > 299) {
		node_api_error(status, *resp);
		json_decref(*resp);
		*resp = NULL;
		return 1;
	}
	return 0;
}

struct verb {
	const char *name;
	int min_args, max_args; /* positional words after the verb */
	unsigned opts;		/* NODE_OPT_* it takes */
};

static const struct verb vol_verbs[] = {
    {"create", 1, 2, NODE_OPT_REPLICAS | NODE_OPT_IOPS | NODE_OPT_BPS | NODE_OPT_FROM_IMAGE},
    {"clone", 1, 1, NODE_OPT_FROM_SNAPSHOT | NODE_OPT_FROM_IMAGE | NODE_OPT_IOPS | NODE_OPT_BPS},
    {"list", 0, 0, 0},
    {"show", 1, 1, 0},
    {"resize", 2, 2, NODE_OPT_FORCE},
    {"qos", 1, 1, NODE_OPT_IOPS | NODE_OPT_BPS},
    {"delete", 1, 1, NODE_OPT_FORCE},
    {"rollback", 2, 2, 0},
    {"attach", 1, 1, NODE_OPT_HOST | NODE_OPT_LEASE},
    {"detach", 1, 1, NODE_OPT_FORCE},
    {NULL, 0, 0, 0},
};

static const struct verb snap_verbs[] = {
    {"create", 2, 2, 0},
    {"list", 1, 1, 0},
    {"delete", 2, 2, NODE_OPT_FLATTEN},
    {"diff", 1, 1, NODE_OPT_FROM | NODE_OPT_TO},
    {NULL, 0, 0, 0},
};

/* Parses argv for `cairn volume|snapshot VERB ...`: returns the verb (args
 * after it in args[1..], *nargs of them) or NULL with *exit_code set. */
static const struct verb *parse_verb(int argc, char **argv, const struct verb *verbs,
				     struct node_cli *c, char **args, int *nargs, int *exit_code)
{
	int n = node_cli_parse(argc, argv, c, args, 4, VOL_OPTS);
	*exit_code = 2;
	if (n == -2) {
		*exit_code = 0;
		return NULL;
	}
	if (n < 0)
		return NULL; /* printed */
	if (n == 0) {
		fprintf(stderr, "cairn %s: which verb?\n", argv[0]);
		goto usage;
	}
	for (const struct verb *v = verbs; v->name; v++) {
		if (strcmp(v->name, args[0]) != 0)
			continue;
		if (n - 1 < v->min_args || n - 1 > v->max_args) {
			fprintf(stderr, "cairn %s %s: expected %d argument%s, got %d\n", argv[0],
				v->name, v->min_args, v->min_args == 1 ? "" : "s", n - 1);
			goto usage;
		}
		if (c->given & ~v->opts) {
			static const char *const names[] = {
			    "--fix",	       "--attach",     "--replicas", "--iops", "--bps",
			    "--from-snapshot", "--from-image", "--force",    "--host", "--lease",
			    "--from",	       "--to",	       "--flatten"};
			unsigned bad = c->given & ~v->opts, i = 0;
			while (i + 1 < sizeof(names) / sizeof(names[0]) && !(bad & (1u << i)))
				i++;
			fprintf(stderr, "cairn %s %s: %s does not apply to %s\n", argv[0], v->name,
				names[i], v->name);
			goto usage;
		}
		*nargs = n - 1;
		return v;
	}
	fprintf(stderr, "cairn %s: unknown verb '%s'\n", argv[0], args[0]);
usage:
	node_vol_usage(stderr, argv[0]);
	return NULL;
}

/* The options that become QoS body fields; false (usage) on a bad number. */
static bool qos_fields(const char *cmd, struct node_cli *c, json_t *o)
{
	uint64_t v;
	if (c->iops) {
		if (!num_arg(cmd, "--iops", c->iops, false, 0, &v))
			return false;
		json_object_set_new(o, "iops_limit", json_integer((json_int_t)v));
	}
	if (c->bps) {
		if (!num_arg(cmd, "--bps", c->bps, true, 0, &v))
			return false;
		json_object_set_new(o, "bps_limit", json_integer((json_int_t)v));
	}
	return true;
}

static int volume_run(struct node_cli *c, const struct verb *v, char **a)
{
	char path[2048];
	json_t *resp = NULL, *body = NULL;
	const char *verb = v->name;
	const char *method = "GET";
	int rc = 1;
	uint64_t n;
	char *e = a[1] ? esc(a[1]) : NULL;

	/* Build the request; usage errors return 2 before anything is sent. */
	if (strcmp(verb, "list") == 0) {
		snprintf(path, sizeof(path), "/admin/v1/volumes");
	} else if (strcmp(verb, "show") == 0) {
		snprintf(path, sizeof(path), "/admin/v1/volumes/%s", e);
	} else if (strcmp(verb, "create") == 0 || (strcmp(verb, "clone") == 0 && c->from_image)) {
		if (c->from_image && c->from_snapshot) {
			fprintf(stderr,
				"cairn volume %s: --from-image and --from-snapshot exclude "
				"each other\n",
				verb);
			node_vol_usage(stderr, "volume");
			rc = 2;
			goto out;
		}
		if (!a[2] && !c->from_image) {
			fprintf(stderr, "cairn volume create: SIZE is needed (it is optional only "
					"with --from-image ID)\n");
			node_vol_usage(stderr, "volume");
			rc = 2;
			goto out;
		}
		if (a[2] && !num_arg("volume create", "SIZE", a[2], true, 1, &n)) {
			rc = 2;
			goto out;
		}
		body = json_pack("{s:s}", "name", a[1]);
		if (a[2])
			json_object_set_new(body, "size", json_integer((json_int_t)n));
		if (c->from_image)
			json_object_set_new(body, "image", json_string(c->from_image));
		if (c->replicas) {
			uint64_t r;
			if (!num_arg("volume create", "--replicas", c->replicas, false, 1, &r) ||
			    r > 255) {
				rc = 2;
				goto out;
			}
			json_object_set_new(body, "replicas", json_integer((json_int_t)r));
		}
		if (!qos_fields("volume create", c, body)) {
			rc = 2;
			goto out;
		}
		method = "POST";
		snprintf(path, sizeof(path), "/admin/v1/volumes");
	} else if (strcmp(verb, "clone") == 0) {
		const char *at = c->from_snapshot ? strrchr(c->from_snapshot, '@') : NULL;
		if (!at || at == c->from_snapshot || !at[1]) {
			fprintf(stderr, "cairn volume clone: --from-snapshot VOL@SNAP is needed\n");
			node_vol_usage(stderr, "volume");
			rc = 2;
			goto out;
		}
		body = json_pack("{s:s, s:{s:s%, s:s}}", "name", a[1], "from_snapshot", "volume",
				 c->from_snapshot, (size_t)(at - c->from_snapshot), "snapshot",
				 at + 1);
		if (!qos_fields("volume clone", c, body)) {
			rc = 2;
			goto out;
		}
		method = "POST";
		snprintf(path, sizeof(path), "/admin/v1/volumes");
	} else if (strcmp(verb, "resize") == 0) {
		if (!num_arg("volume resize", "SIZE", a[2], true, 1, &n)) {
			rc = 2;
			goto out;
		}
		body = json_pack("{s:I}", "size", (json_int_t)n);
		if (c->force)
			json_object_set_new(body, "force", json_true());
		method = "PATCH";
		snprintf(path, sizeof(path), "/admin/v1/volumes/%s", e);
	} else if (strcmp(verb, "qos") == 0) {
		snprintf(path, sizeof(path), "/admin/v1/volumes/%s", e);
		if (c->iops || c->bps) {
			body = json_object();
			if (!qos_fields("volume qos", c, body)) {
				rc = 2;
				goto out;
			}
			method = "PATCH";
		}
	} else if (strcmp(verb, "delete") == 0) {
		method = "DELETE";
		snprintf(path, sizeof(path), "/admin/v1/volumes/%s%s", e,
			 c->force ? "?force=true" : "");
	} else if (strcmp(verb, "rollback") == 0) {
		body = json_pack("{s:s}", "snapshot", a[2]);
		method = "POST";
		snprintf(path, sizeof(path), "/admin/v1/volumes/%s/rollback", e);
	} else if (strcmp(verb, "attach") == 0) {
		char host[256];
		const char *h = c->host;
		if (!h) {
			if (gethostname(host, sizeof(host)) != 0)
				snprintf(host, sizeof(host), "localhost");
			host[sizeof(host) - 1] = '\0';
			h = host;
		}
		body = json_pack("{s:s}", "host", h);
		if (c->lease) {
			uint64_t l;
			if (!num_arg("volume attach", "--lease", c->lease, false, 1, &l)) {
				rc = 2;
				goto out;
			}
			json_object_set_new(body, "lease_seconds", json_integer((json_int_t)l));
		}
		method = "POST";
		snprintf(path, sizeof(path), "/admin/v1/volumes/%s/attach", e);
	} else { /* detach */
		body = json_object();
		if (c->force)
			json_object_set_new(body, "force", json_true());
		method = "POST";
		snprintf(path, sizeof(path), "/admin/v1/volumes/%s/detach", e);
	}

	rc = call(c, method, path, body, &resp);
	body = NULL;
	if (rc)
		goto out;
	if (c->json) {
		if (resp)
			node_print_json(resp);
		goto out;
	}
	char sz[32], q[64];
	if (strcmp(verb, "list") == 0) {
		print_volumes(resp);
	} else if (strcmp(verb, "show") == 0) {
		print_volume(resp);
	} else if (c->from_image) {
		fmt_b(ju(resp, "size"), sz, sizeof(sz));
		printf("created volume %s from image %s: %s, %llu replica%s\n", js(resp, "name"),
		       c->from_image, sz, (unsigned long long)ju(resp, "replicas"),
		       ju(resp, "replicas") == 1 ? "" : "s");
	} else if (strcmp(verb, "create") == 0) {
		fmt_b(ju(resp, "size"), sz, sizeof(sz));
		printf("created volume %s: %s, %llu replica%s\n", js(resp, "name"), sz,
		       (unsigned long long)ju(resp, "replicas"),
		       ju(resp, "replicas") == 1 ? "" : "s");
	} else if (strcmp(verb, "clone") == 0) {
		fmt_b(ju(resp, "size"), sz, sizeof(sz));
		printf("created volume %s: a clone of %s, %s\n", js(resp, "name"), c->from_snapshot,
		       sz);
	} else if (strcmp(verb, "resize") == 0) {
		fmt_b(ju(resp, "size"), sz, sizeof(sz));
		printf("volume %s: size now %s (%llu bytes)\n", js(resp, "name"), sz,
		       (unsigned long long)ju(resp, "size"));
	} else if (strcmp(verb, "qos") == 0) {
		fmt_qos(resp, q, sizeof(q));
		printf("volume %s: %s\n", js(resp, "name"), q);
	} else if (strcmp(verb, "delete") == 0) {
		printf("deleted volume %s\n", a[1]);
	} else if (strcmp(verb, "rollback") == 0) {
		fmt_b(ju(resp, "size"), sz, sizeof(sz));
		printf("volume %s: rolled back to snapshot %s (%s)\n", js(resp, "name"), a[2], sz);
	} else if (strcmp(verb, "attach") == 0) {
		printf("export:  %s\n"
		       "url:     %s\n"
		       "host:    %s\n"
		       "expires: %s (renewed while connected)\n",
		       js(resp, "export"), js(resp, "url"), js(resp, "host"), js(resp, "expires"));
	} else {
		printf("detached volume %s\n", js(resp, "name"));
	}
out:
	json_decref(body);
	json_decref(resp);
	curl_free(e);
	return rc;
}

static int snapshot_run(struct node_cli *c, const struct verb *v, char **a)
{
	char path[2048];
	json_t *resp = NULL, *body = NULL;
	const char *verb = v->name, *method = "GET";
	int rc = 1;
	char *e = esc(a[1]), *s = a[2] ? esc(a[2]) : NULL;

	if (strcmp(verb, "create") == 0) {
		body = json_pack("{s:s}", "name", a[2]);
		method = "POST";
		snprintf(path, sizeof(path), "/admin/v1/volumes/%s/snapshots", e);
	} else if (strcmp(verb, "list") == 0) {
		snprintf(path, sizeof(path), "/admin/v1/volumes/%s/snapshots", e);
	} else if (strcmp(verb, "delete") == 0) {
		method = "DELETE";
		snprintf(path, sizeof(path), "/admin/v1/volumes/%s/snapshots/%s%s", e, s,
			 c->flatten ? "?flatten=true" : "");
	} else { /* diff */
		char *f = c->from ? esc(c->from) : NULL, *t = c->to ? esc(c->to) : NULL;
		snprintf(path, sizeof(path), "/admin/v1/volumes/%s/diff%s%s%s%s%s", e,
			 f || t ? "?" : "", f ? "from=" : "", f ? f : "", f && t ? "&" : "",
			 t ? "to=" : "");
		if (t) {
			size_t l = strlen(path);
			snprintf(path + l, sizeof(path) - l, "%s", t);
		}
		curl_free(f);
		curl_free(t);
	}
	rc = call(c, method, path, body, &resp);
	body = NULL;
	if (rc)
		goto out;
	if (c->json) {
		if (resp)
			node_print_json(resp);
		goto out;
	}
	if (strcmp(verb, "create") == 0)
		printf("created snapshot %s@%s\n", a[1], js(resp, "name"));
	else if (strcmp(verb, "list") == 0)
		print_snapshots(resp);
	else if (strcmp(verb, "delete") == 0)
		printf("deleted snapshot %s@%s%s\n", a[1], a[2],
		       c->flatten ? " (its clones have their own copies now)" : "");
	else
		print_diff(resp);
out:
	json_decref(body);
	json_decref(resp);
	curl_free(e);
	curl_free(s);
	return rc;
}

/* Parses argv against verbs and runs the chosen one with libcurl set up. */
static int cli_main(int argc, char **argv, const struct verb *verbs,
		    int (*run)(struct node_cli *c, const struct verb *v, char **args))
{
	struct node_cli c;
	char *args[4] = {0};
	int n = 0, code;
	const struct verb *v = parse_verb(argc, argv, verbs, &c, args, &n, &code);
	if (!v)
		return code;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	code = run(&c, v, args);
	curl_global_cleanup();
	memset(&c.creds, 0, sizeof(c.creds));
	return code;
}

int node_volume_main(int argc, char **argv)
{
	return cli_main(argc, argv, vol_verbs, volume_run);
}

int node_snapshot_main(int argc, char **argv)
{
	return cli_main(argc, argv, snap_verbs, snapshot_run);
}

/* For cli_img.c and cli_tok.c: the same runner. */
int node_api_request(struct node_cli *c, const char *method, const char *path, json_t *body,
		     json_t **resp)
{
	return call(c, method, path, body, resp);
}
