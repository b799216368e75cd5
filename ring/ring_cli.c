/* ring/ring_cli.c - `cairn ring BUILDER_FILE VERB ...`.
 *
 * Verbs and argument syntax follow swift-ring-builder so operators' scripts
 * carry over: create, add (r1z2-10.0.0.5:6200/sdb 100, or the --region/...
 * long form), remove, set_weight, rebalance, write_ring, search, validate,
 * show (also with no verb); cairn adds show --json, dump --json and lookup.
 * Exit codes as Swift's: 0 success, 1 warning, 2 error. The builder file is
 * only written after a verb fully succeeded, so bad input overwrites nothing.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>

#include "core/log.h"
#include "ring/ring_int.h"

#define EXIT_OK 0
#define EXIT_WARN 1
#define EXIT_ERR 2

static const char usage_text[] =
    "usage: cairn ring BUILDER_FILE VERB [ARGS]\n"
    "\n"
    "Builds and inspects a placement ring; the syntax follows swift-ring-builder.\n"
    "The ring file is BUILDER_FILE with .builder replaced by .ring.\n"
    "\n"
    "verbs:\n"
    "  create PART_POWER REPLICAS MIN_PART_HOURS [--ec-m M] [--secret HEX64] [--seed N]\n"
    "      new builder (refuses to overwrite one); a random cluster secret unless given\n"
    "  add [r<region>]z<zone>-<ip>:<port>/<device_name> <weight> [...]\n"
    "  add --region R --zone Z --ip IP --port PORT --device NAME --weight W [--id ID]\n"
    "  remove <search-value> [...] [--yes]\n"
    "  set_weight <search-value> <weight> [<search-value> <weight> ...] [--yes]\n"
    "  rebalance [--seed N] [--now UNIX_SECONDS]\n"
    "      assigns partitions, saves the builder and writes the ring file\n"
    "  write_ring [RING_FILE]\n"
    "  search <search-value>\n"
    "  validate            checks the builder, and the ring file if present\n"
    "  show [--json]       devices, partitions, wanted, balance, dispersion\n"
    "  dump --json         partition -> device ids per replica\n"
    "  lookup KEY [--name|--hex] [--json]\n"
    "      devices and handoffs of a name, or of a 64-hex-digit fingerprint\n"
    "\n"
    "search values: d<id>r<region>z<zone>-<ip>:<port>/<device_name>, every part\n"
    "optional (d3, z2, r1z2-10.0.0.5/sdb, 10.0.0.5:6200); remove and set_weight\n"
    "also take --id/--region/--zone/--ip/--port/--device instead.\n"
    "exit codes: 0 success, 1 warning, 2 error\n";

struct search {
	int64_t id, region, zone, port;
	char ip[48];
	char device[RING_NAME_MAX];
	bool any;
};

static void search_init(struct search *s)
{
	memset(s, 0, sizeof(*s));
	s->id = s->region = s->zone = s->port = -1;
}

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long long v;
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

static int parse_weight(const char *s, double *out)
{
	char *end;
	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	*out = strtod(s, &end);
	return errno || *end ? -EINVAL : 0;
}

/* Leading digits of *p as a number; advances *p. */
static int take_num(const char **p, int64_t *out)
{
	const char *s = *p;
	int64_t v = 0;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	while (isdigit((unsigned char)*s)) {
		v = v * 10 + (*s++ - '0');
		if (v > UINT32_MAX)
			return -EINVAL;
	}
	*p = s;
	*out = v;
	return 0;
}

/* An address: "[v6]" or a run of characters up to ':', '/', 'R' or '_'. */
static int take_ip(const char **p, char *ip, size_t len)
{
	const char *s = *p, *e;
	if (*s == '[') {
		e = strchr(s, ']');
		if (!e)
			return -EINVAL;
		s++;
	} else {
		e = s;
		while (*e && *e != ':' && *e != '/' && *e != 'R' && *e != '_')
			e++;
	}
	if (e == s || (size_t)(e - s) >= len)
		return -EINVAL;
	memcpy(ip, s, (size_t)(e - s));
	ip[e - s] = '\0';
	*p = *e == ']' ? e + 1 : e;
	return 0;
}

/* Swift's search value: d<id>r<region>z<zone>-<ip>:<port>R<rip>:<rport>/<dev>_<meta>. */
static int parse_search(const char *v, struct search *s)
{
	const char *p = v;
	int64_t x;
	search_init(s);
	if (*p == 'd') {
		p++;
		if (take_num(&p, &s->id))
			return -EINVAL;
	}
	if (*p == 'r') {
		p++;
		if (take_num(&p, &s->region))
			return -EINVAL;
	}
	if (*p == 'z') {
		p++;
		if (take_num(&p, &s->zone))
			return -EINVAL;
	}
	if (*p == '-')
		p++;
	if (*p && *p != ':' && *p != '/' && *p != 'R' && *p != '_')
		if (take_ip(&p, s->ip, sizeof(s->ip)))
			return -EINVAL;
	if (*p == ':') {
		p++;
		if (take_num(&p, &s->port) || s->port > 65535)
			return -EINVAL;
	}
	if (*p == 'R') { /* replication network: accepted, cairn has none */
		char rip[48];
		p++;
		if (*p != ':' && take_ip(&p, rip, sizeof(rip)))
			return -EINVAL;
		if (*p == ':' && (p++, take_num(&p, &x)))
			return -EINVAL;
	}
	if (*p == '/') {
		const char *e = ++p;
		while (*e && *e != '_')
			e++;
		if (e == p || (size_t)(e - p) >= sizeof(s->device))
			return -EINVAL;
		memcpy(s->device, p, (size_t)(e - p));
		s->device[e - p] = '\0';
		p = e;
	}
	if (*p == '_')
		p += strlen(p); /* meta: ignored */
	if (*p || p == v)
		return -EINVAL;
	s->any = true;
	return 0;
}

static bool search_match(const struct search *s, const struct ring_dev *d)
{
	return (s->id < 0 || s->id == d->id) && (s->region < 0 || s->region == d->region) &&
	       (s->zone < 0 || s->zone == d->zone) && (s->port < 0 || s->port == d->port) &&
	       (!s->ip[0] || strcmp(s->ip, d->ip) == 0) &&
	       (!s->device[0] || strcmp(s->device, d->name) == 0);
}

/* Long options shared by add, remove, set_weight: consumes argv[*i] (and its
 * value) when it is one. Returns 1 consumed, 0 not an option, <0 error. */
static int long_opt(int argc, char **argv, int *i, struct search *s, double *weight,
		    bool *have_weight)
{
	static const char *const names[] = {"--id",
					    "--region",
					    "--zone",
					    "--ip",
					    "--port",
					    "--device",
					    "--weight",
					    "--meta",
					    "--replication-ip",
					    "--replication-port"};
	const char *a = argv[*i];
	for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		size_t n = strlen(names[k]);
		const char *val;
		if (strncmp(a, names[k], n) != 0 || (a[n] != '\0' && a[n] != '='))
			continue;
		if (a[n] == '=')
			val = a + n + 1;
		else if (*i + 1 < argc)
			val = argv[++*i];
		else
			return -EINVAL;
		uint32_t u;
		s->any = true;
		switch (k) {
		case 0:
		case 1:
		case 2:
		case 4:
			if (parse_u32(val, k == 4 ? 65535 : UINT32_MAX - 1, &u))
				return -EINVAL;
			*(k == 0 ? &s->id : k == 1 ? &s->region : k == 2 ? &s->zone : &s->port) = u;
			return 1;
		case 3:
			if (snprintf(s->ip, sizeof(s->ip), "%s", val[0] == '[' ? val + 1 : val) >=
			    (int)sizeof(s->ip))
				return -EINVAL;
			s->ip[strcspn(s->ip, "]")] = '\0';
			return 1;
		case 5:
			if (snprintf(s->device, sizeof(s->device), "%s", val) >=
			    (int)sizeof(s->device))
				return -EINVAL;
			return 1;
		case 6:
			if (parse_weight(val, weight))
				return -EINVAL;
			*have_weight = true;
			return 1;
		default:
			return 1; /* meta, replication network: accepted, not kept */
		}
	}
	return 0;
}

static void ring_path_of(const char *builder, char *out, size_t len)
{
	size_t n = strlen(builder);
	if (n > 8 && strcmp(builder + n - 8, ".builder") == 0)
		snprintf(out, len, "%.*s.ring", (int)(n - 8), builder);
	else
		snprintf(out, len, "%s.ring", builder);
}

static void print_dev(FILE *f, const struct ring_dev *d)
{
	bool v6 = strchr(d->ip, ':') != NULL;
	fprintf(f, "d%" PRIu32 "r%" PRIu32 "z%" PRIu32 "-%s%s%s:%u/%s_\"\" weight %g\n", d->id,
		d->region, d->zone, v6 ? "[" : "", d->ip, v6 ? "]" : "", d->port, d->name,
		d->weight);
}

static int err_out(const char *what, int ret)
{
	fprintf(stderr, "cairn ring: %s: %s\n", what, cairn_strerror(ret));
	return EXIT_ERR;
}

static int load(const char *path, struct ring_builder **b)
{
	int ret = ring_builder_load(path, b);
	if (ret)
		return err_out(path, ret);
	return 0;
}

static int save(struct ring_builder *b, const char *path)
{
	int ret = ring_builder_save(b, path);
	if (ret)
		return err_out(path, ret);
	return 0;
}

static int cmd_create(const char *path, int argc, char **argv)
{
	struct ring_builder *b = NULL;
	uint32_t pp, R, mph, m = 0;
	uint64_t seed = 0;
	uint8_t secret[RING_SECRET_LEN];
	bool have_secret = false;
	struct stat st;
	int pos = 0, rc = EXIT_ERR;
	const char *args[3];

	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--ec-m") == 0 && i + 1 < argc) {
			if (parse_u32(argv[++i], RING_REPLICAS_MAX, &m))
				goto bad;
		} else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
			if (parse_u64(argv[++i], &seed))
				goto bad;
		} else if (strcmp(argv[i], "--secret") == 0 && i + 1 < argc) {
			const char *h = argv[++i];
			if (strlen(h) != 2 * RING_SECRET_LEN)
				goto bad;
			for (int k = 0; k < RING_SECRET_LEN; k++) {
				unsigned v;
				if (!isxdigit((unsigned char)h[2 * k]) ||
				    !isxdigit((unsigned char)h[2 * k + 1]) ||
				    sscanf(h + 2 * k, "%2x", &v) != 1)
					goto bad;
				secret[k] = (uint8_t)v;
			}
			have_secret = true;
		} else if (pos < 3) {
			args[pos++] = argv[i];
		} else {
			goto bad;
		}
	}
	if (pos != 3 || parse_u32(args[0], RING_PART_POWER_MAX, &pp) ||
	    parse_u32(args[1], RING_REPLICAS_MAX, &R) || R == 0 ||
	    parse_u32(args[2], 24 * 365 * 100, &mph) || m >= R)
		goto bad;
	if (stat(path, &st) == 0) {
		fprintf(stderr, "cairn ring: %s exists; not overwriting it\n", path);
		return EXIT_ERR;
	}
	int ret = ring_builder_create(pp, R, mph, &b);
	if (ret)
		return err_out("create", ret);
	if (have_secret)
		ring_builder_set_secret(b, secret);
	ring_builder_set_ec_m(b, m);
	ring_builder_set_seed(b, seed);
	rc = save(b, path);
	ring_builder_free(b);
	explicit_bzero(secret, sizeof(secret));
	return rc;
bad:
	fprintf(stderr,
		"usage: cairn ring %s create PART_POWER(0-%d) REPLICAS(1-%d) "
		"MIN_PART_HOURS [--ec-m M<REPLICAS] [--secret HEX64] [--seed N]\n",
		path, RING_PART_POWER_MAX, RING_REPLICAS_MAX);
	return EXIT_ERR;
}

/* r<region>z<zone>-<ip>:<port>[R<rip>:<rport>]/<device>[_<meta>] */
static int parse_add_value(const char *v, struct ring_dev *d)
{
	struct search s;
	if (*v != 'r' && *v != 'z')
		return -EINVAL;
	if (parse_search(v, &s) || s.id >= 0 || s.zone < 0 || !s.ip[0] || s.port < 0 ||
	    !s.device[0])
		return -EINVAL;
	memset(d, 0, sizeof(*d));
	d->id = UINT32_MAX;
	d->region = s.region < 0 ? 1 : (uint32_t)s.region; /* Swift's default region */
	d->zone = (uint32_t)s.zone;
	d->port = (uint16_t)s.port;
	snprintf(d->ip, sizeof(d->ip), "%s", s.ip);
	snprintf(d->name, sizeof(d->name), "%s", s.device);
	return 0;
}

static int add_one(struct ring_builder *b, struct ring_dev *d)
{
	uint32_t id;
	int ret;
	for (uint32_t i = 0; i < ring_builder_dev_count(b); i++) {
		bool rm;
		const struct ring_dev *e = ring_builder_dev_at(b, i, &rm);
		if (!rm && e->port == d->port && strcmp(e->ip, d->ip) == 0 &&
		    strcmp(e->name, d->name) == 0) {
			fprintf(stderr, "cairn ring: device %s:%u/%s already exists (d%u)\n", d->ip,
				d->port, d->name, e->id);
			return CAIRN_EEXISTS;
		}
	}
	ret = ring_builder_add(b, d, &id);
	if (ret == CAIRN_EINVAL)
		fprintf(stderr, "cairn ring: invalid device (weight must be > 0): ");
	if (ret) {
		if (ret != CAIRN_EINVAL)
			fprintf(stderr, "cairn ring: cannot add device: %s: ", cairn_strerror(ret));
		print_dev(stderr, d);
		return ret;
	}
	d->id = id;
	printf("Device ");
	print_dev(stdout, d);
	return 0;
}

static int cmd_add(const char *path, int argc, char **argv)
{
	struct ring_builder *b = NULL;
	int rc = load(path, &b);
	if (rc)
		return rc;
	rc = EXIT_ERR;
	if (argc > 0 && strncmp(argv[0], "--", 2) == 0) {
		struct search s;
		double w = 0;
		bool hw = false;
		search_init(&s);
		for (int i = 0; i < argc; i++) {
			int r = long_opt(argc, argv, &i, &s, &w, &hw);
			if (r <= 0)
				goto usage;
		}
		if (s.zone < 0 || !s.ip[0] || s.port < 0 || !s.device[0] || !hw)
			goto usage;
		struct ring_dev d = {.id = s.id < 0 ? UINT32_MAX : (uint32_t)s.id,
				     .region = s.region < 0 ? 1 : (uint32_t)s.region,
				     .zone = (uint32_t)s.zone,
				     .port = (uint16_t)s.port,
				     .weight = w};
		snprintf(d.ip, sizeof(d.ip), "%s", s.ip);
		snprintf(d.name, sizeof(d.name), "%s", s.device);
		if (add_one(b, &d))
			goto out;
	} else {
		if (argc == 0 || argc % 2)
			goto usage;
		for (int i = 0; i < argc; i += 2) {
			struct ring_dev d;
			if (parse_add_value(argv[i], &d)) {
				fprintf(stderr, "cairn ring: invalid device value '%s'\n", argv[i]);
				goto out;
			}
			if (parse_weight(argv[i + 1], &d.weight)) {
				fprintf(stderr, "cairn ring: invalid weight '%s'\n", argv[i + 1]);
				goto out;
			}
			if (add_one(b, &d))
				goto out;
		}
	}
	rc = save(b, path);
	goto out;
usage:
	fprintf(stderr,
		"usage: cairn ring %s add r<region>z<zone>-<ip>:<port>/<device> <weight> "
		"[...]\n   or: cairn ring %s add --region R --zone Z --ip IP --port P "
		"--device NAME --weight W [--id ID]\n",
		path, path);
out:
	ring_builder_free(b);
	return rc;
}

/* Collects devices matching s into ids (ring_builder_dev_at order). */
static uint32_t matches(const struct ring_builder *b, const struct search *s, uint32_t *ids)
{
	uint32_t n = 0;
	for (uint32_t i = 0; i < ring_builder_dev_count(b); i++) {
		bool rm;
		const struct ring_dev *d = ring_builder_dev_at(b, i, &rm);
		if (!rm && search_match(s, d))
			ids[n++] = d->id;
	}
	return n;
}

static int cmd_remove_or_weight(const char *path, int argc, char **argv, bool weight_verb)
{
	struct ring_builder *b = NULL;
	uint32_t *ids = NULL;
	bool yes = false;
	int rc = load(path, &b);
	if (rc)
		return rc;
	rc = EXIT_ERR;
	ids = malloc((ring_builder_dev_count(b) + 1) * sizeof(*ids));
	if (!ids)
		goto out;
	/* one or more (search, [weight]) groups; a group is a search value or a
	 * run of long options */
	for (int i = 0; i < argc;) {
		struct search s;
		double w = 0;
		bool hw = false;
		if (strcmp(argv[i], "--yes") == 0 || strcmp(argv[i], "-y") == 0) {
			yes = true;
			i++;
			continue;
		}
		search_init(&s);
		if (strncmp(argv[i], "--", 2) == 0) {
			while (i < argc && strncmp(argv[i], "--", 2) == 0 &&
			       strcmp(argv[i], "--yes")) {
				int r = long_opt(argc, argv, &i, &s, &w, &hw);
				if (r <= 0)
					goto usage;
				i++;
			}
		} else {
			if (parse_search(argv[i], &s)) {
				fprintf(stderr, "cairn ring: invalid search value '%s'\n", argv[i]);
				goto out;
			}
			i++;
		}
		if (weight_verb && !hw) {
			if (i >= argc || parse_weight(argv[i], &w))
				goto usage;
			i++;
		}
		uint32_t n = matches(b, &s, ids);
		if (n == 0) {
			fprintf(stderr, "cairn ring: no device matches\n");
			goto out;
		}
		if (n > 1 && !yes) {
			bool later_yes = false;
			for (int k = i; k < argc; k++)
				later_yes |= !strcmp(argv[k], "--yes") || !strcmp(argv[k], "-y");
			if (!later_yes) {
				fprintf(
				    stderr,
				    "cairn ring: %u devices match; add --yes to change them all\n",
				    n);
				goto out;
			}
		}
		for (uint32_t k = 0; k < n; k++) {
			int idx = -1;
			for (uint32_t j = 0; j < ring_builder_dev_count(b); j++)
				if (ring_builder_dev_at(b, j, NULL)->id == ids[k])
					idx = (int)j;
			struct ring_dev d = *ring_builder_dev_at(b, (uint32_t)idx, NULL);
			int ret = weight_verb ? ring_builder_set_weight(b, ids[k], w)
					      : ring_builder_remove(b, ids[k]);
			if (ret) {
				fprintf(stderr, "cairn ring: %s d%u: %s%s\n",
					weight_verb ? "set_weight" : "remove", ids[k],
					cairn_strerror(ret),
					ret == CAIRN_EINVAL ? " (weight must be > 0; use remove)"
							    : "");
				goto out;
			}
			if (weight_verb) {
				printf("d%u weight set to %g (was %g)\n", d.id, w, d.weight);
			} else {
				printf(
				    "d%u marked for removal and will be removed next rebalance: ",
				    d.id);
				print_dev(stdout, &d);
			}
		}
	}
	if (argc == 0)
		goto usage;
	rc = save(b, path);
	goto out;
usage:
	if (weight_verb)
		fprintf(stderr,
			"usage: cairn ring %s set_weight <search-value> <weight> [...] [--yes]\n",
			path);
	else
		fprintf(stderr, "usage: cairn ring %s remove <search-value> [...] [--yes]\n", path);
out:
	free(ids);
	ring_builder_free(b);
	return rc;
}

static int cmd_search(const char *path, int argc, char **argv)
{
	struct ring_builder *b = NULL;
	struct search s;
	int rc;
	if (argc != 1 || parse_search(argv[0], &s)) {
		fprintf(stderr, "usage: cairn ring %s search <search-value>\n", path);
		return EXIT_ERR;
	}
	rc = load(path, &b);
	if (rc)
		return rc;
	uint32_t n = 0;
	for (uint32_t i = 0; i < ring_builder_dev_count(b); i++) {
		bool rm;
		const struct ring_dev *d = ring_builder_dev_at(b, i, &rm);
		if (search_match(&s, d)) {
			printf("%s", rm ? "(removing) " : "");
			print_dev(stdout, d);
			n++;
		}
	}
	if (!n)
		fprintf(stderr, "No matching devices found\n");
	ring_builder_free(b);
	return n ? EXIT_OK : EXIT_ERR;
}

static void print_summary(const struct ring_builder *b, const struct ring_stats *st, uint64_t moved)
{
	uint64_t slots = (uint64_t)ring_builder_replicas(b) << ring_builder_part_power(b);
	printf("Reassigned %" PRIu64 " (%.2f%%) partition-replicas. Balance is now %.2f "
	       "(%.2f against dispersion-capped targets). Dispersion is now %.2f\n",
	       moved, 100.0 * (double)moved / (double)slots, st->balance, st->balance_wanted,
	       st->dispersion);
}

static int cmd_write_ring(struct ring_builder *b, const char *ring_path)
{
	int ret = ring_builder_write_ring(b, ring_path);
	if (ret)
		return err_out(ring_path, ret);
	return 0;
}

static int cmd_rebalance(const char *path, int argc, char **argv)
{
	struct ring_builder *b = NULL;
	uint64_t now = (uint64_t)time(NULL), seed = 0, moved = 0;
	bool have_seed = false;
	char ring_path[4096];
	int rc;

	for (int i = 0; i < argc; i++) {
		if ((!strcmp(argv[i], "--seed") || !strcmp(argv[i], "-s")) && i + 1 < argc) {
			if (parse_u64(argv[++i], &seed))
				goto usage;
			have_seed = true;
		} else if (!strcmp(argv[i], "--now") && i + 1 < argc) {
			if (parse_u64(argv[++i], &now))
				goto usage;
		} else if (!strcmp(argv[i], "--force") || !strcmp(argv[i], "-f")) {
			/* Swift's: write even if balance barely changed; cairn always writes */
		} else if (isdigit((unsigned char)argv[i][0]) && !have_seed) {
			if (parse_u64(argv[i], &seed)) /* Swift: rebalance [seed] */
				goto usage;
			have_seed = true;
		} else {
			goto usage;
		}
	}
	rc = load(path, &b);
	if (rc)
		return rc;
	if (have_seed)
		ring_builder_set_seed(b, seed);
	uint64_t gen = ring_builder_generation(b);
	int ret = ring_builder_rebalance(b, now, &moved);
	if (ret) {
		ring_builder_free(b);
		return err_out("rebalance", ret);
	}
	size_t nm;
	const struct ring_move *mv = ring_builder_moves(b, &nm);
	/* what moved, per device: lost and gained partition-replicas */
	uint32_t nd = ring_builder_dev_count(b);
	struct ring_stats st;
	struct ring_dev_stat *ds = calloc(nd + 1, sizeof(*ds));
	if (!ds || ring_builder_stats(b, &st, ds)) {
		free(ds);
		ring_builder_free(b);
		return err_out("rebalance", -ENOMEM);
	}
	if (nm) {
		printf("Moves by device (id: lost, gained):\n");
		uint32_t maxid = 0;
		for (size_t k = 0; k < nm; k++) {
			maxid = mv[k].from > maxid ? mv[k].from : maxid;
			maxid = mv[k].to > maxid ? mv[k].to : maxid;
		}
		uint64_t *lost = calloc(2 * ((size_t)maxid + 1), sizeof(uint64_t));
		if (lost) {
			uint64_t *gained = lost + maxid + 1;
			for (size_t k = 0; k < nm; k++) {
				lost[mv[k].from]++;
				gained[mv[k].to]++;
			}
			for (uint32_t id = 0; id <= maxid; id++)
				if (lost[id] || gained[id])
					printf("  d%u: -%" PRIu64 " +%" PRIu64 "\n", id, lost[id],
					       gained[id]);
			free(lost);
		}
	}
	print_summary(b, &st, moved);
	rc = EXIT_OK;
	if (ring_builder_generation(b) == gen) {
		printf("No partitions could be reassigned.\n");
		rc = EXIT_WARN;
	} else if (st.balance_wanted >= 1.0 || st.dispersion > 0) {
		printf(
		    "NOTE: balance or dispersion is held back (min_part_hours %u): push this ring, "
		    "wait, then rebalance again.\n",
		    ring_builder_min_part_hours(b));
		rc = EXIT_WARN;
	}
	free(ds);
	ring_path_of(path, ring_path, sizeof(ring_path));
	if (save(b, path) || cmd_write_ring(b, ring_path))
		rc = EXIT_ERR;
	ring_builder_free(b);
	return rc;
usage:
	fprintf(stderr, "usage: cairn ring %s rebalance [--seed N] [--now UNIX_SECONDS]\n", path);
	return EXIT_ERR;
}

static json_t *dev_json(const struct ring_dev *d)
{
	return json_pack("{s:I,s:I,s:I,s:s,s:I,s:s,s:f}", "id", (json_int_t)d->id, "region",
			 (json_int_t)d->region, "zone", (json_int_t)d->zone, "ip", d->ip, "port",
			 (json_int_t)d->port, "device", d->name, "weight", d->weight);
}

static int cmd_show(const char *path, int argc, char **argv)
{
	struct ring_builder *b = NULL;
	struct ring_stats st = {0};
	struct ring_dev_stat *ds = NULL;
	bool json = false, stats_ok;
	char ring_path[4096];
	int rc;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = true;
		else {
			fprintf(stderr, "usage: cairn ring %s show [--json]\n", path);
			return EXIT_ERR;
		}
	}
	rc = load(path, &b);
	if (rc)
		return rc;
	uint32_t nd = ring_builder_dev_count(b), parts = 1u << ring_builder_part_power(b);
	ds = calloc(nd + 1, sizeof(*ds));
	if (!ds) {
		ring_builder_free(b);
		return err_out("show", -ENOMEM);
	}
	stats_ok = ring_builder_stats(b, &st, ds) == 0;
	uint32_t regions = 0, zones = 0;
	{
		/* distinct regions and zones: O(n^2), n is small */
		for (uint32_t i = 0; i < nd; i++) {
			const struct ring_dev *d = ring_builder_dev_at(b, i, NULL);
			bool nr = true, nz = true;
			for (uint32_t j = 0; j < i; j++) {
				const struct ring_dev *e = ring_builder_dev_at(b, j, NULL);
				if (e->region == d->region) {
					nr = false;
					if (e->zone == d->zone)
						nz = false;
				}
			}
			regions += nr;
			zones += nz;
		}
	}
	ring_path_of(path, ring_path, sizeof(ring_path));
	if (json) {
		json_t *o = json_pack(
		    "{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:b}", "builder", path, "ring",
		    ring_path, "part_power", (json_int_t)ring_builder_part_power(b), "partitions",
		    (json_int_t)parts, "replicas", (json_int_t)ring_builder_replicas(b),
		    "min_part_hours", (json_int_t)ring_builder_min_part_hours(b), "ec_m",
		    (json_int_t)ring_builder_ec_m(b), "generation",
		    (json_int_t)ring_builder_generation(b), "regions", (json_int_t)regions, "zones",
		    (json_int_t)zones, "devices_count", (json_int_t)nd, "rebalanced", stats_ok);
		json_t *arr = json_array();
		if (stats_ok) {
			json_object_set_new(o, "balance", json_real(st.balance));
			json_object_set_new(o, "overload", json_real(st.overload));
			json_object_set_new(o, "balance_wanted", json_real(st.balance_wanted));
			json_object_set_new(o, "dispersion", json_real(st.dispersion));
			json_object_set_new(o, "max_replicas_in_zone",
					    json_integer(st.max_in_zone));
			json_object_set_new(o, "parts_over_ec_m",
					    json_integer((json_int_t)st.parts_over_m));
		}
		for (uint32_t i = 0; i < nd; i++) {
			bool rm;
			json_t *d = dev_json(ring_builder_dev_at(b, i, &rm));
			json_object_set_new(d, "removing", json_boolean(rm));
			if (stats_ok) {
				json_object_set_new(d, "partitions",
						    json_integer((json_int_t)ds[i].parts));
				json_object_set_new(d, "weight_share",
						    json_real(ds[i].weight_share));
				json_object_set_new(d, "wanted", json_real(ds[i].wanted));
				json_object_set_new(d, "balance", json_real(ds[i].balance));
			}
			json_array_append_new(arr, d);
		}
		json_object_set_new(o, "devices", arr);
		json_dumpf(o, stdout, JSON_INDENT(1) | JSON_REAL_PRECISION(6));
		printf("\n");
		json_decref(o);
	} else {
		printf("%s, build version %" PRIu64 "\n", path, ring_builder_generation(b));
		printf("%u partitions, %u replicas, %u regions, %u zones, %u devices", parts,
		       ring_builder_replicas(b), regions, zones, nd);
		if (stats_ok)
			printf(", %.2f balance, %.2f dispersion\n", st.balance, st.dispersion);
		else
			printf(", not rebalanced yet\n");
		printf("The minimum number of hours before a partition can be reassigned is %u\n",
		       ring_builder_min_part_hours(b));
		if (ring_builder_ec_m(b))
			printf(
			    "Erasure coded: at most %u fragments of a partition per zone where the "
			    "cluster allows; partitions over it: %" PRIu64 "\n",
			    ring_builder_ec_m(b), st.parts_over_m);
		if (stats_ok)
			printf(
			    "Balance against dispersion-capped targets %.2f; most replicas of one "
			    "partition in one zone: %u\n",
			    st.balance_wanted, st.max_in_zone);
		printf(
		    "Devices:   id region zone      ip address:port     name   weight partitions "
		    "    wanted  balance flags\n");
		for (uint32_t i = 0; i < nd; i++) {
			bool rm;
			const struct ring_dev *d = ring_builder_dev_at(b, i, &rm);
			char addr[80];
			snprintf(addr, sizeof(addr), strchr(d->ip, ':') ? "[%s]:%u" : "%s:%u",
				 d->ip, d->port);
			printf("         %4u %6u %4u %22s %8s %8.2f %10" PRIu64
			       " %10.2f %8.2f %s\n",
			       d->id, d->region, d->zone, addr, d->name, d->weight, ds[i].parts,
			       ds[i].wanted, ds[i].balance, rm ? "DEL" : "");
		}
	}
	free(ds);
	ring_builder_free(b);
	return EXIT_OK;
}

static int cmd_dump(const char *path, int argc, char **argv)
{
	struct ring_builder *b = NULL;
	int rc;
	if (argc != 1 || strcmp(argv[0], "--json")) {
		fprintf(stderr, "usage: cairn ring %s dump --json\n", path);
		return EXIT_ERR;
	}
	rc = load(path, &b);
	if (rc)
		return rc;
	uint32_t R = ring_builder_replicas(b), parts = 1u << ring_builder_part_power(b);
	if (!ring_builder_part_devs(b, 0)) {
		ring_builder_free(b);
		fprintf(stderr, "cairn ring: %s has not been rebalanced\n", path);
		return EXIT_ERR;
	}
	/* written by hand: a 2^20-partition dump as a jansson tree would take GBs */
	printf("{\"part_power\": %u, \"replicas\": %u, \"generation\": %" PRIu64 ", \"devices\": [",
	       ring_builder_part_power(b), R, ring_builder_generation(b));
	for (uint32_t i = 0; i < ring_builder_dev_count(b); i++) {
		json_t *d = dev_json(ring_builder_dev_at(b, i, NULL));
		char *s = json_dumps(d, JSON_COMPACT);
		printf("%s%s", i ? ", " : "", s ? s : "null");
		free(s);
		json_decref(d);
	}
	printf("],\n \"partitions\": [\n");
	for (uint32_t p = 0; p < parts; p++) {
		const uint32_t *row = ring_builder_part_devs(b, p);
		printf("  [");
		for (uint32_t r = 0; r < R; r++)
			printf(r ? ", %u" : "%u", row[r]);
		printf(p + 1 < parts ? "],\n" : "]\n");
	}
	printf(" ]}\n");
	ring_builder_free(b);
	return EXIT_OK;
}

static int cmd_validate(const char *path, int argc, char **argv)
{
	struct ring_builder *b = NULL;
	struct ring *r = NULL;
	char why[256], ring_path[4096];
	int rc = load(path, &b), ret;
	if (rc)
		return rc;
	ret = ring_builder_validate(b, why, sizeof(why));
	if (ret) {
		fprintf(stderr, "cairn ring: %s: %s\n", path, why);
		rc = ret == CAIRN_EINVAL && ring_builder_part_devs(b, 0) ? EXIT_WARN : EXIT_ERR;
		goto out;
	}
	ring_path_of(path, ring_path, sizeof(ring_path));
	if (access(ring_path, F_OK) == 0) {
		ret = ring_load(ring_path, &r);
		if (ret) {
			rc = err_out(ring_path, ret);
			goto out;
		}
		uint32_t R = ring_replicas(r), parts = 1u << ring_part_power(r);
		bool same = ring_part_power(r) == ring_builder_part_power(b) &&
			    R == ring_builder_replicas(b);
		for (uint32_t p = 0; same && p < parts; p++)
			same = memcmp(ring_part_devs(r, p), ring_builder_part_devs(b, p),
				      R * sizeof(uint32_t)) == 0;
		if (!same) {
			fprintf(stderr,
				"cairn ring: %s does not match the builder: run write_ring\n",
				ring_path);
			rc = EXIT_WARN;
			goto out;
		}
		printf("Ring file %s is up-to-date\n", ring_path);
	}
	printf("Ring Builder is valid\n");
out:
	ring_free(r);
	ring_builder_free(b);
	return rc;
}

static int hexval(int c)
{
	return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

static int cmd_lookup(const char *path, int argc, char **argv)
{
	struct ring_builder *b = NULL;
	struct ring *r = NULL;
	const char *key = NULL;
	bool name = false, hex = false, json = false;
	uint8_t fp[32];
	char ring_path[4096];
	int ret, rc = EXIT_ERR;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--name"))
			name = true;
		else if (!strcmp(argv[i], "--hex"))
			hex = true;
		else if (!strcmp(argv[i], "--json"))
			json = true;
		else if (!key)
			key = argv[i];
		else
			goto usage;
	}
	if (!key || (name && hex))
		goto usage;
	bool is_hex = strlen(key) == 64 && strspn(key, "0123456789abcdefABCDEF") == 64;
	if (hex && !is_hex) {
		fprintf(stderr, "cairn ring: --hex needs 64 hex digits\n");
		return EXIT_ERR;
	}
	if (name)
		is_hex = false;
	for (int k = 0; is_hex && k < 32; k++)
		fp[k] = (uint8_t)(hexval(key[2 * k]) << 4 | hexval(key[2 * k + 1]));
	/* the ring file is what nodes use; fall back to the builder's state */
	ring_path_of(path, ring_path, sizeof(ring_path));
	if (access(ring_path, F_OK) == 0) {
		ret = ring_load(ring_path, &r);
		if (ret)
			return err_out(ring_path, ret);
	} else {
		rc = load(path, &b);
		if (rc)
			return rc;
		ret = ring_builder_to_ring(b, &r);
		ring_builder_free(b);
		if (ret)
			return err_out("lookup (rebalance first)", ret);
	}
	uint32_t part = is_hex ? ring_partition(r, fp, 32) : ring_partition(r, key, strlen(key));
	uint32_t R = ring_replicas(r), nd = ring_dev_count(r);
	const uint32_t *prim = ring_part_devs(r, part);
	uint32_t *ho = malloc((nd + 1) * sizeof(*ho));
	if (!ho) {
		ring_free(r);
		return err_out("lookup", -ENOMEM);
	}
	size_t nho = ring_handoffs(r, part, ho, nd);
	if (json) {
		json_t *p = json_array(), *h = json_array();
		for (uint32_t i = 0; i < R; i++)
			json_array_append_new(p, dev_json(ring_dev(r, prim[i])));
		for (size_t i = 0; i < nho; i++)
			json_array_append_new(h, dev_json(ring_dev(r, ho[i])));
		json_t *o = json_pack("{s:s,s:s,s:I,s:o,s:o}", "key", key, "kind",
				      is_hex ? "fingerprint" : "name", "partition",
				      (json_int_t)part, "primaries", p, "handoffs", h);
		json_dumpf(o, stdout, JSON_INDENT(1));
		printf("\n");
		json_decref(o);
	} else {
		printf("%s %s -> partition %u\nPrimaries:\n", is_hex ? "fingerprint" : "name", key,
		       part);
		for (uint32_t i = 0; i < R; i++) {
			printf("  replica %u: ", i);
			print_dev(stdout, ring_dev(r, prim[i]));
		}
		printf("Handoffs:\n");
		for (size_t i = 0; i < nho; i++) {
			printf("  %zu: ", i);
			print_dev(stdout, ring_dev(r, ho[i]));
		}
	}
	free(ho);
	ring_free(r);
	return EXIT_OK;
usage:
	fprintf(stderr, "usage: cairn ring %s lookup KEY [--name|--hex] [--json]\n", path);
	return rc;
}

int ring_cli_main(int argc, char **argv)
{
	if (argc < 1 || !strcmp(argv[0], "--help") || !strcmp(argv[0], "-h") ||
	    !strcmp(argv[0], "help")) {
		fputs(usage_text, argc < 1 ? stderr : stdout);
		return argc < 1 ? EXIT_ERR : EXIT_OK;
	}
	const char *path = argv[0];
	const char *verb = argc > 1 ? argv[1] : "show";
	int n = argc > 1 ? argc - 2 : 0;
	char **a = argv + 2;

	if (log_threshold > LOG_WARN)
		log_set_level(LOG_WARN); /* the CLI prints its own results */
	if (!strcmp(verb, "create"))
		return cmd_create(path, n, a);
	if (!strcmp(verb, "add"))
		return cmd_add(path, n, a);
	if (!strcmp(verb, "remove"))
		return cmd_remove_or_weight(path, n, a, false);
	if (!strcmp(verb, "set_weight"))
		return cmd_remove_or_weight(path, n, a, true);
	if (!strcmp(verb, "rebalance"))
		return cmd_rebalance(path, n, a);
	if (!strcmp(verb, "search"))
		return cmd_search(path, n, a);
	if (!strcmp(verb, "validate"))
		return cmd_validate(path, n, a);
	if (!strcmp(verb, "show") || !strcmp(verb, "default"))
		return cmd_show(path, n, a);
	if (!strcmp(verb, "dump"))
		return cmd_dump(path, n, a);
	if (!strcmp(verb, "lookup"))
		return cmd_lookup(path, n, a);
	if (!strcmp(verb, "write_ring")) {
		struct ring_builder *b = NULL;
		char ring_path[4096];
		int rc;
		if (n > 1) {
			fprintf(stderr, "usage: cairn ring %s write_ring [RING_FILE]\n", path);
			return EXIT_ERR;
		}
		rc = load(path, &b);
		if (rc)
			return rc;
		if (n == 1)
			snprintf(ring_path, sizeof(ring_path), "%s", a[0]);
		else
			ring_path_of(path, ring_path, sizeof(ring_path));
		rc = cmd_write_ring(b, ring_path);
		if (!rc)
			printf("Ring file %s written (build version %" PRIu64 ")\n", ring_path,
			       ring_builder_generation(b));
		ring_builder_free(b);
		return rc;
	}
	fprintf(stderr, "cairn ring: unknown verb '%s'\n\n%s", verb, usage_text);
	return EXIT_ERR;
}
