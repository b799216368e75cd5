/* node/admin_vol.c - the block volume routes of the admin API:
 * /admin/v1/volumes[/NAME[/rollback|attach|detach|diff|snapshots[/SNAP]]].
 *
 * admin.c matches the route (admin_vol_match), authenticates the root user
 * and hands the raw target and body here; this file parses them, calls the
 * bs_* management functions and builds the JSON answer. Names in the path
 * are percent-decoded from the raw target (so "%2F" stays inside one
 * segment). The one table mapping block store errors to API errors is
 * vol_error(): every message names the volume and what to do next.
 *
 * Threads: the admin server's connection threads; no state of its own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "blockstore/bs.h"
#include "core/log.h"
#include "node/node.h"
#include "registry/registry.h"

#define TAG "api"
#define LEASE_MAX (10u * 365 * 86400) /* seconds: a lease longer than that is a typo */
/* Sizes are multiples of a sector (bs rounds them up to whole 64 KiB
 * blocks); checked here too, so the message can say so. */
#define VOL_SECTOR 512u

enum vroute {
	VR_NONE = 0,
	VR_COLL,     /* /volumes */
	VR_VOL,	     /* /volumes/NAME */
	VR_ROLLBACK, /* /volumes/NAME/rollback */
	VR_ATTACH,   /* /volumes/NAME/attach */
	VR_DETACH,   /* /volumes/NAME/detach */
	VR_SNAPS,    /* /volumes/NAME/snapshots */
	VR_SNAP,     /* /volumes/NAME/snapshots/SNAP */
	VR_DIFF,     /* /volumes/NAME/diff */
};

struct vpath {
	enum vroute route;
	bool bad; /* a name that does not decode, or is too long */
	char name[VOL_NAME_MAX + 1];
	char snap[VOL_SNAP_NAME_MAX + 1];
	const char *query; /* after '?', or "" */
};

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes n bytes of s into out (cap bytes with the NUL). false:
 * a bad escape, a NUL byte, or too long. */
static bool pct_decode(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (c == '%') {
			if (i + 2 >= n)
				return false;
			int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
			if (hi < 0 || lo < 0)
				return false;
			c = (char)(hi << 4 | lo);
			i += 2;
		}
		if (c == '\0' || o + 1 >= cap)
			return false;
		out[o++] = c;
	}
	out[o] = '\0';
	return true;
}

/* Splits the raw target into route, names and query. */
static void parse_path(const char *target, struct vpath *p)
{
	static const char prefix[] = "/admin/v1/volumes";
	memset(p, 0, sizeof(*p));
	size_t plen = strcspn(target, "?");
	p->query = target[plen] == '?' ? target + plen + 1 : "";
	if (plen < sizeof(prefix) - 1 || strncmp(target, prefix, sizeof(prefix) - 1) != 0)
		return;
	const char *s = target + sizeof(prefix) - 1, *end = target + plen;
	if (s == end) {
		p->route = VR_COLL;
		return;
	}
	if (*s != '/')
		return;
	s++;
	if (s == end) {
		p->route = VR_COLL; /* "/admin/v1/volumes/" */
		return;
	}
	/* Up to four segments: NAME [ACTION [SNAP]] */
	const char *seg[4];
	size_t len[4];
	int n = 0;
	while (s <= end && n < 4) {
		const char *e = memchr(s, '/', (size_t)(end - s));
		if (!e)
			e = end;
		seg[n] = s;
		len[n] = (size_t)(e - s);
		n++;
		if (e == end)
			break;
		s = e + 1;
		if (s == end) { /* a trailing slash: an empty last segment */
			seg[n] = s;
			len[n] = 0;
			n++;
			break;
		}
	}
	if (n >= 4 || len[0] == 0)
		return;
	if (!pct_decode(seg[0], len[0], p->name, sizeof(p->name)))
		p->bad = true;
	if (n == 1) {
		p->route = VR_VOL;
		return;
	}
#define SEG_IS(i, lit) (len[i] == sizeof(lit) - 1 && memcmp(seg[i], lit, len[i]) == 0)
	if (n == 2) {
		if (SEG_IS(1, "rollback"))
			p->route = VR_ROLLBACK;
		else if (SEG_IS(1, "attach"))
			p->route = VR_ATTACH;
		else if (SEG_IS(1, "detach"))
			p->route = VR_DETACH;
		else if (SEG_IS(1, "snapshots"))
			p->route = VR_SNAPS;
		else if (SEG_IS(1, "diff"))
			p->route = VR_DIFF;
		return;
	}
	if (SEG_IS(1, "snapshots") && len[2] > 0) {
		p->route = VR_SNAP;
		if (!pct_decode(seg[2], len[2], p->snap, sizeof(p->snap)))
			p->bad = true;
	}
#undef SEG_IS
}

bool admin_vol_match(const char *method, const char *target, const char **op, const char **allow)
{
	struct vpath p;
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	bool post = strcmp(method, "POST") == 0;
	bool del = strcmp(method, "DELETE") == 0;
	bool patch = strcmp(method, "PATCH") == 0;
	size_t plen = strcspn(target, "?");
	if (plen < 17 || strncmp(target, "/admin/v1/volumes", 17) != 0 ||
	    (target[17] != '/' && target[17] != '?' && target[17] != '\0'))
		return false;
	parse_path(target, &p);
	*op = NULL;
	*allow = NULL;
	switch (p.route) {
	case VR_NONE:
		return true; /* *allow NULL: no such endpoint */
	case VR_COLL:
		*allow = "GET, POST";
		*op = get ? "ListVolumes" : post ? "CreateVolume" : NULL;
		break;
	case VR_VOL:
		*allow = "GET, PATCH, DELETE";
		*op = get ? "GetVolume" : patch ? "UpdateVolume" : del ? "DeleteVolume" : NULL;
		break;
	case VR_ROLLBACK:
		*allow = "POST";
		*op = post ? "RollbackVolume" : NULL;
		break;
	case VR_ATTACH:
		*allow = "POST";
		*op = post ? "AttachVolume" : NULL;
		break;
	case VR_DETACH:
		*allow = "POST";
		*op = post ? "DetachVolume" : NULL;
		break;
	case VR_SNAPS:
		*allow = "GET, POST";
		*op = get ? "ListSnapshots" : post ? "CreateSnapshot" : NULL;
		break;
	case VR_SNAP:
		*allow = "DELETE";
		*op = del ? "DeleteSnapshot" : NULL;
		break;
	case VR_DIFF:
		*allow = "GET";
		*op = get ? "DiffSnapshots" : NULL;
		break;
	}
	return true;
}

/* ---- answers ---- */

struct reply {
	unsigned status;
	json_t *body;
};

static void set_error(struct reply *rep, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void set_error(struct reply *rep, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_decref(rep->body);
	rep->status = status;
	rep->body = json_pack("{s:{s:s, s:s}}", "error", "code", code, "message", msg);
}

static void set_ok(struct reply *rep, unsigned status, json_t *body)
{
	json_decref(rep->body);
	rep->status = status;
	rep->body = body;
	if (!body && status != 204)
		set_error(rep, 503, "SlowDown", "out of memory; retry");
}

static void iso_time(uint64_t ns, char *out, size_t len)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;
	if (!gmtime_r(&t, &tm) || !strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(out, len, "1970-01-01T00:00:00Z");
}

static json_t *iso_json(uint64_t ns)
{
	char t[40];
	iso_time(ns, t, sizeof(t));
	return json_string(t);
}

static const char *state_name(uint8_t s)
{
	switch (s) {
	case VOL_AVAILABLE:
		return "available";
	case VOL_ATTACHED:
		return "attached";
	case VOL_DELETING:
		return "deleting";
	default:
		return "unknown";
	}
}

static json_t *volume_json(const struct bs_vol_info *vi)
{
	char id[2 * VOL_ID_LEN + 1];
	for (unsigned i = 0; i < VOL_ID_LEN; i++)
		snprintf(id + 2 * i, 3, "%02x", vi->v.id[i]);
	/* An attachment record makes the volume attached even while its
	 * state byte lags (an expired lease is still shown, with its end). */
	const char *state =
	    vi->v.state == VOL_AVAILABLE && vi->attached ? "attached" : state_name(vi->v.state);
	json_t *o = json_pack(
	    "{s:s, s:s, s:I, s:s, s:i, s:I, s:o, s:I, s:I, s:I, s:I}", "name", vi->v.name, "id", id,
	    "size", (json_int_t)vi->v.size, "state", state, "replicas", (int)vi->v.replicas,
	    "extent_size", (json_int_t)vi->v.extent_size, "created", iso_json(vi->v.created_ns),
	    "iops_limit", (json_int_t)vi->v.iops_limit, "bps_limit", (json_int_t)vi->v.bps_limit,
	    "written_bytes", (json_int_t)vi->written_bytes, "snapshots", (json_int_t)vi->nsnaps);
	if (!o)
		return NULL;
	if (vi->has_parent && json_object_set_new(o, "parent",
						  json_pack("{s:s, s:s}", "volume", vi->parent_name,
							    "snapshot", vi->parent_snap)) != 0)
		goto fail;
	if (vi->has_base) {
		char mid[33];
		for (unsigned i = 0; i < 16; i++)
			snprintf(mid + 2 * i, 3, "%02x", vi->base_mid[i]);
		if (json_object_set_new(o, "base", json_pack("{s:s}", "manifest", mid)) != 0)
			goto fail;
	}
	if (vi->attached &&
	    json_object_set_new(o, "attachment",
				json_pack("{s:s, s:o, s:o, s:I}", "host", vi->host, "attached",
					  iso_json(vi->attached_ns), "expires",
					  iso_json(vi->expires_ns), "connections",
					  (json_int_t)vi->connections)) != 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *snap_json(const struct vol_snap *s)
{
	return json_pack("{s:s, s:o, s:I, s:I}", "name", s->name, "created",
			 iso_json(s->created_ns), "size", (json_int_t)s->size, "clones",
			 (json_int_t)s->nclones);
}

/* "10 GiB" for messages (exact bytes when not a whole unit). */
static void fmt_size(uint64_t b, char *out, size_t len)
{
	static const char *const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB"};
	unsigned u = 0;
	while (u < 5 && b >= 1024 && b % 1024 == 0) {
		b /= 1024;
		u++;
	}
	snprintf(out, len, "%llu %s", (unsigned long long)b, units[u]);
}

/* ---- errors: the one table for block store codes ---- */

enum vop {
	OP_CREATE,
	OP_CLONE,
	OP_GET,
	OP_DELETE,
	OP_RESIZE,
	OP_QOS,
	OP_ROLLBACK,
	OP_ATTACH,
	OP_DETACH,
	OP_SNAPLIST,
	OP_SNAPCREATE,
	OP_SNAPDELETE,
	OP_DIFF,
};

/* The context of a failed call, for the message. */
struct vctx {
	struct bs_store *bs;
	enum vop op;
	const char *vol;  /* the volume named by the request (the source for a clone) */
	const char *snap; /* the snapshot involved, if any (NULL) */
	const char *snap2;
	const char *new_name; /* create/clone: the new volume */
	uint64_t size;	      /* resize: the new size */
};

/* Counts the clones of each snapshot while looking for ctx->snap. */
struct clone_scan {
	const char *snap; /* NULL: any snapshot */
	uint32_t clones;
	char first[VOL_SNAP_NAME_MAX + 1];
};

static int clone_scan_cb(const struct vol_snap *s, void *arg)
{
	struct clone_scan *cs = arg;
	if (s->nclones && (!cs->snap || strcmp(cs->snap, s->name) == 0)) {
		if (!cs->clones)
			snprintf(cs->first, sizeof(cs->first), "%s", s->name);
		cs->clones += s->nclones;
	}
	return 0;
}

static void busy_message(const struct vctx *c, char *msg, size_t len)
{
	struct bs_vol_info vi;
	bool have = bs_volume_get(c->bs, c->vol, &vi) == 0;
	struct clone_scan cs = {.snap = c->op == OP_SNAPDELETE ? c->snap : NULL};
	switch (c->op) {
	case OP_ATTACH:
		if (have && vi.attached) {
			char t[40];
			iso_time(vi.expires_ns, t, sizeof(t));
			snprintf(msg, len,
				 "volume %s is attached to host %s (%u connection%s, lease until "
				 "%s); detach it first or use --force",
				 c->vol, vi.host, vi.connections, vi.connections == 1 ? "" : "s",
				 t);
		} else {
			snprintf(msg, len, "volume %s is attached elsewhere; detach it first",
				 c->vol);
		}
		return;
	case OP_DETACH:
		snprintf(msg, len,
			 "volume %s has %u open NBD connection%s from host %s; disconnect "
			 "%s first or use --force (%s at once)",
			 c->vol, have ? vi.connections : 0, have && vi.connections == 1 ? "" : "s",
			 have ? vi.host : "?", have && vi.connections == 1 ? "it" : "them",
			 have && vi.connections == 1 ? "it fails" : "they fail");
		return;
	case OP_SNAPDELETE:
		if (bs_snapshot_list(c->bs, c->vol, clone_scan_cb, &cs) == 0 && cs.clones)
			snprintf(msg, len,
				 "snapshot %s of volume %s has %u clone%s; delete %s first or use "
				 "--flatten (each clone gets its own copy of the data)",
				 c->snap, c->vol, cs.clones, cs.clones == 1 ? "" : "s",
				 cs.clones == 1 ? "it" : "them");
		else
			snprintf(msg, len, "snapshot %s of volume %s is in use; retry", c->snap,
				 c->vol);
		return;
	default:
		break;
	}
	if (have && vi.attached) {
		snprintf(msg, len,
			 "volume %s is attached to host %s; detach it first "
			 "(cairn volume detach %s, --force to cut its connections)",
			 c->vol, vi.host, c->vol);
		return;
	}
	if (c->op == OP_DELETE && bs_snapshot_list(c->bs, c->vol, clone_scan_cb, &cs) == 0 &&
	    cs.clones) {
		snprintf(msg, len,
			 "%u clone%s depend%s on snapshot %s of volume %s; delete %s, or flatten "
			 "with `cairn snapshot delete %s %s --flatten`",
			 cs.clones, cs.clones == 1 ? "" : "s", cs.clones == 1 ? "s" : "", cs.first,
			 c->vol, cs.clones == 1 ? "it" : "them", c->vol, cs.first);
		return;
	}
	if (have && vi.connections) {
		snprintf(msg, len, "volume %s has %u open NBD connection%s; close them first",
			 c->vol, vi.connections, vi.connections == 1 ? "" : "s");
		return;
	}
	snprintf(msg, len, "volume %s is busy; retry", c->vol);
}

static int snap_find_cb(const struct vol_snap *s, void *arg)
{
	return strcmp(s->name, arg) == 0 ? 1 : 0;
}

static bool snap_exists(struct bs_store *bs, const char *vol, const char *snap)
{
	return bs_snapshot_list(bs, vol, snap_find_cb, (void *)snap) == 1;
}

static void vol_error(struct reply *rep, const struct vctx *c, int err)
{
	char msg[600];
	struct bs_vol_info vi;
	switch (err) {
	case CAIRN_ENOTFOUND:
		if (c->op == OP_DETACH && bs_volume_get(c->bs, c->vol, &vi) == 0) {
			set_error(rep, 400, "InvalidArgument", "volume %s is not attached", c->vol);
			return;
		}
		if (c->snap && bs_volume_get(c->bs, c->vol, &vi) == 0) {
			/* The volume exists: a snapshot is missing (diff: name the
			 * one that is). */
			const char *s = c->snap;
			if (c->snap2 && snap_exists(c->bs, c->vol, c->snap))
				s = c->snap2;
			set_error(rep, 404, "NoSuchSnapshot",
				  "volume %s has no snapshot %s (cairn snapshot list %s)", c->vol,
				  s, c->vol);
			return;
		}
		set_error(rep, 404, "NoSuchVolume", "volume %s does not exist (cairn volume list)",
			  c->vol);
		return;
	case CAIRN_EEXISTS:
		if (c->op == OP_SNAPCREATE)
			set_error(rep, 409, "SnapshotExists",
				  "volume %s already has a snapshot named %s", c->vol, c->snap);
		else
			set_error(rep, 409, "VolumeExists", "volume %s already exists",
				  c->new_name ? c->new_name : c->vol);
		return;
	case CAIRN_ENOTEMPTY: {
		uint32_t n = bs_volume_get(c->bs, c->vol, &vi) == 0 ? vi.nsnaps : 0;
		set_error(rep, 409, "VolumeNotEmpty",
			  "volume %s has %u snapshot%s; delete them first or use --force "
			  "(force=true) to delete them with it",
			  c->vol, n, n == 1 ? "" : "s");
		return;
	}
	case -EBUSY:
		busy_message(c, msg, sizeof(msg));
		set_error(rep, 409, "VolumeBusy", "%s", msg);
		return;
	case CAIRN_EINVAL:
		if (c->op == OP_RESIZE && bs_volume_get(c->bs, c->vol, &vi) == 0) {
			char a[32], b[32];
			fmt_size(vi.v.size, a, sizeof(a));
			fmt_size(c->size, b, sizeof(b));
			if (c->size < vi.v.size)
				set_error(rep, 400, "InvalidArgument",
					  "shrinking volume %s from %s to %s drops the data past "
					  "the new end; it needs force (--force) and the volume "
					  "detached",
					  c->vol, a, b);
			else
				set_error(rep, 400, "InvalidArgument",
					  "volume %s cannot be resized to %llu bytes (%s): sizes "
					  "are positive multiples of %u bytes",
					  c->vol, (unsigned long long)c->size, b, VOL_SECTOR);
			return;
		}
		if (c->op == OP_CREATE)
			set_error(
			    rep, 400, "InvalidArgument",
			    "cannot create volume %s: names are 1 to %d bytes, sizes positive "
			    "multiples of %u bytes, replicas at most the pool's replica count",
			    c->new_name ? c->new_name : c->vol, VOL_NAME_MAX, VOL_SECTOR);
		else if (c->op == OP_CLONE)
			set_error(rep, 400, "InvalidArgument",
				  "cannot clone %s@%s as %s: names are 1 to %d bytes", c->vol,
				  c->snap ? c->snap : "", c->new_name ? c->new_name : "",
				  VOL_NAME_MAX);
		else
			set_error(rep, 400, "InvalidArgument", "invalid argument for volume %s",
				  c->vol);
		return;
	case CAIRN_ETOOBIG:
		set_error(rep, 400, "InvalidArgument",
			  "volume %s is over a limit (rollbacks kept: %d, clone depth: %d)", c->vol,
			  VOL_JUMPS_MAX, VOL_DEPTH_MAX);
		return;
	case -ENOSPC:
	case CAIRN_ENOSPACE:
		set_error(rep, 507, "InsufficientStorage",
			  "no room for volume %s: the pool or the metadata map is full",
			  c->new_name ? c->new_name : c->vol);
		return;
	case -ENOMEM:
		set_error(rep, 503, "SlowDown", "out of memory; retry");
		return;
	case CAIRN_ESHUTDOWN:
	case -ESHUTDOWN:
		set_error(rep, 503, "ServiceUnavailable", "cairn is shutting down");
		return;
	default:
		log_err(TAG, "volume %s: %s", c->vol, cairn_strerror(err));
		set_error(rep, 500, "InternalError", "volume %s: %s", c->vol, cairn_strerror(err));
		return;
	}
}

/* ---- request parsing ---- */

/* The body as a JSON object: NULL (answered) when it is not one. An empty
 * body is {} unless required. */
static json_t *load_body(struct reply *rep, const char *body, size_t len, bool required,
			 const char *expect)
{
	json_error_t jerr;
	if (len == 0 && !required)
		return json_object();
	json_t *o = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
	if (!o) {
		set_error(rep, 400, "InvalidArgument",
			  "the body is not JSON (%s at %d:%d); expected %s", jerr.text, jerr.line,
			  jerr.column, expect);
		return NULL;
	}
	if (!json_is_object(o)) {
		json_decref(o);
		set_error(rep, 400, "InvalidArgument", "the body must be a JSON object: %s",
			  expect);
		return NULL;
	}
	return o;
}

/* Refuses fields not in allowed (a NULL-terminated list). */
static bool only_keys(struct reply *rep, json_t *o, const char *const *allowed)
{
	const char *k;
	json_t *v;
	json_object_foreach(o, k, v)
	{
		bool ok = false;
		for (size_t i = 0; allowed[i] && !ok; i++)
			ok = strcmp(k, allowed[i]) == 0;
		if (!ok) {
			char list[200] = "";
			for (size_t i = 0; allowed[i]; i++) {
				size_t l = strlen(list);
				snprintf(list + l, sizeof(list) - l, "%s\"%s\"", i ? ", " : "",
					 allowed[i]);
			}
			set_error(rep, 400, "InvalidArgument",
				  "unknown field \"%.64s\" (expected %s)", k, list);
			return false;
		}
	}
	return true;
}

/* A non-negative integer field: 1 present, 0 absent, -1 answered. */
static int get_u64(struct reply *rep, json_t *o, const char *key, uint64_t max, uint64_t *out)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max) {
		set_error(rep, 400, "InvalidArgument",
			  "field \"%s\" must be an integer from 0 to %llu", key,
			  (unsigned long long)max);
		return -1;
	}
	*out = (uint64_t)json_integer_value(v);
	return 1;
}

/* A string field of 1..max bytes: 1 present, 0 absent, -1 answered. */
static int get_str(struct reply *rep, json_t *o, const char *key, size_t max, const char **out)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v)) {
		set_error(rep, 400, "InvalidArgument",
			  "field \"%s\" must be a string of 1 to %zu bytes", key, max);
		return -1;
	}
	*out = json_string_value(v);
	return 1;
}

static int get_bool(struct reply *rep, json_t *o, const char *key, bool *out)
{
	json_t *v = json_object_get(o, key);
	if (!v)
		return 0;
	if (!json_is_boolean(v)) {
		set_error(rep, 400, "InvalidArgument", "field \"%s\" must be true or false", key);
		return -1;
	}
	*out = json_is_true(v);
	return 1;
}

/* The value of query parameter key, percent-decoded into out: 1 found, 0
 * absent, -1 bad escape or too long. */
static int query_get(const char *q, const char *key, char *out, size_t cap)
{
	size_t kl = strlen(key);
	while (q && *q) {
		size_t n = strcspn(q, "&");
		size_t nl = strcspn(q, "=");
		if (nl > n)
			nl = n;
		if (nl == kl && strncmp(q, key, kl) == 0) {
			const char *v = nl < n ? q + nl + 1 : q + n;
			size_t vl = nl < n ? n - nl - 1 : 0;
			return pct_decode(v, vl, out, cap) ? 1 : -1;
		}
		q += n;
		if (*q == '&')
			q++;
	}
	return 0;
}

/* force=true|false (also 1/0, or a bare "force"): 0 ok, -1 answered. */
static int query_bool(struct reply *rep, const char *q, const char *key, bool *out)
{
	char v[16];
	int r = query_get(q, key, v, sizeof(v));
	if (r == 0)
		return 0;
	if (r < 0)
		goto bad;
	if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || v[0] == '\0') {
		*out = true;
		return 0;
	}
	if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
		*out = false;
		return 0;
	}
bad:
	set_error(rep, 400, "InvalidArgument", "query parameter %s must be true or false", key);
	return -1;
}

/* ---- handlers ---- */

static void answer_volume(struct reply *rep, struct vctx *c, const char *name, unsigned status)
{
	struct bs_vol_info vi;
	int rc = bs_volume_get(c->bs, name, &vi);
	if (rc < 0) {
		c->vol = name;
		vol_error(rep, c, rc);
		return;
	}
	set_ok(rep, status, volume_json(&vi));
}

struct list_acc {
	json_t *arr;
};

static int list_vol_cb(const struct bs_vol_info *vi, void *arg)
{
	struct list_acc *a = arg;
	json_t *o = volume_json(vi);
	if (!o || json_array_append_new(a->arr, o) != 0)
		return -ENOMEM;
	return 0;
}

static void do_list(struct reply *rep, struct vctx *c)
{
	struct list_acc a = {.arr = json_array()};
	if (!a.arr) {
		set_error(rep, 503, "SlowDown", "out of memory; retry");
		return;
	}
	int rc = bs_volume_list(c->bs, list_vol_cb, &a);
	if (rc < 0) {
		json_decref(a.arr);
		c->vol = "(list)";
		vol_error(rep, c, rc);
		return;
	}
	set_ok(rep, 200, json_pack("{s:o}", "volumes", a.arr));
}

static void do_create(struct reply *rep, struct vctx *c, struct registry *reg, const char *body,
		      size_t len)
{
	static const char *const keys[] = {"name",	"size",		 "replicas", "iops_limit",
					   "bps_limit", "from_snapshot", "image",    NULL};
	static const char expect[] =
	    "{\"name\": \"VOL\", \"size\": BYTES, \"replicas\"?: N, \"iops_limit\"?: N, "
	    "\"bps_limit\"?: N} or {\"name\": \"VOL\", \"from_snapshot\": {\"volume\": \"V\", "
	    "\"snapshot\": \"S\"}} or {\"name\": \"VOL\", \"image\": \"ID\", \"size\"?: BYTES, "
	    "...}";
	json_t *o = load_body(rep, body, len, true, expect);
	const char *name = NULL, *src = NULL, *snap = NULL;
	uint64_t size = 0, replicas = 0, iops = 0, bps = 0;
	int has_size, has_rep, has_iops, has_bps;
	struct bs_vol_info vi;
	int rc;
	if (!o)
		return;
	if (!only_keys(rep, o, keys))
		goto out;
	if (get_str(rep, o, "name", VOL_NAME_MAX, &name) <= 0) {
		if (!name && rep->status == 0)
			set_error(rep, 400, "InvalidArgument",
				  "field \"name\" is missing: expected %s", expect);
		goto out;
	}
	if ((has_size = get_u64(rep, o, "size", INT64_MAX, &size)) < 0 ||
	    (has_rep = get_u64(rep, o, "replicas", 255, &replicas)) < 0 ||
	    (has_iops = get_u64(rep, o, "iops_limit", INT64_MAX, &iops)) < 0 ||
	    (has_bps = get_u64(rep, o, "bps_limit", INT64_MAX, &bps)) < 0)
		goto out;
	json_t *from = json_object_get(o, "from_snapshot");
	c->new_name = name;
	if (json_object_get(o, "image")) {
		const char *image = NULL;
		char why[512] = "";
		if (from) {
			set_error(rep, 400, "InvalidArgument",
				  "fields \"image\" and \"from_snapshot\" exclude each other");
			goto out;
		}
		if (get_str(rep, o, "image", 64, &image) <= 0)
			goto out;
		if ((has_size && (size == 0 || size % VOL_SECTOR)) || (has_rep && replicas == 0)) {
			set_error(rep, 400, "InvalidArgument", "field \"%s\" must be %s",
				  has_rep && replicas == 0 ? "replicas" : "size",
				  has_rep && replicas == 0 ? "at least 1"
							   : "a positive multiple of 512 bytes");
			goto out;
		}
		if (!reg) {
			set_error(rep, 503, "ServiceUnavailable",
				  "the image registry is not served by this node");
			goto out;
		}
		struct vol_opts opts = {
		    .replicas = (unsigned)replicas, .iops_limit = iops, .bps_limit = bps};
		rc = reg_volume_from_image(reg, NULL, image, name, has_size ? size : 0, &opts, &vi,
					   why, sizeof(why));
		if (rc < 0) {
			json_t *err = NULL;
			unsigned st = admin_img_error(
			    rc, ADMIN_IMG_VOLUME, rc == CAIRN_EEXISTS ? name : image, why, &err);
			json_decref(rep->body);
			rep->status = st;
			rep->body = err;
			if (!err)
				set_error(rep, 503, "SlowDown", "out of memory; retry");
			goto out;
		}
		log_info(TAG, "created volume %s from image %s (%llu bytes)", name, image,
			 (unsigned long long)vi.v.size);
	} else if (from) {
		static const char *const fkeys[] = {"volume", "snapshot", NULL};
		if (!json_is_object(from)) {
			set_error(rep, 400, "InvalidArgument",
				  "field \"from_snapshot\" must be {\"volume\": \"V\", "
				  "\"snapshot\": \"S\"}");
			goto out;
		}
		if (!only_keys(rep, from, fkeys))
			goto out;
		if (get_str(rep, from, "volume", VOL_NAME_MAX, &src) <= 0 ||
		    get_str(rep, from, "snapshot", VOL_SNAP_NAME_MAX, &snap) <= 0) {
			if (rep->status == 0)
				set_error(rep, 400, "InvalidArgument",
					  "field \"from_snapshot\" needs \"volume\" and "
					  "\"snapshot\"");
			goto out;
		}
		if (has_size || has_rep) {
			set_error(rep, 400, "InvalidArgument",
				  "field \"%s\" does not apply to a clone (it has its source's; "
				  "resize it afterwards)",
				  has_size ? "size" : "replicas");
			goto out;
		}
		c->op = OP_CLONE;
		c->vol = src;
		c->snap = snap;
		struct vol_opts opts, *po = NULL;
		if (has_iops || has_bps) {
			/* A limit not given stays the source's. */
			struct bs_vol_info si;
			rc = bs_volume_get(c->bs, src, &si);
			if (rc < 0) {
				vol_error(rep, c, rc);
				goto out;
			}
			opts = (struct vol_opts){.replicas = si.v.replicas,
						 .iops_limit = has_iops ? iops : si.v.iops_limit,
						 .bps_limit = has_bps ? bps : si.v.bps_limit};
			po = &opts;
		}
		rc = bs_volume_clone(c->bs, src, snap, name, po, &vi);
		if (rc < 0) {
			vol_error(rep, c, rc);
			goto out;
		}
		log_info(TAG, "cloned volume %s from %s@%s", name, src, snap);
	} else {
		if (!has_size) {
			set_error(rep, 400, "InvalidArgument",
				  "field \"size\" is missing: expected %s", expect);
			goto out;
		}
		if (size == 0 || size % VOL_SECTOR) {
			set_error(rep, 400, "InvalidArgument",
				  "field \"size\" must be a positive multiple of %u bytes (it is "
				  "rounded up to whole %u KiB blocks)",
				  VOL_SECTOR, VOL_BLOCK_SIZE / 1024);
			goto out;
		}
		if (has_rep && replicas == 0) {
			set_error(rep, 400, "InvalidArgument",
				  "field \"replicas\" must be at least 1");
			goto out;
		}
		c->op = OP_CREATE;
		c->vol = name;
		struct vol_opts opts = {
		    .replicas = (unsigned)replicas, .iops_limit = iops, .bps_limit = bps};
		rc = bs_volume_create(c->bs, name, size, &opts, &vi);
		if (rc < 0) {
			vol_error(rep, c, rc);
			goto out;
		}
		log_info(TAG, "created volume %s (%llu bytes, %u replicas)", name,
			 (unsigned long long)vi.v.size, vi.v.replicas);
	}
	set_ok(rep, 201, volume_json(&vi));
out:
	json_decref(o);
}

static void do_delete(struct reply *rep, struct vctx *c, const char *query)
{
	bool force = false;
	if (query_bool(rep, query, "force", &force) < 0)
		return;
	c->op = OP_DELETE;
	int rc = bs_volume_delete(c->bs, c->vol, force);
	if (rc < 0) {
		vol_error(rep, c, rc);
		return;
	}
	log_info(TAG, "deleted volume %s%s", c->vol, force ? " (force)" : "");
	set_ok(rep, 204, NULL);
}

static void do_patch(struct reply *rep, struct vctx *c, const char *body, size_t len)
{
	static const char *const keys[] = {"size", "force", "iops_limit", "bps_limit", NULL};
	static const char expect[] =
	    "{\"size\"?: BYTES, \"force\"?: bool, \"iops_limit\"?: N, \"bps_limit\"?: N}";
	json_t *o = load_body(rep, body, len, true, expect);
	uint64_t size = 0, iops = 0, bps = 0;
	bool force = false;
	int has_size, has_iops, has_bps, rc;
	if (!o)
		return;
	if (!only_keys(rep, o, keys))
		goto out;
	if ((has_size = get_u64(rep, o, "size", INT64_MAX, &size)) < 0 ||
	    get_bool(rep, o, "force", &force) < 0 ||
	    (has_iops = get_u64(rep, o, "iops_limit", INT64_MAX, &iops)) < 0 ||
	    (has_bps = get_u64(rep, o, "bps_limit", INT64_MAX, &bps)) < 0)
		goto out;
	if (!has_size && !has_iops && !has_bps) {
		set_error(rep, 400, "InvalidArgument", "nothing to change: expected %s", expect);
		goto out;
	}
	if (has_size && (size == 0 || size % VOL_SECTOR)) {
		set_error(
		    rep, 400, "InvalidArgument",
		    "field \"size\" must be a positive multiple of %u bytes (it is rounded up "
		    "to whole %u KiB blocks)",
		    VOL_SECTOR, VOL_BLOCK_SIZE / 1024);
		goto out;
	}
	if (has_size) {
		c->op = OP_RESIZE;
		c->size = size;
		rc = bs_volume_resize(c->bs, c->vol, size, force);
		if (rc < 0) {
			vol_error(rep, c, rc);
			goto out;
		}
		log_info(TAG, "resized volume %s to %llu bytes%s", c->vol, (unsigned long long)size,
			 force ? " (force)" : "");
	}
	if (has_iops || has_bps) {
		struct bs_vol_info vi;
		c->op = OP_QOS;
		rc = bs_volume_get(c->bs, c->vol, &vi);
		if (rc == 0)
			rc = bs_volume_set_qos(c->bs, c->vol, has_iops ? iops : vi.v.iops_limit,
					       has_bps ? bps : vi.v.bps_limit);
		if (rc < 0) {
			vol_error(rep, c, rc);
			goto out;
		}
		log_info(TAG, "volume %s: QoS %llu IOPS, %llu B/s (0: none)", c->vol,
			 (unsigned long long)(has_iops ? iops : vi.v.iops_limit),
			 (unsigned long long)(has_bps ? bps : vi.v.bps_limit));
	}
	answer_volume(rep, c, c->vol, 200);
out:
	json_decref(o);
}

static void do_rollback(struct reply *rep, struct vctx *c, const char *body, size_t len)
{
	static const char *const keys[] = {"snapshot", NULL};
	json_t *o = load_body(rep, body, len, true, "{\"snapshot\": \"SNAP\"}");
	const char *snap = NULL;
	if (!o)
		return;
	if (!only_keys(rep, o, keys))
		goto out;
	if (get_str(rep, o, "snapshot", VOL_SNAP_NAME_MAX, &snap) <= 0) {
		if (rep->status == 0)
			set_error(rep, 400, "InvalidArgument",
				  "field \"snapshot\" is missing: expected {\"snapshot\": "
				  "\"SNAP\"}");
		goto out;
	}
	c->op = OP_ROLLBACK;
	c->snap = snap;
	int rc = bs_volume_rollback(c->bs, c->vol, snap);
	if (rc < 0) {
		vol_error(rep, c, rc);
		goto out;
	}
	log_info(TAG, "rolled volume %s back to snapshot %s", c->vol, snap);
	answer_volume(rep, c, c->vol, 200);
out:
	json_decref(o);
}

/* Percent-encodes what an nbd:// URL path cannot carry as is. */
static void url_path_escape(const char *s, char *out, size_t cap)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;
	for (; *s && o + 4 < cap; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || strchr("-._~@:", ch)) {
			out[o++] = (char)ch;
		} else {
			out[o++] = '%';
			out[o++] = hex[ch >> 4];
			out[o++] = hex[ch & 15];
		}
	}
	out[o] = '\0';
}

static void do_attach(struct reply *rep, struct vctx *c, const struct admin_vol_env *env,
		      const char *body, size_t len)
{
	static const char *const keys[] = {"host", "lease_seconds", NULL};
	json_t *o =
	    load_body(rep, body, len, false, "{\"host\"?: \"HOST\", \"lease_seconds\"?: SECONDS}");
	const char *host = NULL;
	uint64_t lease = 0;
	char token[BS_TOKEN_LEN + 1];
	struct bs_vol_info vi;
	if (!o)
		return;
	if (!only_keys(rep, o, keys))
		goto out;
	if (get_str(rep, o, "host", VOL_HOST_MAX, &host) < 0 ||
	    get_u64(rep, o, "lease_seconds", LEASE_MAX, &lease) < 0)
		goto out;
	if (!host)
		host = env->peer && env->peer[0] ? env->peer : "unknown";
	c->op = OP_ATTACH;
	int rc = bs_attach(c->bs, c->vol, host, (uint32_t)lease, token, &vi);
	if (rc < 0) {
		vol_error(rep, c, rc);
		goto out;
	}
	char exp[BS_TOKEN_LEN + VOL_NAME_MAX + 2], path[3 * sizeof(exp)], url[sizeof(path) + 300];
	snprintf(exp, sizeof(exp), "%s@%s", vi.v.name, token);
	url_path_escape(exp, path, sizeof(path));
	const char *h = env->nbd_host && env->nbd_host[0] ? env->nbd_host : "127.0.0.1";
	snprintf(url, sizeof(url), strchr(h, ':') ? "nbd://[%s]:%u/%s" : "nbd://%s:%u/%s", h,
		 env->nbd_port, path);
	log_info(TAG, "attached volume %s to host %s (lease until expiry)", vi.v.name, host);
	set_ok(rep, 200,
	       json_pack("{s:s, s:s, s:s, s:s, s:s, s:o}", "volume", vi.v.name, "host", vi.host,
			 "token", token, "export", exp, "url", url, "expires",
			 iso_json(vi.expires_ns)));
out:
	json_decref(o);
}

static void do_detach(struct reply *rep, struct vctx *c, const char *query, const char *body,
		      size_t len)
{
	static const char *const keys[] = {"force", NULL};
	json_t *o = load_body(rep, body, len, false, "{\"force\"?: bool}");
	bool force = false;
	if (!o)
		return;
	if (!only_keys(rep, o, keys) || get_bool(rep, o, "force", &force) < 0 ||
	    query_bool(rep, query, "force", &force) < 0)
		goto out;
	c->op = OP_DETACH;
	int rc = bs_detach(c->bs, c->vol, force);
	if (rc < 0) {
		vol_error(rep, c, rc);
		goto out;
	}
	log_info(TAG, "detached volume %s%s", c->vol, force ? " (force)" : "");
	answer_volume(rep, c, c->vol, 200);
out:
	json_decref(o);
}

static int list_snap_cb(const struct vol_snap *s, void *arg)
{
	json_t *o = snap_json(s);
	if (!o || json_array_append_new(arg, o) != 0)
		return -ENOMEM;
	return 0;
}

static void do_snap_list(struct reply *rep, struct vctx *c)
{
	json_t *arr = json_array();
	if (!arr) {
		set_error(rep, 503, "SlowDown", "out of memory; retry");
		return;
	}
	c->op = OP_SNAPLIST;
	int rc = bs_snapshot_list(c->bs, c->vol, list_snap_cb, arr);
	if (rc < 0) {
		json_decref(arr);
		vol_error(rep, c, rc);
		return;
	}
	set_ok(rep, 200, json_pack("{s:o}", "snapshots", arr));
}

static void do_snap_create(struct reply *rep, struct vctx *c, const char *body, size_t len)
{
	static const char *const keys[] = {"name", NULL};
	json_t *o = load_body(rep, body, len, true, "{\"name\": \"SNAP\"}");
	const char *name = NULL;
	struct vol_snap s;
	if (!o)
		return;
	if (!only_keys(rep, o, keys))
		goto out;
	if (get_str(rep, o, "name", VOL_SNAP_NAME_MAX, &name) <= 0) {
		if (rep->status == 0)
			set_error(rep, 400, "InvalidArgument",
				  "field \"name\" is missing: expected {\"name\": \"SNAP\"}");
		goto out;
	}
	c->op = OP_SNAPCREATE;
	c->snap = name;
	int rc = bs_snapshot_create(c->bs, c->vol, name, &s);
	if (rc < 0) {
		/* CAIRN_ENOTFOUND here can only be the volume. */
		c->snap = rc == CAIRN_ENOTFOUND ? NULL : name;
		vol_error(rep, c, rc);
		goto out;
	}
	log_info(TAG, "volume %s: snapshot %s", c->vol, name);
	set_ok(rep, 201, snap_json(&s));
out:
	json_decref(o);
}

static void do_snap_delete(struct reply *rep, struct vctx *c, const char *snap, const char *query)
{
	bool flatten = false;
	if (query_bool(rep, query, "flatten", &flatten) < 0)
		return;
	c->op = OP_SNAPDELETE;
	c->snap = snap;
	int rc = bs_snapshot_delete(c->bs, c->vol, snap, flatten);
	if (rc < 0) {
		vol_error(rep, c, rc);
		return;
	}
	log_info(TAG, "volume %s: deleted snapshot %s%s", c->vol, snap,
		 flatten ? " (clones flattened)" : "");
	set_ok(rep, 204, NULL);
}

struct diff_acc {
	json_t *ranges;
	uint64_t changed;
};

static int diff_cb(uint64_t off, uint64_t len, bool zero, void *arg)
{
	struct diff_acc *d = arg;
	json_t *o = json_pack("{s:I, s:I, s:b}", "offset", (json_int_t)off, "length",
			      (json_int_t)len, "zero", zero);
	if (!o || json_array_append_new(d->ranges, o) != 0)
		return -ENOMEM;
	d->changed += len;
	return 0;
}

static void do_diff(struct reply *rep, struct vctx *c, const char *query)
{
	char from[VOL_SNAP_NAME_MAX + 1], to[VOL_SNAP_NAME_MAX + 1];
	int hf = query_get(query, "from", from, sizeof(from));
	int ht = query_get(query, "to", to, sizeof(to));
	if (hf < 0 || ht < 0 || (hf && !from[0]) || (ht && !to[0])) {
		set_error(rep, 400, "InvalidArgument",
			  "query parameter %s must name a snapshot (1 to %d bytes)",
			  hf < 0 || (hf && !from[0]) ? "from" : "to", VOL_SNAP_NAME_MAX);
		return;
	}
	struct diff_acc d = {.ranges = json_array()};
	if (!d.ranges) {
		set_error(rep, 503, "SlowDown", "out of memory; retry");
		return;
	}
	c->op = OP_DIFF;
	c->snap = hf ? from : ht ? to : NULL;
	c->snap2 = hf && ht ? to : NULL;
	int rc = bs_snapshot_diff(c->bs, c->vol, hf ? from : NULL, ht ? to : NULL, diff_cb, &d);
	if (rc < 0) {
		json_decref(d.ranges);
		vol_error(rep, c, rc);
		return;
	}
	set_ok(rep, 200,
	       json_pack("{s:o, s:o, s:o, s:I}", "from", hf ? json_string(from) : json_null(), "to",
			 ht ? json_string(to) : json_null(), "ranges", d.ranges, "changed_bytes",
			 (json_int_t)d.changed));
}

unsigned admin_vol_handle(const struct admin_vol_env *env, const char *method, const char *target,
			  const char *body, size_t body_len, struct json_t **out)
{
	struct reply rep = {0};
	struct vpath p;
	const char *op, *allow;
	*out = NULL;
	if (!admin_vol_match(method, target, &op, &allow) || !allow) {
		set_error(&rep, 404, "NotFound", "no such endpoint");
		goto out;
	}
	if (!op) {
		set_error(&rep, 405, "MethodNotAllowed", "allowed: %s", allow);
		goto out;
	}
	if (!env->bs) {
		set_error(&rep, 503, "ServiceUnavailable",
			  "block volumes are not served by this node");
		goto out;
	}
	parse_path(target, &p);
	if (p.bad) {
		set_error(&rep, 400, "InvalidArgument",
			  "a name in the path does not decode (percent-encoding, no NUL) or is "
			  "longer than %d bytes",
			  VOL_NAME_MAX);
		goto out;
	}
	struct vctx c = {.bs = env->bs, .vol = p.name};
	bool get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
	bool post = strcmp(method, "POST") == 0;
	switch (p.route) {
	case VR_COLL:
		if (get)
			do_list(&rep, &c);
		else
			do_create(&rep, &c, env->reg, body, body_len);
		break;
	case VR_VOL:
		if (get) {
			c.op = OP_GET;
			answer_volume(&rep, &c, p.name, 200);
		} else if (post) {
			break; /* not reached: admin_vol_match refused it */
		} else if (strcmp(method, "DELETE") == 0) {
			do_delete(&rep, &c, p.query);
		} else {
			do_patch(&rep, &c, body, body_len);
		}
		break;
	case VR_ROLLBACK:
		do_rollback(&rep, &c, body, body_len);
		break;
	case VR_ATTACH:
		do_attach(&rep, &c, env, body, body_len);
		break;
	case VR_DETACH:
		do_detach(&rep, &c, p.query, body, body_len);
		break;
	case VR_SNAPS:
		if (get)
			do_snap_list(&rep, &c);
		else
			do_snap_create(&rep, &c, body, body_len);
		break;
	case VR_SNAP:
		do_snap_delete(&rep, &c, p.snap, p.query);
		break;
	case VR_DIFF:
		do_diff(&rep, &c, p.query);
		break;
	case VR_NONE:
		break;
	}
	if (rep.status == 0)
		set_error(&rep, 404, "NotFound", "no such endpoint");
out:
	*out = rep.body;
	return rep.status;
}

/* ---- shared with admin_img.c and admin_tok.c ---- */

bool admin_pct_decode(const char *s, size_t n, char *out, size_t cap)
{
	return pct_decode(s, n, out, cap);
}

int admin_query_get(const char *q, const char *key, char *out, size_t cap)
{
	return query_get(q, key, out, cap);
}
