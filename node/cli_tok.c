/* node/cli_tok.c - `cairn token create USER [--ttl T] | list [--user U] |
 * delete ID`, a client of the admin API's /admin/v1/tokens routes.
 *
 * Tokens are what the image registry's X-Auth-Token takes (and, for the
 * root user, the admin API's Authorization: Bearer). `create` prints the
 * token alone on its first line so scripts can take it with `head -1`; it
 * is shown only then. --ttl and --user are this command's own options,
 * taken out of argv before the common parser sees the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "node/node.h"

#define TTL_DEFAULT 86400u

void node_tok_usage(FILE *f)
{
	fprintf(f,
		"usage: cairn token create USER [--ttl TTL] [OPTIONS]\n"
		"       cairn token list [--user USER] [OPTIONS]\n"
		"       cairn token delete ID [OPTIONS]\n\n"
		"Manages bearer tokens on a running node, through its admin API. A token\n"
		"is what the image registry (Glance API) takes as X-Auth-Token, acting as\n"
		"its user; a token of the root user also works on the admin API\n"
		"(Authorization: Bearer). create prints the token on the first line: it\n"
		"is shown only this once.\n\n"
		"options:\n"
		"  --ttl TTL            lifetime: seconds, or a number with s, m, h or d\n"
		"                       (default 1d); 0: never expires\n"
		"  --user USER          (list) only this user's tokens\n"
		"  --endpoint URL       admin API of the node (default %s)\n"
		"  --credentials FILE   root credentials file; default DATA/root-credentials\n"
		"  --data DIR           the node's data directory (default ./data)\n"
		"  --json               machine-readable output\n"
		"  -h, --help           this text\n",
		NODE_DEFAULT_ENDPOINT);
}

bool node_ttl_parse(const char *s, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	const char *p = s;

	if (!s || *s < '0' || *s > '9')
		return false;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (*p) {
		switch (*p) {
		case 's':
			mul = 1;
			break;
		case 'm':
			mul = 60;
			break;
		case 'h':
			mul = 3600;
			break;
		case 'd':
			mul = 86400;
			break;
		default:
			return false;
		}
		if (p[1])
			return false;
	}
	if (v > UINT64_MAX / mul)
		return false;
	*out = v * mul;
	return true;
}

static void fmt_time(json_t *t, char *out, size_t len)
{
	struct tm tm;
	time_t tt;

	if (!json_is_integer(t)) {
		snprintf(out, len, "never");
		return;
	}
	tt = (time_t)json_integer_value(t);
	if (!gmtime_r(&tt, &tm) || !strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, len, "%lld", (long long)tt);
}

static void print_tokens(json_t *body)
{
	json_t *toks = json_object_get(body, "tokens"), *t;
	size_t i;

	printf("%-10s %-24s %-22s %s\n", "ID", "USER", "CREATED", "EXPIRES");
	json_array_foreach(toks, i, t)
	{
		char c[32], e[32];
		fmt_time(json_object_get(t, "created"), c, sizeof(c));
		fmt_time(json_object_get(t, "expires"), e, sizeof(e));
		printf("%-10s %-24s %-22s %s\n", json_string_value(json_object_get(t, "id")),
		       json_string_value(json_object_get(t, "user")), c, e);
	}
}

/* Takes --ttl and --user (and -h/--help) out of argv; the rest stays in
 * order for node_cli_parse. Returns the new argc, -1 on a usage error,
 * -2 for --help. */
static int take_own_opts(int argc, char **argv, const char **ttl, const char **user)
{
	int n = 1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		const char *name = NULL;
		if (strcmp(a, "--") == 0) {
			while (i < argc)
				argv[n++] = argv[i++];
			break;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
			return -2;
		if (strncmp(a, "--ttl", 5) == 0 && (a[5] == '\0' || a[5] == '=')) {
			dst = ttl;
			name = "--ttl";
		} else if (strncmp(a, "--user", 6) == 0 && (a[6] == '\0' || a[6] == '=')) {
			dst = user;
			name = "--user";
		}
		if (!dst) {
			argv[n++] = argv[i];
			continue;
		}
		const char *eq = strchr(a, '=');
		if (eq) {
			*dst = eq + 1;
		} else if (i + 1 < argc) {
			*dst = argv[++i];
		} else {
			fprintf(stderr, "cairn token: option needs a value: '%s'\n", name);
			return -1;
		}
	}
	argv[n] = NULL;
	return n;
}

int node_token_main(int argc, char **argv)
{
	struct node_cli c;
	const char *ttl_s = NULL, *user = NULL;
	char *args[3];
	char **av = NULL;
	char path[1024];
	long status = 0;
	json_t *body = NULL;
	uint64_t ttl = TTL_DEFAULT;
	int rc = 1, n, ac;

	/* A copy: the option scan rearranges it. */
	av = calloc((size_t)argc + 1, sizeof(*av));
	if (!av)
		return 1;
	memcpy(av, argv, (size_t)argc * sizeof(*av));
	ac = take_own_opts(argc, av, &ttl_s, &user);
	if (ac == -2) {
		node_tok_usage(stdout);
		free(av);
		return 0;
	}
	if (ac < 0)
		goto usage;
	n = node_cli_parse(ac, av, &c, args, 3, 0);
	if (n == -2) {
		free(av);
		return 0;
	}
	if (n < 0) {
		free(av);
		return 2; /* node_cli_parse printed the usage */
	}
	if (n < 1)
		goto usage;
	const char *verb = args[0];
	bool create = strcmp(verb, "create") == 0, del = strcmp(verb, "delete") == 0,
	     list = strcmp(verb, "list") == 0;
	if (!(create || del || list) || (list && n != 1) || ((create || del) && n != 2) ||
	    (ttl_s && !create) || (user && !list))
		goto usage;
	if (ttl_s && !node_ttl_parse(ttl_s, &ttl)) {
		fprintf(stderr, "cairn token: --ttl '%s': seconds, or a number with s, m, h or d\n",
			ttl_s);
		goto usage;
	}
	if (node_cli_creds(&c) < 0) {
		free(av);
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (create) {
		json_t *req = json_pack("{s:s, s:I}", "user", args[1], "ttl", (json_int_t)ttl);
		char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
		json_decref(req);
		if (!text)
			goto out;
		int r = node_api_call(&c, "POST", "/admin/v1/tokens", text, &status, &body);
		free(text);
		if (r < 0)
			goto out;
	} else if (list) {
		char *e = user ? curl_easy_escape(NULL, user, 0) : NULL;
		if (user && !e)
			goto out;
		snprintf(path, sizeof(path), "/admin/v1/tokens%s%s", e ? "?user=" : "", e ? e : "");
		curl_free(e);
		if (node_api_call(&c, "GET", path, NULL, &status, &body) < 0)
			goto out;
	} else {
		char *e = curl_easy_escape(NULL, args[1], 0);
		if (!e)
			goto out;
		snprintf(path, sizeof(path), "/admin/v1/tokens/%s", e);
		curl_free(e);
		if (node_api_call(&c, "DELETE", path, NULL, &status, &body) < 0)
			goto out;
	}
	if (status < 200 || status > 299) {
		rc = node_api_error(status, body);
		goto out;
	}
	if (c.json && body) {
		node_print_json(body);
	} else if (create) {
		char e[32];
		fmt_time(json_object_get(body, "expires"), e, sizeof(e));
		printf("%s\nid %s user %s expires %s\n",
		       json_string_value(json_object_get(body, "token")),
		       json_string_value(json_object_get(body, "id")),
		       json_string_value(json_object_get(body, "user")), e);
	} else if (list) {
		print_tokens(body);
	} else {
		printf("deleted token %s\n", args[1]);
	}
	rc = 0;
out:
	json_decref(body);
	curl_global_cleanup();
	memset(&c.creds, 0, sizeof(c.creds));
	free(av);
	return rc;
usage:
	node_tok_usage(stderr);
	free(av);
	return 2;
}
