/* node/cli_tok.c - `cairn token create|list|delete`: bearer tokens, the
 * X-Auth-Token of the Glance API (and, for the root user, the admin API's
 * Authorization: Bearer), through /admin/v1/tokens.
 *
 * `token create` prints the token alone on the first line of stdout (it is
 * shown once: only its hash is kept), so `T=$(cairn token create alice |
 * head -1)` works; the second line gives its id and expiry. Exit 0 done, 1
 * refused by the node, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "node/node.h"

#define TTL_MAX (100ull * 365 * 86400) /* the API's limit */

static const char synopsis[] = "usage: cairn token create USER [--ttl 3600|1h|7d|0]\n"
			       "       cairn token list [--user USER]\n"
			       "       cairn token delete ID\n";

void node_tok_usage(FILE *f)
{
	fputs(synopsis, f);
	if (f != stdout) {
		fprintf(f, "Run 'cairn token --help' for the options.\n");
		return;
	}
	fprintf(f,
		"\nBearer tokens act as their user on the Glance API (X-Auth-Token); a token\n"
		"of the root user also signs admin API requests (Authorization: Bearer).\n"
		"create prints the token once, alone on the first line, then its id and\n"
		"expiry. --ttl: seconds, or with s, m, h or d (default 1d; 0: never\n"
		"expires). list shows ids, users and expiry (never the tokens); delete\n"
		"takes an id from list.\n"
		"\noptions:\n"
		"  --endpoint URL       admin API of the node (default %s,\n"
		"                       or $CAIRN_ENDPOINT)\n"
		"  --credentials FILE   root credentials file; default DATA/root-credentials\n"
		"  --data DIR           the node's data directory (default ./data)\n"
		"  --json               print the API's JSON\n"
		"  -h, --help           this text\n"
		"\nExit 0 done, 1 refused by the node (the reason on stderr), 2 usage.\n",
		NODE_DEFAULT_ENDPOINT);
}

/* "3600", "90s", "15m", "1h", "7d", "0": seconds in *out. */
static bool parse_ttl(const char *s, uint64_t *out)
{
	uint64_t v = 0, mul = 1;
	const char *p = s;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (p == s)
		return false;
	switch (*p) {
	case '\0':
		break;
	case 's':
		p++;
		break;
	case 'm':
		mul = 60;
		p++;
		break;
	case 'h':
		mul = 3600;
		p++;
		break;
	case 'd':
		mul = 86400;
		p++;
		break;
	default:
		return false;
	}
	if (*p || v > TTL_MAX / mul)
		return false;
	*out = v * mul;
	return true;
}

static const char *js(json_t *o, const char *key)
{
	const char *v = json_string_value(json_object_get(o, key));
	return v ? v : "";
}

static const char *expires_text(json_t *t)
{
	const char *e = json_string_value(json_object_get(t, "expires"));
	return e ? e : "never";
}

static int run(struct node_cli *c, char **a, int n)
{
	const char *verb = a[0];
	json_t *resp = NULL, *body = NULL;
	const char *method = "GET";
	char path[1024];
	int rc = 2;
	unsigned allowed = 0;
	int want = 0;

	if (strcmp(verb, "create") == 0) {
		allowed = NODE_OPT_TTL;
		want = 1;
	} else if (strcmp(verb, "list") == 0) {
		allowed = NODE_OPT_USER;
	} else if (strcmp(verb, "delete") == 0) {
		want = 1;
	} else {
		fprintf(stderr, "cairn token: unknown verb '%s'\n", verb);
		goto usage;
	}
	if (n - 1 != want) {
		fprintf(stderr, "cairn token %s: expected %d argument%s, got %d\n", verb, want,
			want == 1 ? "" : "s", n - 1);
		goto usage;
	}
	if (c->given & ~allowed) {
		fprintf(stderr, "cairn token %s: %s does not apply\n", verb,
			c->given & NODE_OPT_TTL ? "--ttl" : "--user");
		goto usage;
	}

	if (strcmp(verb, "create") == 0) {
		uint64_t ttl = 86400;
		if (c->ttl && !parse_ttl(c->ttl, &ttl)) {
			fprintf(stderr,
				"cairn token create: --ttl '%s' is not seconds or a number with s, "
				"m, h or d (0: never expires; at most 100 years)\n",
				c->ttl);
			goto usage;
		}
		body = json_pack("{s:s, s:I}", "user", a[1], "ttl", (json_int_t)ttl);
		method = "POST";
		snprintf(path, sizeof(path), "/admin/v1/tokens");
	} else if (strcmp(verb, "list") == 0) {
		char *e = c->user ? curl_easy_escape(NULL, c->user, 0) : NULL;
		snprintf(path, sizeof(path), "/admin/v1/tokens%s%s", e ? "?user=" : "", e ? e : "");
		curl_free(e);
	} else {
		char *e = curl_easy_escape(NULL, a[1], 0);
		snprintf(path, sizeof(path), "/admin/v1/tokens/%s", e ? e : "");
		curl_free(e);
		method = "DELETE";
	}
	rc = node_api_request(c, method, path, body, &resp);
	if (rc)
		goto out;
	if (c->json) {
		if (resp)
			node_print_json(resp);
		goto out;
	}
	if (strcmp(verb, "create") == 0) {
		printf("%s\n", js(resp, "token"));
		printf("id %s user %s expires %s\n", js(resp, "id"), js(resp, "user"),
		       expires_text(resp));
	} else if (strcmp(verb, "list") == 0) {
		json_t *arr = json_object_get(resp, "tokens"), *t;
		size_t i;
		printf("%-10s %-24s %-20s %s\n", "ID", "USER", "CREATED", "EXPIRES");
		json_array_foreach(arr, i, t)
		    printf("%-10s %-24s %-20s %s\n", js(t, "id"), js(t, "user"), js(t, "created"),
			   expires_text(t));
	} else {
		printf("deleted token %s\n", a[1]);
	}
out:
	json_decref(resp);
	return rc;
usage:
	node_tok_usage(stderr);
	return 2;
}

int node_token_main(int argc, char **argv)
{
	struct node_cli c;
	char *args[4] = {0};
	int n = node_cli_parse(argc, argv, &c, args, 4, NODE_OPT_TTL | NODE_OPT_USER);
	if (n == -2)
		return 0;
	if (n < 0)
		return 2; /* printed */
	if (n == 0) {
		fprintf(stderr, "cairn token: which verb?\n");
		node_tok_usage(stderr);
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int code = run(&c, args, n);
	curl_global_cleanup();
	memset(&c.creds, 0, sizeof(c.creds));
	return code;
}
