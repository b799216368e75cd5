/* node/cli_img.c - `cairn image register|create|df`: the operator's side of
 * the image registry, through the admin API (node/admin_img.c).
 *
 * register makes an object already in S3 an image without copying it;
 * create --from-volume captures a volume (snapshotted first) as an image;
 * df shows what each image costs in the deduplicated pool. Everything else
 * about images is the Glance API's (glance/openstack CLIs). Exit 0 done, 1
 * refused by the node, 2 usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "node/node.h"

static const char synopsis[] =
    "usage: cairn image register s3://BUCKET/KEY [--name N] [--disk-format F]\n"
    "                            [--container-format C] [--owner U] [--visibility V]\n"
    "       cairn image create --from-volume VOL [--name N] [--owner U] [--visibility V]\n"
    "       cairn image df [--owner U]\n";

void node_img_usage(FILE *f)
{
	fputs(synopsis, f);
	if (f != stdout) {
		fprintf(f, "Run 'cairn image --help' for the options.\n");
		return;
	}
	fprintf(f,
		"\nregister makes an S3 object an active image without writing its bytes again\n"
		"(they are read once for Glance's checksums); its owner defaults to the\n"
		"bucket's owner, its name to the key, its disk format to what the bytes are.\n"
		"create --from-volume snapshots the volume and captures it as a raw image,\n"
		"storing only chunks the pool lacks. df lists every image (or --owner's)\n"
		"with its size, the bytes only it holds and the bytes it shares. Make a\n"
		"volume of an image with `cairn volume create NAME --from-image ID`; the\n"
		"rest (list, show, download, delete) is the Glance API's.\n"
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

/* The Glance image JSON, for people. */
static void print_image(const char *what, json_t *img)
{
	char sz[32], vs[32];
	fmt_b(ju(img, "size"), sz, sizeof(sz));
	fmt_b(ju(img, "virtual_size"), vs, sizeof(vs));
	printf("%s image %s\n", what, js(img, "id"));
	printf("name:         %s\n", js(img, "name"));
	printf("status:       %s\n", js(img, "status"));
	printf("owner:        %s\n", js(img, "owner"));
	printf("visibility:   %s\n", js(img, "visibility"));
	printf("format:       %s / %s\n", js(img, "disk_format"), js(img, "container_format"));
	printf("size:         %s (%llu bytes)\n", sz, (unsigned long long)ju(img, "size"));
	if (json_is_integer(json_object_get(img, "virtual_size")))
		printf("virtual size: %s (%llu bytes)\n", vs,
		       (unsigned long long)ju(img, "virtual_size"));
	printf("checksum:     %s\n", js(img, "checksum"));
}

static void print_df(json_t *body)
{
	json_t *arr = json_object_get(body, "images"), *pool = json_object_get(body, "pool"), *i;
	size_t k;
	uint64_t tsize = 0, tuniq = 0;
	char a[32], b[32], c[32], d[32];
	printf("%-36s %-24s %10s %10s %10s\n", "ID", "NAME", "SIZE", "UNIQUE", "SHARED");
	json_array_foreach(arr, k, i)
	{
		fmt_b(ju(i, "size"), a, sizeof(a));
		fmt_b(ju(i, "unique_bytes"), b, sizeof(b));
		fmt_b(ju(i, "shared_bytes"), c, sizeof(c));
		printf("%-36s %-24.24s %10s %10s %10s\n", js(i, "id"), js(i, "name"), a, b, c);
		tsize += ju(i, "size");
		tuniq += ju(i, "unique_bytes");
	}
	fmt_b(tsize, a, sizeof(a));
	fmt_b(tuniq, b, sizeof(b));
	printf("%zu image%s: %s uploaded, %s held by one image only\n", json_array_size(arr),
	       json_array_size(arr) == 1 ? "" : "s", a, b);
	fmt_b(ju(pool, "logical_bytes"), a, sizeof(a));
	fmt_b(ju(pool, "unique_bytes"), b, sizeof(b));
	fmt_b(ju(pool, "stored_bytes"), c, sizeof(c));
	fmt_b(ju(pool, "physical_bytes"), d, sizeof(d));
	printf("pool: %s logical, %s unique, %s stored, %s physical\n", a, b, c, d);
}

/* Adds the option's value as a string field when given. */
static void opt_field(json_t *o, const char *key, const char *v)
{
	if (v)
		json_object_set_new(o, key, json_string(v));
}

static int run(struct node_cli *c, char **a, int n)
{
	const char *verb = a[0], *method = "GET";
	json_t *resp = NULL, *body = NULL;
	char path[1024];
	unsigned allowed = 0;
	int want = 0, rc;

	if (strcmp(verb, "register") == 0) {
		allowed = NODE_OPT_NAME | NODE_OPT_DISK_FORMAT | NODE_OPT_CONTAINER_FORMAT |
			  NODE_OPT_OWNER | NODE_OPT_VISIBILITY;
		want = 1;
	} else if (strcmp(verb, "create") == 0) {
		allowed =
		    NODE_OPT_FROM_VOLUME | NODE_OPT_NAME | NODE_OPT_OWNER | NODE_OPT_VISIBILITY;
	} else if (strcmp(verb, "df") == 0) {
		allowed = NODE_OPT_OWNER;
	} else {
		fprintf(stderr, "cairn image: unknown verb '%s'\n", verb);
		goto usage;
	}
	if (n - 1 != want) {
		fprintf(stderr, "cairn image %s: expected %d argument%s, got %d\n", verb, want,
			want == 1 ? "" : "s", n - 1);
		goto usage;
	}
	if (c->given & ~allowed) {
		fprintf(stderr, "cairn image %s: an option given does not apply to %s\n", verb,
			verb);
		goto usage;
	}

	if (strcmp(verb, "register") == 0) {
		if (strncmp(a[1], "s3://", 5) != 0 || !strchr(a[1] + 5, '/')) {
			fprintf(stderr, "cairn image register: '%s' is not s3://BUCKET/KEY\n",
				a[1]);
			goto usage;
		}
		body = json_pack("{s:s}", "uri", a[1]);
		opt_field(body, "name", c->name);
		opt_field(body, "disk_format", c->disk_format);
		opt_field(body, "container_format", c->container_format);
		opt_field(body, "owner", c->owner);
		opt_field(body, "visibility", c->visibility);
		method = "POST";
		snprintf(path, sizeof(path), "/admin/v1/images/register");
	} else if (strcmp(verb, "create") == 0) {
		if (!c->from_volume) {
			fprintf(stderr, "cairn image create: --from-volume VOL is needed (images "
					"from files: upload them with the glance CLI)\n");
			goto usage;
		}
		body = json_object();
		opt_field(body, "name", c->name);
		opt_field(body, "owner", c->owner);
		opt_field(body, "visibility", c->visibility);
		char *e = curl_easy_escape(NULL, c->from_volume, 0);
		snprintf(path, sizeof(path), "/admin/v1/volumes/%s/upload-image", e ? e : "");
		curl_free(e);
		method = "POST";
	} else {
		char *e = c->owner ? curl_easy_escape(NULL, c->owner, 0) : NULL;
		snprintf(path, sizeof(path), "/admin/v1/images/df%s%s", e ? "?owner=" : "",
			 e ? e : "");
		curl_free(e);
	}
	/* register and create read the whole image once on the node before
	 * they answer: minutes for tens of GiB. */
	if (strcmp(verb, "df") != 0)
		c->timeout_sec = 6 * 3600;
	rc = node_api_request(c, method, path, body, &resp);
	if (rc)
		goto out;
	if (c->json) {
		if (resp)
			node_print_json(resp);
		goto out;
	}
	if (strcmp(verb, "register") == 0)
		print_image("registered", resp);
	else if (strcmp(verb, "create") == 0)
		print_image("created", resp);
	else
		print_df(resp);
out:
	json_decref(resp);
	return rc;
usage:
	node_img_usage(stderr);
	return 2;
}

int node_image_main(int argc, char **argv)
{
	struct node_cli c;
	char *args[4] = {0};
	int n = node_cli_parse(argc, argv, &c, args, 4,
			       NODE_OPT_NAME | NODE_OPT_DISK_FORMAT | NODE_OPT_CONTAINER_FORMAT |
				   NODE_OPT_OWNER | NODE_OPT_FROM_VOLUME | NODE_OPT_VISIBILITY);
	if (n == -2)
		return 0;
	if (n < 0)
		return 2; /* printed */
	if (n == 0) {
		fprintf(stderr, "cairn image: which verb?\n");
		node_img_usage(stderr);
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	int code = run(&c, args, n);
	curl_global_cleanup();
	memset(&c.creds, 0, sizeof(c.creds));
	return code;
}
